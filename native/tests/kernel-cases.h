// Random but reproducible kernel inputs shared by the C++ tests and benchmarks: paged caches
// with shuffled block tables, NaN-poisoned unused rows and pages, ragged lengths.
#ifndef LATENTKV_TESTS_KERNEL_CASES_H_
#define LATENTKV_TESTS_KERNEL_CASES_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "latentkv.h"

namespace lkv::test {

struct DecodeShape {
  int32_t batch, q_len, heads, rank, rope_dim, rope_heads, block_size;
  lkv_dtype dtype;
  std::vector<int32_t> seq_lens;  // size batch
  std::string describe() const;
};

struct DecodeCase {
  DecodeShape shape;
  lkv_cache_layout layout;
  std::vector<uint8_t> cache;
  std::vector<int32_t> block_table;
  std::vector<float> q_latent, q_rope;
  int32_t num_blocks = 0, max_blocks = 0;
  float softmax_scale = 0.0f;
  // Params pointing into this case, writing to out/lse (sized by the caller).
  lkv_mla_decode_params params(float* out, float* lse) const;
  size_t out_size() const;
  size_t lse_size() const;
};

DecodeCase make_decode_case(const DecodeShape& shape, uint32_t seed);

struct AppendShape {
  int32_t tokens, hidden, rank, rope_dim, rope_heads, block_size;
  lkv_dtype cache_dtype, weight_dtype;
  bool norm;
  lkv_rope_style style;
  std::string describe() const;
};

struct AppendCase {
  AppendShape shape;
  lkv_cache_layout layout;
  std::vector<float> hidden, norm_weight;
  std::vector<uint8_t> weights;  // in weight_dtype
  std::vector<int32_t> positions;
  std::vector<int64_t> slots;
  int32_t num_blocks = 0;
  lkv_mla_project_append_params params(void* cache) const;
  size_t cache_bytes() const;
};

AppendCase make_append_case(const AppendShape& shape, uint32_t seed);

struct GqaShape {
  int32_t batch, q_len, heads, kv_heads, head_dim, block_size;
  lkv_dtype dtype;
  std::vector<int32_t> seq_lens;
  std::string describe() const;
};

// A paged GQA cache with shuffled pages; every byte nobody wrote is 0xff (NaN in every dtype),
// and block-table entries past a sequence are out-of-range sentinels.
struct GqaCase {
  GqaShape shape;
  std::vector<uint8_t> cache;
  std::vector<int32_t> block_table;
  std::vector<float> q;
  int32_t num_blocks = 0, max_blocks = 0;
  size_t out_size() const;
  size_t lse_size() const;
  lkv_gqa_decode_params params(float* out, float* lse) const;
};

GqaCase make_gqa_case(const GqaShape& shape, uint32_t seed);

// Odd heads, MHA/GQA/MQA, head-dim tails, ragged and zero lengths, Sq > 1 causal, every GQA dtype.
std::vector<GqaShape> gqa_grid();

// Relative max error of got against want: max|got - want| / max(max|want|, 1e-30). Returns
// +inf if any position differs in NaN-ness or infinities, so NaN never passes.
double relative_error(const float* got, const float* want, size_t n);

// Relative error the SIMD kernels must stay under against the reference: f32 caches 1e-5,
// 16-bit and 8-bit caches 1e-2.
double tolerance(lkv_dtype cache_dtype);


}  // namespace lkv::test

#endif  // LATENTKV_TESTS_KERNEL_CASES_H_
