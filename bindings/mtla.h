// MTLA merge-append: module-level functions (the kernel runs over host memory, no backend handle).
#ifndef LATENTKV_BINDINGS_MTLA_H_
#define LATENTKV_BINDINGS_MTLA_H_

#include <napi.h>

namespace lkv::js {

// Adds mtlaMergeAppend(params) and mtlaMergeAppendAsync(params) -> Promise<void> to exports.
void InitMtla(Napi::Env env, Napi::Object exports);

}  // namespace lkv::js

#endif  // LATENTKV_BINDINGS_MTLA_H_
