// Each ceiling is a loop of independent accumulator chains (12 per thread, enough to cover the
// FMA latency on every x86 core we know), run on all threads at once; best of several runs, so
// a noisy shared machine under-reports rather than over-reports. The SIMD loops use function
// target attributes: this file is compiled with baseline flags and they run only when the CPU
// supports them.
#include "ceilings.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#if defined(__x86_64__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

namespace lkv::cpu {
namespace {

volatile float g_sink_f;
volatile uint64_t g_sink_u;

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Runs f(thread) on n threads released together; returns the wall time until the last ends.
double run_parallel(int n, const std::function<void(int)>& f) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      f(i);
    });
  }
  while (ready.load() != n) {
  }
  const double t0 = now();
  go.store(true);
  for (auto& t : threads) t.join();
  return now() - t0;
}

#if defined(__x86_64__)
__attribute__((target("avx512f,fma"), noinline)) float fma_loop_512(int64_t iters) {
  __m512 a[12];
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx2,fma"), noinline)) float fma_loop_256(int64_t iters) {
  __m256 a[12];
  const __m256 x = _mm256_set1_ps(0.999999f), y = _mm256_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm256_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) a[i] = _mm256_fmadd_ps(a[i], x, y);
  }
  __m256 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, a[i]);
  float out[8];
  _mm256_storeu_ps(out, s);
  return out[0] + out[7];
}

__attribute__((target("avx512f,avx512bf16"), noinline)) float dpbf16_loop(int64_t iters) {
  __m512 a[12];
  const __m512i x = _mm512_set1_epi32(0x3f803f80), y = _mm512_set1_epi32(0x33d633d6);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it) {
    for (int i = 0; i < 12; ++i) {
      a[i] = _mm512_dpbf16_ps(a[i], reinterpret_cast<__m512bh>(x), reinterpret_cast<__m512bh>(y));
    }
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}

__attribute__((target("avx512f"), noinline)) uint64_t read_loop_512(const uint8_t* p, size_t n) {
  __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
  for (size_t i = 0; i + 256 <= n; i += 256) {
    a0 = _mm512_xor_si512(a0, _mm512_load_si512(p + i));
    a1 = _mm512_xor_si512(a1, _mm512_load_si512(p + i + 64));
    a2 = _mm512_xor_si512(a2, _mm512_load_si512(p + i + 128));
    a3 = _mm512_xor_si512(a3, _mm512_load_si512(p + i + 192));
  }
  a0 = _mm512_xor_si512(_mm512_xor_si512(a0, a1), _mm512_xor_si512(a2, a3));
  return static_cast<uint64_t>(_mm512_reduce_add_epi64(a0));
}
#endif

uint64_t read_loop_scalar(const uint8_t* p, size_t n) {
  uint64_t s = 0;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v;
    std::memcpy(&v, p + i, 8);
    s ^= v;
  }
  return s;
}

}  // namespace

lkv_cpu_ceilings measure_ceilings(int32_t threads, bool quick) {
  lkv_cpu_ceilings c{};
  const int n = threads > 0 ? threads : std::max(1u, std::thread::hardware_concurrency());
  c.threads = n;
  const uint32_t supported = lkv_cpu_supported_isa_mask();
  const bool has512 = supported & (1u << LKV_CPU_ISA_AVX512);
  const bool has256 = supported & (1u << LKV_CPU_ISA_AVX2);
  const bool hasbf16 = supported & (1u << LKV_CPU_ISA_AVX512BF16);
#if defined(__x86_64__)
  const int64_t iters = quick ? 10000000 : 40000000;  // 30 to 120 ms a run
  for (int rep = 0; rep < 5; ++rep) {
    if (has512 || has256) {
      const double t = run_parallel(n, [&](int) { g_sink_f = has512 ? fma_loop_512(iters) : fma_loop_256(iters); });
      const double flops = 2.0 * (has512 ? 16 : 8) * 12 * static_cast<double>(iters) * n;
      c.f32_fma_gflops = std::max(c.f32_fma_gflops, flops / t * 1e-9);
    }
    if (hasbf16) {
      const double t = run_parallel(n, [&](int) { g_sink_f = dpbf16_loop(iters); });
      const double flops = 4.0 * 16 * 12 * static_cast<double>(iters) * n;
      c.bf16_dot_gflops = std::max(c.bf16_dot_gflops, flops / t * 1e-9);
    }
  }
#else
  (void)has512;
  (void)has256;
  (void)hasbf16;
#endif
  const size_t bytes = (quick ? 256ull : 1024ull) << 20;  // far beyond any last-level cache
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(64, bytes));
  if (!buf) return c;
  run_parallel(n, [&](int i) { std::memset(buf + bytes / n * i, i + 1, bytes / n); });  // first touch
  for (int rep = 0; rep < 3; ++rep) {
    const double t = run_parallel(n, [&](int i) {
      const uint8_t* p = buf + bytes / n * i;
#if defined(__x86_64__)
      g_sink_u = has512 ? read_loop_512(p, bytes / n) : read_loop_scalar(p, bytes / n);
#else
      g_sink_u = read_loop_scalar(p, bytes / n);
#endif
    });
    c.read_gbs = std::max(c.read_gbs, static_cast<double>(bytes) / t * 1e-9);
  }
  std::free(buf);
  return c;
}

}  // namespace lkv::cpu

extern "C" lkv_status lkv_cpu_measure_ceilings(int32_t threads, int32_t quick, lkv_cpu_ceilings* out,
                                               lkv_error* err) {
  if (!out) return LKV_ERR_INVALID_ARGUMENT;
  if (threads < 0 || threads > 1024) {
    if (err) {
      err->status = LKV_ERR_INVALID_ARGUMENT;
      std::snprintf(err->message, sizeof err->message, "threads must be in 0..1024, got %d", threads);
    }
    return LKV_ERR_INVALID_ARGUMENT;
  }
  *out = lkv::cpu::measure_ceilings(threads, quick != 0);
  return LKV_OK;
}
