// Every SIMD ISA compiled into this binary and supported by this CPU, against the scalar
// reference, on grids with odd head counts, ragged and zero lengths, shuffled block tables
// and NaN-poisoned unused rows, single- and multi-threaded.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cache-layout.h"
#include "core/gqa-cache.h"
#include "kernel-cases.h"
#include "test-backends.h"
#include "test-harness.h"

using namespace lkv;
using namespace lkv::test;

namespace {

std::vector<DecodeShape> decode_grid() {
  std::vector<DecodeShape> grid;
  const lkv_dtype dtypes[] = {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16, LKV_DTYPE_INT8,
                              LKV_DTYPE_FP8_E4M3};
  for (lkv_dtype d : dtypes) {
    grid.push_back({1, 1, 16, 512, 64, 1, 64, d, {300}});
    grid.push_back({3, 1, 7, 40, 8, 1, 16, d, {0, 37, 129}});
    grid.push_back({2, 3, 5, 33, 6, 1, 7, d, {2, 50}});       // Sq > len for one query row
    grid.push_back({2, 2, 8, 24, 4, 4, 1, d, {9, 17}});       // MHA2MLA rope heads
    grid.push_back({1, 1, 128, 64, 16, 1, 128, d, {1000}});
    grid.push_back({2, 1, 3, 17, 0, 1, 5, d, {11, 0}});       // no rope part
    grid.push_back({1, 1, 32, 80, 8, 1, 32, d, {300}});       // 2 m-vectors, P.C tail rows
    grid.push_back({1, 2, 8, 104, 8, 1, 16, d, {260}});       // R = 3 x 32 + 8, Sq x H = 16
    // Several tiles per split over one-token and odd pages: the prefetch stream's runs.
    grid.push_back({2, 1, 16, 64, 16, 1, 1, d, {700, 385}});
    grid.push_back({1, 1, 16, 64, 16, 1, 3, d, {1100}});
  }
  return grid;
}

}  // namespace

TEST(decode_simd_matches_reference) {
  const auto isas = simd_isas();
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  uint32_t seed = 1;
  for (const auto& shape : decode_grid()) {
    const DecodeCase c = make_decode_case(shape, seed++);
    std::vector<float> want(c.out_size()), want_lse(c.lse_size());
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK_MSG(lkv_mla_decode(ref.handle, &p, &err) == LKV_OK, err.message);
    for (lkv_cpu_isa isa : isas) {
      for (int32_t threads : {1, 2, 3}) {
        Backend simd(isa, threads);
        std::vector<float> got(c.out_size(), NAN), got_lse(c.lse_size(), NAN);
        auto q = c.params(got.data(), got_lse.data());
        CHECK_MSG(lkv_mla_decode(simd.handle, &q, &err) == LKV_OK, err.message);
        const double e = relative_error(got.data(), want.data(), got.size());
        const double el = relative_error(got_lse.data(), want_lse.data(), got_lse.size());
        const std::string what = std::string(lkv_cpu_isa_name(isa)) + " threads=" +
                                 std::to_string(threads) + " " + shape.describe();
        CHECK_MSG(e < tolerance(shape.dtype), "out rel err " + std::to_string(e) + " " + what);
        CHECK_MSG(el < tolerance(shape.dtype), "lse rel err " + std::to_string(el) + " " + what);
      }
    }
  }
}

TEST(decode_reference_handles_empty_and_causal_rows) {
  // Sq = 3 with len = 2: query 0 sees nothing (out 0, lse -inf), query 1 sees token 0.
  DecodeShape shape{1, 3, 2, 8, 2, 1, 4, LKV_DTYPE_F32, {2}};
  const DecodeCase c = make_decode_case(shape, 7);
  std::vector<float> out(c.out_size()), lse(c.lse_size());
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  lkv_error err{};
  auto p = c.params(out.data(), lse.data());
  CHECK(lkv_mla_decode(ref.handle, &p, &err) == LKV_OK);
  for (int r = 0; r < 8; ++r) CHECK(out[r] == 0.0f);
  CHECK(std::isinf(lse[0]) && lse[0] < 0);
  // Query 1 sees exactly token 0: out equals token 0's latent.
  std::vector<float> latent(8), rope(2);
  read_row(cache_row(c.cache.data(), c.layout, c.block_table.data(), 4, 0), c.layout,
           LKV_DTYPE_F32, 8, 2, latent.data(), rope.data());
  for (int r = 0; r < 8; ++r) CHECK(std::fabs(out[static_cast<size_t>(1) * 2 * 8 + r] - latent[r]) < 1e-6f);
}

TEST(project_append_simd_matches_reference) {
  const auto isas = simd_isas();
  std::vector<AppendShape> grid;
  for (lkv_dtype cd : {LKV_DTYPE_F32, LKV_DTYPE_BF16, LKV_DTYPE_F16, LKV_DTYPE_INT8, LKV_DTYPE_FP8_E4M3}) {
    for (lkv_dtype wd : {LKV_DTYPE_F32, LKV_DTYPE_BF16, LKV_DTYPE_F16}) {
      grid.push_back({5, 96, 64, 16, 1, 4, cd, wd, true, LKV_ROPE_INTERLEAVED});
      grid.push_back({7, 33, 17, 6, 3, 3, cd, wd, false, LKV_ROPE_HALF_SPLIT});
      grid.push_back({1, 512, 128, 32, 1, 16, cd, wd, true, LKV_ROPE_HALF_SPLIT});
      grid.push_back({1, 100, 40, 6, 1, 8, cd, wd, true, LKV_ROPE_INTERLEAVED});  // 1 token, E tail, 46 rows
      grid.push_back({2, 1100, 24, 8, 1, 8, cd, wd, true, LKV_ROPE_INTERLEAVED});  // 2 tokens, 3 E chunks
    }
  }
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  uint32_t seed = 100;
  for (const auto& shape : grid) {
    const AppendCase c = make_append_case(shape, seed++);
    std::vector<uint8_t> want(c.cache_bytes(), 0xff);
    lkv_error err{};
    auto p = c.params(want.data());
    CHECK_MSG(lkv_mla_project_append(ref.handle, &p, &err) == LKV_OK, err.message);
    const int32_t rope_width = shape.rope_dim * shape.rope_heads;
    for (lkv_cpu_isa isa : isas) {
      Backend simd(isa, 2);
      std::vector<uint8_t> got(c.cache_bytes(), 0xff);
      auto q = c.params(got.data());
      CHECK_MSG(lkv_mla_project_append(simd.handle, &q, &err) == LKV_OK, err.message);
      std::vector<float> wl(shape.rank), wr(rope_width), gl(shape.rank), gr(rope_width);
      for (int32_t t = 0; t < shape.tokens; ++t) {
        if (c.slots[t] < 0) continue;
        const size_t off = static_cast<size_t>(c.slots[t]) * c.layout.row_bytes;
        read_row(want.data() + off, c.layout, shape.cache_dtype, shape.rank, rope_width, wl.data(), wr.data());
        read_row(got.data() + off, c.layout, shape.cache_dtype, shape.rank, rope_width, gl.data(), gr.data());
        // One quantization step of the cache type is the most two correct kernels may differ.
        const double tol = shape.cache_dtype == LKV_DTYPE_F32 ? 1e-5
                           : shape.cache_dtype == LKV_DTYPE_INT8 ? 1.5 / 127
                           : shape.cache_dtype == LKV_DTYPE_FP8_E4M3 ? 0.07 : 1e-2;
        const std::string what = std::string(lkv_cpu_isa_name(isa)) + " " + shape.describe();
        CHECK_MSG(relative_error(gl.data(), wl.data(), wl.size()) < tol, "latent " + what);
        CHECK_MSG(relative_error(gr.data(), wr.data(), wr.size()) < (rope_width ? 1e-2 : 1.0), "rope " + what);
      }
      // Rows nobody wrote stay untouched.
      std::vector<bool> written(c.cache_bytes() / c.layout.row_bytes, false);
      for (auto s : c.slots) if (s >= 0) written[static_cast<size_t>(s)] = true;
      for (size_t r = 0; r < written.size(); ++r) {
        if (written[r]) continue;
        for (size_t i = 0; i < c.layout.row_bytes; ++i) CHECK(got[r * c.layout.row_bytes + i] == 0xff);
      }
    }
  }
}

// ---- gqa_decode / gqa_append --------------------------------------------------------------

TEST(gqa_decode_simd_matches_reference) {
  const auto isas = simd_isas();
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  uint32_t seed = 500;
  for (const auto& shape : gqa_grid()) {
    const GqaCase c = make_gqa_case(shape, seed++);
    std::vector<float> want(c.out_size()), want_lse(c.lse_size());
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK_MSG(lkv_gqa_decode(ref.handle, &p, &err) == LKV_OK, err.message);
    for (lkv_cpu_isa isa : isas) {
      for (int32_t threads : {1, 2, 3}) {
        Backend simd(isa, threads);
        const std::vector<uint8_t> before = c.cache;
        std::vector<float> got(c.out_size(), NAN), got_lse(c.lse_size(), NAN);
        auto q = c.params(got.data(), got_lse.data());
        CHECK_MSG(lkv_gqa_decode(simd.handle, &q, &err) == LKV_OK, err.message);
        const double e = relative_error(got.data(), want.data(), got.size());
        const double el = relative_error(got_lse.data(), want_lse.data(), got_lse.size());
        const std::string what = std::string(lkv_cpu_isa_name(isa)) + " threads=" + std::to_string(threads) +
                                 " " + shape.describe();
        CHECK_MSG(e < tolerance(shape.dtype), "gqa out rel err " + std::to_string(e) + " " + what);
        CHECK_MSG(el < tolerance(shape.dtype), "gqa lse rel err " + std::to_string(el) + " " + what);
        CHECK_MSG(c.cache == before, "gqa cache modified " + what);
        // Without lse.
        std::vector<float> got2(c.out_size(), NAN);
        auto q2 = c.params(got2.data(), nullptr);
        CHECK_MSG(lkv_gqa_decode(simd.handle, &q2, &err) == LKV_OK, err.message);
        CHECK_MSG(relative_error(got2.data(), want.data(), got2.size()) < tolerance(shape.dtype), "gqa no-lse " + what);
      }
    }
  }
}

TEST(gqa_append_simd_matches_reference_bit_exact) {
  const auto isas = simd_isas();
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  std::mt19937 rng(77);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, -3e-39f, 65519.0f, 65520.0f,
                            -1e9f, 6.0e-8f, 3.0e-8f, 1.00390625f, 1.01171875f, 3.4e38f};
  for (lkv_dtype d : {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16}) {
    for (int32_t kvh : {1, 3, 8}) {
      for (int32_t D : {5, 16, 24, 128}) {
        const int32_t T = 9, bs = 4, nb = 5;
        const int64_t width = static_cast<int64_t>(kvh) * D;
        std::vector<float> k(T * width), v(T * width);
        for (size_t i = 0; i < k.size(); ++i) {
          k[i] = i % 7 == 3 ? specials[i % 16] : normal(rng) * (i % 5 == 0 ? 1e4f : 1.0f);
          v[i] = i % 11 == 2 ? specials[(i / 3) % 16] : normal(rng);
        }
        std::vector<int64_t> slots = {3, 0, -1, 19, 7, 12, -5, 8, 15};
        lkv_gqa_append_params p{};
        p.num_tokens = T;
        p.num_kv_heads = kvh;
        p.head_dim = D;
        p.block_size = bs;
        p.num_blocks = nb;
        p.cache_dtype = d;
        p.k = k.data();
        p.v = v.data();
        p.slot_mapping = slots.data();
        const size_t bytes = static_cast<size_t>(nb) * bs * 2 * width * lkv_dtype_size(d);
        std::vector<uint8_t> want(bytes, 0xa5);
        p.cache = want.data();
        lkv_error err{};
        CHECK_MSG(lkv_gqa_append(ref.handle, &p, &err) == LKV_OK, err.message);
        for (lkv_cpu_isa isa : isas) {
          for (int32_t threads : {1, 2}) {
            Backend simd(isa, threads);
            std::vector<uint8_t> got(bytes, 0xa5);
            p.cache = got.data();
            CHECK_MSG(lkv_gqa_append(simd.handle, &p, &err) == LKV_OK, err.message);
            CHECK_MSG(got == want, std::string("gqa_append differs: ") + lkv_cpu_isa_name(isa) + " " +
                                       lkv_dtype_name(d) + " kvh=" + std::to_string(kvh) + " D=" + std::to_string(D));
            p.num_tokens = 1;  // the single-token path too
            std::vector<uint8_t> want1(bytes, 0xa5), got1(bytes, 0xa5);
            p.cache = want1.data();
            lkv_gqa_append(ref.handle, &p, &err);
            p.cache = got1.data();
            lkv_gqa_append(simd.handle, &p, &err);
            CHECK_MSG(got1 == want1, std::string("gqa_append T=1 differs: ") + lkv_cpu_isa_name(isa));
            p.num_tokens = T;
          }
        }
      }
    }
  }
}
