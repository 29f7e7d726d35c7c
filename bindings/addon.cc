// Module registration: the backend class and build metadata.
#include <napi.h>

#include "backend-wrap.h"
#include "ceilings-worker.h"
#include "errors.h"
#include "latentkv.h"
#include "mtla.h"

namespace lkv::js {
namespace {

#define LKV_STR_(x) #x
#define LKV_STR(x) LKV_STR_(x)

// What this binary is, so the JS loader can refuse a binary from another package version.
Napi::Value BuildInfo(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("version", LKV_STR(LKV_VERSION_MAJOR) "." LKV_STR(LKV_VERSION_MINOR) "." LKV_STR(LKV_VERSION_PATCH));
  o.Set("apiVersion", LKV_API_VERSION);
#ifdef LKV_WITH_CUDA
  o.Set("backends", Napi::String::New(env, "cpu,cuda"));
#else
  o.Set("backends", Napi::String::New(env, "cpu"));
#endif
  o.Set("compiledIsaMask", lkv_cpu_compiled_isa_mask());
  o.Set("supportedIsaMask", lkv_cpu_supported_isa_mask());
  return o;
}

// cacheLayout(dtype, kvLoraRank, ropeDim, ropeHeads) -> { rowBytes, scaleOffset, ropeOffset }
Napi::Value CacheLayout(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  for (size_t i = 0; i < 4; ++i) {
    if (info.Length() <= i || !info[i].IsNumber()) throw_invalid(env, "cacheLayout(dtype, kvLoraRank, ropeDim, ropeHeads)");
  }
  lkv_cache_layout layout{};
  lkv_error err{};
  const lkv_status s = lkv_cache_layout_get(static_cast<lkv_dtype>(info[0].As<Napi::Number>().Int32Value()),
                                            info[1].As<Napi::Number>().Int32Value(),
                                            info[2].As<Napi::Number>().Int32Value(),
                                            info[3].As<Napi::Number>().Int32Value(), &layout, &err);
  if (s != LKV_OK) throw make_error(env, s, err.message);
  Napi::Object o = Napi::Object::New(env);
  o.Set("rowBytes", static_cast<double>(layout.row_bytes));
  o.Set("scaleOffset", static_cast<double>(layout.scale_offset));
  o.Set("ropeOffset", static_cast<double>(layout.rope_offset));
  return o;
}

}  // namespace
}  // namespace lkv::js

static Napi::Object InitLatentkv(Napi::Env env, Napi::Object exports) {
  using namespace lkv::js;
  BackendWrap::Init(env, exports);
  exports.Set("buildInfo", Napi::Function::New<BuildInfo>(env, "buildInfo"));
  exports.Set("cacheLayout", Napi::Function::New<CacheLayout>(env, "cacheLayout"));
  exports.Set("measureCeilings", Napi::Function::New<MeasureCeilings>(env, "measureCeilings"));
  InitMtla(env, exports);
  return exports;
}

NODE_API_MODULE(latentkv, InitLatentkv)
