#include "backend-wrap.h"

#include <string>
#include <utility>

#include "errors.h"
#include "params.h"

namespace lkv::js {
namespace {

// Runs one kernel call on a libuv worker thread and settles a promise with its status.
template <typename Call, lkv_status (*Run)(lkv_backend*, const decltype(Call::params)*, lkv_error*)>
class KernelWorker : public Napi::AsyncWorker {
 public:
  KernelWorker(Napi::Env env, std::shared_ptr<lkv_backend> backend, std::unique_ptr<Call> call)
      : Napi::AsyncWorker(env, "latentkv.kernel"),
        deferred_(Napi::Promise::Deferred::New(env)),
        backend_(std::move(backend)),
        call_(std::move(call)) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override { status_ = Run(backend_.get(), &call_->params, &error_); }

  void OnOK() override {
    if (status_ == LKV_OK) {
      deferred_.Resolve(Env().Undefined());
    } else {
      deferred_.Reject(make_error(Env(), status_, error_.message).Value());
    }
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::shared_ptr<lkv_backend> backend_;
  std::unique_ptr<Call> call_;
  lkv_status status_ = LKV_ERR_INTERNAL;
  lkv_error error_{};
};

using DecodeWorker = KernelWorker<DecodeCall, lkv_mla_decode>;
using ProjectAppendWorker = KernelWorker<ProjectAppendCall, lkv_mla_project_append>;
using GqaDecodeWorker = KernelWorker<GqaDecodeCall, lkv_gqa_decode>;
using DecodeLayerWorker = KernelWorker<DecodeLayerCall, lkv_mla_decode_layer>;
using PrefillWorker = KernelWorker<PrefillCall, lkv_mla_prefill>;

Napi::Object object_arg(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsObject()) throw_invalid(info.Env(), "expected a params object");
  return info[0].As<Napi::Object>();
}

void check(Napi::Env env, lkv_status status, const lkv_error& err) {
  if (status != LKV_OK) throw make_error(env, status, err.message);
}

}  // namespace

void BackendWrap::Init(Napi::Env env, Napi::Object exports) {
  Napi::Function cls = DefineClass(env, "NativeBackend",
                                   {InstanceMethod<&BackendWrap::Info>("info"),
                                    InstanceMethod<&BackendWrap::MlaDecode>("mlaDecode"),
                                    InstanceMethod<&BackendWrap::MlaDecodeAsync>("mlaDecodeAsync"),
                                    InstanceMethod<&BackendWrap::ProjectAppend>("projectAppend"),
                                    InstanceMethod<&BackendWrap::ProjectAppendAsync>("projectAppendAsync"),
                                    InstanceMethod<&BackendWrap::GqaDecode>("gqaDecode"),
                                    InstanceMethod<&BackendWrap::GqaDecodeAsync>("gqaDecodeAsync"),
                                    InstanceMethod<&BackendWrap::GqaAppend>("gqaAppend"),
                                    InstanceMethod<&BackendWrap::DecodeLayer>("mlaDecodeLayer"),
                                    InstanceMethod<&BackendWrap::DecodeLayerAsync>("mlaDecodeLayerAsync"),
                                    InstanceMethod<&BackendWrap::MlaPrefill>("mlaPrefill"),
                                    InstanceMethod<&BackendWrap::MlaPrefillAsync>("mlaPrefillAsync"),
                                    InstanceMethod<&BackendWrap::Gemm>("gemm"),
                                    InstanceMethod<&BackendWrap::Dispose>("dispose")});
  exports.Set("NativeBackend", cls);
}

// new NativeBackend(name: string, cpuIsa: number (-1 auto), threads: number (0 auto))
BackendWrap::BackendWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<BackendWrap>(info) {
  Napi::Env env = info.Env();
  if (info.Length() < 3 || !info[0].IsString() || !info[1].IsNumber() || !info[2].IsNumber()) {
    throw_invalid(env, "NativeBackend(name: string, cpuIsa: number, threads: number)");
  }
  const std::string name = info[0].As<Napi::String>();
  lkv_backend_options options{static_cast<lkv_cpu_isa>(info[1].As<Napi::Number>().Int32Value()),
                              info[2].As<Napi::Number>().Int32Value()};
  lkv_backend* handle = nullptr;
  lkv_error err{};
  check(env, lkv_backend_create(name.c_str(), &options, &handle, &err), err);
  backend_ = std::shared_ptr<lkv_backend>(handle, lkv_backend_free);
}

std::shared_ptr<lkv_backend> BackendWrap::live(Napi::Env env) const {
  if (!backend_) throw make_error(env, LKV_ERR_INVALID_ARGUMENT, "the backend has been disposed");
  return backend_;
}

Napi::Value BackendWrap::Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  lkv_backend_info bi{};
  lkv_backend_get_info(live(env).get(), &bi);
  Napi::Object o = Napi::Object::New(env);
  o.Set("name", bi.name);
  o.Set("cpuIsa", static_cast<int32_t>(bi.cpu_isa));
  o.Set("compiledIsaMask", bi.compiled_isa_mask);
  o.Set("supportedIsaMask", bi.supported_isa_mask);
  o.Set("threads", bi.num_threads);
  o.Set("apiVersion", bi.api_version);
  o.Set("version", bi.version);
  return o;
}

Napi::Value BackendWrap::MlaDecode(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  DecodeCall call;
  read_decode_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_mla_decode(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::MlaDecodeAsync(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  auto call = std::make_unique<DecodeCall>();
  read_decode_params(object_arg(info), call.get());
  auto* worker = new DecodeWorker(info.Env(), std::move(backend), std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value BackendWrap::MlaPrefill(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  PrefillCall call;
  read_prefill_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_mla_prefill(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::MlaPrefillAsync(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  auto call = std::make_unique<PrefillCall>();
  read_prefill_params(object_arg(info), call.get());
  auto* worker = new PrefillWorker(info.Env(), std::move(backend), std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value BackendWrap::ProjectAppend(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  ProjectAppendCall call;
  read_project_append_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_mla_project_append(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::ProjectAppendAsync(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  auto call = std::make_unique<ProjectAppendCall>();
  read_project_append_params(object_arg(info), call.get());
  auto* worker = new ProjectAppendWorker(info.Env(), std::move(backend), std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

Napi::Value BackendWrap::GqaDecode(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  GqaDecodeCall call;
  read_gqa_decode_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_gqa_decode(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::GqaDecodeAsync(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  auto call = std::make_unique<GqaDecodeCall>();
  read_gqa_decode_params(object_arg(info), call.get());
  auto* worker = new GqaDecodeWorker(info.Env(), std::move(backend), std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// Appending K/V is a copy with rounding: cheap enough that only a sync variant exists.
Napi::Value BackendWrap::GqaAppend(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  GqaAppendCall call;
  read_gqa_append_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_gqa_append(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::DecodeLayer(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  DecodeLayerCall call;
  read_decode_layer_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_mla_decode_layer(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::DecodeLayerAsync(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  auto call = std::make_unique<DecodeLayerCall>();
  read_decode_layer_params(object_arg(info), call.get());
  auto* worker = new DecodeLayerWorker(info.Env(), std::move(backend), std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

// C = A W^T on the calling thread (the backend's pool joins in). Sync only, by design: the
// runtime's forward is synchronous and one projection takes microseconds to milliseconds, less
// than a libuv round trip would cost at decode sizes.
Napi::Value BackendWrap::Gemm(const Napi::CallbackInfo& info) {
  auto backend = live(info.Env());
  GemmCall call;
  read_gemm_params(object_arg(info), &call);
  lkv_error err{};
  check(info.Env(), lkv_gemm(backend.get(), &call.params, &err), err);
  return info.Env().Undefined();
}

Napi::Value BackendWrap::Dispose(const Napi::CallbackInfo& info) {
  backend_.reset();
  return info.Env().Undefined();
}

}  // namespace lkv::js
