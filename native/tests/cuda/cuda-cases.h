// Helpers of the CUDA test and bench programs: device buffers, a paged GQA case (the CPU tests
// keep theirs file-local), and the grids shared with the CPU tests.
#ifndef LATENTKV_TESTS_CUDA_CUDA_CASES_H_
#define LATENTKV_TESTS_CUDA_CUDA_CASES_H_

#include <cstdint>
#include <string>
#include <vector>

#include "kernel-cases.h"
#include "latentkv-cuda.h"
#include "latentkv.h"

namespace lkv::test {

// A device allocation with an owned lifetime; failures are recorded, never thrown.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(size_t bytes);
  DeviceBuffer(const void* host, size_t bytes);  // allocates and uploads
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(o.ptr_), bytes_(o.bytes_) { o.ptr_ = nullptr; o.bytes_ = 0; }
  template <typename T>
  T* as() const { return static_cast<T*>(ptr_); }
  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void fill(int byte);
  void download(void* host) const;
  template <typename T>
  std::vector<T> to_host() const {
    std::vector<T> v(bytes_ / sizeof(T));
    download(v.data());
    return v;
  }

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

struct GqaShape {
  int32_t batch, q_len, heads, kv_heads, head_dim, block_size;
  lkv_dtype dtype;
  std::vector<int32_t> seq_lens;
  std::string describe() const;
};

// Shuffled pages, 0xff (NaN) in every byte nobody wrote, out-of-range block-table sentinels.
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

std::vector<DecodeShape> cuda_decode_grid();    // the CPU grid plus FlashMLA-style shapes
std::vector<AppendShape> cuda_append_grid();    // the CPU grid
std::vector<GqaShape> cuda_gqa_grid();          // the CPU grid plus split-heavy shapes

}  // namespace lkv::test

#endif  // LATENTKV_TESTS_CUDA_CUDA_CASES_H_
