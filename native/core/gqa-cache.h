// Element access to the GQA cache: per token [2, num_kv_heads, head_dim], K then V.
#ifndef LATENTKV_CORE_GQA_CACHE_H_
#define LATENTKV_CORE_GQA_CACHE_H_

#include <cstdint>
#include <cstring>

#include "latentkv.h"
#include "numeric.h"

namespace lkv {

inline int64_t gqa_slot(const int32_t* block_table_row, int32_t block_size, int32_t token) {
  return static_cast<int64_t>(block_table_row[token / block_size]) * block_size + token % block_size;
}

inline float gqa_load(const uint8_t* base, lkv_dtype d, int64_t i) {
  if (d == LKV_DTYPE_F32) {
    float v;
    std::memcpy(&v, base + 4 * i, 4);
    return v;
  }
  uint16_t h;
  std::memcpy(&h, base + 2 * i, 2);
  return d == LKV_DTYPE_F16 ? f16_to_f32(h) : bf16_to_f32(h);
}

inline void gqa_store(uint8_t* base, lkv_dtype d, int64_t i, float v) {
  if (d == LKV_DTYPE_F32) {
    std::memcpy(base + 4 * i, &v, 4);
    return;
  }
  const uint16_t h = d == LKV_DTYPE_F16 ? f32_to_f16(v) : f32_to_bf16(v);
  std::memcpy(base + 2 * i, &h, 2);
}

// Reads K and/or V (either may be null) of kv head g at a slot.
inline void gqa_read(const void* cache, lkv_dtype d, int32_t kv_heads, int32_t head_dim, int64_t slot,
                     int32_t g, float* k, float* v) {
  const int64_t width = static_cast<int64_t>(kv_heads) * head_dim;
  const uint8_t* base = static_cast<const uint8_t*>(cache);
  const int64_t row = slot * 2 * width;
  for (int32_t i = 0; i < head_dim; ++i) {
    if (k) k[i] = gqa_load(base, d, row + static_cast<int64_t>(g) * head_dim + i);
    if (v) v[i] = gqa_load(base, d, row + width + static_cast<int64_t>(g) * head_dim + i);
  }
}

inline void gqa_write(void* cache, lkv_dtype d, int32_t kv_heads, int32_t head_dim, int64_t slot,
                      const float* k, const float* v) {
  const int64_t width = static_cast<int64_t>(kv_heads) * head_dim;
  uint8_t* base = static_cast<uint8_t*>(cache);
  const int64_t row = slot * 2 * width;
  for (int64_t i = 0; i < width; ++i) {
    gqa_store(base, d, row + i, k[i]);
    gqa_store(base, d, row + width + i, v[i]);
  }
}

}  // namespace lkv

#endif  // LATENTKV_CORE_GQA_CACHE_H_
