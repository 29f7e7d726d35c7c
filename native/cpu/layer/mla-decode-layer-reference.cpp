// Scalar reference of mla_decode_layer: each projection a double-precision dot product per
// token and output row, then the reference project_append and reference attention core.
#include <cmath>
#include <new>
#include <vector>

#include "../../core/error.h"
#include "../../core/numeric.h"
#include "../../core/rope.h"
#include "../../core/validate.h"
#include "../reference/reference-kernels.h"
#include "mla-decode-layer.h"

namespace lkv::cpu {
namespace {

double weight_at(const void* w, lkv_dtype dtype, int64_t i) {
  if (dtype == LKV_DTYPE_BF16) return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

// y[o] = sum_e W[row0 + o, e] x[e] for o < rows, W row-major with `cols` columns.
void matvec(const void* w, lkv_dtype dtype, int64_t row0, int64_t rows, int64_t cols, const float* x,
            float* y) {
  for (int64_t o = 0; o < rows; ++o) {
    double dot = 0.0;
    for (int64_t e = 0; e < cols; ++e) dot += weight_at(w, dtype, (row0 + o) * cols + e) * x[e];
    y[o] = static_cast<float>(dot);
  }
}

void rms_norm(float* x, int64_t n, const float* weight, float eps) {
  double ss = 0.0;
  for (int64_t i = 0; i < n; ++i) ss += static_cast<double>(x[i]) * x[i];
  const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n) + eps);
  for (int64_t i = 0; i < n; ++i) x[i] = static_cast<float>(x[i] * inv * weight[i]);
}

lkv_status run(const lkv_mla_decode_layer_params& p, ThreadPool& pool, lkv_error* err) {
  const int64_t T = static_cast<int64_t>(p.batch) * p.q_len;
  const int64_t H = p.num_heads, E = p.hidden_size, Q = p.q_lora_rank;
  const int64_t Dn = p.qk_nope_head_dim, Dv = p.v_head_dim, R = p.kv_lora_rank, P = p.rope_dim;
  const int64_t qk = Dn + P;
  const lkv_dtype wd = p.weight_dtype;

  std::vector<float> q(static_cast<size_t>(T * H * qk)), cq(static_cast<size_t>(Q));
  std::vector<float> q_latent(static_cast<size_t>(T * H * R)), q_rope(static_cast<size_t>(T * H * P));
  std::vector<float> lat(static_cast<size_t>(T * H * R)), o(static_cast<size_t>(T * H * Dv));
  std::vector<float> result(static_cast<size_t>(T * E));
  std::vector<int64_t> slots(static_cast<size_t>(T));
  std::vector<float> inv_freq(static_cast<size_t>(P / 2));
  rope_inv_freq(p.rope, static_cast<int32_t>(P), inv_freq.data());
  const float attention_factor = rope_attention_factor(p.rope);

  // Query: projection, rope on q_pe, W_UK absorption of q_nope.
  for (int64_t t = 0; t < T; ++t) {
    const float* x = p.hidden + t * E;
    float* qt = q.data() + t * H * qk;
    if (Q == 0) {
      matvec(p.w_q, wd, 0, H * qk, E, x, qt);
    } else {
      matvec(p.w_q_a, wd, 0, Q, E, x, cq.data());
      if (p.q_a_norm_weight) rms_norm(cq.data(), Q, p.q_a_norm_weight, p.norm_eps);
      matvec(p.w_q_b, wd, 0, H * qk, Q, cq.data(), qt);
    }
    for (int64_t h = 0; h < H; ++h) {
      const float* head = qt + h * qk;
      float* qr = q_rope.data() + (t * H + h) * P;
      for (int64_t i = 0; i < P; ++i) qr[i] = head[Dn + i];
      rope_rotate(p.rope.style, inv_freq.data(), attention_factor, static_cast<int32_t>(P),
                  p.positions[t], qr);
      for (int64_t r = 0; r < R; ++r) {
        double dot = 0.0;
        for (int64_t d = 0; d < Dn; ++d) {
          dot += weight_at(p.w_kv_b, wd, (h * (Dn + Dv) + d) * R + r) * head[d];
        }
        q_latent[static_cast<size_t>((t * H + h) * R + r)] = static_cast<float>(dot);
      }
    }
  }
  for (int32_t b = 0; b < p.batch; ++b) {
    for (int32_t s = 0; s < p.q_len; ++s) slots[static_cast<size_t>(b * p.q_len + s)] = decode_layer_slot(p, b, s);
  }

  const lkv_mla_project_append_params a = layer_append_params(p, slots.data());
  lkv_status s = mla_project_append_reference(a, pool, err);
  if (s != LKV_OK) return s;

  const lkv_mla_decode_params d =
      layer_attention_params(p, q_latent.data(), P > 0 ? q_rope.data() : nullptr, lat.data());
  s = mla_decode_reference(d, pool, err);
  if (s != LKV_OK) return s;

  // W_UV per head, then o_proj.
  for (int64_t t = 0; t < T; ++t) {
    for (int64_t h = 0; h < H; ++h) {
      matvec(p.w_kv_b, wd, h * (Dn + Dv) + Dn, Dv, R, lat.data() + (t * H + h) * R,
             o.data() + (t * H + h) * Dv);
    }
    matvec(p.w_o, wd, 0, E, H * Dv, o.data() + t * H * Dv, result.data() + t * E);
  }
  // out may be the same memory as hidden, which project_append read above.
  for (int64_t i = 0; i < T * E; ++i) p.out[i] = result[static_cast<size_t>(i)];
  return ok(err);
}

}  // namespace

lkv_status mla_decode_layer_reference(const lkv_mla_decode_layer_params& p, const KernelTable& /*kernels*/,
                                      ThreadPool& pool, lkv_error* err) {
  try {
    return run(p, pool, err);
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_decode_layer: could not allocate scratch memory");
  }
}

}  // namespace lkv::cpu
