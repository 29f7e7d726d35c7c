// Scalar reference of mla_decode: one query, one head at a time, every sum in double.
// Written to be obviously right, not fast; every other kernel is tested against it.
#include <cmath>
#include <limits>
#include <vector>

#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "reference-kernels.h"

namespace lkv::cpu {

lkv_status mla_decode_reference(const lkv_mla_decode_params& p, ThreadPool& /*pool*/,
                                lkv_error* err) {
  const int32_t R = p.kv_lora_rank, P = p.rope_dim, H = p.num_heads, Sq = p.q_len;
  const int32_t rope_width = P * p.rope_heads;
  const int32_t heads_per_rope = H / p.rope_heads;
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, R, rope_width);

  std::vector<float> latent(static_cast<size_t>(R)), rope(static_cast<size_t>(rope_width));
  std::vector<double> scores, acc(static_cast<size_t>(R));

  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = p.seq_lens[b];
    const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
    for (int32_t s = 0; s < Sq; ++s) {
      // Query s of the window sees tokens [0, len - Sq + 1 + s).
      int32_t visible = len - Sq + 1 + s;
      if (visible < 0) visible = 0;
      for (int32_t h = 0; h < H; ++h) {
        const int64_t qi = ((static_cast<int64_t>(b) * Sq + s) * H + h);
        const float* ql = p.q_latent + qi * R;
        const float* qr = P > 0 ? p.q_rope + qi * P : nullptr;
        const int32_t g = h / heads_per_rope;
        scores.assign(static_cast<size_t>(visible), 0.0);
        double max_score = -std::numeric_limits<double>::infinity();
        for (int32_t j = 0; j < visible; ++j) {
          read_row(cache_row(p.cache, layout, table, p.block_size, j), layout, p.cache_dtype, R,
                   rope_width, latent.data(), rope.data());
          double dot = 0.0;
          for (int32_t r = 0; r < R; ++r) dot += static_cast<double>(ql[r]) * latent[r];
          for (int32_t i = 0; i < P; ++i) dot += static_cast<double>(qr[i]) * rope[g * P + i];
          scores[j] = dot * p.softmax_scale;
          if (scores[j] > max_score) max_score = scores[j];
        }
        float* out = p.out + qi * R;
        const int64_t lse_index = (static_cast<int64_t>(b) * H + h) * Sq + s;
        if (visible == 0) {
          for (int32_t r = 0; r < R; ++r) out[r] = 0.0f;
          if (p.lse) p.lse[lse_index] = -std::numeric_limits<float>::infinity();
          continue;
        }
        double sum = 0.0;
        acc.assign(static_cast<size_t>(R), 0.0);
        for (int32_t j = 0; j < visible; ++j) {
          const double w = std::exp(scores[j] - max_score);
          sum += w;
          read_row(cache_row(p.cache, layout, table, p.block_size, j), layout, p.cache_dtype, R,
                   rope_width, latent.data(), rope.data());
          for (int32_t r = 0; r < R; ++r) acc[r] += w * latent[r];
        }
        for (int32_t r = 0; r < R; ++r) out[r] = static_cast<float>(acc[r] / sum);
        if (p.lse) p.lse[lse_index] = static_cast<float>(max_score + std::log(sum));
      }
    }
  }
  return ok(err);
}

}  // namespace lkv::cpu
