// mla_prefill on the CPU, non-absorbed form (the absorbed form and the choice between them are at
// the end). For each sequence, the cached tokens are walked a tile at a time:
//  1. the tile's latent rows are dequantised to f32 (and its rope keys kept aside);
//  2. one GEMM (gemm_cpu, the ISA's kernel over the thread pool) up-projects the tile to
//     K_nope and V of every head: [tile, R] x kv_b_proj^T -> [tile, H (Dn + Dv)];
//  3. per head, the tile's scores q_nope K_nope^T + q_rope k_rope^T and O += P V are GEMMs
//     (the same kernel), with an online softmax on the score rows in between (causal per
//     query; queries that see none of the tile are skipped).
// K_nope and V never exist for more than one tile, and the weights are read once per tile for
// all new tokens, which is what makes this cheaper than the absorbed form once T is large.
#include "mla-prefill.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "../../core/attention-fields.h"
#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "../../core/numeric.h"
#include "../gemm/gemm.h"
#include "../thread-pool.h"

namespace lkv::cpu {
namespace {

constexpr int32_t kQueryBlock = 16;         // score rows per softmax task
constexpr int64_t kTileBytes = 8ll << 20;   // up-projected K_nope and V of one tile, at most
constexpr int32_t kMaxTileTokens = 256;

// C [m, n] (+)= A W^T through the ISA's GEMM (A, C f32; W f32 or bf16, row-major [n, k]).
lkv_status gemm(int32_t m, int32_t n, int32_t k, const float* a, const void* w, lkv_dtype wd, float* c,
                bool accumulate, lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err) {
  lkv_gemm_params g{};
  g.m = m;
  g.n = n;
  g.k = k;
  g.weight_dtype = wd;
  g.accumulate = accumulate ? 1 : 0;
  g.a = a;
  g.w = w;
  g.c = c;
  return gemm_cpu(g, isa, pool, err);
}

}  // namespace

lkv_status mla_prefill_tiled(const lkv_mla_prefill_params& p, lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err) {
  const int32_t R = p.kv_lora_rank, P = p.rope_dim, H = p.num_heads, T = p.q_len;
  const int32_t Dn = p.qk_nope_head_dim, Dv = p.v_head_dim;
  const int32_t rope_width = P * p.rope_heads;
  const int32_t heads_per_rope = H / p.rope_heads;
  const int64_t kv_width = static_cast<int64_t>(H) * (Dn + Dv);
  const int32_t tile = static_cast<int32_t>(
      std::clamp<int64_t>(kTileBytes / (kv_width * static_cast<int64_t>(sizeof(float))), 1, kMaxTileTokens));
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, R, rope_width);
  const float neg_inf = -std::numeric_limits<float>::infinity();

  // Per tile: the latent rows, their rope keys and their up-projection [tile, H (Dn + Dv)]. Per
  // head: its queries, K_nope, rope keys, V^T and scores as contiguous GEMM operands. Per
  // sequence: the running softmax of every (head, query), O as [H, T, Dv] so that a head's rows
  // are one GEMM output.
  std::vector<float> latent, rope, kv, q_h, qr_h, k_h, kr_h, vt_h, scores, o, m, l;
  try {
    latent.resize(static_cast<size_t>(tile) * R);
    rope.resize(static_cast<size_t>(tile) * std::max(rope_width, 1));
    kv.resize(static_cast<size_t>(tile) * kv_width);
    q_h.resize(static_cast<size_t>(T) * Dn);
    qr_h.resize(static_cast<size_t>(T) * std::max(P, 1));
    k_h.resize(static_cast<size_t>(tile) * Dn);
    kr_h.resize(static_cast<size_t>(tile) * std::max(P, 1));
    vt_h.resize(static_cast<size_t>(Dv) * tile);
    scores.resize(static_cast<size_t>(T) * tile);
    o.resize(static_cast<size_t>(H) * T * Dv);
    m.resize(static_cast<size_t>(H) * T);
    l.resize(static_cast<size_t>(H) * T);
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_prefill: no memory for a %d-token tile and %d queries", tile, T);
  }

  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = p.seq_lens[b];
    const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
    std::fill(o.begin(), o.end(), 0.0f);
    std::fill(m.begin(), m.end(), neg_inf);
    std::fill(l.begin(), l.end(), 0.0f);
    for (int32_t j0 = 0; j0 < len; j0 += tile) {
      const int32_t n = std::min(tile, len - j0);
      for (int32_t j = 0; j < n; ++j) {
        read_row(cache_row(p.cache, layout, table, p.block_size, j0 + j), layout, p.cache_dtype, R, rope_width,
                 latent.data() + static_cast<int64_t>(j) * R, rope.data() + static_cast<int64_t>(j) * rope_width);
      }
      lkv_status s = gemm(n, static_cast<int32_t>(kv_width), R, latent.data(), p.w_kv_b, p.weight_dtype, kv.data(),
                          false, isa, pool, err);
      if (s != LKV_OK) return s;
      // Queries before t_lo see none of this tile (query t sees tokens < len - T + 1 + t).
      const int32_t t_lo = std::max(0, j0 - (len - T));
      const int32_t M = T - t_lo;
      if (M <= 0) continue;
      for (int32_t h = 0; h < H; ++h) {
        const int32_t g = h / heads_per_rope;
        const float* kv_h = kv.data() + static_cast<int64_t>(h) * (Dn + Dv);
        for (int32_t i = 0; i < M; ++i) {
          const int64_t qi = (static_cast<int64_t>(b) * T + t_lo + i) * H + h;
          std::copy(p.q_nope + qi * Dn, p.q_nope + (qi + 1) * Dn, q_h.data() + static_cast<size_t>(i) * Dn);
          if (P > 0) std::copy(p.q_rope + qi * P, p.q_rope + (qi + 1) * P, qr_h.data() + static_cast<size_t>(i) * P);
        }
        for (int32_t j = 0; j < n; ++j) {
          const float* row = kv_h + j * kv_width;
          std::copy(row, row + Dn, k_h.data() + static_cast<size_t>(j) * Dn);
          for (int32_t d = 0; d < Dv; ++d) vt_h[static_cast<size_t>(d) * n + j] = row[Dn + d];
          if (P > 0) {
            const float* kr = rope.data() + static_cast<int64_t>(j) * rope_width + g * P;
            std::copy(kr, kr + P, kr_h.data() + static_cast<size_t>(j) * P);
          }
        }
        // Scores [M, n] = q_nope K_nope^T + q_rope k_rope^T.
        s = gemm(M, n, Dn, q_h.data(), k_h.data(), LKV_DTYPE_F32, scores.data(), false, isa, pool, err);
        if (s == LKV_OK && P > 0) {
          s = gemm(M, n, P, qr_h.data(), kr_h.data(), LKV_DTYPE_F32, scores.data(), true, isa, pool, err);
        }
        if (s != LKV_OK) return s;
        // Online softmax per query row: the scores become P (masked columns 0), O rows rescaled.
        float* o_h = o.data() + (static_cast<size_t>(h) * T + t_lo) * Dv;
        float* m_h = m.data() + static_cast<size_t>(h) * T + t_lo;
        float* l_h = l.data() + static_cast<size_t>(h) * T + t_lo;
        pool.for_each((M + kQueryBlock - 1) / kQueryBlock, [&](int64_t task, int32_t /*worker*/) {
          const int32_t i_end = std::min<int32_t>(M, static_cast<int32_t>(task + 1) * kQueryBlock);
          for (int32_t i = static_cast<int32_t>(task) * kQueryBlock; i < i_end; ++i) {
            const int32_t visible = std::min(n, len - T + 1 + t_lo + i - j0);
            float* row = scores.data() + static_cast<size_t>(i) * n;
            float mx = neg_inf;
            for (int32_t j = 0; j < visible; ++j) {
              row[j] *= p.softmax_scale;
              mx = std::max(mx, row[j]);
            }
            const float m_new = std::max(m_h[i], mx);
            const float alpha = std::isinf(m_h[i]) ? 0.0f : std::exp(m_h[i] - m_new);
            float sum = 0.0f;
            for (int32_t j = 0; j < visible; ++j) {
              row[j] = std::exp(row[j] - m_new);
              sum += row[j];
            }
            for (int32_t j = std::max(visible, 0); j < n; ++j) row[j] = 0.0f;
            float* orow = o_h + static_cast<size_t>(i) * Dv;
            for (int32_t d = 0; d < Dv; ++d) orow[d] *= alpha;
            l_h[i] = l_h[i] * alpha + sum;
            m_h[i] = m_new;
          }
        });
        // O [M, Dv] += P V.
        s = gemm(M, Dv, n, scores.data(), vt_h.data(), LKV_DTYPE_F32, o_h, true, isa, pool, err);
        if (s != LKV_OK) return s;
      }
    }
    for (int32_t h = 0; h < H; ++h) {
      for (int32_t t = 0; t < T; ++t) {
        const size_t si = static_cast<size_t>(h) * T + t;
        const float inv = l[si] > 0.0f ? 1.0f / l[si] : 0.0f;
        float* out = p.out + ((static_cast<int64_t>(b) * T + t) * H + h) * Dv;
        for (int32_t d = 0; d < Dv; ++d) out[d] = o[si * Dv + d] * inv;
        if (p.lse) p.lse[(static_cast<int64_t>(b) * H + h) * T + t] = l[si] > 0.0f ? m[si] + std::log(l[si]) : neg_inf;
      }
    }
  }
  return ok(err);
}

namespace {

constexpr int64_t kAbsorbedChunkFloats = 4ll << 20;  // q_latent (and latent out) of one chunk, at most

// Row r of kv_b_proj as floats.
void weight_row(const lkv_mla_prefill_params& p, int64_t row, float* out) {
  const int32_t R = p.kv_lora_rank;
  if (p.weight_dtype == LKV_DTYPE_BF16) {
    const uint16_t* w = static_cast<const uint16_t*>(p.w_kv_b) + row * R;
    for (int32_t r = 0; r < R; ++r) out[r] = bf16_to_f32(w[r]);
  } else {
    const float* w = static_cast<const float*>(p.w_kv_b) + row * R;
    std::copy(w, w + R, out);
  }
}

}  // namespace

lkv_status mla_prefill_absorbed(const lkv_mla_prefill_params& p, const KernelTable& kernels, ThreadPool& pool,
                                lkv_error* err) {
  const int32_t R = p.kv_lora_rank, H = p.num_heads, T = p.q_len, Dn = p.qk_nope_head_dim, Dv = p.v_head_dim;
  const int32_t P = p.rope_dim;
  const int32_t chunk = static_cast<int32_t>(
      std::clamp<int64_t>(kAbsorbedChunkFloats / (static_cast<int64_t>(H) * R), 1, T));
  const size_t es = p.weight_dtype == LKV_DTYPE_BF16 ? 2 : 4;
  const uint8_t* w_kv_b = static_cast<const uint8_t*>(p.w_kv_b);
  std::vector<float> q_latent, latent, lse, w_uk_t, a_rows, c_rows;
  std::vector<int32_t> lens(static_cast<size_t>(1));
  try {
    q_latent.resize(static_cast<size_t>(chunk) * H * R);
    latent.resize(static_cast<size_t>(chunk) * H * R);
    lse.resize(static_cast<size_t>(chunk) * H);
    // W_UK,h^T of every head as f32 [H, R, Dn], so q_latent = q_nope W_UK is a GEMM (A W^T).
    w_uk_t.resize(static_cast<size_t>(H) * R * Dn);
    a_rows.resize(static_cast<size_t>(chunk) * std::max(Dn, R));
    c_rows.resize(static_cast<size_t>(chunk) * std::max(Dv, R));
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_prefill: no memory for a %d-token chunk of %d heads", chunk, H);
  }
  pool.for_each(H, [&](int64_t h, int32_t /*worker*/) {
    std::vector<float> row(static_cast<size_t>(R));
    for (int32_t d = 0; d < Dn; ++d) {
      weight_row(p, h * (Dn + Dv) + d, row.data());
      for (int32_t r = 0; r < R; ++r) w_uk_t[(static_cast<size_t>(h) * R + r) * Dn + d] = row[r];
    }
  });
  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = p.seq_lens[b];
    for (int32_t t0 = 0; t0 < T; t0 += chunk) {
      const int32_t n = std::min(chunk, T - t0);
      const int64_t q0 = (static_cast<int64_t>(b) * T + t0) * H;  // first (t, h) row of the chunk
      // q_latent rows of head h: its n query rows times W_UK,h.
      for (int32_t h = 0; h < H; ++h) {
        for (int32_t t = 0; t < n; ++t) {
          const float* src = p.q_nope + (q0 + static_cast<int64_t>(t) * H + h) * Dn;
          std::copy(src, src + Dn, a_rows.data() + static_cast<size_t>(t) * Dn);
        }
        lkv_status s = gemm(n, R, Dn, a_rows.data(), w_uk_t.data() + static_cast<size_t>(h) * R * Dn,
                            LKV_DTYPE_F32, c_rows.data(), false, kernels.isa, pool, err);
        if (s != LKV_OK) return s;
        for (int32_t t = 0; t < n; ++t) {
          std::copy(c_rows.data() + static_cast<size_t>(t) * R, c_rows.data() + static_cast<size_t>(t + 1) * R,
                    q_latent.data() + (static_cast<size_t>(t) * H + h) * R);
        }
      }
      // The chunk's queries t0..t0+n-1 sit at the end of a sequence of len - T + t0 + n tokens.
      lens[0] = std::max(0, len - T + t0 + n);
      lkv_mla_decode_params d{};
      copy_attention_fields(p, d);
      d.batch = 1;
      d.q_len = n;
      d.q_latent = q_latent.data();
      d.q_rope = P > 0 ? p.q_rope + q0 * P : nullptr;
      d.block_table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
      d.seq_lens = lens.data();
      d.out = latent.data();
      d.lse = lse.data();
      lkv_status s = kernels.mla_decode(d, pool, err);
      if (s != LKV_OK) return s;
      // out = latent W_UV,h^T with W_UV,h as stored in kv_b_proj; lse from [H, n] to [B, H, T].
      for (int32_t h = 0; h < H; ++h) {
        for (int32_t t = 0; t < n; ++t) {
          const float* src = latent.data() + (static_cast<size_t>(t) * H + h) * R;
          std::copy(src, src + R, a_rows.data() + static_cast<size_t>(t) * R);
        }
        s = gemm(n, Dv, R, a_rows.data(), w_kv_b + (static_cast<size_t>(h) * (Dn + Dv) + Dn) * R * es, p.weight_dtype,
                 c_rows.data(), false, kernels.isa, pool, err);
        if (s != LKV_OK) return s;
        for (int32_t t = 0; t < n; ++t) {
          std::copy(c_rows.data() + static_cast<size_t>(t) * Dv, c_rows.data() + static_cast<size_t>(t + 1) * Dv,
                    p.out + (q0 + static_cast<int64_t>(t) * H + h) * Dv);
          if (p.lse) p.lse[(static_cast<int64_t>(b) * H + h) * T + t0 + t] = lse[static_cast<size_t>(h) * n + t];
        }
      }
    }
  }
  return ok(err);
}

// Estimated cost of each form per head, in microseconds, fitted to measurements on the 2-core
// AVX-512-BF16 development machine (DeepSeek-V2-Lite head: R 512, Dn = Dv = 128, H 16 and 128;
// docs/performance.md). Non-absorbed pays the up-projection per cached token and an f32 GEMM
// attention per (query, token). Absorbed pays a fixed cost (W_UK transposed to f32), W_UK and
// W_UV per query (GEMM) and the SIMD bf16 decode per (query, token).
bool mla_prefill_prefers_non_absorbed(const lkv_mla_prefill_params& p) {
  double non_absorbed = 0.0, absorbed = 130.0;
  const double T = p.q_len;
  for (int32_t b = 0; b < p.batch; ++b) {
    const double L = p.seq_lens[b];
    non_absorbed += 1.45 * L + 0.004 * T * L;
    absorbed += 5.6 * T + 0.0054 * T * L;
  }
  return non_absorbed < absorbed;
}

lkv_status mla_prefill_fast(const lkv_mla_prefill_params& p, const KernelTable& kernels, ThreadPool& pool,
                            lkv_error* err) {
  const bool tiled = p.form == LKV_PREFILL_NON_ABSORBED || (p.form == LKV_PREFILL_AUTO && mla_prefill_prefers_non_absorbed(p));
  if (tiled) return mla_prefill_tiled(p, kernels.isa, pool, err);
  return mla_prefill_absorbed(p, kernels, pool, err);
}

}  // namespace lkv::cpu
