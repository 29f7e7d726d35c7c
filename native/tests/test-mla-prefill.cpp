// mla_prefill: the tiled CPU kernel of every ISA and thread count against the float64 reference;
// the reference against the absorbed form (mla_decode with Sq = T on W_UK^T q_nope, then W_UV),
// computed here in double from the reference decode, so the contract's equivalence is checked
// by a path that shares no code with the prefill kernels; and bad input rejected.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/numeric.h"
#include "kernel-cases.h"
#include "test-backends.h"
#include "test-harness.h"

using namespace lkv;
using namespace lkv::test;

namespace {

struct PrefillCase {
  DecodeCase base;  // cache, block table, q_rope, softmax scale
  int32_t Dn = 0, Dv = 0;
  lkv_dtype weight_dtype = LKV_DTYPE_F32;
  std::vector<float> q_nope;   // [B, T, H, Dn]
  std::vector<float> w_f32;    // kv_b_proj [H (Dn + Dv), R] as floats (bf16-exact for bf16)
  std::vector<uint8_t> w;      // the same in weight_dtype

  size_t out_size() const {
    return static_cast<size_t>(base.shape.batch) * base.shape.q_len * base.shape.heads * Dv;
  }
  size_t lse_size() const { return static_cast<size_t>(base.shape.batch) * base.shape.heads * base.shape.q_len; }

  lkv_mla_prefill_params params(float* out, float* lse) const {
    const DecodeShape& s = base.shape;
    lkv_mla_prefill_params p{};
    p.batch = s.batch;
    p.q_len = s.q_len;
    p.num_heads = s.heads;
    p.kv_lora_rank = s.rank;
    p.rope_dim = s.rope_dim;
    p.rope_heads = s.rope_heads;
    p.qk_nope_head_dim = Dn;
    p.v_head_dim = Dv;
    p.block_size = s.block_size;
    p.num_blocks = base.num_blocks;
    p.max_blocks_per_seq = base.max_blocks;
    p.cache_dtype = s.dtype;
    p.weight_dtype = weight_dtype;
    p.softmax_scale = base.softmax_scale;
    p.q_nope = q_nope.data();
    p.q_rope = s.rope_dim > 0 ? base.q_rope.data() : nullptr;
    p.w_kv_b = w.data();
    p.cache = base.cache.data();
    p.block_table = base.block_table.data();
    p.seq_lens = s.seq_lens.data();
    p.out = out;
    p.lse = lse;
    return p;
  }
};

PrefillCase make_prefill_case(const DecodeShape& shape, int32_t Dn, int32_t Dv, lkv_dtype wd, uint32_t seed) {
  PrefillCase c;
  c.base = make_decode_case(shape, seed);
  c.Dn = Dn;
  c.Dv = Dv;
  c.weight_dtype = wd;
  std::mt19937 rng(seed * 7919u + 1);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  c.q_nope.resize(static_cast<size_t>(shape.batch) * shape.q_len * shape.heads * Dn);
  for (auto& v : c.q_nope) v = normal(rng);
  const size_t wn = static_cast<size_t>(shape.heads) * (Dn + Dv) * shape.rank;
  c.w_f32.resize(wn);
  const float ws = 1.0f / std::sqrt(static_cast<float>(shape.rank));
  for (auto& v : c.w_f32) v = normal(rng) * ws;
  if (wd == LKV_DTYPE_BF16) {
    c.w.resize(wn * 2);
    for (size_t i = 0; i < wn; ++i) {
      const uint16_t h = f32_to_bf16(c.w_f32[i]);
      c.w_f32[i] = bf16_to_f32(h);
      std::memcpy(c.w.data() + 2 * i, &h, 2);
    }
  } else {
    c.w.resize(wn * 4);
    std::memcpy(c.w.data(), c.w_f32.data(), wn * 4);
  }
  return c;
}

struct PrefillShape {
  DecodeShape decode;  // q_len is T
  int32_t Dn, Dv;
  lkv_dtype weight_dtype;
};

std::vector<PrefillShape> prefill_grid() {
  const lkv_dtype F32 = LKV_DTYPE_F32, BF16 = LKV_DTYPE_BF16;
  return {
      // DeepSeek-V2-Lite's head (R 512, P 64, Dn 128, Dv 128), a prompt chunk after a prefix.
      {{1, 40, 4, 512, 64, 1, 64, BF16, {300}}, 128, 128, BF16},
      // Every cache dtype, ragged and empty sequences, T longer than a sequence (early queries
      // see nothing), several rope groups, odd sizes, pages of 1 and of 16.
      {{3, 5, 6, 40, 8, 2, 16, F32, {37, 0, 5}}, 24, 16, F32},
      {{2, 7, 3, 33, 6, 1, 1, LKV_DTYPE_F16, {50, 3}}, 17, 9, F32},
      {{2, 17, 4, 64, 0, 1, 8, LKV_DTYPE_INT8, {90, 17}}, 32, 24, BF16},
      {{1, 33, 2, 96, 16, 2, 32, LKV_DTYPE_FP8_E4M3, {700}}, 48, 40, BF16},
      // Tiles: H (Dn + Dv) wide enough that a tile is fewer tokens than the sequence.
      {{1, 9, 64, 64, 8, 1, 64, F32, {600}}, 128, 128, F32},
  };
}

std::string describe(const PrefillShape& s) {
  return s.decode.describe() + " Dn=" + std::to_string(s.Dn) + " Dv=" + std::to_string(s.Dv) + " w=" +
         lkv_dtype_name(s.weight_dtype);
}

}  // namespace

TEST(prefill_simd_matches_reference) {
  const auto isas = simd_isas();
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  uint32_t seed = 100;
  for (const auto& shape : prefill_grid()) {
    const PrefillCase c = make_prefill_case(shape.decode, shape.Dn, shape.Dv, shape.weight_dtype, seed++);
    std::vector<float> want(c.out_size(), NAN), want_lse(c.lse_size(), NAN);
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK_MSG(lkv_mla_prefill(ref.handle, &p, &err) == LKV_OK, err.message);
    std::vector<lkv_cpu_isa> all = isas;
    all.push_back(LKV_CPU_ISA_AUTO);
    for (lkv_cpu_isa isa : all) {
      for (int32_t threads : {1, 3}) {
        for (lkv_prefill_form form : {LKV_PREFILL_AUTO, LKV_PREFILL_ABSORBED, LKV_PREFILL_NON_ABSORBED}) {
          Backend fast(isa, threads);
          std::vector<float> got(c.out_size(), NAN), got_lse(c.lse_size(), NAN);
          auto q = c.params(got.data(), got_lse.data());
          q.form = form;
          CHECK_MSG(lkv_mla_prefill(fast.handle, &q, &err) == LKV_OK, err.message);
          const double e = relative_error(got.data(), want.data(), got.size());
          const double el = relative_error(got_lse.data(), want_lse.data(), got_lse.size());
          const std::string what = std::string(lkv_cpu_isa_name(isa)) + " threads=" + std::to_string(threads) +
                                   " form=" + std::to_string(form) + " " + describe(shape);
          // Non-absorbed: f32 arithmetic on exactly decoded rows. Absorbed: mla_decode's own
          // precision (its SIMD kernels may round the query to bf16 for 16-bit caches).
          const double tol = form == LKV_PREFILL_NON_ABSORBED ? 1e-4 : tolerance(shape.decode.dtype);
          CHECK_MSG(e < tol, "out rel err " + std::to_string(e) + " " + what);
          CHECK_MSG(el < tol, "lse rel err " + std::to_string(el) + " " + what);
        }
      }
    }
  }
}

TEST(prefill_equals_absorbed_decode) {
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  uint32_t seed = 300;
  for (const auto& shape : prefill_grid()) {
    PrefillCase c = make_prefill_case(shape.decode, shape.Dn, shape.Dv, shape.weight_dtype, seed++);
    const DecodeShape& s = c.base.shape;
    const int32_t R = s.rank, H = s.heads, T = s.q_len, Dn = c.Dn, Dv = c.Dv;
    std::vector<float> want(c.out_size()), want_lse(c.lse_size());
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK_MSG(lkv_mla_prefill(ref.handle, &p, &err) == LKV_OK, err.message);
    // Absorbed: q_latent = W_UK,h^T q_nope (rounded to f32, as a caller would hand it over),
    // decode with Sq = T, then out = W_UV,h latent_out.
    DecodeCase d = c.base;
    for (int64_t qi = 0; qi < static_cast<int64_t>(s.batch) * T * H; ++qi) {
      const int32_t h = static_cast<int32_t>(qi % H);
      for (int32_t r = 0; r < R; ++r) {
        double acc = 0.0;
        for (int32_t k = 0; k < Dn; ++k) {
          acc += static_cast<double>(c.q_nope[qi * Dn + k]) * c.w_f32[(static_cast<size_t>(h) * (Dn + Dv) + k) * R + r];
        }
        d.q_latent[qi * R + r] = static_cast<float>(acc);
      }
    }
    std::vector<float> latent_out(static_cast<size_t>(s.batch) * T * H * R), lse(c.lse_size());
    auto dp = d.params(latent_out.data(), lse.data());
    CHECK_MSG(lkv_mla_decode(ref.handle, &dp, &err) == LKV_OK, err.message);
    std::vector<float> absorbed(c.out_size());
    for (int64_t qi = 0; qi < static_cast<int64_t>(s.batch) * T * H; ++qi) {
      const int32_t h = static_cast<int32_t>(qi % H);
      for (int32_t v = 0; v < Dv; ++v) {
        double acc = 0.0;
        for (int32_t r = 0; r < R; ++r) {
          acc += static_cast<double>(c.w_f32[(static_cast<size_t>(h) * (Dn + Dv) + Dn + v) * R + r]) *
                 latent_out[qi * R + r];
        }
        absorbed[qi * Dv + v] = static_cast<float>(acc);
      }
    }
    // The two orders differ only by the f32 rounding of q_latent and of the latent output.
    const double e = relative_error(absorbed.data(), want.data(), want.size());
    CHECK_MSG(e < 1e-5, "absorbed vs prefill rel err " + std::to_string(e) + " " + describe(shape));
    CHECK_MSG(relative_error(lse.data(), want_lse.data(), lse.size()) < 1e-5, "lse differs " + describe(shape));
  }
}

TEST(prefill_rejects_bad_params) {
  Backend cpu(LKV_CPU_ISA_AUTO, 2);
  const PrefillCase c = make_prefill_case({1, 3, 2, 16, 4, 1, 4, LKV_DTYPE_F32, {10}}, 8, 8, LKV_DTYPE_F32, 9);
  std::vector<float> out(c.out_size(), 7.0f);
  lkv_error err{};
  auto expect_invalid = [&](lkv_mla_prefill_params p, const char* needle) {
    const lkv_status s = lkv_mla_prefill(cpu.handle, &p, &err);
    CHECK_MSG(s == LKV_ERR_INVALID_ARGUMENT, std::string("expected INVALID_ARGUMENT for ") + needle);
    CHECK_MSG(std::strstr(err.message, needle) != nullptr, std::string("message lacks '") + needle + "': " + err.message);
  };
  auto p = c.params(out.data(), nullptr);
  p.q_len = 0;
  expect_invalid(p, "q_len");
  p = c.params(out.data(), nullptr);
  p.v_head_dim = 0;
  expect_invalid(p, "v_head_dim");
  p = c.params(out.data(), nullptr);
  p.weight_dtype = LKV_DTYPE_F16;
  expect_invalid(p, "weight_dtype");
  p = c.params(out.data(), nullptr);
  p.w_kv_b = nullptr;
  expect_invalid(p, "w_kv_b");
  p = c.params(out.data(), nullptr);
  p.softmax_scale = NAN;
  expect_invalid(p, "softmax_scale");
  p = c.params(out.data(), nullptr);
  p.form = static_cast<lkv_prefill_form>(7);
  expect_invalid(p, "form");
  std::vector<int32_t> long_lens = {1000};
  p = c.params(out.data(), nullptr);
  p.seq_lens = long_lens.data();
  CHECK(lkv_mla_prefill(cpu.handle, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  for (float v : out) CHECK_MSG(v == 7.0f, "a rejected call wrote to out");
}
