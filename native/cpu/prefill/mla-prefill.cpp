// mla_prefill on the CPU. For each sequence, the cached tokens are walked a tile at a time:
//  1. the tile's latent rows are dequantised to f32 (and its rope keys kept aside);
//  2. one GEMM (gemm_cpu, the ISA's kernel over the thread pool) up-projects the tile to
//     K_nope and V of every head: [tile, R] x kv_b_proj^T -> [tile, H (Dn + Dv)];
//  3. every task (a head and a block of new tokens) folds the tile into the running softmax
//     of its queries: scores q_nope . k_nope + q_rope . k_rope, causal per query, O += p V.
// K_nope and V never exist for more than one tile, and the weights are read once per tile for
// all new tokens, which is what makes this cheaper than the absorbed form once T is large.
#include "mla-prefill.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <new>
#include <vector>

#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "../../core/numeric.h"
#include "../gemm/gemm.h"
#include "../thread-pool.h"

namespace lkv::cpu {
namespace {

constexpr int32_t kQueryBlock = 16;         // new tokens per attention task
constexpr int64_t kTileBytes = 8ll << 20;   // up-projected K_nope and V of one tile, at most
constexpr int32_t kMaxTileTokens = 256;

struct PrefillState {
  std::vector<float> o;  // [T, H, Dv] running sum of p * V
  std::vector<float> m;  // [T, H] running max score
  std::vector<float> l;  // [T, H] running sum of p
};

// Folds tile tokens [j0, j0 + n) into the running softmax of head h's queries [t0, t1).
void fold_tile(const lkv_mla_prefill_params& p, int32_t b, int32_t h, int32_t t0, int32_t t1, int32_t j0,
               int32_t n, const float* kv, const float* rope, PrefillState& st) {
  const int32_t H = p.num_heads, T = p.q_len, P = p.rope_dim, Dn = p.qk_nope_head_dim, Dv = p.v_head_dim;
  const int32_t rope_width = P * p.rope_heads;
  const int32_t g = h / (H / p.rope_heads);
  const int64_t kv_stride = static_cast<int64_t>(H) * (Dn + Dv);
  const int32_t len = p.seq_lens[b];
  float scores[kMaxTileTokens];
  for (int32_t t = t0; t < t1; ++t) {
    const int32_t visible = len - T + 1 + t;
    const int32_t jn = std::min(n, visible - j0);
    if (jn <= 0) continue;
    const int64_t qi = (static_cast<int64_t>(b) * T + t) * H + h;
    const float* qn = p.q_nope + qi * Dn;
    const float* qr = P > 0 ? p.q_rope + qi * P : nullptr;
    float mx = -std::numeric_limits<float>::infinity();
    for (int32_t j = 0; j < jn; ++j) {
      const float* kn = kv + j * kv_stride + static_cast<int64_t>(h) * (Dn + Dv);
      const float* kr = rope + static_cast<int64_t>(j) * rope_width + g * P;
      float dot = 0.0f;
      for (int32_t d = 0; d < Dn; ++d) dot += qn[d] * kn[d];
      for (int32_t i = 0; i < P; ++i) dot += qr[i] * kr[i];
      scores[j] = dot * p.softmax_scale;
      mx = std::max(mx, scores[j]);
    }
    const int64_t si = static_cast<int64_t>(t) * H + h;
    const float m_old = st.m[si];
    const float m_new = std::max(m_old, mx);
    const float alpha = std::isinf(m_old) ? 0.0f : std::exp(m_old - m_new);
    float* o = st.o.data() + si * Dv;
    float l = st.l[si] * alpha;
    for (int32_t d = 0; d < Dv; ++d) o[d] *= alpha;
    for (int32_t j = 0; j < jn; ++j) {
      const float w = std::exp(scores[j] - m_new);
      l += w;
      const float* v = kv + j * kv_stride + static_cast<int64_t>(h) * (Dn + Dv) + Dn;
      for (int32_t d = 0; d < Dv; ++d) o[d] += w * v[d];
    }
    st.m[si] = m_new;
    st.l[si] = l;
  }
}

}  // namespace

lkv_status mla_prefill_tiled(const lkv_mla_prefill_params& p, lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err) {
  const int32_t R = p.kv_lora_rank, P = p.rope_dim, H = p.num_heads, T = p.q_len;
  const int32_t Dn = p.qk_nope_head_dim, Dv = p.v_head_dim;
  const int32_t rope_width = P * p.rope_heads;
  const int64_t kv_width = static_cast<int64_t>(H) * (Dn + Dv);
  const int32_t tile = static_cast<int32_t>(
      std::clamp<int64_t>(kTileBytes / (kv_width * static_cast<int64_t>(sizeof(float))), 1, kMaxTileTokens));
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, R, rope_width);

  std::vector<float> latent, rope, kv;
  PrefillState st;
  try {
    latent.resize(static_cast<size_t>(tile) * R);
    rope.resize(static_cast<size_t>(tile) * std::max(rope_width, 1));
    kv.resize(static_cast<size_t>(tile) * kv_width);
    st.o.resize(static_cast<size_t>(T) * H * Dv);
    st.m.resize(static_cast<size_t>(T) * H);
    st.l.resize(static_cast<size_t>(T) * H);
  } catch (const std::bad_alloc&) {
    return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_prefill: no memory for a %d-token tile and %d queries", tile, T);
  }
  const int32_t query_blocks = (T + kQueryBlock - 1) / kQueryBlock;

  for (int32_t b = 0; b < p.batch; ++b) {
    const int32_t len = p.seq_lens[b];
    const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
    std::fill(st.o.begin(), st.o.end(), 0.0f);
    std::fill(st.m.begin(), st.m.end(), -std::numeric_limits<float>::infinity());
    std::fill(st.l.begin(), st.l.end(), 0.0f);
    for (int32_t j0 = 0; j0 < len; j0 += tile) {
      const int32_t n = std::min(tile, len - j0);
      for (int32_t j = 0; j < n; ++j) {
        read_row(cache_row(p.cache, layout, table, p.block_size, j0 + j), layout, p.cache_dtype, R, rope_width,
                 latent.data() + static_cast<int64_t>(j) * R, rope.data() + static_cast<int64_t>(j) * rope_width);
      }
      lkv_gemm_params gp{};
      gp.m = n;
      gp.n = static_cast<int32_t>(kv_width);
      gp.k = R;
      gp.weight_dtype = p.weight_dtype;
      gp.a = latent.data();
      gp.w = p.w_kv_b;
      gp.c = kv.data();
      const lkv_status s = gemm_cpu(gp, isa, pool, err);
      if (s != LKV_OK) return s;
      pool.for_each(static_cast<int64_t>(H) * query_blocks, [&](int64_t task, int32_t /*worker*/) {
        const int32_t h = static_cast<int32_t>(task % H);
        const int32_t t0 = static_cast<int32_t>(task / H) * kQueryBlock;
        fold_tile(p, b, h, t0, std::min(T, t0 + kQueryBlock), j0, n, kv.data(), rope.data(), st);
      });
    }
    for (int32_t t = 0; t < T; ++t) {
      for (int32_t h = 0; h < H; ++h) {
        const int64_t si = static_cast<int64_t>(t) * H + h;
        const int64_t qi = (static_cast<int64_t>(b) * T + t) * H + h;
        const float l = st.l[si];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        float* out = p.out + qi * Dv;
        const float* o = st.o.data() + si * Dv;
        for (int32_t d = 0; d < Dv; ++d) out[d] = o[d] * inv;
        if (p.lse) {
          p.lse[(static_cast<int64_t>(b) * H + h) * T + t] =
              l > 0.0f ? st.m[si] + std::log(l) : -std::numeric_limits<float>::infinity();
        }
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

// C [m, n] = A W^T through the ISA's GEMM (A, C f32; W f32 or bf16, row-major [n, k]).
lkv_status gemm(int32_t m, int32_t n, int32_t k, const float* a, const void* w, lkv_dtype wd, float* c,
                lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err) {
  lkv_gemm_params g{};
  g.m = m;
  g.n = n;
  g.k = k;
  g.weight_dtype = wd;
  g.a = a;
  g.w = w;
  g.c = c;
  return gemm_cpu(g, isa, pool, err);
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
                            LKV_DTYPE_F32, c_rows.data(), kernels.isa, pool, err);
        if (s != LKV_OK) return s;
        for (int32_t t = 0; t < n; ++t) {
          std::copy(c_rows.data() + static_cast<size_t>(t) * R, c_rows.data() + static_cast<size_t>(t + 1) * R,
                    q_latent.data() + (static_cast<size_t>(t) * H + h) * R);
        }
      }
      // The chunk's queries t0..t0+n-1 sit at the end of a sequence of len - T + t0 + n tokens.
      lens[0] = std::max(0, len - T + t0 + n);
      lkv_mla_decode_params d{};
      d.batch = 1;
      d.q_len = n;
      d.num_heads = H;
      d.kv_lora_rank = R;
      d.rope_dim = P;
      d.rope_heads = p.rope_heads;
      d.block_size = p.block_size;
      d.num_blocks = p.num_blocks;
      d.max_blocks_per_seq = p.max_blocks_per_seq;
      d.cache_dtype = p.cache_dtype;
      d.softmax_scale = p.softmax_scale;
      d.q_latent = q_latent.data();
      d.q_rope = P > 0 ? p.q_rope + q0 * P : nullptr;
      d.cache = p.cache;
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
                 c_rows.data(), kernels.isa, pool, err);
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

namespace {

// Estimated cost of each form per head, in microseconds, fitted to measurements on the 2-core
// AVX-512-BF16 development machine (DeepSeek-V2-Lite head: R 512, Dn = Dv = 128, H 16 and 128;
// docs/performance.md). Non-absorbed pays the up-projection per cached token (GEMM) and a plain
// f32 attention per (query, token). Absorbed pays a fixed cost (W_UK transposed to f32), W_UK
// and W_UV per query (GEMM) and the SIMD decode per (query, token).
bool non_absorbed_is_cheaper(const lkv_mla_prefill_params& p) {
  double non_absorbed = 0.0, absorbed = 130.0;
  const double T = p.q_len;
  for (int32_t b = 0; b < p.batch; ++b) {
    const double L = p.seq_lens[b];
    non_absorbed += 2.1 * L + 0.018 * T * L;
    absorbed += 5.6 * T + 0.0054 * T * L;
  }
  return non_absorbed < absorbed;
}

}  // namespace

lkv_status mla_prefill_fast(const lkv_mla_prefill_params& p, const KernelTable& kernels, ThreadPool& pool,
                            lkv_error* err) {
  const bool tiled = p.form == LKV_PREFILL_NON_ABSORBED || (p.form == LKV_PREFILL_AUTO && non_absorbed_is_cheaper(p));
  if (tiled) return mla_prefill_tiled(p, kernels.isa, pool, err);
  return mla_prefill_absorbed(p, kernels, pool, err);
}

}  // namespace lkv::cpu
