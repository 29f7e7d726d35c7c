// The fast mla_decode_layer. T = B * Sq tokens go through every weight matrix together, so
// each matrix is streamed from memory once per call; the work is split over the thread pool
// by output rows (projections) or by head (W_UK absorption, W_UV). The KV append and the
// attention core are this backend's own kernels (SIMD where compiled), called from the calling
// thread, never from inside a pool task (the pool runs one job at a time).
#include <cmath>
#include <new>
#include <vector>

#include "../../core/attention-fields.h"
#include "../../core/error.h"
#include "../../core/rope.h"
#include "../../core/validate.h"
#include "../prefill/mla-prefill.h"
#include "../thread-pool.h"
#include "mla-decode-layer.h"

namespace lkv::cpu {
namespace {

size_t weight_bytes(lkv_dtype d) { return d == LKV_DTYPE_BF16 ? 2 : 4; }

const void* rows_at(const void* w, lkv_dtype d, int64_t row, int64_t cols) {
  return static_cast<const uint8_t*>(w) + static_cast<size_t>(row * cols) * weight_bytes(d);
}

lkv_status run(const lkv_mla_decode_layer_params& p, const KernelTable& kernels, ThreadPool& pool,
               lkv_error* err) {
  const int32_t T = p.batch * p.q_len;
  const int64_t H = p.num_heads, E = p.hidden_size, Q = p.q_lora_rank;
  const int64_t Dn = p.qk_nope_head_dim, Dv = p.v_head_dim, R = p.kv_lora_rank, P = p.rope_dim;
  const int64_t qk = Dn + P, kvb = Dn + Dv;
  const lkv_dtype wd = p.weight_dtype;
  const GemvIsa isa = gemv_isa_for(kernels.isa);

  // All scratch first: after this point nothing can fail before the cache is written.
  std::vector<float> cq(static_cast<size_t>(T * Q));
  std::vector<float> q(static_cast<size_t>(T * H * qk));
  std::vector<float> q_latent(static_cast<size_t>(T * H * R)), q_rope(static_cast<size_t>(T * H * P));
  std::vector<float> lat(static_cast<size_t>(T * H * R)), o(static_cast<size_t>(T * H * Dv));
  std::vector<int64_t> slots(static_cast<size_t>(T));
  std::vector<float> inv_freq(static_cast<size_t>(P / 2));
  rope_inv_freq(p.rope, static_cast<int32_t>(P), inv_freq.data());
  const float attention_factor = rope_attention_factor(p.rope);
  for (int32_t b = 0; b < p.batch; ++b) {
    for (int32_t s = 0; s < p.q_len; ++s) slots[static_cast<size_t>(b * p.q_len + s)] = decode_layer_slot(p, b, s);
  }

  // 1. The new tokens' [c ; k_rope] into the cache (reads hidden, which out may overwrite later).
  const lkv_mla_project_append_params a = layer_append_params(p, slots.data());
  lkv_status s = kernels.mla_project_append(a, pool, err);
  if (s != LKV_OK) return s;

  // 2. q = q_proj x, or q_b_proj RMSNorm(q_a_proj x).
  if (Q == 0) {
    gemv_parallel(p.w_q, wd, H * qk, E, p.hidden, E, T, q.data(), H * qk, isa, pool);
  } else {
    gemv_parallel(p.w_q_a, wd, Q, E, p.hidden, E, T, cq.data(), Q, isa, pool);
    if (p.q_a_norm_weight) {
      for (int32_t t = 0; t < T; ++t) {
        float* c = cq.data() + t * Q;
        double ss = 0.0;
        for (int64_t i = 0; i < Q; ++i) ss += static_cast<double>(c[i]) * c[i];
        const float inv = static_cast<float>(1.0 / std::sqrt(ss / static_cast<double>(Q) + p.norm_eps));
        for (int64_t i = 0; i < Q; ++i) c[i] = c[i] * inv * p.q_a_norm_weight[i];
      }
    }
    gemv_parallel(p.w_q_b, wd, H * qk, Q, cq.data(), Q, T, q.data(), H * qk, isa, pool);
  }

  // 3. Per head: rotated q_pe.
  pool.for_each(H, [&](int64_t h, int32_t) {
    for (int32_t t = 0; t < T; ++t) {
      const float* head = q.data() + (t * H + h) * qk;
      float* qr = q_rope.data() + (t * H + h) * P;
      for (int64_t i = 0; i < P; ++i) qr[i] = head[Dn + i];
      rope_rotate(p.rope.style, inv_freq.data(), attention_factor, static_cast<int32_t>(P),
                  p.positions[t], qr);
    }
  });

  // 3-5 for a prompt chunk that the prefill cost model sends to the non-absorbed form: K_nope and
  // V up-projected a tile of cached tokens at a time (mla_prefill), straight to o.
  if (p.q_len > 1 && Dn > 0) {
    std::vector<float> q_nope(static_cast<size_t>(T * H * Dn));
    const lkv_mla_prefill_params pp = layer_prefill_params(p, q_nope.data(), P > 0 ? q_rope.data() : nullptr, o.data());
    if (mla_prefill_prefers_non_absorbed(pp)) {
      for (int64_t row = 0; row < T * H; ++row) {
        std::copy(q.data() + row * qk, q.data() + row * qk + Dn, q_nope.data() + row * Dn);
      }
      s = mla_prefill_tiled(pp, kernels.isa, pool, err);
      if (s != LKV_OK) return s;
      gemv_parallel(p.w_o, wd, E, H * Dv, o.data(), H * Dv, T, p.out, E, isa, pool);
      return ok(err);
    }
  }

  // 3. q_latent = W_UK,h^T q_nope (W_UK,h streamed once for all T).
  pool.for_each(H, [&](int64_t h, int32_t) {
    gemv_transposed(rows_at(p.w_kv_b, wd, h * kvb, R), wd, Dn, R, q.data() + h * qk, H * qk, T,
                    q_latent.data() + h * R, H * R, isa);
  });

  // 4. The attention core.
  const lkv_mla_decode_params d =
      layer_attention_params(p, q_latent.data(), P > 0 ? q_rope.data() : nullptr, lat.data());
  s = kernels.mla_decode(d, pool, err);
  if (s != LKV_OK) return s;

  // 5. o_h = W_UV,h lat_h, all heads, all tokens.
  pool.for_each(H, [&](int64_t h, int32_t) {
    gemv_rows(rows_at(p.w_kv_b, wd, h * kvb + Dn, R), wd, 0, Dv, R, lat.data() + h * R, H * R, T,
              o.data() + h * Dv, H * Dv, isa);
  });

  // 6. out = o_proj o.
  gemv_parallel(p.w_o, wd, E, H * Dv, o.data(), H * Dv, T, p.out, E, isa, pool);
  return ok(err);
}

}  // namespace

lkv_mla_project_append_params layer_append_params(const lkv_mla_decode_layer_params& p,
                                                  const int64_t* slot_mapping) {
  lkv_mla_project_append_params a{};
  a.num_tokens = p.batch * p.q_len;
  a.hidden_size = p.hidden_size;
  a.kv_lora_rank = p.kv_lora_rank;
  a.rope_dim = p.rope_dim;
  a.rope_heads = p.rope_heads;
  a.block_size = p.block_size;
  a.num_blocks = p.num_blocks;
  a.cache_dtype = p.cache_dtype;
  a.weight_dtype = p.weight_dtype;
  a.norm_eps = p.norm_eps;
  a.rope = p.rope;
  a.hidden = p.hidden;
  a.w_kv_a = p.w_kv_a;
  a.norm_weight = p.kv_a_norm_weight;
  a.positions = p.positions;
  a.slot_mapping = slot_mapping;
  a.cache = p.cache;
  return a;
}

lkv_mla_prefill_params layer_prefill_params(const lkv_mla_decode_layer_params& p, const float* q_nope,
                                            const float* q_rope, float* out) {
  lkv_mla_prefill_params pp{};
  copy_attention_fields(p, pp);
  pp.qk_nope_head_dim = p.qk_nope_head_dim;
  pp.v_head_dim = p.v_head_dim;
  pp.weight_dtype = p.weight_dtype;
  pp.form = LKV_PREFILL_NON_ABSORBED;
  pp.q_nope = q_nope;
  pp.q_rope = q_rope;
  pp.w_kv_b = p.w_kv_b;
  pp.out = out;
  pp.lse = nullptr;
  return pp;
}

lkv_mla_decode_params layer_attention_params(const lkv_mla_decode_layer_params& p, const float* q_latent,
                                             const float* q_rope, float* out) {
  lkv_mla_decode_params d{};
  copy_attention_fields(p, d);
  d.q_latent = q_latent;
  d.q_rope = q_rope;
  d.out = out;
  d.lse = nullptr;
  return d;
}

lkv_status mla_decode_layer_fast(const lkv_mla_decode_layer_params& p, const KernelTable& kernels,
                                 ThreadPool& pool, lkv_error* err) {
  try {
    return run(p, kernels, pool, err);
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_decode_layer: could not allocate scratch memory");
  }
}

}  // namespace lkv::cpu
