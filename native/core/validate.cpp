#include "validate.h"

#include <cmath>
#include <unordered_map>
#include <utility>
#include <vector>

#include "cache-layout.h"
#include "error.h"
#include "rope.h"

namespace lkv {
namespace {

lkv_status check_cache_dims(int32_t kv_lora_rank, int32_t rope_dim, int32_t rope_heads,
                            int32_t block_size, int32_t num_blocks, lkv_dtype cache_dtype,
                            lkv_error* err) {
  if (kv_lora_rank < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "kv_lora_rank must be >= 1, got %d", kv_lora_rank);
  }
  if (rope_dim < 0 || rope_dim % 2 != 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope_dim must be even and >= 0, got %d", rope_dim);
  }
  if (rope_heads < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope_heads must be >= 1, got %d", rope_heads);
  }
  if (block_size < 1 || block_size > kMaxBlockSize) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "block_size must be in 1..%d, got %d",
                kMaxBlockSize, block_size);
  }
  if (num_blocks < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_blocks must be >= 1, got %d", num_blocks);
  }
  if (lkv_dtype_size(cache_dtype) == 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "cache_dtype must be f32, f16, bf16, int8 or fp8_e4m3 (0..4), got %d",
                static_cast<int>(cache_dtype));
  }
  return LKV_OK;
}

// Every page a sequence's length reaches must be a valid page; entries past it are never read.
lkv_status check_block_table(int32_t batch, const int32_t* seq_lens, const int32_t* block_table,
                             int32_t max_blocks_per_seq, int32_t block_size, int32_t num_blocks,
                             lkv_error* err) {
  const int64_t capacity = static_cast<int64_t>(max_blocks_per_seq) * block_size;
  for (int32_t b = 0; b < batch; ++b) {
    const int32_t len = seq_lens[b];
    if (len < 0 || len > capacity) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT,
                  "seq_lens[%d] = %d is outside 0..%lld (max_blocks_per_seq %d x block_size %d)",
                  b, len, static_cast<long long>(capacity), max_blocks_per_seq, block_size);
    }
    const int32_t used = (len + block_size - 1) / block_size;
    const int32_t* row = block_table + static_cast<int64_t>(b) * max_blocks_per_seq;
    for (int32_t i = 0; i < used; ++i) {
      if (row[i] < 0 || row[i] >= num_blocks) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT,
                    "block_table[%d][%d] = %d is outside 0..%d, and sequence %d of length %d "
                    "uses that block",
                    b, i, row[i], num_blocks - 1, b, len);
      }
    }
  }
  return LKV_OK;
}

lkv_status check_slots(int32_t num_tokens, const int64_t* slot_mapping, int64_t slots, lkv_error* err) {
  for (int32_t t = 0; t < num_tokens; ++t) {
    if (slot_mapping[t] >= slots) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT,
                  "slot_mapping[%d] = %lld is outside the cache's %lld slots (negative skips)", t,
                  static_cast<long long>(slot_mapping[t]), static_cast<long long>(slots));
    }
    for (int32_t u = 0; u < t; ++u) {
      if (slot_mapping[t] >= 0 && slot_mapping[u] == slot_mapping[t]) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT,
                    "slot_mapping[%d] and slot_mapping[%d] both write slot %lld", u, t,
                    static_cast<long long>(slot_mapping[t]));
      }
    }
  }
  return LKV_OK;
}

}  // namespace

// The checks mla_decode and mla_prefill share (shapes, cache, paging, scale); Params has the
// fields both structs name alike.
template <typename Params>
lkv_status check_attention(const Params& p, lkv_error* err) {
  if (p.batch < 1 || p.q_len < 1 || p.num_heads < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "batch, q_len and num_heads must be >= 1, got %d, %d, %d", p.batch, p.q_len,
                p.num_heads);
  }
  lkv_status s = check_cache_dims(p.kv_lora_rank, p.rope_dim, p.rope_heads, p.block_size,
                                  p.num_blocks, p.cache_dtype, err);
  if (s != LKV_OK) return s;
  if (p.num_heads % p.rope_heads != 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope_heads (%d) must divide num_heads (%d)",
                p.rope_heads, p.num_heads);
  }
  if (p.max_blocks_per_seq < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "max_blocks_per_seq must be >= 1, got %d",
                p.max_blocks_per_seq);
  }
  if (!std::isfinite(p.softmax_scale)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "softmax_scale must be finite, got %g",
                p.softmax_scale);
  }
  return LKV_OK;
}

lkv_status validate(const lkv_mla_decode_params& p, lkv_error* err) {
  lkv_status s = check_attention(p, err);
  if (s != LKV_OK) return s;
  if (!p.q_latent || !p.cache || !p.block_table || !p.seq_lens || !p.out ||
      (p.rope_dim > 0 && !p.q_rope)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "q_latent, cache, block_table, seq_lens, out (and q_rope when rope_dim > 0) "
                "must not be NULL");
  }
  s = check_block_table(p.batch, p.seq_lens, p.block_table, p.max_blocks_per_seq, p.block_size,
                        p.num_blocks, err);
  if (s != LKV_OK) return s;
  return ok(err);
}

lkv_status validate(const lkv_mla_prefill_params& p, lkv_error* err) {
  lkv_status s = check_attention(p, err);
  if (s != LKV_OK) return s;
  if (p.qk_nope_head_dim < 1 || p.v_head_dim < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "qk_nope_head_dim and v_head_dim must be >= 1, got %d and %d", p.qk_nope_head_dim,
                p.v_head_dim);
  }
  if (p.weight_dtype != LKV_DTYPE_F32 && p.weight_dtype != LKV_DTYPE_BF16) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "weight_dtype must be f32 or bf16, got %d",
                static_cast<int>(p.weight_dtype));
  }
  if (p.form != LKV_PREFILL_AUTO && p.form != LKV_PREFILL_ABSORBED && p.form != LKV_PREFILL_NON_ABSORBED) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "form must be 0 (auto), 1 (absorbed) or 2 (non-absorbed), got %d",
                static_cast<int>(p.form));
  }
  if (!p.q_nope || !p.w_kv_b || !p.cache || !p.block_table || !p.seq_lens || !p.out ||
      (p.rope_dim > 0 && !p.q_rope)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "q_nope, w_kv_b, cache, block_table, seq_lens, out (and q_rope when rope_dim > 0) "
                "must not be NULL");
  }
  s = check_block_table(p.batch, p.seq_lens, p.block_table, p.max_blocks_per_seq, p.block_size,
                        p.num_blocks, err);
  if (s != LKV_OK) return s;
  return ok(err);
}

lkv_status validate(const lkv_mla_project_append_params& p, lkv_error* err) {
  if (p.num_tokens < 0 || p.hidden_size < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "num_tokens must be >= 0 and hidden_size >= 1, got %d and %d", p.num_tokens,
                p.hidden_size);
  }
  lkv_status s = check_cache_dims(p.kv_lora_rank, p.rope_dim, p.rope_heads, p.block_size,
                                  p.num_blocks, p.cache_dtype, err);
  if (s != LKV_OK) return s;
  if (p.weight_dtype != LKV_DTYPE_F32 && p.weight_dtype != LKV_DTYPE_F16 &&
      p.weight_dtype != LKV_DTYPE_BF16) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "weight_dtype must be f32, f16 or bf16, got %d",
                static_cast<int>(p.weight_dtype));
  }
  if (p.norm_weight && !(std::isfinite(p.norm_eps) && p.norm_eps >= 0.0f)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "norm_eps must be finite and >= 0, got %g",
                p.norm_eps);
  }
  s = validate_rope(p.rope, p.rope_dim, err);
  if (s != LKV_OK) return s;
  if (p.num_tokens == 0) return ok(err);
  if (!p.hidden || !p.w_kv_a || !p.positions || !p.slot_mapping || !p.cache) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "hidden, w_kv_a, positions, slot_mapping and cache must not be NULL");
  }
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    if (p.positions[t] < 0) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT, "positions[%d] = %d must be >= 0", t,
                  p.positions[t]);
    }
  }
  s = check_slots(p.num_tokens, p.slot_mapping, static_cast<int64_t>(p.num_blocks) * p.block_size, err);
  if (s != LKV_OK) return s;
  return ok(err);
}

namespace {

lkv_status check_gqa_cache(int32_t kv_heads, int32_t head_dim, int32_t block_size, int32_t num_blocks,
                           lkv_dtype dtype, lkv_error* err) {
  if (kv_heads < 1 || head_dim < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_kv_heads and head_dim must be >= 1, got %d and %d",
                kv_heads, head_dim);
  }
  if (block_size < 1 || block_size > kMaxBlockSize) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "block_size must be in 1..%d, got %d", kMaxBlockSize,
                block_size);
  }
  if (num_blocks < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_blocks must be >= 1, got %d", num_blocks);
  }
  if (dtype != LKV_DTYPE_F32 && dtype != LKV_DTYPE_F16 && dtype != LKV_DTYPE_BF16) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "GQA cache_dtype must be f32, f16 or bf16, got %d",
                static_cast<int>(dtype));
  }
  return LKV_OK;
}

}  // namespace

lkv_status validate(const lkv_gqa_decode_params& p, lkv_error* err) {
  if (p.batch < 1 || p.q_len < 1 || p.num_heads < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "batch, q_len and num_heads must be >= 1, got %d, %d, %d", p.batch, p.q_len,
                p.num_heads);
  }
  lkv_status s = check_gqa_cache(p.num_kv_heads, p.head_dim, p.block_size, p.num_blocks, p.cache_dtype, err);
  if (s != LKV_OK) return s;
  if (p.num_heads % p.num_kv_heads != 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_kv_heads (%d) must divide num_heads (%d)",
                p.num_kv_heads, p.num_heads);
  }
  if (p.max_blocks_per_seq < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "max_blocks_per_seq must be >= 1, got %d",
                p.max_blocks_per_seq);
  }
  if (!std::isfinite(p.softmax_scale)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "softmax_scale must be finite, got %g", p.softmax_scale);
  }
  if (!p.q || !p.cache || !p.block_table || !p.seq_lens || !p.out) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "q, cache, block_table, seq_lens and out must not be NULL");
  }
  s = check_block_table(p.batch, p.seq_lens, p.block_table, p.max_blocks_per_seq, p.block_size,
                        p.num_blocks, err);
  if (s != LKV_OK) return s;
  return ok(err);
}

lkv_status validate(const lkv_gqa_append_params& p, lkv_error* err) {
  if (p.num_tokens < 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 0, got %d", p.num_tokens);
  }
  lkv_status s = check_gqa_cache(p.num_kv_heads, p.head_dim, p.block_size, p.num_blocks, p.cache_dtype, err);
  if (s != LKV_OK) return s;
  if (p.num_tokens == 0) return ok(err);
  if (!p.k || !p.v || !p.slot_mapping || !p.cache) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "k, v, slot_mapping and cache must not be NULL");
  }
  s = check_slots(p.num_tokens, p.slot_mapping, static_cast<int64_t>(p.num_blocks) * p.block_size, err);
  if (s != LKV_OK) return s;
  return ok(err);
}

int64_t decode_layer_slot(const lkv_mla_decode_layer_params& p, int32_t b, int32_t s) {
  const int32_t token = p.seq_lens[b] - p.q_len + s;
  const int64_t block = p.block_table[static_cast<int64_t>(b) * p.max_blocks_per_seq + token / p.block_size];
  return block * p.block_size + token % p.block_size;
}

lkv_status validate(const lkv_mla_decode_layer_params& p, lkv_error* err) {
  if (p.batch < 1 || p.q_len < 1 || p.hidden_size < 1 || p.num_heads < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "batch, q_len, hidden_size and num_heads must be >= 1, got %d, %d, %d, %d", p.batch,
                p.q_len, p.hidden_size, p.num_heads);
  }
  if (p.q_lora_rank < 0 || p.qk_nope_head_dim < 0 || p.v_head_dim < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "q_lora_rank and qk_nope_head_dim must be >= 0 and v_head_dim >= 1, got %d, %d, %d",
                p.q_lora_rank, p.qk_nope_head_dim, p.v_head_dim);
  }
  lkv_status s = check_cache_dims(p.kv_lora_rank, p.rope_dim, p.rope_heads, p.block_size,
                                  p.num_blocks, p.cache_dtype, err);
  if (s != LKV_OK) return s;
  if (p.qk_nope_head_dim + p.rope_dim < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "qk_nope_head_dim + rope_dim must be >= 1 (the query has no part), got %d + %d",
                p.qk_nope_head_dim, p.rope_dim);
  }
  if (p.num_heads % p.rope_heads != 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope_heads (%d) must divide num_heads (%d)",
                p.rope_heads, p.num_heads);
  }
  // Every matrix dimension and scratch size must stay well inside int32 / size_t arithmetic.
  const int64_t H = p.num_heads;
  const int64_t dims[] = {H * (p.qk_nope_head_dim + p.rope_dim), H * (p.qk_nope_head_dim + p.v_head_dim),
                          H * p.v_head_dim, H * p.kv_lora_rank,
                          static_cast<int64_t>(p.batch) * p.q_len};
  for (int64_t d : dims) {
    if (d > (int64_t{1} << 30)) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT,
                  "a layer dimension (H (Dn + P), H (Dn + Dv), H Dv, H R or B Sq) exceeds 2^30");
    }
  }
  if (p.max_blocks_per_seq < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "max_blocks_per_seq must be >= 1, got %d",
                p.max_blocks_per_seq);
  }
  if (p.weight_dtype != LKV_DTYPE_F32 && p.weight_dtype != LKV_DTYPE_BF16) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "weight_dtype must be f32 (0) or bf16 (2), got %d",
                static_cast<int>(p.weight_dtype));
  }
  if (!std::isfinite(p.softmax_scale)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "softmax_scale must be finite, got %g",
                p.softmax_scale);
  }
  if (!(std::isfinite(p.norm_eps) && p.norm_eps >= 0.0f)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "norm_eps must be finite and >= 0, got %g",
                p.norm_eps);
  }
  if (p.fold_absorption != 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "fold_absorption must be 0 (folding W_UK/W_UV into q_proj/o_proj is slower for "
                "every R > Dn, Dv shape and is not implemented), got %d",
                p.fold_absorption);
  }
  s = validate_rope(p.rope, p.rope_dim, err);
  if (s != LKV_OK) return s;
  if (!p.hidden || !p.w_kv_a || !p.w_kv_b || !p.w_o || !p.positions || !p.cache ||
      !p.block_table || !p.seq_lens || !p.out) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "hidden, w_kv_a, w_kv_b, w_o, positions, cache, block_table, seq_lens and out "
                "must not be NULL");
  }
  if (p.q_lora_rank == 0 && !p.w_q) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "w_q (q_proj) must not be NULL when q_lora_rank is 0");
  }
  if (p.q_lora_rank > 0 && (!p.w_q_a || !p.w_q_b)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "w_q_a (q_a_proj) and w_q_b (q_b_proj) must not be NULL when q_lora_rank > 0");
  }
  const int32_t T = p.batch * p.q_len;
  for (int32_t t = 0; t < T; ++t) {
    if (p.positions[t] < 0) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT, "positions[%d] = %d must be >= 0", t, p.positions[t]);
    }
  }
  for (int32_t b = 0; b < p.batch; ++b) {
    if (p.seq_lens[b] < p.q_len) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT,
                  "seq_lens[%d] = %d must be >= q_len (%d): it counts the new tokens too", b,
                  p.seq_lens[b], p.q_len);
    }
  }
  s = check_block_table(p.batch, p.seq_lens, p.block_table, p.max_blocks_per_seq, p.block_size,
                        p.num_blocks, err);
  if (s != LKV_OK) return s;
  // Two sequences sharing a page for their new tokens would write the same row twice.
  std::vector<int64_t> slots(static_cast<size_t>(T));
  for (int32_t b = 0; b < p.batch; ++b) {
    for (int32_t q = 0; q < p.q_len; ++q) {
      const int32_t t = b * p.q_len + q;
      slots[t] = decode_layer_slot(p, b, q);
      if (p.slot_mapping && p.slot_mapping[t] != slots[t]) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT,
                    "slot_mapping[%d] = %lld, but token %d of sequence %d goes to slot %lld "
                    "(block_table and seq_lens)",
                    t, static_cast<long long>(p.slot_mapping[t]), q, b,
                    static_cast<long long>(slots[t]));
      }
    }
  }
  s = check_slots(T, slots.data(), static_cast<int64_t>(p.num_blocks) * p.block_size, err);
  if (s != LKV_OK) return s;
  return ok(err);
}


lkv_status validate(const lkv_mtla_merge_append_params& p, lkv_error* err) {
  if (p.num_tokens < 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_tokens must be >= 0, got %d", p.num_tokens);
  }
  lkv_status s = check_cache_dims(p.kv_lora_rank, p.rope_dim, p.rope_heads, p.block_size,
                                  p.num_blocks, p.cache_dtype, err);
  if (s != LKV_OK) return s;
  if (p.kv_lora_rank < 2 || p.kv_lora_rank % 2 != 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "kv_lora_rank must be even and >= 2 for MTLA (the chunk PE is sin/cos pairs), got %d",
                p.kv_lora_rank);
  }
  if (p.hyper_dim < 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "hyper_dim must be >= 1, got %d", p.hyper_dim);
  }
  if (p.stride < 1) return fail(err, LKV_ERR_INVALID_ARGUMENT, "stride must be >= 1, got %d", p.stride);
  if (!std::isfinite(p.norm_eps) || p.norm_eps < 0) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "norm_eps must be finite and >= 0, got %g",
                static_cast<double>(p.norm_eps));
  }
  if (!p.norm_weight && p.norm_bias) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "norm_bias is given without norm_weight");
  }
  if (p.num_tokens == 0) return ok(err);
  if (!p.latent || !p.w_fc_c || !p.w_fc_p || !p.token_index || !p.slot_mapping || !p.cache) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "latent, w_fc_c, w_fc_p, token_index, slot_mapping and cache must not be NULL");
  }
  if (p.rope_dim > 0 && !p.k_rope) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "k_rope must not be NULL when rope_dim > 0");
  }
  const int64_t slots = static_cast<int64_t>(p.num_blocks) * p.block_size;
  // Per slot written in this call: the chunk and the last token index merged into it.
  std::unordered_map<int64_t, std::pair<int64_t, int64_t>> seen;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int64_t n = p.token_index[t];
    const int64_t slot = p.slot_mapping[t];
    if (n < 0) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT, "token_index[%d] = %lld must be >= 0", t,
                  static_cast<long long>(n));
    }
    if (slot < 0) continue;
    if (slot >= slots) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT, "slot_mapping[%d] = %lld is outside 0..%lld", t,
                  static_cast<long long>(slot), static_cast<long long>(slots - 1));
    }
    const int64_t chunk = n / p.stride;
    auto it = seen.find(slot);
    if (it == seen.end()) {
      seen.emplace(slot, std::make_pair(chunk, n));
      continue;
    }
    if (it->second.first != chunk || n <= it->second.second) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT,
                  "slot_mapping[%d] = %lld was already used in this call by chunk %lld up to token "
                  "%lld; token %lld (chunk %lld) may only merge into it as a later token of the "
                  "same chunk",
                  t, static_cast<long long>(slot), static_cast<long long>(it->second.first),
                  static_cast<long long>(it->second.second), static_cast<long long>(n),
                  static_cast<long long>(chunk));
    }
    it->second.second = n;
  }
  return ok(err);
}

lkv_status validate(const lkv_gemm_params& p, lkv_error* err) {
  if (p.m < 0) return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: m must be >= 0, got %d", p.m);
  if (p.n < 1) return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: n must be >= 1, got %d", p.n);
  if (p.k < 1) return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: k must be >= 1, got %d", p.k);
  if (p.weight_dtype != LKV_DTYPE_F32 && p.weight_dtype != LKV_DTYPE_BF16) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: weight_dtype must be f32 (0) or bf16 (2), got %d",
                static_cast<int>(p.weight_dtype));
  }
  if (p.accumulate != 0 && p.accumulate != 1) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: accumulate must be 0 or 1, got %d", p.accumulate);
  }
  if (!p.w) return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: w must not be NULL");
  if (p.m > 0 && (!p.a || !p.c)) return fail(err, LKV_ERR_INVALID_ARGUMENT, "gemm: a and c must not be NULL");
  return LKV_OK;
}

}  // namespace lkv
