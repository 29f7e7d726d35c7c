// lkv_gemm against the float64 reference (gemm_reference) on every ISA this machine runs, for
// the row-product path (M < 8) and the packed AVX-512 path, bf16 weights, bias and accumulate,
// plus the validation contract.
// aarch64 g++ 12 crashes (internal compiler error in vect_transform_reduction) vectorising this
// file's float64 reductions; a test gains nothing from vectorisation, so it is off here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-vectorize")
#endif

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cpu/gemm/gemm.h"
#include "latentkv.h"
#include "test-harness.h"

using lkv::test::record_failure;

namespace {

uint16_t to_bf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
}

}  // namespace

TEST(gemm_matches_reference_on_every_isa) {
  const uint32_t usable = lkv_cpu_supported_isa_mask() & lkv_cpu_compiled_isa_mask();
  const int shapes[][3] = {{1, 1, 1}, {1, 37, 19}, {3, 50, 33}, {8, 6, 16}, {9, 49, 17}, {33, 97, 257}, {70, 53, 513}};
  std::mt19937 gen(42);
  std::normal_distribution<float> nd;
  for (int isa = LKV_CPU_ISA_SCALAR; isa <= LKV_CPU_ISA_NEON; ++isa) {
    if (!(usable & (1u << isa))) continue;
    lkv_backend_options o{static_cast<lkv_cpu_isa>(isa), 2};
    lkv_backend* b = nullptr;
    lkv_error err{};
    if (lkv_backend_create("cpu", &o, &b, &err) != LKV_OK) {
      record_failure(__FILE__, __LINE__, std::string("backend create: ") + err.message);
      continue;
    }
    for (const auto& s : shapes) {
      const int M = s[0], N = s[1], K = s[2];
      for (int bf16 = 0; bf16 < 2; ++bf16) {
        for (int accumulate = 0; accumulate < 2; ++accumulate) {
          std::vector<float> a(M * K), wf(N * K), bias(N), c0(M * N);
          for (auto& v : a) v = nd(gen);
          for (auto& v : wf) v = nd(gen);
          for (auto& v : bias) v = nd(gen);
          for (auto& v : c0) v = nd(gen);
          std::vector<uint16_t> wb(N * K);
          for (int i = 0; i < N * K; ++i) wb[i] = to_bf16(wf[i]);
          lkv_gemm_params p{};
          p.m = M;
          p.n = N;
          p.k = K;
          p.weight_dtype = bf16 ? LKV_DTYPE_BF16 : LKV_DTYPE_F32;
          p.accumulate = accumulate;
          p.a = a.data();
          p.w = bf16 ? static_cast<const void*>(wb.data()) : wf.data();
          p.bias = accumulate ? bias.data() : nullptr;
          std::vector<float> got = c0, want = c0;
          p.c = got.data();
          CHECK(lkv_gemm(b, &p, &err) == LKV_OK);
          p.c = want.data();
          lkv::cpu::gemm_reference(p, nullptr);
          double worst = 0;
          for (int i = 0; i < M * N; ++i) {
            worst = std::fmax(worst, std::fabs(got[i] - want[i]) / (1.0 + std::fabs(want[i])));
          }
          CHECK_MSG(worst < 1e-4 * std::sqrt(static_cast<double>(K)),
                    std::string("gemm ") + lkv_cpu_isa_name(static_cast<lkv_cpu_isa>(isa)) + " M=" +
                        std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K) +
                        " err " + std::to_string(worst));
        }
      }
    }
    lkv_backend_free(b);
  }
}

TEST(gemm_rejects_bad_input) {
  lkv_backend* b = nullptr;
  lkv_error err{};
  CHECK(lkv_backend_create("cpu", nullptr, &b, &err) == LKV_OK);
  float a[8] = {}, w[12] = {}, c[6] = {};
  lkv_gemm_params ok{2, 3, 4, LKV_DTYPE_F32, 0, a, w, nullptr, c};
  CHECK(lkv_gemm(b, &ok, &err) == LKV_OK);
  lkv_gemm_params p = ok;
  p.n = 0;
  CHECK(lkv_gemm(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  p = ok;
  p.k = 0;
  CHECK(lkv_gemm(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  p = ok;
  p.weight_dtype = LKV_DTYPE_F16;
  CHECK(lkv_gemm(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  p = ok;
  p.accumulate = 3;
  CHECK(lkv_gemm(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  p = ok;
  p.c = nullptr;
  CHECK(lkv_gemm(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK(std::strstr(err.message, "gemm") != nullptr);
  CHECK(lkv_gemm(nullptr, &ok, &err) == LKV_ERR_INVALID_ARGUMENT);
  lkv_backend_free(b);
}
