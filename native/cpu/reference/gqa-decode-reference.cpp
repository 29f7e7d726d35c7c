// Scalar reference of gqa_decode: per query and head, scores and weighted sum in double.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "../../core/error.h"
#include "../../core/gqa-cache.h"
#include "reference-kernels.h"

namespace lkv::cpu {

lkv_status gqa_decode_reference(const lkv_gqa_decode_params& p, ThreadPool& /*pool*/, lkv_error* err) {
  const int32_t D = p.head_dim, H = p.num_heads, Sq = p.q_len;
  const int32_t group = H / p.num_kv_heads;
  std::vector<float> k(static_cast<size_t>(D)), v(static_cast<size_t>(D));
  std::vector<double> scores, acc(static_cast<size_t>(D));
  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = p.seq_lens[b];
    const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
    for (int32_t s = 0; s < Sq; ++s) {
      const int32_t visible = std::max(0, len - Sq + 1 + s);
      for (int32_t h = 0; h < H; ++h) {
        const int32_t g = h / group;
        const int64_t qi = (static_cast<int64_t>(b) * Sq + s) * H + h;
        const float* q = p.q + qi * D;
        scores.assign(static_cast<size_t>(visible), 0.0);
        double max_score = -std::numeric_limits<double>::infinity();
        for (int32_t j = 0; j < visible; ++j) {
          gqa_read(p.cache, p.cache_dtype, p.num_kv_heads, D, gqa_slot(table, p.block_size, j), g, k.data(), nullptr);
          double dot = 0.0;
          for (int32_t d = 0; d < D; ++d) dot += static_cast<double>(q[d]) * k[d];
          scores[j] = dot * p.softmax_scale;
          max_score = std::max(max_score, scores[j]);
        }
        float* out = p.out + qi * D;
        const int64_t li = (static_cast<int64_t>(b) * H + h) * Sq + s;
        if (visible == 0) {
          for (int32_t d = 0; d < D; ++d) out[d] = 0.0f;
          if (p.lse) p.lse[li] = -std::numeric_limits<float>::infinity();
          continue;
        }
        double sum = 0.0;
        acc.assign(static_cast<size_t>(D), 0.0);
        for (int32_t j = 0; j < visible; ++j) {
          const double w = std::exp(scores[j] - max_score);
          sum += w;
          gqa_read(p.cache, p.cache_dtype, p.num_kv_heads, D, gqa_slot(table, p.block_size, j), g, nullptr, v.data());
          for (int32_t d = 0; d < D; ++d) acc[d] += w * v[d];
        }
        for (int32_t d = 0; d < D; ++d) out[d] = static_cast<float>(acc[d] / sum);
        if (p.lse) p.lse[li] = static_cast<float>(max_score + std::log(sum));
      }
    }
  }
  return ok(err);
}

lkv_status gqa_append_reference(const lkv_gqa_append_params& p, ThreadPool& /*pool*/, lkv_error* err) {
  const int64_t width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  for (int32_t t = 0; t < p.num_tokens; ++t) {
    if (p.slot_mapping[t] < 0) continue;
    gqa_write(p.cache, p.cache_dtype, p.num_kv_heads, p.head_dim, p.slot_mapping[t], p.k + t * width, p.v + t * width);
  }
  return ok(err);
}

}  // namespace lkv::cpu
