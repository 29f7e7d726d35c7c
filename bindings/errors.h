// Native status -> JS Error with a stable `code` (lib/errors.ts turns it into a typed class).
#ifndef LATENTKV_BINDINGS_ERRORS_H_
#define LATENTKV_BINDINGS_ERRORS_H_

#include <napi.h>

#include <string>

#include "latentkv.h"

namespace lkv::js {

// "ERR_LATENTKV_INVALID_ARGUMENT" for LKV_ERR_INVALID_ARGUMENT, and so on.
std::string error_code(lkv_status status);
Napi::Error make_error(Napi::Env env, lkv_status status, const std::string& message);
// Throws a JS error for a binding-level argument problem (a C++ exception under NAPI_CPP_EXCEPTIONS).
[[noreturn]] void throw_invalid(Napi::Env env, const std::string& message);

}  // namespace lkv::js

#endif  // LATENTKV_BINDINGS_ERRORS_H_
