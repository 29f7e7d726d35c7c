#include "cuda-cases.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "core/gqa-cache.h"
#include "test-harness.h"

namespace lkv::test {

DeviceBuffer::DeviceBuffer(size_t bytes) : bytes_(bytes) {
  lkv_error err{};
  if (lkv_cuda_malloc(&ptr_, bytes, &err) != LKV_OK) record_failure(__FILE__, __LINE__, err.message);
}

DeviceBuffer::DeviceBuffer(const void* host, size_t bytes) : DeviceBuffer(bytes) {
  lkv_error err{};
  if (ptr_ && bytes && lkv_cuda_memcpy(ptr_, host, bytes, LKV_CUDA_HOST_TO_DEVICE, &err) != LKV_OK) {
    record_failure(__FILE__, __LINE__, err.message);
  }
}

DeviceBuffer::~DeviceBuffer() {
  if (ptr_) lkv_cuda_free(ptr_, nullptr);
}

void DeviceBuffer::fill(int byte) {
  lkv_error err{};
  if (ptr_ && lkv_cuda_memset(ptr_, byte, bytes_, &err) != LKV_OK) record_failure(__FILE__, __LINE__, err.message);
}

void DeviceBuffer::download(void* host) const {
  lkv_error err{};
  if (ptr_ && bytes_ && lkv_cuda_memcpy(host, ptr_, bytes_, LKV_CUDA_DEVICE_TO_HOST, &err) != LKV_OK) {
    record_failure(__FILE__, __LINE__, err.message);
  }
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
  int32_t used = 0;
  for (int32_t len : shape.seq_lens) {
    const int32_t n = (len + shape.block_size - 1) / shape.block_size;
    used += n;
    c.max_blocks = std::max(c.max_blocks, n);
  }
  c.max_blocks += 1;
  c.num_blocks = used + 3;
  c.cache.assign(static_cast<size_t>(c.num_blocks) * shape.block_size * row_bytes, 0xff);
  std::vector<int32_t> ids(static_cast<size_t>(c.num_blocks));
  for (int32_t i = 0; i < c.num_blocks; ++i) ids[i] = i;
  std::shuffle(ids.begin(), ids.end(), rng);
  c.block_table.assign(static_cast<size_t>(shape.batch) * c.max_blocks, std::numeric_limits<int32_t>::min());
  size_t next = 0;
  std::vector<float> k(static_cast<size_t>(width)), v(static_cast<size_t>(width));
  for (int32_t b = 0; b < shape.batch; ++b) {
    const int32_t len = shape.seq_lens[b];
    const int32_t n = (len + shape.block_size - 1) / shape.block_size;
    int32_t* row = c.block_table.data() + static_cast<size_t>(b) * c.max_blocks;
    for (int32_t i = 0; i < n; ++i) row[i] = ids[next++];
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

std::vector<DecodeShape> cuda_decode_grid() {
  std::vector<DecodeShape> grid;
  const lkv_dtype dtypes[] = {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16, LKV_DTYPE_INT8, LKV_DTYPE_FP8_E4M3};
  for (lkv_dtype d : dtypes) {
    // The CPU test grid (native/tests/test-kernels-vs-reference.cpp).
    grid.push_back({1, 1, 16, 512, 64, 1, 64, d, {300}});
    grid.push_back({3, 1, 7, 40, 8, 1, 16, d, {0, 37, 129}});
    grid.push_back({2, 3, 5, 33, 6, 1, 7, d, {2, 50}});
    grid.push_back({2, 2, 8, 24, 4, 4, 1, d, {9, 17}});
    grid.push_back({1, 1, 128, 64, 16, 1, 128, d, {1000}});
    grid.push_back({2, 1, 3, 17, 0, 1, 5, d, {11, 0}});
  }
  // FlashMLA's test pattern at DeepSeek's head size: odd head counts, lengths off the page size,
  // zero lengths, Sq = 2 (MTP), long sequences that the scheduler splits.
  for (int32_t h : {1, 3, 9, 63, 64, 126, 128}) {
    grid.push_back({3, 1, h, 512, 64, 1, 64, LKV_DTYPE_BF16, {20, 140, 0}});
    grid.push_back({2, 2, h, 512, 64, 1, 64, LKV_DTYPE_BF16, {4096, 141}});
  }
  grid.push_back({1, 1, 16, 512, 64, 1, 64, LKV_DTYPE_FP8_E4M3, {8192}});
  grid.push_back({4, 2, 16, 512, 64, 1, 64, LKV_DTYPE_F16, {4097, 1, 2, 3000}});
  // Many sequences of ragged lengths: every scheduler boundary case at once.
  {
    std::mt19937 rng(4242);
    std::uniform_int_distribution<int32_t> len(0, 2500);
    std::vector<int32_t> lens(37);
    for (auto& l : lens) l = len(rng);
    lens[5] = 0;
    lens[6] = 64;
    lens[7] = 65;
    grid.push_back({37, 1, 16, 512, 64, 1, 64, LKV_DTYPE_BF16, lens});
    grid.push_back({37, 2, 4, 128, 32, 1, 16, LKV_DTYPE_INT8, lens});
  }
  return grid;
}

std::vector<AppendShape> cuda_append_grid() {
  std::vector<AppendShape> grid;
  for (lkv_dtype cd : {LKV_DTYPE_F32, LKV_DTYPE_BF16, LKV_DTYPE_F16, LKV_DTYPE_INT8, LKV_DTYPE_FP8_E4M3}) {
    for (lkv_dtype wd : {LKV_DTYPE_F32, LKV_DTYPE_BF16, LKV_DTYPE_F16}) {
      grid.push_back({5, 96, 64, 16, 1, 4, cd, wd, true, LKV_ROPE_INTERLEAVED});
      grid.push_back({7, 33, 17, 6, 3, 3, cd, wd, false, LKV_ROPE_HALF_SPLIT});
      grid.push_back({1, 512, 128, 32, 1, 16, cd, wd, true, LKV_ROPE_HALF_SPLIT});
    }
  }
  grid.push_back({16, 7168, 512, 64, 1, 64, LKV_DTYPE_BF16, LKV_DTYPE_BF16, true, LKV_ROPE_INTERLEAVED});
  grid.push_back({16, 7168, 512, 64, 1, 64, LKV_DTYPE_FP8_E4M3, LKV_DTYPE_BF16, true, LKV_ROPE_INTERLEAVED});
  return grid;
}

std::vector<GqaShape> cuda_gqa_grid() {
  std::vector<GqaShape> grid;
  for (lkv_dtype d : {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16}) {
    grid.push_back({1, 1, 32, 8, 128, 64, d, {300}});
    grid.push_back({3, 1, 7, 7, 40, 16, d, {0, 37, 129}});
    grid.push_back({2, 3, 6, 2, 24, 7, d, {2, 50}});
    grid.push_back({2, 2, 12, 4, 64, 1, d, {9, 17}});
    grid.push_back({1, 1, 5, 1, 33, 5, d, {1000}});
    grid.push_back({2, 1, 9, 3, 16, 32, d, {11, 0}});
    grid.push_back({3, 4, 16, 2, 128, 16, d, {700, 3, 64}});
  }
  grid.push_back({2, 1, 32, 8, 128, 16, LKV_DTYPE_BF16, {8000, 5}});  // split across many parts
  return grid;
}

}  // namespace lkv::test
