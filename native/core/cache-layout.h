// Reading and writing one token row of the paged latent cache in any cache dtype. The
// reference kernels go through these; SIMD kernels read the same bytes their own way.
#ifndef LATENTKV_CORE_CACHE_LAYOUT_H_
#define LATENTKV_CORE_CACHE_LAYOUT_H_

#include <cstdint>

#include "latentkv.h"

namespace lkv {

inline bool is_quantized(lkv_dtype d) { return d == LKV_DTYPE_INT8 || d == LKV_DTYPE_FP8_E4M3; }

// Layout for validated dimensions (no error path; lkv_cache_layout_get checks first).
lkv_cache_layout cache_layout(lkv_dtype cache_dtype, int32_t kv_lora_rank, int32_t rope_width);

// Pointer to the row of logical token `token` of a sequence, through its block table row.
inline const uint8_t* cache_row(const void* cache, const lkv_cache_layout& layout,
                                const int32_t* block_table_row, int32_t block_size,
                                int32_t token) {
  const int64_t block = block_table_row[token / block_size];
  const int64_t slot = block * block_size + token % block_size;
  return static_cast<const uint8_t*>(cache) + slot * static_cast<int64_t>(layout.row_bytes);
}

// Dequantized latent c (R values) and rope part (rope_width values) of one row.
void read_row(const uint8_t* row, const lkv_cache_layout& layout, lkv_dtype cache_dtype,
              int32_t kv_lora_rank, int32_t rope_width, float* latent, float* rope);

// Quantizes and stores one row.
void write_row(uint8_t* row, const lkv_cache_layout& layout, lkv_dtype cache_dtype,
               int32_t kv_lora_rank, int32_t rope_width, const float* latent, const float* rope);

}  // namespace lkv

#endif  // LATENTKV_CORE_CACHE_LAYOUT_H_
