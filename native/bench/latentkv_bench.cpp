// latentkv_native_bench: measures this machine's ceilings, then mla_decode, gqa_decode and
// mla_project_append at the standard shapes (DESIGN.md, "Measuring performance").
// A program that prints numbers, not a test.
//
//   latentkv_native_bench [--quick] [--json] [--isa=auto|scalar|avx2|avx512|avx512bf16]
//                         [--threads=N] [--filter=TEXT] [--cputime] [--no-baselines] [--warm]
//
// Every timed call starts cold, as in a decode step: a 128 MiB read sweep evicts the caches and
// a tiny call wakes the worker threads (as `latentkv bench` does). --warm leaves the decode
// rows without it (data may then stay in the last-level cache between repetitions).
//
// The ceiling loops use per-function target attributes, so this file is compiled with the
// baseline flags and no AVX-512 code can leak into shared inline functions.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#if defined(__x86_64__)
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_* placeholders).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#endif

#include "bench/append-params.h"
#include "core/cache-layout.h"
#include "core/numeric.h"
#include "latentkv.h"

namespace {

// --cputime: time = process CPU time / threads instead of wall time. On a machine shared with
// other work this is robust to being descheduled (it assumes the kernel's threads are busy for
// the whole call, so it hides load imbalance); the default is wall time.
bool g_cputime = false;
int g_time_threads = 1;

struct Clock {
  using time_point = double;
  static double now() {
    if (g_cputime) {
      timespec ts;
      clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
      return (ts.tv_sec + ts.tv_nsec * 1e-9) / g_time_threads;
    }
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
  }
};

double seconds_since(Clock::time_point t0) { return Clock::now() - t0; }

struct Options {
  bool quick = false, json = false;
  bool baselines = true;  // --no-baselines: skip x_ref and x_comp (faster A/B runs)
  bool warm = false;      // --warm: no cold start before the timed decode calls
  lkv_cpu_isa isa = LKV_CPU_ISA_AUTO;
  int threads = 0;
  std::string filter;
};

int hw_threads(const Options& o) {
  if (o.threads > 0) return o.threads;
  const unsigned n = std::thread::hardware_concurrency();
  return n ? static_cast<int>(n) : 1;
}

// Runs f on n threads at once, returns the wall time of the slowest.
double run_parallel(int n, const std::function<void(int)>& f) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> ts;
  Clock::time_point t0;
  for (int i = 0; i < n; ++i) {
    ts.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load()) {
      }
      f(i);
    });
  }
  while (ready.load() != n) {
  }
  t0 = Clock::now();
  go.store(true);
  for (auto& t : ts) t.join();
  return seconds_since(t0);
}

// ---- Ceilings -------------------------------------------------------------------------------

volatile uint64_t g_sink_u;  // keeps eviction loops from being optimised away

struct Ceilings {
  double read_gbs = 0, f32_gflops = 0, bf16_gflops = 0;
  int threads = 1;
};

#if defined(__x86_64__)
// --cputime ceilings: the library's ceilings are wall-clock (best of 5), which a shared machine
// depresses while the kernels are timed in CPU time; so under --cputime the compute ceilings are
// re-measured here with each thread's own CPU time (same loops: 12 independent chains).
__attribute__((target("avx512f,fma"), noinline)) float cpu_fma_loop_512(int64_t iters) {
  __m512 a[12];
  const __m512 x = _mm512_set1_ps(0.999999f), y = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], x, y);
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
__attribute__((target("avx512f,avx512bf16"), noinline)) float cpu_dpbf16_loop(int64_t iters) {
  __m512 a[12];
  const __m512i x = _mm512_set1_epi32(0x3f803f80), y = _mm512_set1_epi32(0x33d633d6);
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(static_cast<float>(i));
  for (int64_t it = 0; it < iters; ++it)
    for (int i = 0; i < 12; ++i)
      a[i] = _mm512_dpbf16_ps(a[i], reinterpret_cast<__m512bh>(x), reinterpret_cast<__m512bh>(y));
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  return _mm512_reduce_add_ps(s);
}
volatile float g_sink_cf;
double thread_cpu_now() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}
// flops per second summed over n threads, each timed by its own CPU clock; best of 5.
double cpu_rate(int n, double flops_per_thread, float (*loop)(int64_t), int64_t iters) {
  double best = 0;
  for (int rep = 0; rep < 5; ++rep) {
    std::vector<double> secs(static_cast<size_t>(n));
    run_parallel(n, [&](int i) {
      const double t0 = thread_cpu_now();
      g_sink_cf = loop(iters);
      secs[static_cast<size_t>(i)] = thread_cpu_now() - t0;
    });
    double rate = 0;
    for (double s : secs) rate += flops_per_thread / s;
    best = std::max(best, rate);
  }
  return best;
}
#endif

Ceilings measure_ceilings(const Options& o) {
  lkv_cpu_ceilings c{};
  lkv_cpu_measure_ceilings(hw_threads(o), o.quick ? 1 : 0, &c, nullptr);
  Ceilings r{c.read_gbs, c.f32_fma_gflops, c.bf16_dot_gflops, c.threads};
#if defined(__x86_64__)
  if (g_cputime) {
    const int n = hw_threads(o);
    const int64_t iters = 10000000;
    const uint32_t sup = lkv_cpu_supported_isa_mask();
    if (sup & (1u << LKV_CPU_ISA_AVX512)) r.f32_gflops = cpu_rate(n, 2.0 * 16 * 12 * iters, cpu_fma_loop_512, iters) * 1e-9;
    if (sup & (1u << LKV_CPU_ISA_AVX512BF16)) r.bf16_gflops = cpu_rate(n, 4.0 * 16 * 12 * iters, cpu_dpbf16_loop, iters) * 1e-9;
  }
#endif
  return r;
}

// Evicts the caches by reading a buffer larger than the last-level cache (written once, when
// it was made, so its pages are real and distinct). Read only: a sweep that wrote would leave
// the caches full of dirty lines, and the timed kernel would pay their write-back to DRAM on
// top of its own reads. In a decode step the work before a kernel mostly reads weights, so the
// lines it leaves behind are clean.
uint64_t sweep(const std::vector<uint8_t>& evict) {
  uint64_t ev = 0;
  for (size_t i = 0; i < evict.size(); i += 64) ev += evict[i];
  return ev;
}


// What a kernel finds when a decode step reaches it: its data evicted by the rest of the step
// (the sweep above) and the pool's workers awake, since the previous kernel just ran. Workers
// sleep after a short spin, and the sweep takes milliseconds, so a tiny project_append call
// wakes them; otherwise their wake-up (15-50 us on the VM) would be timed as kernel time.
struct ColdStart {
  static constexpr int32_t kR = 32, kP = 16, kE = 64;
  std::vector<uint8_t> evict = std::vector<uint8_t>(128u << 20, 1);
  std::vector<uint16_t> w = std::vector<uint16_t>((kR + kP) * kE, lkv::f32_to_bf16(0.01f));
  std::vector<float> x = std::vector<float>(kE, 0.5f), gamma = std::vector<float>(kR, 1.0f);
  int32_t pos = 0;
  int64_t slot = 0;
  std::vector<uint8_t> cache;
  lkv_mla_project_append_params p{};
  uint64_t sink = 0;
  ColdStart() {
    const lkv_cache_layout lay = lkv::cache_layout(LKV_DTYPE_BF16, kR, kP);
    cache.resize(static_cast<size_t>(16) * lay.row_bytes);
    p = lkv::bench::append_params(1, kE, kR, kP, 16, 1, LKV_DTYPE_BF16, x.data(), w.data(), gamma.data(), &pos, &slot,
                      cache.data());
  }
  void operator()(lkv_backend* h) {
    sink += sweep(evict);
    lkv_error err{};
    if (lkv_mla_project_append(h, &p, &err) != LKV_OK) {
      std::fprintf(stderr, "wake-up call: %s\n", err.message);
      std::exit(1);
    }
    g_sink_u = sink;
  }
};

// ---- Cold read of a short buffer -------------------------------------------------------------

// The bandwidth a plain read of `bytes` reaches right after the eviction sweep, on n threads (each
// a contiguous part), median of reps: the ceiling for a short, cold read such as one call's
// weights. The threads are started before the sweep and spin, so neither thread creation nor a
// wake-up is timed. The steady-state read ceiling comes from a 1 GiB loop and is higher: short
// cold reads pay the DRAM latency and the prefetchers' ramp-up at every 4 KB page.
uint64_t sum_bytes(const uint8_t* p, size_t n) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  size_t i = 0;
  for (; i + 32 <= n; i += 32) {
    uint64_t w[4];
    std::memcpy(w, p + i, 32);
    a += w[0];
    b += w[1];
    c += w[2];
    d += w[3];
  }
  for (; i < n; ++i) a += p[i];
  return a + b + c + d;
}

double cold_read_gbs(size_t bytes, int n, const std::vector<uint8_t>& evict, int reps) {
  std::vector<uint8_t> buf(bytes, 1);
  std::vector<double> ts;
  uint64_t ev = 0;
  for (int rep = 0; rep < reps; ++rep) {
    std::atomic<bool> go{false};
    std::atomic<int> done{0};
    std::vector<std::thread> th;
    const size_t part = bytes / static_cast<size_t>(n);
    for (int t = 1; t < n; ++t) {
      th.emplace_back([&, t] {
        while (!go.load(std::memory_order_acquire)) {
        }
        g_sink_u = sum_bytes(buf.data() + part * t, t == n - 1 ? bytes - part * t : part);
        done.fetch_add(1);
      });
    }
    ev += sweep(evict);
    const auto t0 = std::chrono::steady_clock::now();
    go.store(true, std::memory_order_release);
    g_sink_u = sum_bytes(buf.data(), n > 1 ? part : bytes);
    while (done.load() != n - 1) {
    }
    ts.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    for (auto& t : th) t.join();
  }
  g_sink_u = ev;
  std::sort(ts.begin(), ts.end());
  return static_cast<double>(bytes) / ts[ts.size() / 2] * 1e-9;
}

// ---- Timing ---------------------------------------------------------------------------------

// `before` runs untimed ahead of every timed call (the cold start below); its time does not
// count against the budget.
double median_time(const std::function<void()>& f, const Options& o, int min_reps = 3,
                   const std::function<void()>& before = {}) {
  f();  // warm-up
  std::vector<double> ts;
  const double budget = o.quick ? 0.15 : 1.0;
  const int minr = o.quick ? 2 : min_reps;
  double spent = 0;
  while (static_cast<int>(ts.size()) < minr || (spent < budget && ts.size() < 50)) {
    if (before) before();
    const Clock::time_point t0 = Clock::now();
    f();
    ts.push_back(seconds_since(t0));
    spent += ts.back();
  }
  std::sort(ts.begin(), ts.end());
  return ts[ts.size() / 2];
}

struct Backend {
  lkv_backend* h = nullptr;
  Backend(lkv_cpu_isa isa, int threads) {
    lkv_backend_options opt{isa, threads};
    lkv_error err{};
    if (lkv_backend_create("cpu", &opt, &h, &err) != LKV_OK) {
      std::fprintf(stderr, "backend: %s\n", err.message);
      std::exit(2);
    }
  }
  ~Backend() { lkv_backend_free(h); }
  lkv_cpu_isa isa() const {
    lkv_backend_info info{};
    lkv_backend_get_info(h, &info);
    return info.cpu_isa;
  }
};

// ---- Decode workloads -----------------------------------------------------------------------

struct Rng {
  uint64_t s;
  explicit Rng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 1) {}
  float uniform() {  // [-1, 1)
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return static_cast<float>(static_cast<int64_t>(s >> 40) - (1 << 23)) / static_cast<float>(1 << 23);
  }
};

struct CacheBuf {
  lkv_dtype dtype;
  int32_t B = 0, L = 0, R = 0, P = 0, bs = 0, num_blocks = 0, max_blocks = 0;
  lkv_cache_layout layout{};
  std::vector<uint8_t> data;
  std::vector<int32_t> table, lens;
};

void make_cache(CacheBuf& c, lkv_dtype dt, int32_t B, int32_t L, int32_t R, int32_t P, int32_t bs) {
  if (c.dtype == dt && c.B == B && c.L == L && c.R == R && c.P == P && c.bs == bs && !c.data.empty()) return;
  c.dtype = dt;
  c.B = B;
  c.L = L;
  c.R = R;
  c.P = P;
  c.bs = bs;
  c.layout = lkv::cache_layout(dt, R, P);
  c.max_blocks = (L + bs - 1) / bs;
  c.num_blocks = c.max_blocks * B;
  c.data.assign(static_cast<size_t>(c.num_blocks) * bs * c.layout.row_bytes, 0);
  std::vector<int32_t> ids(static_cast<size_t>(c.num_blocks));
  for (int32_t i = 0; i < c.num_blocks; ++i) ids[i] = i;
  std::mt19937 g(5);
  std::shuffle(ids.begin(), ids.end(), g);
  c.table = ids;
  c.lens.assign(static_cast<size_t>(B), L);
  const size_t rows = static_cast<size_t>(c.num_blocks) * bs;
  const int nth = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  run_parallel(nth, [&](int w) {
    Rng rng(w + 11);
    std::vector<float> lat(static_cast<size_t>(R)), rope(static_cast<size_t>(P));
    for (size_t r = rows * w / nth; r < rows * (w + 1) / nth; ++r) {
      for (auto& v : lat) v = rng.uniform();
      for (auto& v : rope) v = rng.uniform();
      lkv::write_row(c.data.data() + r * c.layout.row_bytes, c.layout, dt, R, P, lat.data(), rope.data());
    }
  });
}

struct DecodeRun {
  int32_t B, H, R, P, L, bs;
  lkv_dtype dt;
  std::vector<float> ql, qr, out, lse;
  lkv_mla_decode_params params(const CacheBuf& c, int32_t len_override = -1) {
    lkv_mla_decode_params p{};
    p.batch = B;
    p.q_len = 1;
    p.num_heads = H;
    p.kv_lora_rank = R;
    p.rope_dim = P;
    p.rope_heads = 1;
    p.block_size = bs;
    p.num_blocks = c.num_blocks;
    p.max_blocks_per_seq = c.max_blocks;
    p.cache_dtype = dt;
    p.softmax_scale = 1.0f / std::sqrt(192.0f);
    ql.resize(static_cast<size_t>(B) * H * R);
    qr.resize(static_cast<size_t>(B) * H * P);
    out.resize(ql.size());
    lse.resize(static_cast<size_t>(B) * H);
    Rng rng(3);
    for (auto& v : ql) v = rng.uniform();
    for (auto& v : qr) v = rng.uniform();
    p.q_latent = ql.data();
    p.q_rope = qr.data();
    p.cache = c.data.data();
    p.block_table = c.table.data();
    p.seq_lens = c.lens.data();
    p.out = out.data();
    p.lse = lse.data();
    (void)len_override;
    return p;
  }
};

// The composed baseline: dequantize, S = Q C^T, softmax, O = P C, each written simply
// (plain loops the compiler may vectorize), heads split over the threads.
double composed_baseline(const CacheBuf& c, DecodeRun& run, int32_t L, int threads, const Options& o) {
  const int32_t H = run.H, R = run.R, P = run.P, K = R + P;
  std::vector<float> C(static_cast<size_t>(L) * K), lat(static_cast<size_t>(R)), rope(static_cast<size_t>(P));
  std::vector<float> out(static_cast<size_t>(H) * R);
  auto body = [&] {
    for (int32_t j = 0; j < L; ++j) {
      lkv::read_row(lkv::cache_row(c.data.data(), c.layout, c.table.data(), c.bs, j), c.layout, c.dtype, R, P,
                    C.data() + static_cast<size_t>(j) * K, C.data() + static_cast<size_t>(j) * K + R);
    }
    run_parallel(threads, [&](int w) {
      std::vector<float> s(static_cast<size_t>(L));
      for (int32_t h = w; h < H; h += threads) {
        const float* ql = run.ql.data() + static_cast<size_t>(h) * R;
        const float* qr = run.qr.data() + static_cast<size_t>(h) * P;
        float mx = -INFINITY;
        for (int32_t j = 0; j < L; ++j) {
          const float* cj = C.data() + static_cast<size_t>(j) * K;
          float d = 0;
          for (int32_t r = 0; r < R; ++r) d += ql[r] * cj[r];
          for (int32_t i = 0; i < P; ++i) d += qr[i] * cj[R + i];
          s[j] = d * 0.0721688f;
          mx = std::max(mx, s[j]);
        }
        float sum = 0;
        for (int32_t j = 0; j < L; ++j) sum += (s[j] = std::exp(s[j] - mx));
        float* o = out.data() + static_cast<size_t>(h) * R;
        std::fill(o, o + R, 0.0f);
        for (int32_t j = 0; j < L; ++j) {
          const float* cj = C.data() + static_cast<size_t>(j) * K;
          const float pj = s[j] / sum;
          for (int32_t r = 0; r < R; ++r) o[r] += pj * cj[r];
        }
      }
    });
  };
  return median_time(body, o, 1);
}

struct Result {
  std::string kernel, shape, isa, bound;
  double ms = 0, gflops = 0, gbs = 0, frac = 0, x_ref = 0, x_composed = 0;
};

const char* dtype_name(lkv_dtype d) { return lkv_dtype_name(d); }

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") o.quick = true;
    else if (a == "--cputime") g_cputime = true;
    else if (a == "--no-baselines") o.baselines = false;
    else if (a == "--warm") o.warm = true;
    else if (a == "--json") o.json = true;
    else if (a.rfind("--threads=", 0) == 0) o.threads = std::atoi(a.c_str() + 10);
    else if (a.rfind("--filter=", 0) == 0) o.filter = a.substr(9);
    else if (a.rfind("--isa=", 0) == 0) {
      const std::string v = a.substr(6);
      const char* names[] = {"scalar", "avx2", "avx512", "avx512bf16", "neon"};
      bool found = v == "auto";
      for (int k = 0; k < 5; ++k)
        if (v == names[k]) { o.isa = static_cast<lkv_cpu_isa>(k); found = true; }
      if (!found) { std::fprintf(stderr, "--isa must be auto, scalar, avx2, avx512, avx512bf16 or neon\n"); return 2; }
    } else {
      std::fprintf(stderr, "usage: %s [--quick] [--json] [--isa=NAME] [--threads=N] [--filter=TEXT] [--cputime] [--no-baselines] [--warm]\n", argv[0]);
      return a == "--help" || a == "-h" ? 0 : 2;
    }
  }
  const int threads = hw_threads(o);
  g_time_threads = threads;
  Backend fast(o.isa, threads);
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  const char* isa_name = lkv_cpu_isa_name(fast.isa());
  ColdStart cold;
  std::function<void()> cold_start;  // ahead of every timed decode call, unless --warm
  if (!o.warm) cold_start = [&] { cold(fast.h); };
  FILE* log = o.json ? stderr : stdout;

  std::fprintf(log, "latentkv native bench: isa=%s threads=%d%s%s\n", isa_name, threads, o.quick ? " (quick)" : "",
               g_cputime ? " (times are process CPU time / threads)" : "");
  const Ceilings ce = measure_ceilings(o);
  std::fprintf(log, "ceilings (all %d threads): memory read %.1f GB/s, f32 FMA %.1f GFLOP/s, bf16 dot %.1f GFLOP/s%s\n",
               threads, ce.read_gbs, ce.f32_gflops, ce.bf16_gflops,
               g_cputime ? " (FMA and dot in per-thread CPU time; memory read in wall time)" : "");
  std::fprintf(log,
               "x_ref: scalar reference (1 thread) timed at a shorter L (%s) and B=1, scaled linearly to the shape.\n"
               "x_comp: composed f32 baseline (dequantize, Q.C^T, softmax, P.C in plain loops, heads over %d threads)\n"
               "        timed at L=min(L,4096), B=1, scaled linearly.\n",
               o.quick ? "128" : "512", threads);
  std::fprintf(log, "%-15s %-34s %9s %9s %8s %-7s %6s %8s %8s\n", "kernel", "shape", "ms", "GFLOP/s", "GB/s",
               "bound", "%ceil", "x_ref", "x_comp");

  std::vector<Result> results;
  auto emit = [&](const Result& r) {
    results.push_back(r);
    std::fprintf(log, "%-15s %-34s %9.3f %9.1f %8.1f %-7s %5.0f%% %8.1f %8.1f\n", r.kernel.c_str(), r.shape.c_str(),
                 r.ms, r.gflops, r.gbs, r.bound.c_str(), 100 * r.frac, r.x_ref, r.x_composed);
    std::fflush(log);
  };
  auto binding = [&](double flops, double bytes, bool bf16_core, Result& r, double t) {
    const double peak = bf16_core && ce.bf16_gflops > 0 ? ce.bf16_gflops : ce.f32_gflops;
    const double t_comp = peak > 0 ? flops / (peak * 1e9) : 0;
    const double t_mem = bytes / (ce.read_gbs * 1e9);
    r.bound = t_comp >= t_mem ? (bf16_core && ce.bf16_gflops > 0 ? "bf16dot" : "f32fma") : "memory";
    r.frac = std::max(t_comp, t_mem) / t;
  };

  // ---- mla_decode --------------------------------------------------------------------------
  const int32_t R = 512, P = 64, bs = 64;
  const int32_t heads[] = {128, 16, 32};
  const int32_t lens[] = {4096, 32768};
  const int32_t batches[] = {1, 8};
  const lkv_dtype dtypes[] = {LKV_DTYPE_BF16, LKV_DTYPE_F32, LKV_DTYPE_INT8};
  const int32_t L_ref = o.quick ? 128 : 512;
  CacheBuf cache, small;
  cache.dtype = small.dtype = static_cast<lkv_dtype>(-1);
  for (lkv_dtype dt : dtypes) {
    for (int32_t B : batches) {
      for (int32_t L : lens) {
        if (o.quick && B == 8 && L == 32768) continue;
        bool cache_made = false;
        for (int32_t H : heads) {
          char shape[96];
          std::snprintf(shape, sizeof shape, "H=%d B=%d L=%d %s", H, B, L, dtype_name(dt));
          if (!o.filter.empty() && std::string("mla_decode ").append(shape).find(o.filter) == std::string::npos) continue;
          if (!cache_made) { make_cache(cache, dt, B, L, R, P, bs); cache_made = true; }
          DecodeRun run{B, H, R, P, L, bs, dt, {}, {}, {}, {}};
          lkv_mla_decode_params p = run.params(cache);
          lkv_error err{};
          const double t = median_time([&] {
            if (lkv_mla_decode(fast.h, &p, &err) != LKV_OK) { std::fprintf(stderr, "%s\n", err.message); std::exit(1); }
          }, o, 3, cold_start);
          Result r;
          r.kernel = "mla_decode";
          r.shape = shape;
          r.isa = isa_name;
          r.ms = t * 1e3;
          const double flops = 2.0 * B * H * static_cast<double>(L) * (2 * R + P);
          const double bytes = static_cast<double>(B) * L * cache.layout.row_bytes + 8.0 * B * H * (2 * R + P);
          r.gflops = flops / t * 1e-9;
          r.gbs = bytes / t * 1e-9;
          const bool bf16_core = fast.isa() == LKV_CPU_ISA_AVX512BF16 && dt != LKV_DTYPE_F32;
          binding(flops, bytes, bf16_core, r, t);
          if (!o.baselines) { emit(r); continue; }
          // Scalar reference at a short length, B = 1, scaled.
          make_cache(small, dt, 1, L_ref, R, P, bs);
          DecodeRun rr{1, H, R, P, L_ref, bs, dt, {}, {}, {}, {}};
          lkv_mla_decode_params pr = rr.params(small);
          const double tr = median_time([&] { lkv_mla_decode(ref.h, &pr, &err); }, o, 1) *
                           (g_cputime ? threads : 1);  // the reference runs on one thread
          r.x_ref = tr * (static_cast<double>(L) / L_ref) * B / t;
          const int32_t Lc = std::min(L, 4096);
          make_cache(small, dt, 1, Lc, R, P, bs);
          DecodeRun rc{1, H, R, P, Lc, bs, dt, {}, {}, {}, {}};
          rc.params(small);
          const double tc = composed_baseline(small, rc, Lc, threads, o);
          r.x_composed = tc * (static_cast<double>(L) / Lc) * B / t;
          emit(r);
        }
      }
    }
  }

  // ---- gqa_decode (Llama-3-8B: H=32, Hkv=8, D=128) ----------------------------------------
  {
    const int32_t GH = 32, GKV = 8, GD = 128, gbs = 64;
    const lkv_dtype gdts[] = {LKV_DTYPE_BF16, LKV_DTYPE_F32};
    std::vector<uint8_t> gcache;
    for (lkv_dtype dt : gdts) {
      for (int32_t B : batches) {
        for (int32_t L : lens) {
          if (o.quick && B == 8 && L == 32768) continue;
          if (dt == LKV_DTYPE_F32 && B == 8) continue;
          char shape[96];
          std::snprintf(shape, sizeof shape, "H=%d Hkv=%d D=%d B=%d L=%d %s", GH, GKV, GD, B, L, dtype_name(dt));
          if (!o.filter.empty() && std::string("gqa_decode ").append(shape).find(o.filter) == std::string::npos) continue;
          const size_t esz = lkv_dtype_size(dt);
          const size_t row_bytes = 2 * static_cast<size_t>(GKV) * GD * esz;
          auto make = [&](int32_t nb_seq, int32_t batch, std::vector<uint8_t>& buf, std::vector<int32_t>& table) {
            const int32_t nb = nb_seq * batch;
            buf.assign(static_cast<size_t>(nb) * gbs * row_bytes, 0);
            table.resize(static_cast<size_t>(nb));
            for (int32_t i = 0; i < nb; ++i) table[i] = i;
            std::mt19937 g(7);
            std::shuffle(table.begin(), table.end(), g);
            const size_t n = buf.size() / esz;
            const int nth = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
            run_parallel(nth, [&](int w) {
              Rng rng(w + 21);
              for (size_t i = n * w / nth; i < n * (w + 1) / nth; ++i) {
                const float x = rng.uniform();
                if (esz == 4) std::memcpy(buf.data() + 4 * i, &x, 4);
                else { const uint16_t h = lkv::f32_to_bf16(x); std::memcpy(buf.data() + 2 * i, &h, 2); }
              }
            });
          };
          auto params = [&](int32_t batch, int32_t len, int32_t nb_seq, const std::vector<uint8_t>& buf,
                            const std::vector<int32_t>& table, std::vector<float>& q, std::vector<float>& out,
                            std::vector<float>& lse, std::vector<int32_t>& lens_v) {
            lkv_gqa_decode_params p{};
            p.batch = batch;
            p.q_len = 1;
            p.num_heads = GH;
            p.num_kv_heads = GKV;
            p.head_dim = GD;
            p.block_size = gbs;
            p.num_blocks = nb_seq * batch;
            p.max_blocks_per_seq = nb_seq;
            p.cache_dtype = dt;
            p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(GD));
            q.resize(static_cast<size_t>(batch) * GH * GD);
            Rng rng(5);
            for (auto& v : q) v = rng.uniform();
            out.resize(q.size());
            lse.resize(static_cast<size_t>(batch) * GH);
            lens_v.assign(static_cast<size_t>(batch), len);
            p.q = q.data();
            p.cache = buf.data();
            p.block_table = table.data();
            p.seq_lens = lens_v.data();
            p.out = out.data();
            p.lse = lse.data();
            return p;
          };
          const int32_t nb_seq = (L + gbs - 1) / gbs;
          std::vector<int32_t> table, lens_v;
          std::vector<float> q, out, lse;
          make(nb_seq, B, gcache, table);
          lkv_gqa_decode_params p = params(B, L, nb_seq, gcache, table, q, out, lse, lens_v);
          lkv_error err{};
          const double t = median_time([&] {
            if (lkv_gqa_decode(fast.h, &p, &err) != LKV_OK) { std::fprintf(stderr, "%s\n", err.message); std::exit(1); }
          }, o, 3, cold_start);
          Result r;
          r.kernel = "gqa_decode";
          r.shape = shape;
          r.isa = isa_name;
          r.ms = t * 1e3;
          const double flops = 4.0 * B * GH * static_cast<double>(L) * GD;
          const double bytes = static_cast<double>(B) * L * row_bytes + 8.0 * B * GH * GD;
          r.gflops = flops / t * 1e-9;
          r.gbs = bytes / t * 1e-9;
          binding(flops, bytes, fast.isa() == LKV_CPU_ISA_AVX512BF16 && dt == LKV_DTYPE_BF16, r, t);
          if (!o.baselines) { emit(r); continue; }
          // Scalar reference at a short length, B = 1, scaled.
          std::vector<uint8_t> sbuf;
          std::vector<int32_t> stable, slens;
          std::vector<float> sq, sout, slse;
          const int32_t snb = (L_ref + gbs - 1) / gbs;
          make(snb, 1, sbuf, stable);
          lkv_gqa_decode_params pr = params(1, L_ref, snb, sbuf, stable, sq, sout, slse, slens);
          const double tr = median_time([&] { lkv_gqa_decode(ref.h, &pr, &err); }, o, 1) * (g_cputime ? threads : 1);
          r.x_ref = tr * (static_cast<double>(L) / L_ref) * B / t;
          r.x_composed = 0;
          emit(r);
        }
      }
    }
  }

  // ---- mla_project_append ------------------------------------------------------------------
  const int32_t hidden[] = {7168, 2048};
  const int32_t tokens[] = {1, 64};
  const lkv_dtype wdts[] = {LKV_DTYPE_BF16, LKV_DTYPE_F32};
  for (lkv_dtype wd : wdts) {
    for (int32_t E : hidden) {
      for (int32_t T : tokens) {
        char shape[96];
        std::snprintf(shape, sizeof shape, "E=%d T=%d w=%s cache=bf16", E, T, dtype_name(wd));
        if (!o.filter.empty() && std::string("mla_project_append ").append(shape).find(o.filter) == std::string::npos) continue;
        const int32_t rows = R + P;
        const size_t es = lkv_dtype_size(wd);
        std::vector<uint8_t> w(static_cast<size_t>(rows) * E * es);
        Rng rng(9);
        for (size_t i = 0; i < static_cast<size_t>(rows) * E; ++i) {
          const float v = rng.uniform() * 0.02f;
          if (es == 4) std::memcpy(w.data() + 4 * i, &v, 4);
          else { const uint16_t h = lkv::f32_to_bf16(v); std::memcpy(w.data() + 2 * i, &h, 2); }
        }
        std::vector<float> x(static_cast<size_t>(T) * E), gamma(static_cast<size_t>(R), 1.0f);
        for (auto& v : x) v = rng.uniform();
        std::vector<int32_t> pos(static_cast<size_t>(T));
        std::vector<int64_t> slots(static_cast<size_t>(T));
        for (int32_t t = 0; t < T; ++t) { pos[t] = 1000 + t; slots[t] = t; }
        const lkv_cache_layout lay = lkv::cache_layout(LKV_DTYPE_BF16, R, P);
        std::vector<uint8_t> cbuf(static_cast<size_t>(T + bs) * lay.row_bytes);
        lkv_mla_project_append_params p = lkv::bench::append_params(T, E, R, P, bs, (T + bs - 1) / bs + 1, wd, x.data(), w.data(),
                                                         gamma.data(), pos.data(), slots.data(), cbuf.data());
        lkv_error err{};
        // Always from a cold start (even with --warm): the weights of a real model layer are
        // not cache-resident when the layer runs.
        std::vector<double> ts;
        for (int rep = 0; rep < (o.quick ? 5 : 21); ++rep) {
          cold(fast.h);
          const Clock::time_point t0 = Clock::now();
          if (lkv_mla_project_append(fast.h, &p, &err) != LKV_OK) { std::fprintf(stderr, "%s\n", err.message); return 1; }
          ts.push_back(seconds_since(t0));
        }
        std::sort(ts.begin(), ts.end());
        const double t = ts[ts.size() / 2];
        Result r;
        r.kernel = "project_append";
        r.shape = shape;
        r.isa = isa_name;
        r.ms = t * 1e3;
        const double flops = 2.0 * T * rows * static_cast<double>(E);
        const double bytes = static_cast<double>(w.size()) + 4.0 * T * E + static_cast<double>(T) * lay.row_bytes;
        r.gflops = flops / t * 1e-9;
        r.gbs = bytes / t * 1e-9;
        binding(flops, bytes, false, r, t);
        if (o.baselines) {
          const Clock::time_point t0 = Clock::now();
          lkv_mla_project_append(ref.h, &p, &err);
          r.x_ref = seconds_since(t0) * (g_cputime ? threads : 1) / t;
        }
        r.x_composed = 0;
        emit(r);
        if (T == 1 && !g_cputime) {
          const double cold_gbs = cold_read_gbs(w.size(), threads, cold.evict, o.quick ? 5 : 21);
          std::fprintf(log, "%-15s   plain read of the same %.1f MB right after the sweep: %.1f GB/s; the kernel %.0f%% of it\n",
                       "", static_cast<double>(w.size()) / 1e6, cold_gbs, 100.0 * r.gbs / cold_gbs);
        }
      }
    }
  }

  if (o.json) {
    std::printf("{\n  \"isa\": \"%s\", \"threads\": %d, \"quick\": %s,\n", isa_name, threads, o.quick ? "true" : "false");
    std::printf("  \"ceilings\": {\"read_gbs\": %.3f, \"f32_gflops\": %.3f, \"bf16_gflops\": %.3f},\n", ce.read_gbs,
                ce.f32_gflops, ce.bf16_gflops);
    std::printf("  \"results\": [\n");
    for (size_t i = 0; i < results.size(); ++i) {
      const Result& r = results[i];
      std::printf("    {\"kernel\": \"%s\", \"shape\": \"%s\", \"isa\": \"%s\", \"ms\": %.6f, \"gflops\": %.3f, "
                  "\"gbs\": %.3f, \"bound\": \"%s\", \"fraction_of_ceiling\": %.4f, \"speedup_vs_reference\": %.2f, "
                  "\"speedup_vs_composed\": %.2f}%s\n",
                  r.kernel.c_str(), r.shape.c_str(), r.isa.c_str(), r.ms, r.gflops, r.gbs, r.bound.c_str(), r.frac,
                  r.x_ref, r.x_composed, i + 1 < results.size() ? "," : "");
    }
    std::printf("  ]\n}\n");
  }
  return 0;
}
