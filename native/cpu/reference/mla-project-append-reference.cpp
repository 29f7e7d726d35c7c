// Scalar reference of mla_project_append: per token, a double-precision matrix-vector
// product, RMSNorm, RoPE, then the cache's own rounding/quantization.
#include <cmath>
#include <vector>

#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "../../core/numeric.h"
#include "../../core/rope.h"
#include "reference-kernels.h"

namespace lkv::cpu {
namespace {

double weight_at(const void* w, lkv_dtype dtype, int64_t i) {
  switch (dtype) {
    case LKV_DTYPE_F16: return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case LKV_DTYPE_BF16: return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

}  // namespace

lkv_status mla_project_append_reference(const lkv_mla_project_append_params& p,
                                        ThreadPool& /*pool*/, lkv_error* err) {
  const int32_t R = p.kv_lora_rank, P = p.rope_dim, E = p.hidden_size;
  const int32_t rope_width = P * p.rope_heads;
  const int32_t rows = R + rope_width;
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, R, rope_width);
  std::vector<float> inv_freq(static_cast<size_t>(P / 2));
  rope_inv_freq(p.rope, P, inv_freq.data());
  const float attention_factor = rope_attention_factor(p.rope);
  std::vector<float> y(static_cast<size_t>(rows));

  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    if (slot < 0) continue;
    const float* x = p.hidden + static_cast<int64_t>(t) * E;
    for (int32_t o = 0; o < rows; ++o) {
      double dot = 0.0;
      for (int32_t e = 0; e < E; ++e) {
        dot += weight_at(p.w_kv_a, p.weight_dtype, static_cast<int64_t>(o) * E + e) * x[e];
      }
      y[o] = static_cast<float>(dot);
    }
    if (p.norm_weight) {
      double ss = 0.0;
      for (int32_t r = 0; r < R; ++r) ss += static_cast<double>(y[r]) * y[r];
      const double inv_rms = 1.0 / std::sqrt(ss / R + p.norm_eps);
      for (int32_t r = 0; r < R; ++r) y[r] = static_cast<float>(y[r] * inv_rms * p.norm_weight[r]);
    }
    for (int32_t k = 0; k < p.rope_heads; ++k) {
      rope_rotate(p.rope.style, inv_freq.data(), attention_factor, P, p.positions[t],
                  y.data() + R + k * P);
    }
    uint8_t* row = static_cast<uint8_t*>(p.cache) + slot * static_cast<int64_t>(layout.row_bytes);
    write_row(row, layout, p.cache_dtype, R, rope_width, y.data(), y.data() + R);
  }
  return ok(err);
}

}  // namespace lkv::cpu
