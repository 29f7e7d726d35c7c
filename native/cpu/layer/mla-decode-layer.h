// mla_decode_layer on the CPU: the float64 reference and the fast path, plus the weight
// matrix-vector building blocks they share with native/bench/mla_layer_fold_bench.cpp.
#ifndef LATENTKV_CPU_LAYER_MLA_DECODE_LAYER_H_
#define LATENTKV_CPU_LAYER_MLA_DECODE_LAYER_H_

#include <cstdint>

#include "../cpu-kernels.h"

namespace lkv::cpu {

// Obviously right: every product in double, one token and one row at a time, then the
// reference project_append and reference attention core. `kernels` is ignored.
lkv_status mla_decode_layer_reference(const lkv_mla_decode_layer_params& p, const KernelTable& kernels,
                                      ThreadPool& pool, lkv_error* err);

// The fast path: each weight matrix is streamed once per call for all B * Sq tokens, over the
// thread pool; the attention core and the KV append run through `kernels` (so their SIMD
// applies); the projections use the widest vector unit kernels.isa allows (see layer-gemv.cpp).
lkv_status mla_decode_layer_fast(const lkv_mla_decode_layer_params& p, const KernelTable& kernels,
                                 ThreadPool& pool, lkv_error* err);

// The layer's KV append and attention core as the per-kernel params both paths hand on.
lkv_mla_project_append_params layer_append_params(const lkv_mla_decode_layer_params& p,
                                                  const int64_t* slot_mapping);
// The mla_prefill params of the layer's prompt chunk (non-absorbed form), for rotated q_rope.
lkv_mla_prefill_params layer_prefill_params(const lkv_mla_decode_layer_params& p, const float* q_nope,
                                            const float* q_rope, float* out);

lkv_mla_decode_params layer_attention_params(const lkv_mla_decode_layer_params& p, const float* q_latent,
                                             const float* q_rope, float* out);

// Vector width the projection loops are compiled for, picked from the backend's ISA.
enum class GemvIsa { kBaseline, kAvx2, kAvx512 };
GemvIsa gemv_isa_for(lkv_cpu_isa isa);

// A matrix-vector product over T tokens that reads W once:
//   y[t * y_stride + o] = sum_e W[o, e] * x[t * x_stride + e]  for rows o in [row_begin, row_end)
// W is row-major [rows, cols] in f32 or bf16 (w points at row 0). Serial.
void gemv_rows(const void* w, lkv_dtype dtype, int64_t row_begin, int64_t row_end, int64_t cols,
               const float* x, int64_t x_stride, int32_t T, float* y, int64_t y_stride, GemvIsa isa);

// The transposed product y[t * y_stride + c] = sum_r W[r, c] * x[t * x_stride + r] for the
// rows r < rows of W [rows, cols] (W^T x, used for W_UK^T q_nope). y is overwritten. Serial.
void gemv_transposed(const void* w, lkv_dtype dtype, int64_t rows, int64_t cols, const float* x,
                     int64_t x_stride, int32_t T, float* y, int64_t y_stride, GemvIsa isa);

// gemv_rows over all rows, split across the pool.
void gemv_parallel(const void* w, lkv_dtype dtype, int64_t rows, int64_t cols, const float* x,
                   int64_t x_stride, int32_t T, float* y, int64_t y_stride, GemvIsa isa,
                   ThreadPool& pool);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_LAYER_MLA_DECODE_LAYER_H_
