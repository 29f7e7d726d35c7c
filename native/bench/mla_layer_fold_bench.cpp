// Does folding W_UK into q_proj (q_latent = (W_UK^T W_q,nope) x, an [H R, in] matrix) and W_UV
// into o_proj (an [E, H R] matrix) pay, for the standard MLA shapes? Prints, per shape and token
// count T, the multiply-adds and weight bytes of both forms and their measured time on this
// machine with the same projection code mla_decode_layer uses (all threads), then times the
// whole mla_decode_layer step. A benchmark program, not a test.
//
//   latentkv_layer_fold_bench [--quick] [--f32]
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "core/numeric.h"
#include "cpu/cpu-kernels.h"
#include "cpu/layer/mla-decode-layer.h"
#include "cpu/thread-pool.h"
#include "latentkv.h"

using namespace lkv;
using namespace lkv::cpu;

namespace {

struct Shape {
  const char* name;
  int64_t E, H, Q, R, P, Dn, Dv;  // Q = 0: full q_proj
};

const Shape kShapes[] = {
    {"DeepSeek-V3", 7168, 128, 1536, 512, 64, 128, 128},
    {"DeepSeek-V2-Lite", 2048, 16, 0, 512, 64, 128, 128},
    {"Llama-3-8B (TransMLA)", 4096, 32, 0, 512, 64, 64, 128},
};

struct Matrix {
  std::vector<uint8_t> bytes;
  lkv_dtype dtype;
  Matrix(int64_t n, lkv_dtype d) : bytes(static_cast<size_t>(n) * (d == LKV_DTYPE_BF16 ? 2 : 4)), dtype(d) {
    // Small finite values; their exact size does not change the timing.
    uint32_t s = 12345;
    for (int64_t i = 0; i < n; ++i) {
      s = s * 1664525u + 1013904223u;
      const float v = (static_cast<int32_t>(s >> 9) % 2001 - 1000) * 1e-5f;
      if (d == LKV_DTYPE_BF16) {
        const uint16_t h = f32_to_bf16(v);
        std::memcpy(bytes.data() + 2 * i, &h, 2);
      } else {
        std::memcpy(bytes.data() + 4 * i, &v, 4);
      }
    }
  }
  const void* data() const { return bytes.data(); }
  const void* rows(int64_t row, int64_t cols) const {
    return bytes.data() + static_cast<size_t>(row * cols) * (dtype == LKV_DTYPE_BF16 ? 2 : 4);
  }
};

template <typename F>
double median_ms(F&& f, int reps) {
  f();  // warm
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

lkv_cpu_isa best_isa() {
  const uint32_t m = lkv_cpu_compiled_isa_mask() & lkv_cpu_supported_isa_mask();
  for (int i = LKV_CPU_ISA_NEON; i > LKV_CPU_ISA_SCALAR; --i) {
    if (m & (1u << i)) return static_cast<lkv_cpu_isa>(i);
  }
  return LKV_CPU_ISA_SCALAR;
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  lkv_dtype wd = LKV_DTYPE_BF16;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    if (!std::strcmp(argv[i], "--f32")) wd = LKV_DTYPE_F32;
  }
  const int reps = quick ? 3 : 7;
  const int32_t threads = std::max(1u, std::thread::hardware_concurrency());
  ThreadPool pool(threads);
  const lkv_cpu_isa isa = best_isa();
  const GemvIsa gi = gemv_isa_for(isa);
  const double wb = wd == LKV_DTYPE_BF16 ? 2.0 : 4.0;
  std::printf("mla_decode_layer: fold W_UK into q_proj / W_UV into o_proj?  weights %s, %d threads, ISA %s\n",
              lkv_dtype_name(wd), threads, lkv_cpu_isa_name(isa));
  std::printf("%-22s %-4s %3s | %10s %10s %9s %9s | %9s %9s %7s\n", "shape", "side", "T", "MAC unfold",
              "MAC fold", "MB unfold", "MB fold", "ms unfold", "ms fold", "fold x");

  for (const Shape& s : kShapes) {
    const int64_t in = s.Q > 0 ? s.Q : s.E;  // the q projection's input width
    // Unfolded: q_nope rows of q_proj (or q_b_proj) [H Dn, in] + W_UK [H, Dn, R] (inside kv_b_proj
    // [H (Dn + Dv), R]); folded: [H R, in]. Output: W_UV [H, Dv, R] + o_proj [E, H Dv] vs [E, H R].
    Matrix q_nope(s.H * s.Dn * in, wd), kv_b(s.H * (s.Dn + s.Dv) * s.R, wd), o_proj(s.E * s.H * s.Dv, wd);
    Matrix q_fold(s.H * s.R * in, wd), o_fold(s.E * s.H * s.R, wd);
    for (int32_t T : {1, 8}) {
      std::vector<float> x(static_cast<size_t>(T * in), 0.01f), qn(static_cast<size_t>(T * s.H * s.Dn));
      std::vector<float> ql(static_cast<size_t>(T * s.H * s.R)), lat(static_cast<size_t>(T * s.H * s.R), 0.01f);
      std::vector<float> o(static_cast<size_t>(T * s.H * s.Dv)), out(static_cast<size_t>(T * s.E));
      const double q_unfold_ms = median_ms(
          [&] {
            gemv_parallel(q_nope.data(), wd, s.H * s.Dn, in, x.data(), in, T, qn.data(), s.H * s.Dn, gi, pool);
            pool.for_each(s.H, [&](int64_t h, int32_t) {
              gemv_transposed(kv_b.rows(h * (s.Dn + s.Dv), s.R), wd, s.Dn, s.R, qn.data() + h * s.Dn,
                              s.H * s.Dn, T, ql.data() + h * s.R, s.H * s.R, gi);
            });
          },
          reps);
      const double q_fold_ms = median_ms(
          [&] { gemv_parallel(q_fold.data(), wd, s.H * s.R, in, x.data(), in, T, ql.data(), s.H * s.R, gi, pool); },
          reps);
      const double o_unfold_ms = median_ms(
          [&] {
            pool.for_each(s.H, [&](int64_t h, int32_t) {
              gemv_rows(kv_b.rows(h * (s.Dn + s.Dv) + s.Dn, s.R), wd, 0, s.Dv, s.R, lat.data() + h * s.R,
                        s.H * s.R, T, o.data() + h * s.Dv, s.H * s.Dv, gi);
            });
            gemv_parallel(o_proj.data(), wd, s.E, s.H * s.Dv, o.data(), s.H * s.Dv, T, out.data(), s.E, gi, pool);
          },
          reps);
      const double o_fold_ms = median_ms(
          [&] { gemv_parallel(o_fold.data(), wd, s.E, s.H * s.R, lat.data(), s.H * s.R, T, out.data(), s.E, gi, pool); },
          reps);
      const double q_mac_u = static_cast<double>(s.H * s.Dn) * (in + s.R), q_mac_f = static_cast<double>(s.H * s.R) * in;
      const double o_mac_u = static_cast<double>(s.H * s.Dv) * (s.R + s.E), o_mac_f = static_cast<double>(s.E) * s.H * s.R;
      std::printf("%-22s %-4s %3d | %9.1fM %9.1fM %9.1f %9.1f | %9.3f %9.3f %6.2fx\n", s.name, "q", T,
                  q_mac_u * T / 1e6, q_mac_f * T / 1e6, q_mac_u * wb / 1e6, q_mac_f * wb / 1e6, q_unfold_ms,
                  q_fold_ms, q_fold_ms / q_unfold_ms);
      std::printf("%-22s %-4s %3d | %9.1fM %9.1fM %9.1f %9.1f | %9.3f %9.3f %6.2fx\n", s.name, "o", T,
                  o_mac_u * T / 1e6, o_mac_f * T / 1e6, o_mac_u * wb / 1e6, o_mac_f * wb / 1e6, o_unfold_ms,
                  o_fold_ms, o_fold_ms / o_unfold_ms);
    }
  }

  // The whole layer step (unfolded), bf16 cache, L cached tokens per sequence.
  std::printf("\nmla_decode_layer step (fast path, bf16 cache, weights %s)\n", lkv_dtype_name(wd));
  std::printf("%-22s %3s %6s | %9s | %12s\n", "shape", "B", "L", "ms", "weight GB/s");
  lkv_backend* backend = nullptr;
  lkv_backend_options opts{LKV_CPU_ISA_AUTO, threads};
  lkv_error err{};
  if (lkv_backend_create("cpu", &opts, &backend, &err) != LKV_OK) {
    std::fprintf(stderr, "backend: %s\n", err.message);
    return 1;
  }
  for (const Shape& s : kShapes) {
    const int64_t qk = s.Dn + s.P;
    Matrix w_q(s.Q > 0 ? 1 : s.H * qk * s.E, wd), w_qa(s.Q > 0 ? s.Q * s.E : 1, wd), w_qb(s.Q > 0 ? s.H * qk * s.Q : 1, wd);
    Matrix w_kva((s.R + s.P) * s.E, wd), w_kvb(s.H * (s.Dn + s.Dv) * s.R, wd), w_o(s.E * s.H * s.Dv, wd);
    std::vector<float> qnorm(static_cast<size_t>(std::max<int64_t>(1, s.Q)), 1.0f), kvnorm(static_cast<size_t>(s.R), 1.0f);
    const double weight_bytes =
        wb * static_cast<double>((s.Q > 0 ? s.Q * s.E + s.H * qk * s.Q : s.H * qk * s.E) + (s.R + s.P) * s.E +
                                 s.H * (s.Dn + s.Dv) * s.R + s.E * s.H * s.Dv);
    for (int32_t B : {1, 8}) {
      const int32_t L = quick ? 1024 : 4096, bs = 64;
      const int32_t per = (L + bs - 1) / bs;
      lkv_cache_layout layout{};
      lkv_cache_layout_get(LKV_DTYPE_BF16, static_cast<int32_t>(s.R), static_cast<int32_t>(s.P), 1, &layout, &err);
      std::vector<uint8_t> cache(static_cast<size_t>(B) * per * bs * layout.row_bytes, 0x3c);
      std::vector<int32_t> table(static_cast<size_t>(B) * per), lens(static_cast<size_t>(B), L), pos(static_cast<size_t>(B), L - 1);
      for (size_t i = 0; i < table.size(); ++i) table[i] = static_cast<int32_t>(i);
      std::vector<float> hidden(static_cast<size_t>(B * s.E), 0.01f), out(static_cast<size_t>(B * s.E));
      lkv_mla_decode_layer_params p{};
      p.batch = B;
      p.q_len = 1;
      p.hidden_size = static_cast<int32_t>(s.E);
      p.num_heads = static_cast<int32_t>(s.H);
      p.q_lora_rank = static_cast<int32_t>(s.Q);
      p.qk_nope_head_dim = static_cast<int32_t>(s.Dn);
      p.v_head_dim = static_cast<int32_t>(s.Dv);
      p.kv_lora_rank = static_cast<int32_t>(s.R);
      p.rope_dim = static_cast<int32_t>(s.P);
      p.rope_heads = 1;
      p.block_size = bs;
      p.num_blocks = B * per;
      p.max_blocks_per_seq = per;
      p.cache_dtype = LKV_DTYPE_BF16;
      p.weight_dtype = wd;
      p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(qk));
      p.norm_eps = 1e-6f;
      p.rope.style = LKV_ROPE_INTERLEAVED;
      p.rope.theta = 10000.0f;
      p.hidden = hidden.data();
      p.w_q = w_q.data();
      p.w_q_a = w_qa.data();
      p.q_a_norm_weight = qnorm.data();
      p.w_q_b = w_qb.data();
      p.w_kv_a = w_kva.data();
      p.kv_a_norm_weight = kvnorm.data();
      p.w_kv_b = w_kvb.data();
      p.w_o = w_o.data();
      p.positions = pos.data();
      p.cache = cache.data();
      p.block_table = table.data();
      p.seq_lens = lens.data();
      p.out = out.data();
      lkv_status st = LKV_OK;
      const double ms = median_ms([&] { st = lkv_mla_decode_layer(backend, &p, &err); }, reps);
      if (st != LKV_OK) {
        std::fprintf(stderr, "%s: %s\n", s.name, err.message);
        continue;
      }
      std::printf("%-22s %3d %6d | %9.3f | %12.1f\n", s.name, B, L, ms, weight_bytes / (ms * 1e6));
    }
  }
  lkv_backend_free(backend);
  return 0;
}
