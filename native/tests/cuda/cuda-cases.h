// Helpers of the CUDA test and bench programs: device buffers and the grids (the CPU tests' grids
// from kernel-cases.h plus GPU-specific shapes).
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

std::vector<DecodeShape> cuda_decode_grid();    // the CPU grid plus FlashMLA-style shapes
std::vector<AppendShape> cuda_append_grid();    // the CPU grid
std::vector<GqaShape> cuda_gqa_grid();          // the CPU grid plus split-heavy shapes

}  // namespace lkv::test

#endif  // LATENTKV_TESTS_CUDA_CUDA_CASES_H_
