// JS class wrapping one lkv_backend: info, sync and async kernel calls, dispose.
#ifndef LATENTKV_BINDINGS_BACKEND_WRAP_H_
#define LATENTKV_BINDINGS_BACKEND_WRAP_H_

#include <napi.h>

#include <memory>

#include "latentkv.h"

namespace lkv::js {

class BackendWrap : public Napi::ObjectWrap<BackendWrap> {
 public:
  static void Init(Napi::Env env, Napi::Object exports);
  explicit BackendWrap(const Napi::CallbackInfo& info);

 private:
  Napi::Value Info(const Napi::CallbackInfo& info);
  Napi::Value MlaDecode(const Napi::CallbackInfo& info);
  Napi::Value MlaDecodeAsync(const Napi::CallbackInfo& info);
  Napi::Value ProjectAppend(const Napi::CallbackInfo& info);
  Napi::Value ProjectAppendAsync(const Napi::CallbackInfo& info);
  Napi::Value GqaDecode(const Napi::CallbackInfo& info);
  Napi::Value GqaDecodeAsync(const Napi::CallbackInfo& info);
  Napi::Value GqaAppend(const Napi::CallbackInfo& info);
  Napi::Value DecodeLayer(const Napi::CallbackInfo& info);
  Napi::Value DecodeLayerAsync(const Napi::CallbackInfo& info);
  Napi::Value Gemm(const Napi::CallbackInfo& info);
  Napi::Value MlaPrefill(const Napi::CallbackInfo& info);
  Napi::Value MlaPrefillAsync(const Napi::CallbackInfo& info);
  Napi::Value Dispose(const Napi::CallbackInfo& info);

  std::shared_ptr<lkv_backend> live(Napi::Env env) const;

  // Shared with in-flight async calls, so dispose() never frees a backend still running.
  std::shared_ptr<lkv_backend> backend_;
};

}  // namespace lkv::js

#endif  // LATENTKV_BINDINGS_BACKEND_WRAP_H_
