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
  // The tensor-core kernel (bf16, R = 512, P = 64) off its easy path: pages of 1, 16 and 256
  // tokens, several rope groups, Sq up to 4 with tiles that end inside a group, chunk tails.
  grid.push_back({2, 1, 32, 512, 64, 2, 16, LKV_DTYPE_BF16, {1000, 77}});
  grid.push_back({3, 3, 16, 512, 64, 1, 1, LKV_DTYPE_BF16, {65, 130, 3}});
  grid.push_back({1, 1, 128, 512, 64, 1, 256, LKV_DTYPE_BF16, {9000}});
  grid.push_back({2, 4, 40, 512, 64, 4, 32, LKV_DTYPE_BF16, {500, 2000}});
  grid.push_back({3, 2, 128, 512, 64, 1, 16, LKV_DTYPE_FP8_E4M3, {1000, 0, 77}});
  grid.push_back({2, 3, 24, 512, 64, 1, 1, LKV_DTYPE_FP8_E4M3, {130, 5}});
  grid.push_back({2, 2, 16, 512, 64, 1, 128, LKV_DTYPE_FP8_E4M3, {1000, 129}});
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
  // Token tiles of the GEMV (8 tokens): two full, a partial third, vector and scalar weight loads.
  for (lkv_dtype wd : {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16}) {
    grid.push_back({19, 200, 64, 16, 1, 8, LKV_DTYPE_BF16, wd, true, LKV_ROPE_INTERLEAVED});
    grid.push_back({9, 201, 64, 16, 2, 8, LKV_DTYPE_F32, wd, true, LKV_ROPE_HALF_SPLIT});
  }
  grid.push_back({16, 7168, 512, 64, 1, 64, LKV_DTYPE_BF16, LKV_DTYPE_BF16, true, LKV_ROPE_INTERLEAVED});
  grid.push_back({16, 7168, 512, 64, 1, 64, LKV_DTYPE_FP8_E4M3, LKV_DTYPE_BF16, true, LKV_ROPE_INTERLEAVED});
  return grid;
}

std::vector<GqaShape> cuda_gqa_grid() {
  std::vector<GqaShape> grid = gqa_grid();
  grid.push_back({2, 1, 32, 8, 128, 16, LKV_DTYPE_BF16, {8000, 5}});  // split across many parts
  // The tensor-core GQA kernel (bf16, D = 128): Qwen's 7 heads per KV head with Sq = 2, 8 per KV
  // head with Sq = 3 (two row tiles), pages of 1 and 64, empty and one-token sequences.
  grid.push_back({3, 2, 28, 4, 128, 64, LKV_DTYPE_BF16, {4097, 65, 0}});
  grid.push_back({2, 3, 8, 1, 128, 1, LKV_DTYPE_BF16, {300, 1}});
  grid.push_back({4, 1, 32, 8, 128, 32, LKV_DTYPE_BF16, {1000, 130, 64, 2}});
  return grid;
}

}  // namespace lkv::test
