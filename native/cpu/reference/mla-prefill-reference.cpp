// Scalar reference of mla_prefill: the non-absorbed formula as the contract states it, every
// sum in double. Each (sequence, head) up-projects its cached tokens once, then every new token
// attends over the ones it sees. Obviously right, not fast; the fast kernel is tested against it.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "../../core/numeric.h"
#include "reference-kernels.h"

namespace lkv::cpu {

namespace {

double weight(const lkv_mla_prefill_params& p, int64_t row, int32_t col) {
  const int64_t i = row * p.kv_lora_rank + col;
  if (p.weight_dtype == LKV_DTYPE_BF16) return bf16_to_f32(static_cast<const uint16_t*>(p.w_kv_b)[i]);
  return static_cast<const float*>(p.w_kv_b)[i];
}

}  // namespace

lkv_status mla_prefill_reference(const lkv_mla_prefill_params& p, ThreadPool& /*pool*/, lkv_error* err) {
  const int32_t R = p.kv_lora_rank, P = p.rope_dim, H = p.num_heads, T = p.q_len;
  const int32_t Dn = p.qk_nope_head_dim, Dv = p.v_head_dim;
  const int32_t rope_width = P * p.rope_heads;
  const int32_t heads_per_rope = H / p.rope_heads;
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, R, rope_width);

  std::vector<float> latent(static_cast<size_t>(R)), rope(static_cast<size_t>(rope_width));
  std::vector<double> k_nope, value, k_rope, scores;

  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = p.seq_lens[b];
    const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
    for (int32_t h = 0; h < H; ++h) {
      const int32_t g = h / heads_per_rope;
      const int64_t w_row = static_cast<int64_t>(h) * (Dn + Dv);
      k_nope.assign(static_cast<size_t>(len) * Dn, 0.0);
      value.assign(static_cast<size_t>(len) * Dv, 0.0);
      k_rope.assign(static_cast<size_t>(len) * P, 0.0);
      for (int32_t j = 0; j < len; ++j) {
        read_row(cache_row(p.cache, layout, table, p.block_size, j), layout, p.cache_dtype, R, rope_width,
                 latent.data(), rope.data());
        for (int32_t d = 0; d < Dn + Dv; ++d) {
          double dot = 0.0;
          for (int32_t r = 0; r < R; ++r) dot += weight(p, w_row + d, r) * latent[r];
          if (d < Dn) k_nope[static_cast<size_t>(j) * Dn + d] = dot;
          else value[static_cast<size_t>(j) * Dv + (d - Dn)] = dot;
        }
        for (int32_t i = 0; i < P; ++i) k_rope[static_cast<size_t>(j) * P + i] = rope[g * P + i];
      }
      for (int32_t t = 0; t < T; ++t) {
        // New token t sits at position len - T + t and sees tokens [0, len - T + 1 + t).
        int32_t visible = len - T + 1 + t;
        if (visible < 0) visible = 0;
        const int64_t qi = (static_cast<int64_t>(b) * T + t) * H + h;
        const float* qn = p.q_nope + qi * Dn;
        const float* qr = P > 0 ? p.q_rope + qi * P : nullptr;
        float* out = p.out + qi * Dv;
        const int64_t lse_index = (static_cast<int64_t>(b) * H + h) * T + t;
        if (visible == 0) {
          for (int32_t d = 0; d < Dv; ++d) out[d] = 0.0f;
          if (p.lse) p.lse[lse_index] = -std::numeric_limits<float>::infinity();
          continue;
        }
        scores.assign(static_cast<size_t>(visible), 0.0);
        double max_score = -std::numeric_limits<double>::infinity();
        for (int32_t j = 0; j < visible; ++j) {
          double dot = 0.0;
          for (int32_t d = 0; d < Dn; ++d) dot += static_cast<double>(qn[d]) * k_nope[static_cast<size_t>(j) * Dn + d];
          for (int32_t i = 0; i < P; ++i) dot += static_cast<double>(qr[i]) * k_rope[static_cast<size_t>(j) * P + i];
          scores[j] = dot * p.softmax_scale;
          if (scores[j] > max_score) max_score = scores[j];
        }
        double sum = 0.0;
        std::vector<double> acc(static_cast<size_t>(Dv), 0.0);
        for (int32_t j = 0; j < visible; ++j) {
          const double w = std::exp(scores[j] - max_score);
          sum += w;
          for (int32_t d = 0; d < Dv; ++d) acc[d] += w * value[static_cast<size_t>(j) * Dv + d];
        }
        for (int32_t d = 0; d < Dv; ++d) out[d] = static_cast<float>(acc[d] / sum);
        if (p.lse) p.lse[lse_index] = static_cast<float>(max_score + std::log(sum));
      }
    }
  }
  return ok(err);
}

}  // namespace lkv::cpu
