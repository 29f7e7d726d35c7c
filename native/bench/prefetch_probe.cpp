// latentkv_prefetch_probe: how fast one core streams a long cache from DRAM under the access
// pattern of mla_decode's score blocks, for several software-prefetch schedules. A benchmark
// program (prints numbers, asserts nothing); it is how the paced prefetch of x86-mla.inc was
// chosen. Usage: latentkv_prefetch_probe [threads] [rows read side by side] [row bytes]
//
// Each thread reads its own 512 MiB buffer as tiles of 128 rows. Rows are read G at a time,
// line i of each of the G rows in turn (the score block's 12 row streams), and every line gets
// 32 FMAs (what H = 16 with an f32 cache does per line). The compute-only rate comes from the
// same loop over one tile that stays in L2; each schedule prints its rate as a fraction of it.
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace {

double now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Schedule {
  const char* name;
  int hint;      // 0 T0, 1 T1, 2 T2, 3 NTA, 4 a demand load ("touch") instead of a prefetch
  int burst;     // next tile's lines, `burst` at a time every `burst` consumed lines (0: off)
  size_t ahead;  // or: one line `ahead` lines past the one consumed, in address order (0: off)
};

struct Pattern {
  size_t tile_bytes, row_lines;
  int group;       // rows read side by side
  int fma_blocks;  // 8 FMAs each per line
};

// One line `a` fetched ahead: a prefetch with the schedule's hint, or (HINT 4) a plain load
// whose value goes into `sink` so it cannot be dropped.
template <int HINT>
inline void fetch_ahead(const char* a, uint64_t& sink) {
  if constexpr (HINT == 4) {
    uint64_t v;
    __asm__ volatile("movq (%1), %0" : "=r"(v) : "r"(a));
    sink += v;
  } else {
    _mm_prefetch(a, static_cast<_mm_hint>(HINT));
  }
}

template <int HINT>
__attribute__((target("avx512f"), noinline)) float stream(const char* buf, size_t bytes,
                                                           const Pattern& pt, const Schedule& sc) {
  uint64_t sink = 0;
  __m512 acc[8];
  for (auto& a : acc) a = _mm512_setzero_ps();
  __m512 sum = _mm512_setzero_ps();
  const __m512 m = _mm512_set1_ps(0.999f);
  const size_t tiles = bytes / pt.tile_bytes, lines = pt.tile_bytes / 64;
  const char* last = buf + bytes;
  for (size_t t = 0; t < tiles; ++t) {
    const char* cur = buf + t * pt.tile_bytes;
    const char* next = cur + pt.tile_bytes;
    const size_t next_lines = t + 1 < tiles ? lines : 0;
    size_t issued = 0, li = 0;  // li: lines consumed so far in this tile
    int countdown = 1;
    for (size_t r0 = 0; r0 < 128; r0 += static_cast<size_t>(pt.group)) {
      const size_t g = std::min(static_cast<size_t>(pt.group), 128 - r0);
      for (size_t i = 0; i < pt.row_lines; ++i) {
        for (size_t r = r0; r < r0 + g; ++r, ++li) {
          if (sc.burst > 0 && --countdown == 0) {
            countdown = sc.burst;
            for (int k = 0; k < sc.burst && issued < next_lines; ++k, ++issued) fetch_ahead<HINT>(next + 64 * issued, sink);
          }
          if (sc.ahead > 0) {
            const char* a = cur + 64 * (li + sc.ahead);
            if (a < last) fetch_ahead<HINT>(a, sink);
          }
          const __m512 v = _mm512_load_ps(reinterpret_cast<const float*>(cur + 64 * (r * pt.row_lines + i)));
          sum = _mm512_add_ps(sum, v);
          for (int k = 0; k < pt.fma_blocks; ++k) {
            #pragma GCC unroll 8
            for (int j = 0; j < 8; ++j) acc[j] = _mm512_fmadd_ps(acc[j], m, v);
          }
        }
      }
    }
  }
  for (auto& a : acc) sum = _mm512_add_ps(sum, a);
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, sum);
  float total = sink == 12345 ? 1.0f : 0.0f;
  for (float x : lanes) total += x;
  return total;
}

float run_schedule(const char* buf, size_t bytes, const Pattern& pt, const Schedule& sc) {
  switch (sc.hint) {
    case 0: return stream<_MM_HINT_T0>(buf, bytes, pt, sc);
    case 1: return stream<_MM_HINT_T1>(buf, bytes, pt, sc);
    case 2: return stream<_MM_HINT_T2>(buf, bytes, pt, sc);
    case 3: return stream<_MM_HINT_NTA>(buf, bytes, pt, sc);
    default: return stream<4>(buf, bytes, pt, sc);
  }
}

// Seconds for every thread to run `reps` passes over its buffer (all threads at once).
double timed(const std::vector<char*>& bufs, size_t bytes, int reps, const Pattern& pt, const Schedule& sc) {
  std::vector<std::thread> th;
  std::vector<float> sink(bufs.size());
  const double t0 = now();
  for (size_t i = 0; i < bufs.size(); ++i)
    th.emplace_back([&, i] {
      for (int r = 0; r < reps; ++r) sink[i] += run_schedule(bufs[i], bytes, pt, sc);
    });
  for (auto& t : th) t.join();
  const double dt = now() - t0;
  float s = 0;
  for (float v : sink) s += v;
  if (s == 1.2345f) std::printf(" ");  // keeps the sums alive
  return dt;
}

}  // namespace

int main(int argc, char** argv) {
  if (!__builtin_cpu_supports("avx512f")) {
    std::printf("latentkv_prefetch_probe: this CPU has no AVX-512F; nothing to measure\n");
    return 0;
  }
  const int threads = argc > 1 ? std::max(1, std::atoi(argv[1])) : 1;
  const int group = argc > 2 ? std::max(1, std::atoi(argv[2])) : 12;
  const size_t row_bytes = argc > 3 ? static_cast<size_t>(std::max(64, std::atoi(argv[3]))) / 64 * 64 : 2304;
  const int fmas = argc > 4 ? std::max(8, std::atoi(argv[4])) / 8 * 8 : 32;
  const Pattern pt{128 * row_bytes, row_bytes / 64, group, fmas / 8};
  const size_t bytes = (static_cast<size_t>(512) << 20) / pt.tile_bytes * pt.tile_bytes;
  std::vector<char*> bufs(threads), hot(threads);
  for (int i = 0; i < threads; ++i) {
    bufs[i] = static_cast<char*>(std::aligned_alloc(4096, bytes));
    hot[i] = static_cast<char*>(std::aligned_alloc(4096, pt.tile_bytes));
    std::memset(bufs[i], 1, bytes);
    std::memset(hot[i], 1, pt.tile_bytes);
  }
  const Schedule none{"no prefetch", 0, 0, 0};
  const Schedule schedules[] = {
      none,
      {"next tile, T0, bursts of 144", 0, 144, 0},
      {"next tile, T0, bursts of 16", 0, 16, 0},
      {"next tile, T0, bursts of 4", 0, 4, 0},
      {"next tile, T0, one at a time", 0, 1, 0},
      {"next tile, T1, one at a time", 1, 1, 0},
      {"next tile, NTA, one at a time", 3, 1, 0},
      {"256 lines ahead, T0", 0, 0, 256},
      {"1024 lines ahead, T0", 0, 0, 1024},
      {"2048 lines ahead, T0", 0, 0, 2048},
      {"4096 lines ahead, T0", 0, 0, 4096},
      {"512 lines ahead, T0", 0, 0, 512},
      {"512 lines ahead, touch", 4, 0, 512},
      {"2048 lines ahead, touch", 4, 0, 2048},
  };
  std::printf("latentkv prefetch probe: %d thread(s), %d rows side by side, rows of %zu bytes, tiles of 128 rows, %d FMAs per line\n",
              threads, group, row_bytes, fmas);
  const int hot_reps = static_cast<int>(bytes / pt.tile_bytes);
  double hot_t = 1e30;
  for (int k = 0; k < 3; ++k) hot_t = std::min(hot_t, timed(hot, pt.tile_bytes, hot_reps, pt, none));
  const double hot_gbs = static_cast<double>(pt.tile_bytes) * hot_reps / hot_t * 1e-9;
  std::printf("compute only (one tile in L2): %.2f GB/s per thread\n", hot_gbs);
  std::printf("%-32s %12s %10s\n", "schedule", "GB/s/thread", "% compute");
  for (const Schedule& sc : schedules) {
    const double gbs = static_cast<double>(bytes) / timed(bufs, bytes, 1, pt, sc) * 1e-9;
    std::printf("%-32s %12.2f %9.1f%%\n", sc.name, gbs, 100.0 * gbs / hot_gbs);
  }
  for (int i = 0; i < threads; ++i) {
    std::free(bufs[i]);
    std::free(hot[i]);
  }
  return 0;
}
