#include "kernel-cases.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/cache-layout.h"
#include "core/gqa-cache.h"
#include "core/numeric.h"

namespace lkv::test {

std::string DecodeShape::describe() const {
  std::string lens;
  for (size_t i = 0; i < seq_lens.size(); ++i) lens += (i ? "," : "") + std::to_string(seq_lens[i]);
  return "B=" + std::to_string(batch) + " Sq=" + std::to_string(q_len) + " H=" + std::to_string(heads) +
         " R=" + std::to_string(rank) + " P=" + std::to_string(rope_dim) + "x" +
         std::to_string(rope_heads) + " bs=" + std::to_string(block_size) + " " +
         lkv_dtype_name(dtype) + " L=[" + lens + "]";
}

size_t DecodeCase::out_size() const {
  return static_cast<size_t>(shape.batch) * shape.q_len * shape.heads * shape.rank;
}
size_t DecodeCase::lse_size() const {
  return static_cast<size_t>(shape.batch) * shape.heads * shape.q_len;
}

lkv_mla_decode_params DecodeCase::params(float* out, float* lse) const {
  lkv_mla_decode_params p{};
  p.batch = shape.batch;
  p.q_len = shape.q_len;
  p.num_heads = shape.heads;
  p.kv_lora_rank = shape.rank;
  p.rope_dim = shape.rope_dim;
  p.rope_heads = shape.rope_heads;
  p.block_size = shape.block_size;
  p.num_blocks = num_blocks;
  p.max_blocks_per_seq = max_blocks;
  p.cache_dtype = shape.dtype;
  p.softmax_scale = softmax_scale;
  p.q_latent = q_latent.data();
  p.q_rope = shape.rope_dim > 0 ? q_rope.data() : nullptr;
  p.cache = cache.data();
  p.block_table = block_table.data();
  p.seq_lens = shape.seq_lens.data();
  p.out = out;
  p.lse = lse;
  return p;
}

namespace {

// Pages for sequences of these lengths: every page shuffled, three pages nobody owns, one
// sentinel column per sequence, and out-of-range sentinels wherever a sequence has no page
// (reading through one crashes or reads a NaN page, never passes).
struct PageTable {
  std::vector<int32_t> block_table;
  int32_t num_blocks = 0, max_blocks = 0;
};

PageTable shuffled_pages(const std::vector<int32_t>& seq_lens, int32_t block_size, std::mt19937& rng) {
  PageTable t;
  int32_t used = 0;
  for (int32_t len : seq_lens) {
    const int32_t n = (len + block_size - 1) / block_size;
    used += n;
    t.max_blocks = std::max(t.max_blocks, n);
  }
  t.max_blocks += 1;
  t.num_blocks = used + 3;
  std::vector<int32_t> ids(static_cast<size_t>(t.num_blocks));
  for (int32_t i = 0; i < t.num_blocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  t.block_table.assign(seq_lens.size() * static_cast<size_t>(t.max_blocks), std::numeric_limits<int32_t>::min());
  size_t next = 0;
  for (size_t b = 0; b < seq_lens.size(); ++b) {
    const int32_t n = (seq_lens[b] + block_size - 1) / block_size;
    for (int32_t i = 0; i < n; ++i) t.block_table[b * t.max_blocks + i] = ids[next++];
  }
  return t;
}

}  // namespace

DecodeCase make_decode_case(const DecodeShape& shape, uint32_t seed) {
  DecodeCase c;
  c.shape = shape;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int32_t rope_width = shape.rope_dim * shape.rope_heads;
  c.layout = cache_layout(shape.dtype, shape.rank, rope_width);
  PageTable pages = shuffled_pages(shape.seq_lens, shape.block_size, rng);
  c.block_table = std::move(pages.block_table);
  c.num_blocks = pages.num_blocks;
  c.max_blocks = pages.max_blocks;
  c.cache.assign(static_cast<size_t>(c.num_blocks) * shape.block_size * c.layout.row_bytes, 0xff);
  std::vector<float> latent(static_cast<size_t>(shape.rank)), rope(static_cast<size_t>(rope_width));
  for (int32_t b = 0; b < shape.batch; ++b) {
    const int32_t len = shape.seq_lens[b];
    for (int32_t j = 0; j < len; ++j) {
      for (auto& v : latent) v = normal(rng);
      for (auto& v : rope) v = normal(rng);
      const int64_t block = c.block_table[static_cast<size_t>(b) * c.max_blocks + j / shape.block_size];
      uint8_t* row = c.cache.data() + (block * shape.block_size + j % shape.block_size) * c.layout.row_bytes;
      write_row(row, c.layout, shape.dtype, shape.rank, rope_width, latent.data(), rope.data());
    }
  }
  const size_t q_count = static_cast<size_t>(shape.batch) * shape.q_len * shape.heads;
  c.q_latent.resize(q_count * shape.rank);
  c.q_rope.resize(q_count * shape.rope_dim);
  for (auto& v : c.q_latent) v = normal(rng);
  for (auto& v : c.q_rope) v = normal(rng);
  // Scores of order a few units: a realistic softmax, neither uniform nor one-hot.
  c.softmax_scale = 1.0f / std::sqrt(static_cast<float>(shape.rank + shape.rope_dim));
  return c;
}

std::string AppendShape::describe() const {
  return "T=" + std::to_string(tokens) + " E=" + std::to_string(hidden) + " R=" + std::to_string(rank) +
         " P=" + std::to_string(rope_dim) + "x" + std::to_string(rope_heads) + " bs=" +
         std::to_string(block_size) + " cache=" + lkv_dtype_name(cache_dtype) + " w=" +
         lkv_dtype_name(weight_dtype) + (norm ? " norm" : "") +
         (style == LKV_ROPE_INTERLEAVED ? " interleaved" : " half-split");
}

size_t AppendCase::cache_bytes() const {
  return static_cast<size_t>(num_blocks) * shape.block_size * layout.row_bytes;
}

lkv_mla_project_append_params AppendCase::params(void* cache) const {
  lkv_mla_project_append_params p{};
  p.num_tokens = shape.tokens;
  p.hidden_size = shape.hidden;
  p.kv_lora_rank = shape.rank;
  p.rope_dim = shape.rope_dim;
  p.rope_heads = shape.rope_heads;
  p.block_size = shape.block_size;
  p.num_blocks = num_blocks;
  p.cache_dtype = shape.cache_dtype;
  p.weight_dtype = shape.weight_dtype;
  p.norm_eps = 1e-6f;
  p.rope.style = shape.style;
  p.rope.scaling = LKV_ROPE_SCALING_NONE;
  p.rope.theta = 10000.0f;
  p.hidden = hidden.data();
  p.w_kv_a = weights.data();
  p.norm_weight = shape.norm ? norm_weight.data() : nullptr;
  p.positions = positions.data();
  p.slot_mapping = slots.data();
  p.cache = cache;
  return p;
}

AppendCase make_append_case(const AppendShape& shape, uint32_t seed) {
  AppendCase c;
  c.shape = shape;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int32_t rows = shape.rank + shape.rope_dim * shape.rope_heads;
  c.layout = cache_layout(shape.cache_dtype, shape.rank, shape.rope_dim * shape.rope_heads);
  c.hidden.resize(static_cast<size_t>(shape.tokens) * shape.hidden);
  for (auto& v : c.hidden) v = normal(rng);
  c.norm_weight.resize(static_cast<size_t>(shape.rank));
  for (auto& v : c.norm_weight) v = 1.0f + 0.1f * normal(rng);
  const size_t n = static_cast<size_t>(rows) * shape.hidden;
  const size_t es = lkv_dtype_size(shape.weight_dtype);
  c.weights.resize(n * es);
  const float w_scale = 1.0f / std::sqrt(static_cast<float>(shape.hidden));
  for (size_t i = 0; i < n; ++i) {
    const float v = normal(rng) * w_scale;
    if (shape.weight_dtype == LKV_DTYPE_F32) {
      std::memcpy(c.weights.data() + 4 * i, &v, 4);
    } else {
      const uint16_t h = shape.weight_dtype == LKV_DTYPE_F16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(c.weights.data() + 2 * i, &h, 2);
    }
  }
  c.num_blocks = (shape.tokens + shape.block_size - 1) / shape.block_size + 2;
  std::vector<int64_t> all(static_cast<size_t>(c.num_blocks) * shape.block_size);
  for (size_t i = 0; i < all.size(); ++i) all[i] = static_cast<int64_t>(i);
  std::shuffle(all.begin(), all.end(), rng);
  c.slots.assign(all.begin(), all.begin() + shape.tokens);
  if (shape.tokens > 2) c.slots[1] = -1;  // a padding token that must be skipped
  c.positions.resize(static_cast<size_t>(shape.tokens));
  std::uniform_int_distribution<int32_t> pos(0, 40000);
  for (auto& p : c.positions) p = pos(rng);
  return c;
}

std::string GqaShape::describe() const {
  std::string lens;
  for (size_t i = 0; i < seq_lens.size(); ++i) lens += (i ? "," : "") + std::to_string(seq_lens[i]);
  return "B=" + std::to_string(batch) + " Sq=" + std::to_string(q_len) + " H=" + std::to_string(heads) +
         " Hkv=" + std::to_string(kv_heads) + " D=" + std::to_string(head_dim) + " bs=" +
         std::to_string(block_size) + " " + lkv_dtype_name(dtype) + " L=[" + lens + "]";
}

size_t GqaCase::out_size() const {
  return static_cast<size_t>(shape.batch) * shape.q_len * shape.heads * shape.head_dim;
}
size_t GqaCase::lse_size() const { return static_cast<size_t>(shape.batch) * shape.heads * shape.q_len; }

lkv_gqa_decode_params GqaCase::params(float* out, float* lse) const {
  lkv_gqa_decode_params p{};
  p.batch = shape.batch;
  p.q_len = shape.q_len;
  p.num_heads = shape.heads;
  p.num_kv_heads = shape.kv_heads;
  p.head_dim = shape.head_dim;
  p.block_size = shape.block_size;
  p.num_blocks = num_blocks;
  p.max_blocks_per_seq = max_blocks;
  p.cache_dtype = shape.dtype;
  p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(shape.head_dim));
  p.q = q.data();
  p.cache = cache.data();
  p.block_table = block_table.data();
  p.seq_lens = shape.seq_lens.data();
  p.out = out;
  p.lse = lse;
  return p;
}

GqaCase make_gqa_case(const GqaShape& shape, uint32_t seed) {
  GqaCase c;
  c.shape = shape;
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t width = static_cast<int64_t>(shape.kv_heads) * shape.head_dim;
  const size_t row_bytes = 2 * width * lkv_dtype_size(shape.dtype);
  PageTable pages = shuffled_pages(shape.seq_lens, shape.block_size, rng);
  c.block_table = std::move(pages.block_table);
  c.num_blocks = pages.num_blocks;
  c.max_blocks = pages.max_blocks;
  c.cache.assign(static_cast<size_t>(c.num_blocks) * shape.block_size * row_bytes, 0xff);
  std::vector<float> k(static_cast<size_t>(width)), v(static_cast<size_t>(width));
  for (int32_t b = 0; b < shape.batch; ++b) {
    const int32_t len = shape.seq_lens[b];
    const int32_t* row = c.block_table.data() + static_cast<size_t>(b) * c.max_blocks;
    for (int32_t j = 0; j < len; ++j) {
      for (auto& x : k) x = normal(rng);
      for (auto& x : v) x = normal(rng);
      gqa_write(c.cache.data(), shape.dtype, shape.kv_heads, shape.head_dim, gqa_slot(row, shape.block_size, j),
                k.data(), v.data());
    }
  }
  c.q.resize(c.out_size());
  for (auto& x : c.q) x = 1.5f * normal(rng);
  return c;
}


std::vector<GqaShape> gqa_grid() {
  std::vector<GqaShape> grid;
  for (lkv_dtype d : {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16}) {
    grid.push_back({1, 1, 32, 8, 128, 64, d, {300}});            // Llama-3-8B group of 4
    grid.push_back({3, 1, 7, 7, 40, 16, d, {0, 37, 129}});       // MHA, odd heads, D tail
    grid.push_back({2, 3, 6, 2, 24, 7, d, {2, 50}});             // Sq > len for one query row
    grid.push_back({2, 2, 12, 4, 64, 1, d, {9, 17}});            // causal Sq = 2, block_size 1
    grid.push_back({1, 1, 5, 1, 33, 5, d, {1000}});              // MQA, odd head_dim
    grid.push_back({2, 1, 9, 3, 16, 32, d, {11, 0}});            // zero length last
    grid.push_back({3, 4, 16, 2, 128, 16, d, {700, 3, 64}});     // group 8, Sq 4, ragged
  }
  return grid;
}

double tolerance(lkv_dtype cache_dtype) { return cache_dtype == LKV_DTYPE_F32 ? 1e-5 : 1e-2; }

double relative_error(const float* got, const float* want, size_t n) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const bool got_special = !std::isfinite(got[i]), want_special = !std::isfinite(want[i]);
    if (got_special || want_special) {
      if (std::isnan(got[i]) || std::isnan(want[i]) || got[i] != want[i]) {
        return std::numeric_limits<double>::infinity();
      }
      continue;
    }
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(got[i]) - want[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(want[i])));
  }
  return max_diff / std::max(max_ref, 1e-30);
}

}  // namespace lkv::test
