// Weight matrix-vector products for mla_decode_layer. Baseline: plain C++ loops written so the
// compiler vectorizes them (independent lanes, no floating-point reassociation needed). On x86
// the row products also have AVX2+FMA and AVX-512 versions written with intrinsics inside
// per-function target attributes, and the transposed product is recompiled under them.
// The wider versions are only called when the backend's ISA (CPUID/XGETBV, capped by
// LATENTKV_CPU_ISA) allows them, so this file needs no ISA flags of its own.
#include <algorithm>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// GCC 12's AVX-512 conversion intrinsics start from an "undefined" register, which
// -Wmaybe-uninitialized reports when they are inlined into a target-attribute function.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "../thread-pool.h"
#include "mla-decode-layer.h"

namespace lkv::cpu {
namespace {

constexpr int kLanes = 16;    // independent partial sums per token
constexpr int kTokens = 4;    // tokens sharing one pass over a weight row
constexpr int kChunk = 256;   // columns converted at a time in the transposed product

#if defined(__GNUC__)
#define LKV_INLINE inline __attribute__((always_inline))
#else
#define LKV_INLINE inline
#endif

template <bool kBf16>
LKV_INLINE void load16(const void* w, int64_t i, float* out) {
  if constexpr (kBf16) {
    const uint16_t* s = static_cast<const uint16_t*>(w) + i;
    for (int k = 0; k < kLanes; ++k) {
      const uint32_t u = static_cast<uint32_t>(s[k]) << 16;
      std::memcpy(out + k, &u, 4);
    }
  } else {
    std::memcpy(out, static_cast<const float*>(w) + i, sizeof(float) * kLanes);
  }
}

template <bool kBf16>
LKV_INLINE float load1(const void* w, int64_t i) {
  if constexpr (kBf16) {
    const uint32_t u = static_cast<uint32_t>(static_cast<const uint16_t*>(w)[i]) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
  } else {
    return static_cast<const float*>(w)[i];
  }
}

// One weight row against NT tokens.
template <bool kBf16, int NT>
LKV_INLINE void row_dot(const void* w, int64_t row_offset, int64_t cols, const float* x,
                        int64_t x_stride, float* y, int64_t y_stride) {
  float acc[NT][kLanes] = {};
  const int64_t full = cols - cols % kLanes;
  for (int64_t e = 0; e < full; e += kLanes) {
    float wv[kLanes];
    load16<kBf16>(w, row_offset + e, wv);
    for (int t = 0; t < NT; ++t) {
      const float* xt = x + t * x_stride + e;
      for (int k = 0; k < kLanes; ++k) acc[t][k] += wv[k] * xt[k];
    }
  }
  for (int t = 0; t < NT; ++t) {
    float tail = 0.0f;
    for (int64_t e = full; e < cols; ++e) tail += load1<kBf16>(w, row_offset + e) * x[t * x_stride + e];
    // Pairwise lane sum: a fixed order, independent of the ISA's vector width.
    float s[kLanes];
    for (int k = 0; k < kLanes; ++k) s[k] = acc[t][k];
    for (int width = kLanes / 2; width > 0; width /= 2) {
      for (int k = 0; k < width; ++k) s[k] += s[k + width];
    }
    y[t * y_stride] = s[0] + tail;
  }
}

template <bool kBf16>
LKV_INLINE void rows_body(const void* w, int64_t row_begin, int64_t row_end, int64_t cols,
                          const float* x, int64_t x_stride, int32_t T, float* y, int64_t y_stride) {
  for (int64_t o = row_begin; o < row_end; ++o) {
    const int64_t off = o * cols;
    int32_t t = 0;
    for (; t + kTokens <= T; t += kTokens) {
      row_dot<kBf16, kTokens>(w, off, cols, x + t * x_stride, x_stride, y + t * y_stride + o, y_stride);
    }
    switch (T - t) {
      case 3: row_dot<kBf16, 3>(w, off, cols, x + t * x_stride, x_stride, y + t * y_stride + o, y_stride); break;
      case 2: row_dot<kBf16, 2>(w, off, cols, x + t * x_stride, x_stride, y + t * y_stride + o, y_stride); break;
      case 1: row_dot<kBf16, 1>(w, off, cols, x + t * x_stride, x_stride, y + t * y_stride + o, y_stride); break;
      default: break;
    }
  }
}

// y[t, :] = sum_r x[t, r] W[r, :], columns in chunks so the converted row stays in L1.
template <bool kBf16>
LKV_INLINE void transposed_body(const void* w, int64_t rows, int64_t cols, const float* x,
                                int64_t x_stride, int32_t T, float* y, int64_t y_stride) {
  for (int32_t t = 0; t < T; ++t) std::fill(y + t * y_stride, y + t * y_stride + cols, 0.0f);
  float wrow[kChunk];
  for (int64_t c0 = 0; c0 < cols; c0 += kChunk) {
    const int64_t n = std::min<int64_t>(kChunk, cols - c0);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < n; ++c) wrow[c] = load1<kBf16>(w, r * cols + c0 + c);
      for (int32_t t = 0; t < T; ++t) {
        const float a = x[t * x_stride + r];
        float* yt = y + t * y_stride + c0;
        for (int64_t c = 0; c < n; ++c) yt[c] += a * wrow[c];
      }
    }
  }
}

LKV_INLINE void rows_dispatch(const void* w, lkv_dtype dtype, int64_t rb, int64_t re, int64_t cols,
                              const float* x, int64_t xs, int32_t T, float* y, int64_t ys) {
  if (dtype == LKV_DTYPE_BF16) {
    rows_body<true>(w, rb, re, cols, x, xs, T, y, ys);
  } else {
    rows_body<false>(w, rb, re, cols, x, xs, T, y, ys);
  }
}

LKV_INLINE void transposed_dispatch(const void* w, lkv_dtype dtype, int64_t rows, int64_t cols,
                                    const float* x, int64_t xs, int32_t T, float* y, int64_t ys) {
  if (dtype == LKV_DTYPE_BF16) {
    transposed_body<true>(w, rows, cols, x, xs, T, y, ys);
  } else {
    transposed_body<false>(w, rows, cols, x, xs, T, y, ys);
  }
}

void rows_baseline(const void* w, lkv_dtype d, int64_t rb, int64_t re, int64_t cols, const float* x,
                   int64_t xs, int32_t T, float* y, int64_t ys) {
  rows_dispatch(w, d, rb, re, cols, x, xs, T, y, ys);
}
void transposed_baseline(const void* w, lkv_dtype d, int64_t rows, int64_t cols, const float* x,
                         int64_t xs, int32_t T, float* y, int64_t ys) {
  transposed_dispatch(w, d, rows, cols, x, xs, T, y, ys);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define LKV_LAYER_X86 1
// Explicit kernels: NR weight rows x NT tokens of accumulators kept in registers, so each
// 16 (8) weights loaded feed NT multiply-adds and each x vector loaded feeds NR.
#define LKV_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

template <bool kBf16, int NR, int NT>
LKV_AVX512 LKV_INLINE void step512(const void* w, int64_t o, int64_t cols, int64_t at, __mmask16 m,
                                   const float* x, int64_t xs, __m512 (&acc)[NR][NT]) {
  __m512 wv[NR];
  for (int r = 0; r < NR; ++r) {
    if constexpr (kBf16) {
      const uint16_t* src = static_cast<const uint16_t*>(w) + (o + r) * cols + at;
      const __m256i h = _mm256_maskz_loadu_epi16(m, src);
      wv[r] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    } else {
      wv[r] = _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + (o + r) * cols + at);
    }
  }
  for (int t = 0; t < NT; ++t) {
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + t * xs + at);
    for (int r = 0; r < NR; ++r) acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
  }
}

template <bool kBf16, int NR, int NT>
LKV_AVX512 LKV_INLINE void block512(const void* w, int64_t o, int64_t cols, const float* x, int64_t xs,
                                    float* y, int64_t ys) {
  __m512 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
  int64_t e = 0;
  for (; e + 16 <= cols; e += 16) step512<kBf16, NR, NT>(w, o, cols, e, 0xffff, x, xs, acc);
  if (e < cols) {
    step512<kBf16, NR, NT>(w, o, cols, e, static_cast<__mmask16>((1u << (cols - e)) - 1u), x, xs, acc);
  }
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) y[t * ys + o + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <bool kBf16, int NR>
LKV_AVX512 LKV_INLINE void tokens512(
    const void* w, int64_t o, int64_t cols, const float* x, int64_t xs, int32_t T, float* y, int64_t ys) {
  int32_t t = 0;
  for (; t + 4 <= T; t += 4) block512<kBf16, NR, 4>(w, o, cols, x + t * xs, xs, y + t * ys, ys);
  switch (T - t) {
    case 3: block512<kBf16, NR, 3>(w, o, cols, x + t * xs, xs, y + t * ys, ys); break;
    case 2: block512<kBf16, NR, 2>(w, o, cols, x + t * xs, xs, y + t * ys, ys); break;
    case 1: block512<kBf16, NR, 1>(w, o, cols, x + t * xs, xs, y + t * ys, ys); break;
    default: break;
  }
}

// One token (a decode step): 8 weight rows at a time, so 8 independent FMA chains and 8
// sequential row streams per thread, each prefetched 1 KB ahead (once per cache line). The
// 2-row blocks below left the weight read at 27-33 GB/s for DeepSeek-V3's q and o sides.
constexpr int kT1Rows = 8;
constexpr int64_t kT1Ahead = 1024;  // bytes
template <bool kBf16>
LKV_AVX512 LKV_INLINE void rows8_t1(const void* w, int64_t o, int64_t cols, const float* x, float* y) {
  constexpr int64_t esz = kBf16 ? 2 : 4;
  constexpr int64_t per_line = 64 / esz;  // elements per cache line
  const char* base = static_cast<const char*>(w) + o * cols * esz;
  __m512 acc[kT1Rows];
  for (auto& a : acc) a = _mm512_setzero_ps();
  int64_t e = 0;
  for (; e + 16 <= cols; e += 16) {
    if (e % per_line == 0)
      for (int r = 0; r < kT1Rows; ++r) _mm_prefetch(base + (r * cols + e) * esz + kT1Ahead, _MM_HINT_T0);
    const __m512 xv = _mm512_loadu_ps(x + e);
    for (int r = 0; r < kT1Rows; ++r) {
      __m512 wv;
      if constexpr (kBf16) {
        const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(
            static_cast<const uint16_t*>(w) + (o + r) * cols + e));
        wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      } else {
        wv = _mm512_loadu_ps(static_cast<const float*>(w) + (o + r) * cols + e);
      }
      acc[r] = _mm512_fmadd_ps(wv, xv, acc[r]);
    }
  }
  if (e < cols) {
    const __mmask16 m = static_cast<__mmask16>((1u << (cols - e)) - 1u);
    const __m512 xv = _mm512_maskz_loadu_ps(m, x + e);
    for (int r = 0; r < kT1Rows; ++r) {
      __m512 wv;
      if constexpr (kBf16) {
        const __m256i h = _mm256_maskz_loadu_epi16(m, static_cast<const uint16_t*>(w) + (o + r) * cols + e);
        wv = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
      } else {
        wv = _mm512_maskz_loadu_ps(m, static_cast<const float*>(w) + (o + r) * cols + e);
      }
      acc[r] = _mm512_fmadd_ps(wv, xv, acc[r]);
    }
  }
  for (int r = 0; r < kT1Rows; ++r) y[o + r] = _mm512_reduce_add_ps(acc[r]);
}

template <bool kBf16>
LKV_AVX512 void rows512(
    const void* w, int64_t rb, int64_t re, int64_t cols, const float* x, int64_t xs, int32_t T, float* y,
    int64_t ys) {
  int64_t o = rb;
  if (T == 1)
    for (; o + kT1Rows <= re; o += kT1Rows) rows8_t1<kBf16>(w, o, cols, x, y);
  for (; o + 2 <= re; o += 2) tokens512<kBf16, 2>(w, o, cols, x, xs, T, y, ys);
  if (o < re) tokens512<kBf16, 1>(w, o, cols, x, xs, T, y, ys);
}

__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))
void rows_avx512(const void* w, lkv_dtype d, int64_t rb, int64_t re, int64_t cols, const float* x,
                 int64_t xs, int32_t T, float* y, int64_t ys) {
  if (d == LKV_DTYPE_BF16) {
    rows512<true>(w, rb, re, cols, x, xs, T, y, ys);
  } else {
    rows512<false>(w, rb, re, cols, x, xs, T, y, ys);
  }
}

template <bool kBf16, int NR, int NT>
__attribute__((target("avx2,fma"))) LKV_INLINE void block256(const void* w, int64_t o, int64_t cols,
                                                             const float* x, int64_t xs, float* y,
                                                             int64_t ys) {
  __m256 acc[NR][NT];
  for (int r = 0; r < NR; ++r)
    for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_ps();
  int64_t e = 0;
  for (; e + 8 <= cols; e += 8) {
    __m256 wv[NR];
    for (int r = 0; r < NR; ++r) {
      if constexpr (kBf16) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(
            static_cast<const uint16_t*>(w) + (o + r) * cols + e));
        wv[r] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      } else {
        wv[r] = _mm256_loadu_ps(static_cast<const float*>(w) + (o + r) * cols + e);
      }
    }
    for (int t = 0; t < NT; ++t) {
      const __m256 xv = _mm256_loadu_ps(x + t * xs + e);
      for (int r = 0; r < NR; ++r) acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    for (int t = 0; t < NT; ++t) {
      alignas(32) float lanes[8];
      _mm256_store_ps(lanes, acc[r][t]);
      float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
      for (int64_t i = e; i < cols; ++i) sum += load1<kBf16>(w, (o + r) * cols + i) * x[t * xs + i];
      y[t * ys + o + r] = sum;
    }
  }
}

template <bool kBf16, int NR>
__attribute__((target("avx2,fma"))) LKV_INLINE void tokens256(const void* w, int64_t o, int64_t cols,
                                                              const float* x, int64_t xs, int32_t T,
                                                              float* y, int64_t ys) {
  int32_t t = 0;
  for (; t + 4 <= T; t += 4) block256<kBf16, NR, 4>(w, o, cols, x + t * xs, xs, y + t * ys, ys);
  switch (T - t) {
    case 3: block256<kBf16, NR, 3>(w, o, cols, x + t * xs, xs, y + t * ys, ys); break;
    case 2: block256<kBf16, NR, 2>(w, o, cols, x + t * xs, xs, y + t * ys, ys); break;
    case 1: block256<kBf16, NR, 1>(w, o, cols, x + t * xs, xs, y + t * ys, ys); break;
    default: break;
  }
}

// One token: as rows8_t1 with 8-lane vectors (the same 8 rows, streams and prefetch).
template <bool kBf16>
__attribute__((target("avx2,fma"))) LKV_INLINE void rows8_t1_avx2(const void* w, int64_t o, int64_t cols,
                                                                  const float* x, float* y) {
  constexpr int64_t esz = kBf16 ? 2 : 4;
  constexpr int64_t per_line = 64 / esz;
  const char* base = static_cast<const char*>(w) + o * cols * esz;
  __m256 acc[kT1Rows];
  for (auto& a : acc) a = _mm256_setzero_ps();
  int64_t e = 0;
  for (; e + 8 <= cols; e += 8) {
    if (e % per_line == 0)
      for (int r = 0; r < kT1Rows; ++r) _mm_prefetch(base + (r * cols + e) * esz + kT1Ahead, _MM_HINT_T0);
    const __m256 xv = _mm256_loadu_ps(x + e);
    for (int r = 0; r < kT1Rows; ++r) {
      __m256 wv;
      if constexpr (kBf16) {
        const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(
            static_cast<const uint16_t*>(w) + (o + r) * cols + e));
        wv = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
      } else {
        wv = _mm256_loadu_ps(static_cast<const float*>(w) + (o + r) * cols + e);
      }
      acc[r] = _mm256_fmadd_ps(wv, xv, acc[r]);
    }
  }
  for (int r = 0; r < kT1Rows; ++r) {  // the lane order of block256
    alignas(32) float lanes[8];
    _mm256_store_ps(lanes, acc[r]);
    float sum = ((lanes[0] + lanes[4]) + (lanes[1] + lanes[5])) + ((lanes[2] + lanes[6]) + (lanes[3] + lanes[7]));
    for (int64_t i = e; i < cols; ++i) sum += load1<kBf16>(w, (o + r) * cols + i) * x[i];
    y[o + r] = sum;
  }
}

template <bool kBf16>
__attribute__((target("avx2,fma"))) void rows256(const void* w, int64_t rb, int64_t re, int64_t cols,
                                                 const float* x, int64_t xs, int32_t T, float* y,
                                                 int64_t ys) {
  int64_t o = rb;
  if (T == 1)
    for (; o + kT1Rows <= re; o += kT1Rows) rows8_t1_avx2<kBf16>(w, o, cols, x, y);
  for (; o + 2 <= re; o += 2) tokens256<kBf16, 2>(w, o, cols, x, xs, T, y, ys);
  if (o < re) tokens256<kBf16, 1>(w, o, cols, x, xs, T, y, ys);
}

__attribute__((target("avx2,fma"))) void rows_avx2(const void* w, lkv_dtype d, int64_t rb, int64_t re,
                                                   int64_t cols, const float* x, int64_t xs, int32_t T,
                                                   float* y, int64_t ys) {
  if (d == LKV_DTYPE_BF16) {
    rows256<true>(w, rb, re, cols, x, xs, T, y, ys);
  } else {
    rows256<false>(w, rb, re, cols, x, xs, T, y, ys);
  }
}
__attribute__((target("avx2,fma"))) void transposed_avx2(const void* w, lkv_dtype d, int64_t rows,
                                                         int64_t cols, const float* x, int64_t xs,
                                                         int32_t T, float* y, int64_t ys) {
  transposed_dispatch(w, d, rows, cols, x, xs, T, y, ys);
}
__attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq,prefer-vector-width=512")))
void transposed_avx512(const void* w, lkv_dtype d, int64_t rows, int64_t cols, const float* x,
                       int64_t xs, int32_t T, float* y, int64_t ys) {
  transposed_dispatch(w, d, rows, cols, x, xs, T, y, ys);
}
#endif

}  // namespace

GemvIsa gemv_isa_for(lkv_cpu_isa isa) {
#ifdef LKV_LAYER_X86
  if (isa == LKV_CPU_ISA_AVX512 || isa == LKV_CPU_ISA_AVX512BF16) return GemvIsa::kAvx512;
  if (isa == LKV_CPU_ISA_AVX2) return GemvIsa::kAvx2;
#else
  (void)isa;
#endif
  return GemvIsa::kBaseline;
}

void gemv_rows(const void* w, lkv_dtype dtype, int64_t row_begin, int64_t row_end, int64_t cols,
               const float* x, int64_t x_stride, int32_t T, float* y, int64_t y_stride, GemvIsa isa) {
#ifdef LKV_LAYER_X86
  if (isa == GemvIsa::kAvx512) return rows_avx512(w, dtype, row_begin, row_end, cols, x, x_stride, T, y, y_stride);
  if (isa == GemvIsa::kAvx2) return rows_avx2(w, dtype, row_begin, row_end, cols, x, x_stride, T, y, y_stride);
#endif
  (void)isa;
  rows_baseline(w, dtype, row_begin, row_end, cols, x, x_stride, T, y, y_stride);
}

void gemv_transposed(const void* w, lkv_dtype dtype, int64_t rows, int64_t cols, const float* x,
                     int64_t x_stride, int32_t T, float* y, int64_t y_stride, GemvIsa isa) {
#ifdef LKV_LAYER_X86
  if (isa == GemvIsa::kAvx512) return transposed_avx512(w, dtype, rows, cols, x, x_stride, T, y, y_stride);
  if (isa == GemvIsa::kAvx2) return transposed_avx2(w, dtype, rows, cols, x, x_stride, T, y, y_stride);
#endif
  (void)isa;
  transposed_baseline(w, dtype, rows, cols, x, x_stride, T, y, y_stride);
}

void gemv_parallel(const void* w, lkv_dtype dtype, int64_t rows, int64_t cols, const float* x,
                   int64_t x_stride, int32_t T, float* y, int64_t y_stride, GemvIsa isa,
                   ThreadPool& pool) {
  // About 8 tasks per thread for balance, at least 8 rows each.
  const int64_t target = std::max<int64_t>(1, int64_t{8} * pool.size());
  const int64_t chunk = std::max<int64_t>(8, (rows + target - 1) / target);
  const int64_t tasks = (rows + chunk - 1) / chunk;
  pool.for_each(tasks, [&](int64_t task, int32_t) {
    const int64_t rb = task * chunk;
    const int64_t re = std::min(rows, rb + chunk);
    gemv_rows(w, dtype, rb, re, cols, x, x_stride, T, y, y_stride, isa);
  });
}

}  // namespace lkv::cpu
