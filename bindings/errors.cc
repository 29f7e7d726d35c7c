#include "errors.h"

namespace lkv::js {

std::string error_code(lkv_status status) {
  std::string name = lkv_status_name(status);  // "LKV_ERR_..."
  const std::string prefix = "LKV_ERR_";
  if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
  return "ERR_LATENTKV_" + name;
}

Napi::Error make_error(Napi::Env env, lkv_status status, const std::string& message) {
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, error_code(status)));
  e.Set("nativeStatus", Napi::Number::New(env, status));
  return e;
}

void throw_invalid(Napi::Env env, const std::string& message) {
  throw make_error(env, LKV_ERR_INVALID_ARGUMENT, message);
}

}  // namespace lkv::js
