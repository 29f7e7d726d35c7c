#include "ceilings-worker.h"

#include "errors.h"
#include "latentkv.h"

namespace lkv::js {
namespace {

class CeilingsWorker : public Napi::AsyncWorker {
 public:
  CeilingsWorker(Napi::Env env, int32_t threads, bool quick)
      : Napi::AsyncWorker(env, "latentkv.ceilings"), deferred_(Napi::Promise::Deferred::New(env)), threads_(threads), quick_(quick) {}

  Napi::Promise promise() { return deferred_.Promise(); }

  void Execute() override { status_ = lkv_cpu_measure_ceilings(threads_, quick_ ? 1 : 0, &result_, &error_); }

  void OnOK() override {
    Napi::Env env = Env();
    if (status_ != LKV_OK) {
      deferred_.Reject(make_error(env, status_, error_.message).Value());
      return;
    }
    Napi::Object o = Napi::Object::New(env);
    o.Set("readGBs", result_.read_gbs);
    o.Set("f32FmaGflops", result_.f32_fma_gflops);
    o.Set("bf16DotGflops", result_.bf16_dot_gflops);
    o.Set("threads", result_.threads);
    deferred_.Resolve(o);
  }

 private:
  Napi::Promise::Deferred deferred_;
  int32_t threads_;
  bool quick_;
  lkv_status status_ = LKV_ERR_INTERNAL;
  lkv_cpu_ceilings result_{};
  lkv_error error_{};
};

}  // namespace

Napi::Value MeasureCeilings(const Napi::CallbackInfo& info) {
  if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsBoolean()) {
    throw_invalid(info.Env(), "measureCeilings(threads: number, quick: boolean)");
  }
  auto* worker = new CeilingsWorker(info.Env(), info[0].As<Napi::Number>().Int32Value(), info[1].As<Napi::Boolean>().Value());
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace lkv::js
