// MTLA merge-append in double precision: LayerNorm of the latent, the hyper-network weight
// w = sigmoid(fc_c(pe_chunk) . fc_p(c_hat)), then open-or-merge into the chunk's cache row.
// The per-token work is O(D R) for fc_p plus O(D R) for fc_c(pe) (computed once per chunk
// change), small beside the decode that follows, so this reference is the CPU kernel.
#include "mtla-merge-append-reference.h"

#include <cmath>
#include <vector>

#include "../../core/cache-layout.h"
#include "../../core/error.h"

namespace lkv::cpu {
namespace {

// fc(x) = W x + b for W [D, R] row-major, in double.
void linear(const float* w, const float* b, const double* x, int32_t rows, int32_t cols, double* y) {
  for (int32_t o = 0; o < rows; ++o) {
    const float* wr = w + static_cast<int64_t>(o) * cols;
    double acc = b ? static_cast<double>(b[o]) : 0.0;
    for (int32_t i = 0; i < cols; ++i) acc += static_cast<double>(wr[i]) * x[i];
    y[o] = acc;
  }
}

// The chunk's sinusoidal position embedding of width R (MTLA's HyperNetwork input).
void chunk_pe(int64_t chunk, int32_t R, double* pe) {
  for (int32_t k = 0; k < R / 2; ++k) {
    const double freq = std::pow(10000.0, -2.0 * k / R);
    const double a = static_cast<double>(chunk) * freq;
    pe[2 * k] = std::sin(a);
    pe[2 * k + 1] = std::cos(a);
  }
}

}  // namespace

lkv_status mtla_merge_append_reference(const lkv_mtla_merge_append_params& p, lkv_error* err) {
  const int32_t R = p.kv_lora_rank, D = p.hyper_dim;
  const int32_t rope_width = p.rope_dim * p.rope_heads;
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, R, rope_width);
  std::vector<double> c_hat(R), pe(R), fc_c(D), fc_p(D), merged(R);
  std::vector<float> row_latent(R), row_rope(rope_width > 0 ? rope_width : 1);
  std::vector<float> out_latent(R);
  int64_t pe_chunk = -1;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    const int64_t slot = p.slot_mapping[t];
    if (slot < 0) {
      if (p.merge_weight) p.merge_weight[t] = 0.0f;
      continue;
    }
    const int64_t n = p.token_index[t];
    const int64_t chunk = n / p.stride;
    const bool opens = n % p.stride == 0;
    const float* c = p.latent + static_cast<int64_t>(t) * R;
    if (p.norm_weight) {
      double mean = 0.0;
      for (int32_t r = 0; r < R; ++r) mean += c[r];
      mean /= R;
      double var = 0.0;
      for (int32_t r = 0; r < R; ++r) var += (c[r] - mean) * (c[r] - mean);
      var /= R;
      const double inv = 1.0 / std::sqrt(var + static_cast<double>(p.norm_eps));
      for (int32_t r = 0; r < R; ++r) {
        c_hat[r] = (c[r] - mean) * inv * p.norm_weight[r] + (p.norm_bias ? p.norm_bias[r] : 0.0f);
      }
    } else {
      for (int32_t r = 0; r < R; ++r) c_hat[r] = c[r];
    }
    if (chunk != pe_chunk) {
      chunk_pe(chunk, R, pe.data());
      linear(p.w_fc_c, p.b_fc_c, pe.data(), D, R, fc_c.data());
      pe_chunk = chunk;
    }
    linear(p.w_fc_p, p.b_fc_p, c_hat.data(), D, R, fc_p.data());
    double dot = 0.0;
    for (int32_t d = 0; d < D; ++d) dot += fc_c[d] * fc_p[d];
    const double w = 1.0 / (1.0 + std::exp(-dot));
    if (p.merge_weight) p.merge_weight[t] = static_cast<float>(w);

    uint8_t* row = static_cast<uint8_t*>(p.cache) + slot * static_cast<int64_t>(layout.row_bytes);
    if (opens) {
      for (int32_t r = 0; r < R; ++r) merged[r] = 0.0;
    } else {
      read_row(row, layout, p.cache_dtype, R, rope_width, row_latent.data(), row_rope.data());
      for (int32_t r = 0; r < R; ++r) merged[r] = row_latent[r];
    }
    for (int32_t r = 0; r < R; ++r) out_latent[r] = static_cast<float>(merged[r] + w * c_hat[r]);
    const float* rope = rope_width > 0 ? p.k_rope + static_cast<int64_t>(t) * rope_width : row_rope.data();
    write_row(row, layout, p.cache_dtype, R, rope_width, out_latent.data(), rope);
  }
  return ok(err);
}

}  // namespace lkv::cpu
