#include "simd-support.h"

#include <cstdlib>

#include "../core/numeric.h"

namespace lkv::cpu {

const float* fp8_e4m3_table() {
  struct Table {
    float v[256];
    Table() {
      for (int i = 0; i < 256; ++i) v[i] = fp8_e4m3_to_f32(static_cast<uint8_t>(i));
    }
  };
  static const Table table;
  return table.v;
}

void* simd_alloc(size_t bytes) {
  void* p = nullptr;
  if (bytes == 0) bytes = 64;
  if (posix_memalign(&p, 64, (bytes + 63) & ~static_cast<size_t>(63)) != 0) return nullptr;
  return p;
}

void simd_free(void* p) { std::free(p); }

}  // namespace lkv::cpu
