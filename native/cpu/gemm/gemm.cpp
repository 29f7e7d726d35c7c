// C = A W^T for the dense projections of calibration forwards and the model runtime
// (DESIGN.md kernel 8). Two paths, both threaded over N so W is read once per call:
//
//  * M < kPanelMinRows, or an ISA below AVX-512: the row products of layer-gemv.cpp (each W row
//    against up to 4 rows of A at a time): memory-bound decode (M = 1) streams W at bandwidth.
//  * M >= kPanelMinRows on AVX-512: A is packed once per call into k-major panels of 32 rows
//    (Ap[k][32], zero-padded), and each task computes C^T for a block of kTaskRows weight rows:
//    a 6 x 32 register tile (12 zmm accumulators) takes per k two panel loads and six weight
//    broadcasts for twelve FMAs, so the loop is FMA-bound out of L1. K is walked in chunks of
//    kKc so one A panel chunk (32 KB) stays in L1 across the task's weight rows and the task's
//    weight chunk stays in L2 across the A panels; bf16 weights are widened into a per-task f32
//    chunk first. The C^T tile lives in a per-task buffer and is written transposed at the end.
// Sums are in f32, in a fixed order for a given ISA (independent of the thread count).
#include "gemm.h"

#include <algorithm>
#include <cstring>
#include <new>
#include <vector>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// As in layer-gemv.cpp: GCC 12's AVX-512 conversion intrinsics start from an "undefined"
// register, which -Wmaybe-uninitialized reports inside target-attribute functions.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "../../core/error.h"
#include "../layer/mla-decode-layer.h"
#include "../thread-pool.h"

namespace lkv::cpu {
namespace {

constexpr int32_t kPanelMinRows = 8;  // M at or above which the packed kernel wins (bench)

float bf16_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The row-product path: gemv_rows over N in tasks, then bias / accumulate per task.
void gemm_rows(const lkv_gemm_params& p, GemvIsa gi, ThreadPool& pool) {
  const int64_t N = p.n, K = p.k, M = p.m;
  const int64_t target = std::max<int64_t>(1, int64_t{8} * pool.size());
  const int64_t chunk = std::max<int64_t>(16, (N + target - 1) / target);
  const int64_t tasks = (N + chunk - 1) / chunk;
  const bool acc = p.accumulate != 0;
  pool.for_each(tasks, [&](int64_t task, int32_t) {
    const int64_t nb = task * chunk;
    const int64_t ne = std::min(N, nb + chunk);
    if (!acc) {
      gemv_rows(p.w, p.weight_dtype, nb, ne, K, p.a, K, static_cast<int32_t>(M), p.c, N, gi);
      if (p.bias) {
        for (int64_t m = 0; m < M; ++m)
          for (int64_t n = nb; n < ne; ++n) p.c[m * N + n] += p.bias[n];
      }
      return;
    }
    // accumulate: products into a scratch block, then C += scratch (+ bias).
    std::vector<float> tmp(static_cast<size_t>(M * (ne - nb)));
    const char* wb = static_cast<const char*>(p.w) + nb * K * static_cast<int64_t>(lkv_dtype_size(p.weight_dtype));
    gemv_rows(wb, p.weight_dtype, 0, ne - nb, K, p.a, K, static_cast<int32_t>(M), tmp.data(), ne - nb, gi);
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = nb; n < ne; ++n)
        p.c[m * N + n] += tmp[m * (ne - nb) + (n - nb)] + (p.bias ? p.bias[n] : 0.0f);
  });
}

#if defined(__x86_64__) && defined(__GNUC__)
#define LKV_GEMM_X86 1
#define LKV_GEMM_AVX512 __attribute__((target("avx2,fma,avx512f,avx512bw,avx512vl,avx512dq")))

constexpr int kMr = 32;        // A rows per panel (two zmm)
constexpr int kNr = 6;         // W rows per register tile
constexpr int64_t kKc = 256;   // K chunk
constexpr int64_t kTaskRows = 48;  // W rows per task (8 tiles)

// Ct[r][0..32) (+)= sum_{k < kc} W[r][k] * Ap[k][0..32) for the NR rows of one tile.
template <int NR>
LKV_GEMM_AVX512 inline void tile(const float* ap, const float* w, int64_t w_stride, int64_t kc,
                                 float* ct, int64_t ct_stride, bool first) {
  __m512 lo[NR], hi[NR];
  for (int r = 0; r < NR; ++r) {
    if (first) {
      lo[r] = _mm512_setzero_ps();
      hi[r] = _mm512_setzero_ps();
    } else {
      lo[r] = _mm512_loadu_ps(ct + r * ct_stride);
      hi[r] = _mm512_loadu_ps(ct + r * ct_stride + 16);
    }
  }
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 a0 = _mm512_loadu_ps(ap + k * kMr);
    const __m512 a1 = _mm512_loadu_ps(ap + k * kMr + 16);
    for (int r = 0; r < NR; ++r) {
      const __m512 wv = _mm512_set1_ps(w[r * w_stride + k]);
      lo[r] = _mm512_fmadd_ps(wv, a0, lo[r]);
      hi[r] = _mm512_fmadd_ps(wv, a1, hi[r]);
    }
  }
  for (int r = 0; r < NR; ++r) {
    _mm512_storeu_ps(ct + r * ct_stride, lo[r]);
    _mm512_storeu_ps(ct + r * ct_stride + 16, hi[r]);
  }
}

LKV_GEMM_AVX512 void tile_dispatch(int nr, const float* ap, const float* w, int64_t ws, int64_t kc,
                                   float* ct, int64_t cs, bool first) {
  switch (nr) {
    case 6: tile<6>(ap, w, ws, kc, ct, cs, first); break;
    case 5: tile<5>(ap, w, ws, kc, ct, cs, first); break;
    case 4: tile<4>(ap, w, ws, kc, ct, cs, first); break;
    case 3: tile<3>(ap, w, ws, kc, ct, cs, first); break;
    case 2: tile<2>(ap, w, ws, kc, ct, cs, first); break;
    default: tile<1>(ap, w, ws, kc, ct, cs, first); break;
  }
}

struct PanelPlan {
  int64_t M, N, K, panels, mpad;
};

// Pack A [M, K] into panels: Ap[panel][k][32], rows past M zero.
LKV_GEMM_AVX512 void pack_a(const float* a, const PanelPlan& pl, int64_t panel, float* ap) {
  float* dst = ap + panel * pl.K * kMr;
  const int64_t m0 = panel * kMr;
  const int64_t rows = std::min<int64_t>(kMr, pl.M - m0);
  if (rows < kMr) std::memset(dst, 0, sizeof(float) * pl.K * kMr);
  // 16 x 16 blocks through a small buffer: rows contiguous in k become columns.
  for (int64_t k0 = 0; k0 < pl.K; k0 += 16) {
    const int64_t kn = std::min<int64_t>(16, pl.K - k0);
    for (int64_t i = 0; i < rows; ++i) {
      const float* src = a + (m0 + i) * pl.K + k0;
      for (int64_t kk = 0; kk < kn; ++kk) dst[(k0 + kk) * kMr + i] = src[kk];
    }
  }
}

LKV_GEMM_AVX512 void panel_task(const lkv_gemm_params& p, const PanelPlan& pl, const float* ap,
                                int64_t nb, int64_t ne, float* ct, float* wbuf) {
  const int64_t rows = ne - nb;
  const bool bf16 = p.weight_dtype == LKV_DTYPE_BF16;
  for (int64_t k0 = 0; k0 < pl.K; k0 += kKc) {
    const int64_t kc = std::min(kKc, pl.K - k0);
    const float* w;
    int64_t ws;
    if (bf16) {
      const uint16_t* src = static_cast<const uint16_t*>(p.w);
      for (int64_t r = 0; r < rows; ++r) {
        const uint16_t* s = src + (nb + r) * pl.K + k0;
        float* d = wbuf + r * kKc;
        int64_t k = 0;
        for (; k + 16 <= kc; k += 16) {
          const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(s + k));
          _mm512_storeu_ps(d + k, _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)));
        }
        for (; k < kc; ++k) d[k] = bf16_to_f32(s[k]);
      }
      w = wbuf;
      ws = kKc;
    } else {
      w = static_cast<const float*>(p.w) + nb * pl.K + k0;
      ws = pl.K;
    }
    for (int64_t panel = 0; panel < pl.panels; ++panel) {
      const float* apk = ap + panel * pl.K * kMr + k0 * kMr;
      float* ctp = ct + panel * kMr;
      for (int64_t r = 0; r < rows; r += kNr) {
        const int nr = static_cast<int>(std::min<int64_t>(kNr, rows - r));
        tile_dispatch(nr, apk, w + r * ws, ws, kc, ctp + r * pl.mpad, pl.mpad, k0 == 0);
      }
    }
  }
  // C[m][nb + r] (+)= Ct[r][m] (+ bias).
  const bool acc = p.accumulate != 0;
  for (int64_t m = 0; m < pl.M; ++m) {
    float* crow = p.c + m * pl.N + nb;
    for (int64_t r = 0; r < rows; ++r) {
      float v = ct[r * pl.mpad + m];
      if (p.bias) v += p.bias[nb + r];
      crow[r] = acc ? crow[r] + v : v;
    }
  }
}

lkv_status gemm_panels(const lkv_gemm_params& p, ThreadPool& pool, lkv_error* err) {
  PanelPlan pl;
  pl.M = p.m;
  pl.N = p.n;
  pl.K = p.k;
  pl.panels = (pl.M + kMr - 1) / kMr;
  pl.mpad = pl.panels * kMr;
  std::vector<float> ap;
  try {
    ap.resize(static_cast<size_t>(pl.panels * pl.K * kMr));
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "gemm: could not allocate %lld floats for the packed A",
                static_cast<long long>(pl.panels * pl.K * kMr));
  }
  pool.for_each(pl.panels, [&](int64_t panel, int32_t) { pack_a(p.a, pl, panel, ap.data()); });
  const int64_t tasks = (pl.N + kTaskRows - 1) / kTaskRows;
  const int32_t workers = pool.size();
  std::vector<std::vector<float>> ct(static_cast<size_t>(workers));
  std::vector<std::vector<float>> wbuf(static_cast<size_t>(workers));
  try {
    for (int32_t i = 0; i < workers; ++i) {
      ct[i].resize(static_cast<size_t>(kTaskRows * pl.mpad));
      if (p.weight_dtype == LKV_DTYPE_BF16) wbuf[i].resize(static_cast<size_t>(kTaskRows * kKc));
    }
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "gemm: could not allocate the per-thread tiles");
  }
  pool.for_each(tasks, [&](int64_t task, int32_t worker) {
    const int64_t nb = task * kTaskRows;
    const int64_t ne = std::min(pl.N, nb + kTaskRows);
    panel_task(p, pl, ap.data(), nb, ne, ct[worker].data(), wbuf[worker].data());
  });
  return ok(err);
}
#endif

}  // namespace

lkv_status gemm_cpu(const lkv_gemm_params& p, lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err) {
  if (p.m == 0) return ok(err);
  const GemvIsa gi = gemv_isa_for(isa);
#ifdef LKV_GEMM_X86
  if (gi == GemvIsa::kAvx512 && p.m >= kPanelMinRows) return gemm_panels(p, pool, err);
#endif
  gemm_rows(p, gi, pool);
  return ok(err);
}

lkv_status gemm_reference(const lkv_gemm_params& p, lkv_error* err) {
  const int64_t M = p.m, N = p.n, K = p.k;
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t n = 0; n < N; ++n) {
      double s = p.bias ? p.bias[n] : 0.0;
      for (int64_t k = 0; k < K; ++k) {
        const float w = p.weight_dtype == LKV_DTYPE_BF16
                            ? bf16_to_f32(static_cast<const uint16_t*>(p.w)[n * K + k])
                            : static_cast<const float*>(p.w)[n * K + k];
        s += static_cast<double>(p.a[m * K + k]) * w;
      }
      float& c = p.c[m * N + n];
      c = p.accumulate ? static_cast<float>(c + s) : static_cast<float>(s);
    }
  }
  return ok(err);
}

}  // namespace lkv::cpu
