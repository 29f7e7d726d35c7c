#include "params.h"

#include <string>

#include "errors.h"
#include "js-values.h"

namespace lkv::js {
namespace {

// The rope params at js.rope; a frequency table is copied into inv_freq (it must outlive the call).
void read_rope(const Napi::Object& js, int32_t rope_dim, lkv_rope_params* rope, std::vector<float>* inv_freq,
               BufferRefs* refs) {
  Napi::Value rv = js.Get("rope");
  if (!rv.IsObject()) throw_invalid(js.Env(), "rope must be an object");
  Napi::Object r = rv.As<Napi::Object>();
  rope->style = static_cast<lkv_rope_style>(get_int(r, "style"));
  rope->scaling = static_cast<lkv_rope_scaling>(get_int(r, "scaling"));
  rope->theta = get_float(r, "theta", 10000.0f, false);
  rope->factor = get_float(r, "factor", 1.0f, false);
  rope->low_freq_factor = get_float(r, "lowFreqFactor", 1.0f, false);
  rope->high_freq_factor = get_float(r, "highFreqFactor", 4.0f, false);
  rope->original_max_position = r.Get("originalMaxPosition").IsUndefined() ? 0 : get_int(r, "originalMaxPosition");
  rope->beta_fast = get_float(r, "betaFast", 32.0f, false);
  rope->beta_slow = get_float(r, "betaSlow", 1.0f, false);
  rope->attention_factor = get_float(r, "attentionFactor", 0.0f, false);
  if (rope->scaling == LKV_ROPE_SCALING_TABLE) {
    const int32_t half = rope_dim > 0 ? rope_dim / 2 : 0;
    const float* table = static_cast<const float*>(get_buffer(r, "invFreq", napi_float32_array, 4 * static_cast<size_t>(half), false, false, refs));
    inv_freq->assign(table, table + half);
    rope->inv_freq = inv_freq->data();
  }
}

// The fields mla_decode and mla_prefill share (NativeAttentionFields in lib/native), and the
// cache, block table and lengths checked against them; returns the cache row layout.
template <typename Params>
lkv_cache_layout read_attention_fields(const Napi::Object& js, Params& p, BufferRefs* refs) {
  p.batch = get_int(js, "batch");
  p.q_len = get_int(js, "qLen");
  p.num_heads = get_int(js, "numHeads");
  p.kv_lora_rank = get_int(js, "kvLoraRank");
  p.rope_dim = get_int(js, "ropeDim");
  p.rope_heads = get_int(js, "ropeHeads");
  p.block_size = get_int(js, "blockSize");
  p.num_blocks = get_int(js, "numBlocks");
  p.max_blocks_per_seq = get_int(js, "maxBlocksPerSeq");
  p.cache_dtype = static_cast<lkv_dtype>(get_int(js, "cacheDtype"));
  p.softmax_scale = get_float(js, "softmaxScale", 0.0f, true);
  lkv_cache_layout layout{};
  lkv_error err{};
  if (lkv_cache_layout_get(p.cache_dtype, p.kv_lora_rank, p.rope_dim, p.rope_heads, &layout, &err) != LKV_OK) {
    throw make_error(js.Env(), err.status, err.message);
  }
  p.cache = get_buffer(js, "cache", napi_uint8_array, count({p.num_blocks, p.block_size}) * layout.row_bytes, false, true, refs);
  p.block_table = static_cast<const int32_t*>(get_buffer(js, "blockTable", napi_int32_array, 4 * count({p.batch, p.max_blocks_per_seq}), false, false, refs));
  p.seq_lens = static_cast<const int32_t*>(get_buffer(js, "seqLens", napi_int32_array, 4 * count({p.batch}), false, false, refs));
  return layout;
}

}  // namespace

void read_decode_params(const Napi::Object& js, DecodeCall* call) {
  lkv_mla_decode_params& p = call->params;
  BufferRefs* refs = &call->buffers;
  read_attention_fields(js, p, refs);
  const size_t q = count({p.batch, p.q_len, p.num_heads});
  p.q_latent = static_cast<const float*>(get_buffer(js, "qLatent", napi_float32_array, 4 * q * count({p.kv_lora_rank}), false, false, refs));
  p.q_rope = static_cast<const float*>(get_buffer(js, "qRope", napi_float32_array, 4 * q * count({p.rope_dim}), p.rope_dim == 0, false, refs));
  p.out = static_cast<float*>(get_buffer(js, "out", napi_float32_array, 4 * q * count({p.kv_lora_rank}), false, false, refs));
  p.lse = static_cast<float*>(get_buffer(js, "lse", napi_float32_array, 4 * q, true, false, refs));
}

void read_prefill_params(const Napi::Object& js, PrefillCall* call) {
  lkv_mla_prefill_params& p = call->params;
  BufferRefs* refs = &call->buffers;
  p.qk_nope_head_dim = get_int(js, "qkNopeHeadDim");
  p.v_head_dim = get_int(js, "vHeadDim");
  p.weight_dtype = static_cast<lkv_dtype>(get_int(js, "weightDtype"));
  p.form = static_cast<lkv_prefill_form>(get_int(js, "form"));
  read_attention_fields(js, p, refs);
  const size_t wsize = lkv_dtype_size(p.weight_dtype);
  if (wsize != 2 && wsize != 4) throw_invalid(js.Env(), "weightDtype must be f32 or bf16");
  const size_t q = count({p.batch, p.q_len, p.num_heads});
  p.q_nope = static_cast<const float*>(get_buffer(js, "qNope", napi_float32_array, 4 * q * count({p.qk_nope_head_dim}), false, false, refs));
  p.q_rope = static_cast<const float*>(get_buffer(js, "qRope", napi_float32_array, 4 * q * count({p.rope_dim}), p.rope_dim == 0, false, refs));
  const size_t w_rows = count({p.num_heads}) * (count({p.qk_nope_head_dim}) + count({p.v_head_dim}));
  p.w_kv_b = get_buffer(js, "weight", napi_uint8_array, wsize * w_rows * count({p.kv_lora_rank}), false, true, refs);
  p.out = static_cast<float*>(get_buffer(js, "out", napi_float32_array, 4 * q * count({p.v_head_dim}), false, false, refs));
  p.lse = static_cast<float*>(get_buffer(js, "lse", napi_float32_array, 4 * q, true, false, refs));
}

void read_project_append_params(const Napi::Object& js, ProjectAppendCall* call) {
  lkv_mla_project_append_params& p = call->params;
  p.num_tokens = get_int(js, "numTokens");
  p.hidden_size = get_int(js, "hiddenSize");
  p.kv_lora_rank = get_int(js, "kvLoraRank");
  p.rope_dim = get_int(js, "ropeDim");
  p.rope_heads = get_int(js, "ropeHeads");
  p.block_size = get_int(js, "blockSize");
  p.num_blocks = get_int(js, "numBlocks");
  p.cache_dtype = static_cast<lkv_dtype>(get_int(js, "cacheDtype"));
  p.weight_dtype = static_cast<lkv_dtype>(get_int(js, "weightDtype"));
  p.norm_eps = get_float(js, "normEps", 1e-6f, false);

  read_rope(js, p.rope_dim, &p.rope, &call->inv_freq, &call->buffers);

  lkv_cache_layout layout{};
  lkv_error err{};
  if (lkv_cache_layout_get(p.cache_dtype, p.kv_lora_rank, p.rope_dim, p.rope_heads, &layout, &err) != LKV_OK) {
    throw make_error(js.Env(), err.status, err.message);
  }
  const size_t wsize = lkv_dtype_size(p.weight_dtype);
  if (wsize == 0 || wsize == 1) throw_invalid(js.Env(), "weightDtype must be f32, f16 or bf16");
  const size_t rows = count({p.kv_lora_rank}) + count({p.rope_dim, p.rope_heads});
  BufferRefs* refs = &call->buffers;
  p.hidden = static_cast<const float*>(get_buffer(js, "hidden", napi_float32_array, 4 * count({p.num_tokens, p.hidden_size}), false, false, refs));
  p.w_kv_a = get_buffer(js, "weight", napi_uint8_array, wsize * rows * count({p.hidden_size}), false, true, refs);
  p.norm_weight = static_cast<const float*>(get_buffer(js, "normWeight", napi_float32_array, 4 * count({p.kv_lora_rank}), true, false, refs));
  p.positions = static_cast<const int32_t*>(get_buffer(js, "positions", napi_int32_array, 4 * count({p.num_tokens}), false, false, refs));
  p.slot_mapping = static_cast<const int64_t*>(get_buffer(js, "slotMapping", napi_bigint64_array, 8 * count({p.num_tokens}), false, false, refs));
  p.cache = get_buffer(js, "cache", napi_uint8_array, count({p.num_blocks, p.block_size}) * layout.row_bytes, false, true, refs);
}

void read_gqa_decode_params(const Napi::Object& js, GqaDecodeCall* call) {
  lkv_gqa_decode_params& p = call->params;
  p.batch = get_int(js, "batch");
  p.q_len = get_int(js, "qLen");
  p.num_heads = get_int(js, "numHeads");
  p.num_kv_heads = get_int(js, "numKvHeads");
  p.head_dim = get_int(js, "headDim");
  p.block_size = get_int(js, "blockSize");
  p.num_blocks = get_int(js, "numBlocks");
  p.max_blocks_per_seq = get_int(js, "maxBlocksPerSeq");
  p.cache_dtype = static_cast<lkv_dtype>(get_int(js, "cacheDtype"));
  p.softmax_scale = get_float(js, "softmaxScale", 0.0f, true);
  const size_t esize = lkv_dtype_size(p.cache_dtype);
  if (esize < 2) throw_invalid(js.Env(), "GQA cacheDtype must be f32, f16 or bf16");
  const size_t q = count({p.batch, p.q_len, p.num_heads, p.head_dim});
  BufferRefs* refs = &call->buffers;
  p.q = static_cast<const float*>(get_buffer(js, "q", napi_float32_array, 4 * q, false, false, refs));
  p.cache = get_buffer(js, "cache", napi_uint8_array, esize * count({p.num_blocks, p.block_size, 2, p.num_kv_heads, p.head_dim}), false, true, refs);
  p.block_table = static_cast<const int32_t*>(get_buffer(js, "blockTable", napi_int32_array, 4 * count({p.batch, p.max_blocks_per_seq}), false, false, refs));
  p.seq_lens = static_cast<const int32_t*>(get_buffer(js, "seqLens", napi_int32_array, 4 * count({p.batch}), false, false, refs));
  p.out = static_cast<float*>(get_buffer(js, "out", napi_float32_array, 4 * q, false, false, refs));
  p.lse = static_cast<float*>(get_buffer(js, "lse", napi_float32_array, 4 * count({p.batch, p.q_len, p.num_heads}), true, false, refs));
}

void read_gqa_append_params(const Napi::Object& js, GqaAppendCall* call) {
  lkv_gqa_append_params& p = call->params;
  p.num_tokens = get_int(js, "numTokens");
  p.num_kv_heads = get_int(js, "numKvHeads");
  p.head_dim = get_int(js, "headDim");
  p.block_size = get_int(js, "blockSize");
  p.num_blocks = get_int(js, "numBlocks");
  p.cache_dtype = static_cast<lkv_dtype>(get_int(js, "cacheDtype"));
  const size_t esize = lkv_dtype_size(p.cache_dtype);
  if (esize < 2) throw_invalid(js.Env(), "GQA cacheDtype must be f32, f16 or bf16");
  const size_t kv = count({p.num_tokens, p.num_kv_heads, p.head_dim});
  BufferRefs* refs = &call->buffers;
  p.k = static_cast<const float*>(get_buffer(js, "k", napi_float32_array, 4 * kv, false, false, refs));
  p.v = static_cast<const float*>(get_buffer(js, "v", napi_float32_array, 4 * kv, false, false, refs));
  p.slot_mapping = static_cast<const int64_t*>(get_buffer(js, "slotMapping", napi_bigint64_array, 8 * count({p.num_tokens}), false, false, refs));
  p.cache = get_buffer(js, "cache", napi_uint8_array, esize * count({p.num_blocks, p.block_size, 2, p.num_kv_heads, p.head_dim}), false, true, refs);
}


void read_decode_layer_params(const Napi::Object& js, DecodeLayerCall* call) {
  lkv_mla_decode_layer_params& p = call->params;
  p.batch = get_int(js, "batch");
  p.q_len = get_int(js, "qLen");
  p.hidden_size = get_int(js, "hiddenSize");
  p.num_heads = get_int(js, "numHeads");
  p.q_lora_rank = get_int(js, "qLoraRank");
  p.qk_nope_head_dim = get_int(js, "qkNopeHeadDim");
  p.v_head_dim = get_int(js, "vHeadDim");
  p.kv_lora_rank = get_int(js, "kvLoraRank");
  p.rope_dim = get_int(js, "ropeDim");
  p.rope_heads = get_int(js, "ropeHeads");
  p.block_size = get_int(js, "blockSize");
  p.num_blocks = get_int(js, "numBlocks");
  p.max_blocks_per_seq = get_int(js, "maxBlocksPerSeq");
  p.cache_dtype = static_cast<lkv_dtype>(get_int(js, "cacheDtype"));
  p.weight_dtype = static_cast<lkv_dtype>(get_int(js, "weightDtype"));
  p.softmax_scale = get_float(js, "softmaxScale", 0.0f, true);
  p.norm_eps = get_float(js, "normEps", 1e-6f, false);
  p.fold_absorption = js.Get("foldAbsorption").IsUndefined() ? 0 : get_int(js, "foldAbsorption");
  read_rope(js, p.rope_dim, &p.rope, &call->inv_freq, &call->buffers);

  lkv_cache_layout layout{};
  lkv_error err{};
  if (lkv_cache_layout_get(p.cache_dtype, p.kv_lora_rank, p.rope_dim, p.rope_heads, &layout, &err) != LKV_OK) {
    throw make_error(js.Env(), err.status, err.message);
  }
  if (p.weight_dtype != LKV_DTYPE_F32 && p.weight_dtype != LKV_DTYPE_BF16) {
    throw_invalid(js.Env(), "weightDtype must be f32 or bf16");
  }
  if (p.batch < 1 || p.q_len < 1 || p.hidden_size < 1 || p.num_heads < 1 || p.q_lora_rank < 0 ||
      p.qk_nope_head_dim < 0 || p.v_head_dim < 1) {
    throw_invalid(js.Env(), "batch, qLen, hiddenSize, numHeads, vHeadDim must be >= 1 and qLoraRank, qkNopeHeadDim >= 0");
  }
  const size_t w = lkv_dtype_size(p.weight_dtype);
  const size_t T = count({p.batch, p.q_len}), E = count({p.hidden_size}), H = count({p.num_heads});
  const size_t qk = count({p.qk_nope_head_dim}) + count({p.rope_dim});
  const size_t Q = count({p.q_lora_rank});
  BufferRefs* refs = &call->buffers;
  p.hidden = static_cast<const float*>(get_buffer(js, "hidden", napi_float32_array, 4 * T * E, false, false, refs));
  if (p.q_lora_rank == 0) {
    p.w_q = get_buffer(js, "wQ", napi_uint8_array, w * H * qk * E, false, true, refs);
  } else {
    p.w_q_a = get_buffer(js, "wQA", napi_uint8_array, w * Q * E, false, true, refs);
    p.q_a_norm_weight = static_cast<const float*>(get_buffer(js, "qANormWeight", napi_float32_array, 4 * Q, true, false, refs));
    p.w_q_b = get_buffer(js, "wQB", napi_uint8_array, w * H * qk * Q, false, true, refs);
  }
  const size_t R = count({p.kv_lora_rank});
  p.w_kv_a = get_buffer(js, "wKvA", napi_uint8_array, w * (R + count({p.rope_dim, p.rope_heads})) * E, false, true, refs);
  p.kv_a_norm_weight = static_cast<const float*>(get_buffer(js, "kvANormWeight", napi_float32_array, 4 * R, true, false, refs));
  p.w_kv_b = get_buffer(js, "wKvB", napi_uint8_array, w * H * (count({p.qk_nope_head_dim}) + count({p.v_head_dim})) * R, false, true, refs);
  p.w_o = get_buffer(js, "wO", napi_uint8_array, w * E * H * count({p.v_head_dim}), false, true, refs);
  p.positions = static_cast<const int32_t*>(get_buffer(js, "positions", napi_int32_array, 4 * T, false, false, refs));
  p.slot_mapping = static_cast<const int64_t*>(get_buffer(js, "slotMapping", napi_bigint64_array, 8 * T, true, false, refs));
  p.cache = get_buffer(js, "cache", napi_uint8_array, count({p.num_blocks, p.block_size}) * layout.row_bytes, false, true, refs);
  p.block_table = static_cast<const int32_t*>(get_buffer(js, "blockTable", napi_int32_array, 4 * count({p.batch, p.max_blocks_per_seq}), false, false, refs));
  p.seq_lens = static_cast<const int32_t*>(get_buffer(js, "seqLens", napi_int32_array, 4 * count({p.batch}), false, false, refs));
  p.out = static_cast<float*>(get_buffer(js, "out", napi_float32_array, 4 * T * E, false, false, refs));
}

void read_gemm_params(const Napi::Object& js, GemmCall* call) {
  lkv_gemm_params& p = call->params;
  p.m = get_int(js, "m");
  p.n = get_int(js, "n");
  p.k = get_int(js, "k");
  p.weight_dtype = static_cast<lkv_dtype>(get_int(js, "weightDtype"));
  p.accumulate = get_int(js, "accumulate");
  const size_t wsize = p.weight_dtype == LKV_DTYPE_BF16 ? 2 : p.weight_dtype == LKV_DTYPE_F32 ? 4 : 0;
  if (wsize == 0) throw_invalid(js.Env(), "gemm weightDtype must be f32 (0) or bf16 (2)");
  BufferRefs* refs = &call->buffers;
  p.a = static_cast<const float*>(get_buffer(js, "a", napi_float32_array, 4 * count({p.m, p.k}), false, false, refs));
  p.w = get_buffer(js, "w", napi_uint8_array, wsize * count({p.n, p.k}), false, true, refs);
  p.bias = static_cast<const float*>(get_buffer(js, "bias", napi_float32_array, 4 * count({p.n}), true, false, refs));
  p.c = static_cast<float*>(get_buffer(js, "c", napi_float32_array, 4 * count({p.m, p.n}), false, false, refs));
}

}  // namespace lkv::js
