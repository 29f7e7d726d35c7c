// lkv_mtla_merge_append against an inline float64 computation of latentkv.h's formula (LayerNorm,
// chunk position encoding, sigmoid merge weight, running sum per chunk, newest rope key), for f32
// and bf16 caches and two sequences interleaved in one call, plus the validation contract: a
// token of another chunk on an open chunk's slot is refused before anything is written.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-tree-vectorize")  // as test-gemm.cpp: aarch64 g++ 12 and f64 reductions
#endif

#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/cache-layout.h"
#include "latentkv.h"
#include "test-harness.h"

namespace {

constexpr int32_t kR = 8, kP = 4, kD = 3, kStride = 3, kBlock = 4;

struct Case {
  int32_t T = 0;
  std::vector<float> latent, k_rope, gamma, beta, wc, bc, wp, bp;
  std::vector<int32_t> index;   // token index in its sequence
  std::vector<int32_t> seq;     // sequence of each token
  std::vector<int64_t> slots;   // slot of each token's chunk
};

// Two sequences of 7 and 5 tokens, their tokens interleaved; sequence q's chunk j lives in slot
// 8 * q + j (pages of 4 rows: sequence 0 in pages 0-1, sequence 1 in pages 2-3).
Case make_case(uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Case c;
  const int32_t lens[2] = {7, 5};
  int32_t next[2] = {0, 0};
  while (next[0] < lens[0] || next[1] < lens[1]) {
    for (int32_t q = 0; q < 2; ++q) {
      if (next[q] >= lens[q]) continue;
      c.seq.push_back(q);
      c.index.push_back(next[q]);
      c.slots.push_back(8 * q + next[q] / kStride);
      ++next[q];
    }
  }
  c.T = static_cast<int32_t>(c.seq.size());
  auto fill = [&](std::vector<float>& v, size_t n, float scale) {
    v.resize(n);
    for (auto& x : v) x = u(g) * scale;
  };
  fill(c.latent, static_cast<size_t>(c.T) * kR, 2.0f);
  fill(c.k_rope, static_cast<size_t>(c.T) * kP, 1.0f);
  fill(c.gamma, kR, 1.0f);
  fill(c.beta, kR, 0.3f);
  fill(c.wc, static_cast<size_t>(kD) * kR, 0.7f);
  fill(c.bc, kD, 0.2f);
  fill(c.wp, static_cast<size_t>(kD) * kR, 0.7f);
  fill(c.bp, kD, 0.2f);
  return c;
}

// Expected rows, in double: [slot][R + P], and w_t per token.
void expected(const Case& c, float eps, std::vector<double>& rows, std::vector<double>& w) {
  rows.assign(16 * static_cast<size_t>(kR + kP), 0.0);
  w.assign(static_cast<size_t>(c.T), 0.0);
  for (int32_t t = 0; t < c.T; ++t) {
    const float* x = c.latent.data() + static_cast<size_t>(t) * kR;
    double mean = 0, var = 0;
    for (int32_t r = 0; r < kR; ++r) mean += x[r];
    mean /= kR;
    for (int32_t r = 0; r < kR; ++r) var += (x[r] - mean) * (x[r] - mean);
    var /= kR;
    double ch[kR];
    for (int32_t r = 0; r < kR; ++r) ch[r] = (x[r] - mean) / std::sqrt(var + eps) * c.gamma[r] + c.beta[r];
    const int32_t j = c.index[t] / kStride;
    double pe[kR];
    for (int32_t k = 0; k < kR / 2; ++k) {
      const double f = std::pow(10000.0, -2.0 * k / kR);
      pe[2 * k] = std::sin(j * f);
      pe[2 * k + 1] = std::cos(j * f);
    }
    double logit = 0;
    for (int32_t d = 0; d < kD; ++d) {
      double a = c.bc[d], b = c.bp[d];
      for (int32_t r = 0; r < kR; ++r) {
        a += static_cast<double>(c.wc[static_cast<size_t>(d) * kR + r]) * pe[r];
        b += static_cast<double>(c.wp[static_cast<size_t>(d) * kR + r]) * ch[r];
      }
      logit += a * b;
    }
    const double wt = 1.0 / (1.0 + std::exp(-logit));
    w[static_cast<size_t>(t)] = wt;
    double* row = rows.data() + static_cast<size_t>(c.slots[t]) * (kR + kP);
    const bool opens = c.index[t] % kStride == 0;
    for (int32_t r = 0; r < kR; ++r) row[r] = (opens ? 0.0 : row[r]) + wt * ch[r];
    for (int32_t k = 0; k < kP; ++k) row[kR + k] = c.k_rope[static_cast<size_t>(t) * kP + k];
  }
}

lkv_mtla_merge_append_params params(const Case& c, lkv_dtype dt, void* cache, float* weights) {
  lkv_mtla_merge_append_params p{};
  p.num_tokens = c.T;
  p.kv_lora_rank = kR;
  p.rope_dim = kP;
  p.rope_heads = 1;
  p.hyper_dim = kD;
  p.stride = kStride;
  p.block_size = kBlock;
  p.num_blocks = 4;
  p.cache_dtype = dt;
  p.norm_eps = 1e-5f;
  p.latent = c.latent.data();
  p.k_rope = c.k_rope.data();
  p.norm_weight = c.gamma.data();
  p.norm_bias = c.beta.data();
  p.w_fc_c = c.wc.data();
  p.b_fc_c = c.bc.data();
  p.w_fc_p = c.wp.data();
  p.b_fc_p = c.bp.data();
  p.token_index = c.index.data();
  p.slot_mapping = c.slots.data();
  p.cache = cache;
  p.merge_weight = weights;
  return p;
}

}  // namespace

TEST(mtla_merge_append_matches_float64_formula) {
  const Case c = make_case(11);
  std::vector<double> want, want_w;
  expected(c, 1e-5f, want, want_w);
  const lkv_dtype dtypes[] = {LKV_DTYPE_F32, LKV_DTYPE_BF16};
  for (lkv_dtype dt : dtypes) {
    const lkv_cache_layout lay = lkv::cache_layout(dt, kR, kP);
    std::vector<uint8_t> cache(16 * lay.row_bytes, 0);
    std::vector<float> w(static_cast<size_t>(c.T), -1.0f);
    lkv_mtla_merge_append_params p = params(c, dt, cache.data(), w.data());
    lkv_error err{};
    CHECK_MSG(lkv_mtla_merge_append(nullptr, &p, &err) == LKV_OK, err.message);
    // f32 keeps the exact running sum; bf16 re-rounds the open row after each merge.
    const double tol = dt == LKV_DTYPE_F32 ? 1e-5 : 2e-2;
    double worst = 0, worst_w = 0;
    for (int32_t slot : {0, 1, 2, 8, 9}) {
      float lat[kR], rope[kP];
      lkv::read_row(cache.data() + static_cast<size_t>(slot) * lay.row_bytes, lay, dt, kR, kP, lat, rope);
      const double* e = want.data() + static_cast<size_t>(slot) * (kR + kP);
      for (int32_t r = 0; r < kR; ++r) worst = std::fmax(worst, std::fabs(lat[r] - e[r]) / (1.0 + std::fabs(e[r])));
      for (int32_t k = 0; k < kP; ++k) worst = std::fmax(worst, std::fabs(rope[k] - e[kR + k]) / (1.0 + std::fabs(e[kR + k])));
    }
    for (int32_t t = 0; t < c.T; ++t) worst_w = std::fmax(worst_w, std::fabs(w[static_cast<size_t>(t)] - want_w[static_cast<size_t>(t)]));
    CHECK_MSG(worst < tol, std::string("cache rows differ from the float64 formula by ") + std::to_string(worst));
    CHECK_MSG(worst_w < 1e-6, std::string("merge weights differ by ") + std::to_string(worst_w));
    // Slots no chunk uses stay untouched (zero).
    for (size_t i = 3 * lay.row_bytes; i < 8 * lay.row_bytes; ++i) CHECK(cache[i] == 0);
  }
}

TEST(mtla_merge_append_refuses_a_foreign_token_on_an_open_slot) {
  Case c = make_case(12);
  // Token 3 is sequence 1's index 1; on slot 0 it follows sequence 0's index 1 (token 2), so the
  // slot's token indices stop increasing.
  c.slots[3] = c.slots[0];
  const lkv_cache_layout lay = lkv::cache_layout(LKV_DTYPE_F32, kR, kP);
  std::vector<uint8_t> cache(16 * lay.row_bytes, 0x5a);
  const std::vector<uint8_t> before = cache;
  lkv_mtla_merge_append_params p = params(c, LKV_DTYPE_F32, cache.data(), nullptr);
  lkv_error err{};
  const lkv_status st = lkv_mtla_merge_append(nullptr, &p, &err);
  CHECK(st == LKV_ERR_INVALID_ARGUMENT);
  CHECK(std::strlen(err.message) > 0);
  CHECK(cache == before);
}
