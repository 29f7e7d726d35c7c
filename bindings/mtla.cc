// JS params -> lkv_mtla_merge_append_params, with byte-length checks on every buffer against
// the dimensions, so native code never reads or writes past a caller's buffer.
#include "mtla.h"

#include <memory>
#include <string>
#include <vector>

#include "errors.h"
#include "js-values.h"
#include "latentkv.h"

namespace lkv::js {
namespace {

struct MtlaCall {
  lkv_mtla_merge_append_params params{};
  BufferRefs buffers;  // keeps the JS buffers alive for async calls
};

size_t nonneg(int64_t v) { return v < 0 ? 0 : static_cast<size_t>(v); }

void read_params(const Napi::CallbackInfo& info, MtlaCall* call) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsObject()) throw_invalid(env, "expected a params object");
  Napi::Object js = info[0].As<Napi::Object>();
  lkv_mtla_merge_append_params& p = call->params;
  p.num_tokens = get_int(js, "numTokens");
  p.kv_lora_rank = get_int(js, "kvLoraRank");
  p.rope_dim = get_int(js, "ropeDim");
  p.rope_heads = get_int(js, "ropeHeads");
  p.hyper_dim = get_int(js, "hyperDim");
  p.stride = get_int(js, "stride");
  p.block_size = get_int(js, "blockSize");
  p.num_blocks = get_int(js, "numBlocks");
  p.cache_dtype = static_cast<lkv_dtype>(get_int(js, "cacheDtype"));
  Napi::Value eps = js.Get("normEps");
  if (!eps.IsNumber()) throw_invalid(env, "normEps must be a number");
  p.norm_eps = eps.As<Napi::Number>().FloatValue();
  const int64_t T = p.num_tokens, R = p.kv_lora_rank, D = p.hyper_dim;
  const int64_t rope_width = static_cast<int64_t>(p.rope_dim) * p.rope_heads;
  p.latent = static_cast<const float*>(get_buffer(js, "latent", napi_float32_array, 4 * nonneg(T * R), false, false, &call->buffers));
  p.k_rope = static_cast<const float*>(get_buffer(js, "kRope", napi_float32_array, 4 * nonneg(T * rope_width), rope_width == 0, false, &call->buffers));
  p.norm_weight = static_cast<const float*>(get_buffer(js, "normWeight", napi_float32_array, 4 * nonneg(R), true, false, &call->buffers));
  p.norm_bias = static_cast<const float*>(get_buffer(js, "normBias", napi_float32_array, 4 * nonneg(R), true, false, &call->buffers));
  p.w_fc_c = static_cast<const float*>(get_buffer(js, "wFcC", napi_float32_array, 4 * nonneg(D * R), false, false, &call->buffers));
  p.b_fc_c = static_cast<const float*>(get_buffer(js, "bFcC", napi_float32_array, 4 * nonneg(D), true, false, &call->buffers));
  p.w_fc_p = static_cast<const float*>(get_buffer(js, "wFcP", napi_float32_array, 4 * nonneg(D * R), false, false, &call->buffers));
  p.b_fc_p = static_cast<const float*>(get_buffer(js, "bFcP", napi_float32_array, 4 * nonneg(D), true, false, &call->buffers));
  p.token_index = static_cast<const int32_t*>(get_buffer(js, "tokenIndex", napi_int32_array, 4 * nonneg(T), false, false, &call->buffers));
  p.slot_mapping = static_cast<const int64_t*>(get_buffer(js, "slotMapping", napi_bigint64_array, 8 * nonneg(T), false, false, &call->buffers));
  lkv_cache_layout layout{};
  lkv_error err{};
  const lkv_status s = lkv_cache_layout_get(p.cache_dtype, p.kv_lora_rank, p.rope_dim, p.rope_heads, &layout, &err);
  if (s != LKV_OK) throw make_error(env, s, err.message);
  const size_t cache_bytes = nonneg(static_cast<int64_t>(p.num_blocks) * p.block_size) * layout.row_bytes;
  p.cache = get_buffer(js, "cache", napi_uint8_array, cache_bytes, false, true, &call->buffers);
  p.merge_weight = static_cast<float*>(get_buffer(js, "mergeWeight", napi_float32_array, 4 * nonneg(T), true, false, &call->buffers));
}

class MtlaWorker : public Napi::AsyncWorker {
 public:
  MtlaWorker(Napi::Env env, std::unique_ptr<MtlaCall> call)
      : Napi::AsyncWorker(env, "latentkv.mtla"), deferred_(Napi::Promise::Deferred::New(env)), call_(std::move(call)) {}
  Napi::Promise promise() { return deferred_.Promise(); }
  void Execute() override { status_ = lkv_mtla_merge_append(nullptr, &call_->params, &error_); }
  void OnOK() override {
    if (status_ == LKV_OK) deferred_.Resolve(Env().Undefined());
    else deferred_.Reject(make_error(Env(), status_, error_.message).Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::unique_ptr<MtlaCall> call_;
  lkv_status status_ = LKV_ERR_INTERNAL;
  lkv_error error_{};
};

Napi::Value MergeAppend(const Napi::CallbackInfo& info) {
  MtlaCall call;
  read_params(info, &call);
  lkv_error err{};
  const lkv_status s = lkv_mtla_merge_append(nullptr, &call.params, &err);
  if (s != LKV_OK) throw make_error(info.Env(), s, err.message);
  return info.Env().Undefined();
}

Napi::Value MergeAppendAsync(const Napi::CallbackInfo& info) {
  auto call = std::make_unique<MtlaCall>();
  read_params(info, call.get());
  auto* worker = new MtlaWorker(info.Env(), std::move(call));
  Napi::Promise promise = worker->promise();
  worker->Queue();
  return promise;
}

}  // namespace

void InitMtla(Napi::Env env, Napi::Object exports) {
  exports.Set("mtlaMergeAppend", Napi::Function::New<MergeAppend>(env, "mtlaMergeAppend"));
  exports.Set("mtlaMergeAppendAsync", Napi::Function::New<MergeAppendAsync>(env, "mtlaMergeAppendAsync"));
}

}  // namespace lkv::js
