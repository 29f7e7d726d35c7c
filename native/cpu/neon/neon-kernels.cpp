// mla_decode and mla_project_append for AArch64 Advanced SIMD (baseline armv8-a: no SVE, no
// bf16/dotprod extensions). Same algorithm as the x86 kernels (see x86/README.md and
// neon/README.md): lanes over query rows m = s * H + h, split-KV over the thread pool with a
// log-sum-exp combine, 128-token tiles, every cache dtype converted per tile to f32, f32
// accumulation with FMLA. The micro-kernels use the by-element form (vfmaq_laneq_f32), so four
// cache values are loaded as one vector instead of being broadcast one by one.
//
// Everything but neon_kernels() has internal linkage, like the x86 TUs.
#include <arm_neon.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "../../core/rope.h"
#include "../cpu-kernels.h"
#include "../simd-support.h"
#include "../thread-pool.h"

namespace lkv::cpu {
namespace {

// ---- Vector helpers ------------------------------------------------------------------------
typedef float32x4_t V;
constexpr int VL = 4;
inline V vzero() { return vdupq_n_f32(0.0f); }
inline V vset1(float x) { return vdupq_n_f32(x); }
inline V vld(const float* p) { return vld1q_f32(p); }
inline void vst(float* p, V v) { vst1q_f32(p, v); }
inline V vfma(V a, V b, V c) { return vfmaq_f32(c, a, b); }  // a * b + c
inline V vmul(V a, V b) { return vmulq_f32(a, b); }
inline V vadd(V a, V b) { return vaddq_f32(a, b); }
inline V vsub(V a, V b) { return vsubq_f32(a, b); }
inline V vmax(V a, V b) { return vmaxq_f32(a, b); }
inline V vld_bf16(const uint16_t* p) { return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(p), 16)); }
inline V vld_f16(const uint16_t* p) { return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(p))); }
// 8 int8 values to two f32 vectors.
inline void vld_i8x8(const int8_t* p, V* lo, V* hi) {
  const int16x8_t w = vmovl_s8(vld1_s8(p));
  *lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
  *hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
}
inline float vhsum(V v) { return vaddvq_f32(v); }
// 2^n for integral n in [-127, 128]; n = -127 gives exactly 0.
inline V vpow2i(V n) {
  return vreinterpretq_f32_s32(vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23));
}
// m where m is finite or +inf, 0 where m == -inf (the reference point of an empty softmax).
inline V vsafe_max(V m) { return vbslq_f32(vceqq_f32(m, vset1(-INFINITY)), vzero(), m); }
// s where j < lim, -inf elsewhere.
inline V vmask_causal(V s, V j, V lim) { return vbslq_f32(vcgeq_f32(j, lim), vset1(-INFINITY), s); }

// 2^x for x <= 0 (and modestly above); exactly 0 for x <= -126.5, including -inf.
// Degree-7 Taylor polynomial of 2^f on [-0.5, 0.5]: relative error below 1e-8.
inline V vexp2(V x) {
  x = vmax(x, vset1(-127.0f));
  const V n = vrndnq_f32(x);
  const V f = vsub(x, n);
  V p = vset1(1.5252733804059841e-05f);
  p = vfma(p, f, vset1(1.5403530393381606e-04f));
  p = vfma(p, f, vset1(1.3333558146428443e-03f));
  p = vfma(p, f, vset1(9.6181291076284772e-03f));
  p = vfma(p, f, vset1(5.5504108664821580e-02f));
  p = vfma(p, f, vset1(2.4022650695910071e-01f));
  p = vfma(p, f, vset1(6.9314718055994531e-01f));
  p = vfma(p, f, vset1(1.0f));
  return vmul(p, vpow2i(n));
}

inline float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

inline float f16_bits_to_f32(uint16_t h) {
  return vget_lane_f32(vget_low_f32(vcvt_f32_f16(vreinterpret_f16_u16(vdup_n_u16(h)))), 0);
}

inline void prefetch_l2(const void* p) { __builtin_prefetch(p, 0, 2); }

// ------------------------------------------------------------------------------------
// Register blocking (32 vector registers of 4 floats). Lanes run over query rows m.
constexpr int kMaxMB = 4;  // m-vectors per block
// Score block: MB m-vectors x NB tokens of accumulators, plus NB cache vectors and MB q vectors.
template <int MB> constexpr int score_nb() { return MB == 4 ? 4 : MB == 3 ? 6 : MB == 2 ? 8 : 12; }
// P.C block: RB latent rows x MB m-vectors (RB a multiple of 4: one cache load feeds 4 rows).
template <int MB> constexpr int pv_rb() { return MB == 4 ? 4 : MB == 3 ? 8 : MB == 2 ? 8 : 16; }
constexpr int kTile = 128;   // cached tokens per tile
constexpr int kRowPad = 16;  // zero rows after a tile, so every n-block is full (>= max NB)
constexpr int kKChunk = 128; // score reduction chunk (f32 elements), keeps Q's slice in L1

struct Split {
  int32_t b, j0, j1;
};

struct Decode {
  const lkv_mla_decode_params* p;
  lkv_cache_layout layout;
  int32_t R, rw, K, Kc, M, Mp, nv, H, Sq, hpr;
  bool direct;
  float qscale;
  float* qf;  // [B][Kc][Mp]
  Split* splits;
  int32_t nsplits, max_splits_per_seq;
  int32_t* first_split;  // [B + 1]
  float* partial;
  size_t partial_stride;  // floats per split: OT [R][Mp], max [Mp], sum [Mp]
  uint8_t* scratch;
  size_t scratch_stride;
  const float* fp8;
};

inline size_t align64(size_t n) { return (n + 63) & ~static_cast<size_t>(63); }

inline const uint8_t* row_ptr(const Decode& d, const int32_t* table, int32_t token) {
  const int32_t bs = d.p->block_size;
  const int64_t slot = static_cast<int64_t>(table[token / bs]) * bs + token % bs;
  return static_cast<const uint8_t*>(d.p->cache) + slot * static_cast<int64_t>(d.layout.row_bytes);
}

inline void bf16_to_f32_row(const uint16_t* s, float* dst, int32_t n) {
  int32_t i = 0;
  for (; i + 2 * VL <= n; i += 2 * VL) {
    const uint16x8_t h = vld1q_u16(s + i);
    vst(dst + i, vreinterpretq_f32_u32(vshll_n_u16(vget_low_u16(h), 16)));
    vst(dst + i + VL, vreinterpretq_f32_u32(vshll_high_n_u16(h, 16)));
  }
  for (; i + VL <= n; i += VL) vst(dst + i, vld_bf16(s + i));
  for (; i < n; ++i) dst[i] = bf16_bits_to_f32(s[i]);
}

// One cache row to K f32 values (dequantized), zero padded to Kc.
inline void row_to_f32(const Decode& d, const uint8_t* src, float* dst) {
  const int32_t R = d.R, rw = d.rw, K = d.K;
  int32_t i = 0;
  switch (d.p->cache_dtype) {
    case LKV_DTYPE_F32: std::memcpy(dst, src, sizeof(float) * K); i = K; break;
    case LKV_DTYPE_F16: {
      const uint16_t* s = reinterpret_cast<const uint16_t*>(src);
      for (; i + 2 * VL <= K; i += 2 * VL) {
        const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(s + i));
        vst(dst + i, vcvt_f32_f16(vget_low_f16(h)));
        vst(dst + i + VL, vcvt_high_f32_f16(h));
      }
      for (; i + VL <= K; i += VL) vst(dst + i, vld_f16(s + i));
      for (; i < K; ++i) dst[i] = f16_bits_to_f32(s[i]);
      break;
    }
    case LKV_DTYPE_BF16:
      bf16_to_f32_row(reinterpret_cast<const uint16_t*>(src), dst, K);
      i = K;
      break;
    case LKV_DTYPE_INT8:
    case LKV_DTYPE_FP8_E4M3: {
      float scale;
      std::memcpy(&scale, src + d.layout.scale_offset, 4);
      if (d.p->cache_dtype == LKV_DTYPE_INT8) {
        const int8_t* s = reinterpret_cast<const int8_t*>(src);
        const V vs = vset1(scale);
        for (; i + 2 * VL <= R; i += 2 * VL) {
          V lo, hi;
          vld_i8x8(s + i, &lo, &hi);
          vst(dst + i, vmul(lo, vs));
          vst(dst + i + VL, vmul(hi, vs));
        }
        for (; i < R; ++i) dst[i] = static_cast<float>(s[i]) * scale;
      } else {
        const float* t = d.fp8;
        for (; i < R; ++i) dst[i] = t[src[i]] * scale;
      }
      bf16_to_f32_row(reinterpret_cast<const uint16_t*>(src + d.layout.rope_offset), dst + R, rw);
      i = K;
      break;
    }
    default: break;  // validated by the caller
  }
  for (; i < d.Kc; ++i) dst[i] = 0.0f;
}

// ---- Query packing: Q^T scaled by softmax_scale * log2(e), rope part block-diagonal over
// rope heads so one cache row serves every head.
inline float q_value(const Decode& d, int32_t b, int32_t m, int32_t k) {
  if (m >= d.M || k >= d.K) return 0.0f;
  const lkv_mla_decode_params& p = *d.p;
  const int64_t row = static_cast<int64_t>(b) * d.M + m;
  if (k < d.R) return p.q_latent[row * d.R + k] * d.qscale;
  const int32_t P = p.rope_dim;
  const int32_t g = (k - d.R) / P, i = (k - d.R) % P;
  const int32_t h = m % d.H;
  if (h / d.hpr != g) return 0.0f;
  return p.q_rope[row * P + i] * d.qscale;
}

constexpr int kPackChunk = 64;

void pack_q_task(void* ctx, int64_t task, int32_t /*worker*/) {
  const Decode& d = *static_cast<const Decode*>(ctx);
  const int32_t chunks = (d.Kc + kPackChunk - 1) / kPackChunk;
  const int32_t b = static_cast<int32_t>(task / chunks);
  const int32_t k0 = static_cast<int32_t>(task % chunks) * kPackChunk;
  const int32_t k1 = k0 + kPackChunk < d.Kc ? k0 + kPackChunk : d.Kc;
  float* q = d.qf + static_cast<size_t>(b) * d.Kc * d.Mp;
  for (int32_t k = k0; k < k1; ++k)
    for (int32_t m = 0; m < d.Mp; ++m) q[static_cast<size_t>(k) * d.Mp + m] = q_value(d, b, m, k);
}

struct Scratch {
  float* S;           // [kTile + kRowPad][Mp]
  float* alpha;       // [Mp]
  float* lim;         // [Mp]
  const float** rows; // [kTile + kRowPad]
  float* zero;        // a zero row, Kc elements
  float* tile;        // [kTile][Kc]
  float* comb;        // [max_splits_per_seq + 1][Mp]
  const uint8_t** pf_rows;  // [kTile] rows of the next tile
  int32_t pf_n, pf_next;
  size_t row_bytes;
};

// Prefetches the next `count` pending rows of the next tile into L2.
inline void prefetch_rows(Scratch& s, int32_t count) {
  for (; count > 0 && s.pf_next < s.pf_n; --count, ++s.pf_next) {
    const char* r = reinterpret_cast<const char*>(s.pf_rows[s.pf_next]);
    for (size_t o = 0; o < s.row_bytes; o += 64) prefetch_l2(r + o);
  }
}

// ---- Scores: S[n][m] (+)= sum_k Q[k][m] * row_n[k] -----------------------------------------

// One k of four: the cache values of step L sit in lane L of c[n].
template <int MB, int NB, int L>
inline void score_step(const float* Qk, V (&acc)[MB][NB], const V (&c)[NB]) {
  V q[MB];
  #pragma GCC unroll 32
  for (int v = 0; v < MB; ++v) q[v] = vld(Qk + v * VL);
  #pragma GCC unroll 32
  for (int n = 0; n < NB; ++n)
    #pragma GCC unroll 32
    for (int v = 0; v < MB; ++v) acc[v][n] = vfmaq_laneq_f32(acc[v][n], q[v], c[n], L);
}

template <int MB, int NB>
inline void score_blk(const float* Q, int32_t Mp, const float* const* rows, int32_t k0, int32_t k1,
                      float* S, bool first) {
  V acc[MB][NB];
  const float* r[NB];
  #pragma GCC unroll 32
  for (int n = 0; n < NB; ++n) r[n] = rows[n];
  #pragma GCC unroll 32
  for (int v = 0; v < MB; ++v)
    #pragma GCC unroll 32
    for (int n = 0; n < NB; ++n) acc[v][n] = first ? vzero() : vld(S + n * Mp + v * VL);
  int32_t k = k0;
  for (; k + 4 <= k1; k += 4) {
    V c[NB];
    #pragma GCC unroll 32
    for (int n = 0; n < NB; ++n) c[n] = vld(r[n] + k);
    const float* Qk = Q + static_cast<size_t>(k) * Mp;
    score_step<MB, NB, 0>(Qk, acc, c);
    score_step<MB, NB, 1>(Qk + Mp, acc, c);
    score_step<MB, NB, 2>(Qk + 2 * Mp, acc, c);
    score_step<MB, NB, 3>(Qk + 3 * Mp, acc, c);
  }
  for (; k < k1; ++k) {
    V q[MB];
    #pragma GCC unroll 32
    for (int v = 0; v < MB; ++v) q[v] = vld(Q + static_cast<size_t>(k) * Mp + v * VL);
    #pragma GCC unroll 32
    for (int n = 0; n < NB; ++n) {
      const float cn = r[n][k];
      #pragma GCC unroll 32
      for (int v = 0; v < MB; ++v) acc[v][n] = vfmaq_n_f32(acc[v][n], q[v], cn);
    }
  }
  #pragma GCC unroll 32
  for (int v = 0; v < MB; ++v)
    #pragma GCC unroll 32
    for (int n = 0; n < NB; ++n) vst(S + n * Mp + v * VL, acc[v][n]);
}

template <int MB>
void scores_mblock(const float* Q, int32_t Mp, const float* const* rows, int32_t nt, int32_t K,
                   float* S) {
  constexpr int NB = score_nb<MB>();
  for (int32_t k0 = 0; k0 < K; k0 += kKChunk) {
    const int32_t k1 = k0 + kKChunk < K ? k0 + kKChunk : K;
    for (int32_t n0 = 0; n0 < nt; n0 += NB)
      score_blk<MB, NB>(Q, Mp, rows + n0, k0, k1, S + static_cast<size_t>(n0) * Mp, k0 == 0);
  }
}

// ---- P.C: OT[r][m] = OT[r][m] * alpha[m] + sum_n P[n][m] * row_n[r] -------------------------

template <int MB, int RB, int L>
inline void pv_lane(V (&acc)[RB][MB], const V (&pv)[MB], const V (&c)[(RB + 3) / 4]) {
  #pragma GCC unroll 32
  for (int g = 0; g < RB / 4; ++g)
    #pragma GCC unroll 32
    for (int v = 0; v < MB; ++v) acc[4 * g + L][v] = vfmaq_laneq_f32(acc[4 * g + L][v], pv[v], c[g], L);
}

template <int MB, int RB>
inline void pv_blk(float* OT, int32_t Mp, const float* alpha, const float* P,
                   const float* const* rows, int32_t r0, int32_t nt) {
  V acc[RB][MB];
  #pragma GCC unroll 32
  for (int v = 0; v < MB; ++v) {
    const V a = vld(alpha + v * VL);
    #pragma GCC unroll 32
    for (int i = 0; i < RB; ++i) acc[i][v] = vmul(vld(OT + i * Mp + v * VL), a);
  }
  for (int32_t n = 0; n < nt; ++n) {
    const float* c = rows[n] + r0;
    V pv[MB];
    #pragma GCC unroll 32
    for (int v = 0; v < MB; ++v) pv[v] = vld(P + static_cast<size_t>(n) * Mp + v * VL);
    if constexpr (RB % 4 == 0) {
      V cv[(RB + 3) / 4];
      #pragma GCC unroll 32
      for (int g = 0; g < RB / 4; ++g) cv[g] = vld(c + 4 * g);
      pv_lane<MB, RB, 0>(acc, pv, cv);
      pv_lane<MB, RB, 1>(acc, pv, cv);
      pv_lane<MB, RB, 2>(acc, pv, cv);
      pv_lane<MB, RB, 3>(acc, pv, cv);
    } else {
      #pragma GCC unroll 32
      for (int i = 0; i < RB; ++i) {
        const float ci = c[i];
        #pragma GCC unroll 32
        for (int v = 0; v < MB; ++v) acc[i][v] = vfmaq_n_f32(acc[i][v], pv[v], ci);
      }
    }
  }
  #pragma GCC unroll 32
  for (int i = 0; i < RB; ++i)
    #pragma GCC unroll 32
    for (int v = 0; v < MB; ++v) vst(OT + i * Mp + v * VL, acc[i][v]);
}

template <int MB>
void pv_mblock(float* OT, int32_t Mp, const float* alpha, const float* P, const float* const* rows,
               int32_t R, int32_t nt, Scratch& s) {
  constexpr int RB = pv_rb<MB>();
  const int32_t per = (s.pf_n + R / RB) / (R / RB + 1);
  int32_t r = 0;
  for (; r + RB <= R; r += RB) {
    prefetch_rows(s, per);
    pv_blk<MB, RB>(OT + static_cast<size_t>(r) * Mp, Mp, alpha, P, rows, r, nt);
  }
  prefetch_rows(s, s.pf_n);
  for (; r + 4 <= R; r += 4) pv_blk<MB, 4>(OT + static_cast<size_t>(r) * Mp, Mp, alpha, P, rows, r, nt);
  for (; r < R; ++r) pv_blk<MB, 1>(OT + static_cast<size_t>(r) * Mp, Mp, alpha, P, rows, r, nt);
}

// ---- One split: a token range of one sequence, online softmax over tiles ------------------

size_t scratch_layout(const Decode& d, Scratch* s, uint8_t* base) {
  size_t off = 0;
  auto take = [&](size_t bytes) {
    uint8_t* p = base ? base + off : nullptr;
    off += align64(bytes);
    return p;
  };
  Scratch t;
  t.S = reinterpret_cast<float*>(take(sizeof(float) * (kTile + kRowPad) * d.Mp));
  t.alpha = reinterpret_cast<float*>(take(sizeof(float) * d.Mp));
  t.lim = reinterpret_cast<float*>(take(sizeof(float) * d.Mp));
  t.rows = reinterpret_cast<const float**>(take(sizeof(void*) * (kTile + kRowPad)));
  t.zero = reinterpret_cast<float*>(take(sizeof(float) * d.Kc));
  t.tile = d.direct ? nullptr : reinterpret_cast<float*>(take(sizeof(float) * kTile * d.Kc));
  t.comb = reinterpret_cast<float*>(take(sizeof(float) * (d.max_splits_per_seq + 1) * d.Mp));
  t.pf_rows = reinterpret_cast<const uint8_t**>(take(sizeof(void*) * kTile));
  t.pf_n = t.pf_next = 0;
  t.row_bytes = d.layout.row_bytes;
  if (s) *s = t;
  return off;
}

void scores_tile(const Decode& d, const Scratch& s, int32_t b, int32_t nt) {
  const int32_t Mp = d.Mp;
  for (int32_t v0 = 0; v0 < d.nv; v0 += kMaxMB) {
    const int32_t mb = d.nv - v0 < kMaxMB ? d.nv - v0 : kMaxMB;
    float* S = s.S + v0 * VL;
    const float* Q = d.qf + static_cast<size_t>(b) * d.Kc * Mp + v0 * VL;
    const float* const* rows = s.rows;
    switch (mb) {
      case 4: scores_mblock<4>(Q, Mp, rows, nt, d.K, S); break;
      case 3: scores_mblock<3>(Q, Mp, rows, nt, d.K, S); break;
      case 2: scores_mblock<2>(Q, Mp, rows, nt, d.K, S); break;
      default: scores_mblock<1>(Q, Mp, rows, nt, d.K, S); break;
    }
  }
}

void pv_tile(const Decode& d, Scratch& s, float* OT, int32_t nt) {
  const int32_t Mp = d.Mp;
  for (int32_t v0 = 0; v0 < d.nv; v0 += kMaxMB) {
    const int32_t mb = d.nv - v0 < kMaxMB ? d.nv - v0 : kMaxMB;
    float* ot = OT + v0 * VL;
    const float* alpha = s.alpha + v0 * VL;
    const float* P = s.S + v0 * VL;
    const float* const* rows = s.rows;
    switch (mb) {
      case 4: pv_mblock<4>(ot, Mp, alpha, P, rows, d.R, nt, s); break;
      case 3: pv_mblock<3>(ot, Mp, alpha, P, rows, d.R, nt, s); break;
      case 2: pv_mblock<2>(ot, Mp, alpha, P, rows, d.R, nt, s); break;
      default: pv_mblock<1>(ot, Mp, alpha, P, rows, d.R, nt, s); break;
    }
  }
}

void split_task(void* ctx, int64_t task, int32_t worker) {
  const Decode& d = *static_cast<const Decode*>(ctx);
  const lkv_mla_decode_params& p = *d.p;
  Scratch s;
  scratch_layout(d, &s, d.scratch + d.scratch_stride * worker);
  const Split sp = d.splits[task];
  const int32_t b = sp.b, len = p.seq_lens[b];
  const int32_t* table = p.block_table + static_cast<int64_t>(b) * p.max_blocks_per_seq;
  const int32_t Mp = d.Mp;
  float* OT = d.partial + d.partial_stride * task;
  float* mx = OT + static_cast<size_t>(d.R) * Mp;
  float* l = mx + Mp;
  std::memset(OT, 0, sizeof(float) * d.R * Mp);
  for (int32_t m = 0; m < Mp; ++m) {
    mx[m] = -INFINITY;
    l[m] = 0.0f;
    s.lim[m] = m < d.M ? static_cast<float>(len - d.Sq + 1 + m / d.H) : 3e38f;
  }
  const int32_t min_lim = len - d.Sq + 1;
  std::memset(s.zero, 0, sizeof(float) * d.Kc);

  for (int32_t t0 = sp.j0; t0 < sp.j1; t0 += kTile) {
    const int32_t nt = sp.j1 - t0 < kTile ? sp.j1 - t0 : kTile;
    for (int32_t n = 0; n < nt; ++n) {
      const uint8_t* raw = row_ptr(d, table, t0 + n);
      if (d.direct) {
        s.rows[n] = reinterpret_cast<const float*>(raw);
        continue;
      }
      float* dst = s.tile + static_cast<size_t>(d.Kc) * n;
      row_to_f32(d, raw, dst);
      s.rows[n] = dst;
    }
    for (int32_t n = nt; n < nt + kRowPad; ++n) s.rows[n] = s.zero;
    // Rows of the next tile, fetched into L2 a few at a time during this tile's P.C product.
    s.pf_n = 0;
    s.pf_next = 0;
    for (int32_t j = t0 + kTile; j < t0 + 2 * kTile && j < sp.j1; ++j) s.pf_rows[s.pf_n++] = row_ptr(d, table, j);

    scores_tile(d, s, b, nt);

    // Causal mask inside the Sq window, then the online softmax update (base 2).
    if (t0 + nt > min_lim) {
      for (int32_t n = 0; n < nt; ++n) {
        const int32_t j = t0 + n;
        if (j < min_lim) continue;
        const V jv = vset1(static_cast<float>(j));
        for (int32_t v = 0; v < d.nv; ++v) {
          float* sp_ = s.S + static_cast<size_t>(n) * Mp + v * VL;
          vst(sp_, vmask_causal(vld(sp_), jv, vld(s.lim + v * VL)));
        }
      }
    }
    for (int32_t v = 0; v < d.nv; ++v) {
      const V mo = vld(mx + v * VL);
      V t = vset1(-INFINITY);
      for (int32_t n = 0; n < nt; ++n) t = vmax(t, vld(s.S + static_cast<size_t>(n) * Mp + v * VL));
      const V mn = vmax(mo, t);
      const V ms = vsafe_max(mn);
      const V a = vexp2(vsub(mo, ms));
      V sum = vzero();
      for (int32_t n = 0; n < nt; ++n) {
        float* sp_ = s.S + static_cast<size_t>(n) * Mp + v * VL;
        const V e = vexp2(vsub(vld(sp_), ms));
        vst(sp_, e);
        sum = vadd(sum, e);
      }
      vst(l + v * VL, vfma(vld(l + v * VL), a, sum));
      vst(mx + v * VL, mn);
      vst(s.alpha + v * VL, a);
    }
    pv_tile(d, s, OT, nt);
  }
}

// ---- Log-sum-exp combine of the splits of one sequence, for a block of latent rows --------
constexpr int32_t kCombineRows = 32;

void combine_task(void* ctx, int64_t task, int32_t worker) {
  const Decode& d = *static_cast<const Decode*>(ctx);
  const lkv_mla_decode_params& p = *d.p;
  Scratch s;
  scratch_layout(d, &s, d.scratch + d.scratch_stride * worker);
  const int32_t rblocks = (d.R + kCombineRows - 1) / kCombineRows;
  const int32_t b = static_cast<int32_t>(task / rblocks);
  const int32_t r0 = static_cast<int32_t>(task % rblocks) * kCombineRows;
  const int32_t r1 = r0 + kCombineRows < d.R ? r0 + kCombineRows : d.R;
  const int32_t f = d.first_split[b], ns = d.first_split[b + 1] - f;
  const int32_t Mp = d.Mp, M = d.M, R = d.R;
  float* w = s.comb;                                    // [ns][Mp] weights
  float* tmp = s.comb + static_cast<size_t>(ns) * Mp;  // [Mp]
  for (int32_t m = 0; m < M; ++m) {
    float g = -INFINITY;
    for (int32_t i = 0; i < ns; ++i) {
      const float* mx = d.partial + d.partial_stride * (f + i) + static_cast<size_t>(R) * Mp;
      if (mx[m] > g) g = mx[m];
    }
    const float gs = g == -INFINITY ? 0.0f : g;
    float total = 0.0f;
    for (int32_t i = 0; i < ns; ++i) {
      const float* mx = d.partial + d.partial_stride * (f + i) + static_cast<size_t>(R) * Mp;
      const float e = __builtin_exp2f(mx[m] - gs);
      w[static_cast<size_t>(i) * Mp + m] = e;
      total += e * mx[m + Mp];
    }
    const float inv = total > 0.0f ? 1.0f / total : 0.0f;
    for (int32_t i = 0; i < ns; ++i) w[static_cast<size_t>(i) * Mp + m] *= inv;
    if (r0 == 0 && p.lse) {
      const int32_t sq = m / d.H, h = m % d.H;
      p.lse[(static_cast<int64_t>(b) * d.H + h) * d.Sq + sq] =
          total > 0.0f ? (g + __builtin_log2f(total)) * 0.69314718055994531f : -INFINITY;
    }
  }
  for (int32_t m = M; m < Mp; ++m)
    for (int32_t i = 0; i < ns; ++i) w[static_cast<size_t>(i) * Mp + m] = 0.0f;
  float* out = p.out + static_cast<int64_t>(b) * M * R;
  for (int32_t r = r0; r < r1; ++r) {
    for (int32_t v = 0; v < d.nv; ++v) {
      V acc = vzero();
      for (int32_t i = 0; i < ns; ++i) {
        const float* ot = d.partial + d.partial_stride * (f + i) + static_cast<size_t>(r) * Mp;
        acc = vfma(vld(ot + v * VL), vld(w + static_cast<size_t>(i) * Mp + v * VL), acc);
      }
      vst(tmp + v * VL, acc);
    }
    for (int32_t m = 0; m < M; ++m) out[static_cast<int64_t>(m) * R + r] = tmp[m];
  }
}

lkv_status mla_decode_neon(const lkv_mla_decode_params& p, ThreadPool& pool, lkv_error* err) {
  Decode d{};
  d.p = &p;
  d.R = p.kv_lora_rank;
  d.rw = p.rope_dim * p.rope_heads;
  d.K = d.R + d.rw;
  d.layout = cache_layout(p.cache_dtype, d.R, d.rw);
  d.H = p.num_heads;
  d.Sq = p.q_len;
  d.hpr = p.num_heads / p.rope_heads;
  d.M = d.H * d.Sq;
  d.Mp = (d.M + VL - 1) / VL * VL;
  d.nv = d.Mp / VL;
  d.qscale = p.softmax_scale * 1.4426950408889634f;
  d.fp8 = fp8_e4m3_table();
  d.Kc = (d.K + 3) & ~3;  // converted rows: whole 4-value groups
  d.direct = p.cache_dtype == LKV_DTYPE_F32;

  // Plan splits: chunks of whole tiles, sized so that the work spreads over every thread.
  const int32_t threads = pool.size();
  int64_t total = 0;
  int32_t longest = 0;
  for (int32_t b = 0; b < p.batch; ++b) {
    total += p.seq_lens[b];
    if (p.seq_lens[b] > longest) longest = p.seq_lens[b];
  }
  int64_t chunk = threads > 1 ? (total + 2 * threads - 1) / (2 * threads) : longest;
  chunk = (chunk + kTile - 1) / kTile * kTile;
  if (chunk < kTile) chunk = kTile;
  int32_t nsplits = 0;
  for (int32_t b = 0; b < p.batch; ++b) nsplits += static_cast<int32_t>((p.seq_lens[b] + chunk - 1) / chunk);

  const size_t q_elems = static_cast<size_t>(p.batch) * d.Kc * d.Mp;
  d.partial_stride = align64(sizeof(float) * (static_cast<size_t>(d.R) * d.Mp + 2 * d.Mp)) / sizeof(float);
  d.max_splits_per_seq = static_cast<int32_t>((longest + chunk - 1) / chunk);
  d.scratch_stride = scratch_layout(d, nullptr, nullptr);
  const size_t bytes_q = align64(q_elems * sizeof(float));
  const size_t bytes_splits = align64(sizeof(Split) * (nsplits + 1));
  const size_t bytes_first = align64(sizeof(int32_t) * (p.batch + 1));
  const size_t bytes_partial = sizeof(float) * d.partial_stride * nsplits;
  const size_t bytes_scratch = d.scratch_stride * threads;
  uint8_t* mem = static_cast<uint8_t*>(
      simd_alloc(bytes_q + bytes_splits + bytes_first + bytes_partial + bytes_scratch));
  if (!mem) return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_decode: could not allocate scratch");
  uint8_t* cur = mem;
  d.qf = reinterpret_cast<float*>(cur);
  cur += bytes_q;
  d.splits = reinterpret_cast<Split*>(cur);
  cur += bytes_splits;
  d.first_split = reinterpret_cast<int32_t*>(cur);
  cur += bytes_first;
  d.partial = reinterpret_cast<float*>(cur);
  cur += bytes_partial;
  d.scratch = cur;
  int32_t k = 0;
  for (int32_t b = 0; b < p.batch; ++b) {
    d.first_split[b] = k;
    for (int64_t j0 = 0; j0 < p.seq_lens[b]; j0 += chunk) {
      const int64_t j1 = j0 + chunk < p.seq_lens[b] ? j0 + chunk : p.seq_lens[b];
      d.splits[k++] = Split{b, static_cast<int32_t>(j0), static_cast<int32_t>(j1)};
    }
  }
  d.first_split[p.batch] = k;
  d.nsplits = k;

  const int32_t pack_chunks = (d.Kc + kPackChunk - 1) / kPackChunk;
  pool.run(static_cast<int64_t>(p.batch) * pack_chunks, pack_q_task, &d);
  pool.run(d.nsplits, split_task, &d);
  const int32_t rblocks = (d.R + kCombineRows - 1) / kCombineRows;
  pool.run(static_cast<int64_t>(p.batch) * rblocks, combine_task, &d);
  simd_free(mem);
  return ok(err);
}

// ---- mla_project_append -------------------------------------------------------------------

constexpr int kAppNR = 8;        // weight rows per register block
constexpr int kAppNT = 2;        // tokens per register block (16 accumulators)
constexpr int32_t kAppEC = 512;  // hidden-size chunk: the tokens' slice stays in L2

struct Append {
  const lkv_mla_project_append_params* p;
  int32_t R, rw, rows, E, T, rows_per_task;
  float* Y;  // [T][rows]
  const float* inv_freq;
  lkv_cache_layout layout;
};

template <lkv_dtype WD>
inline V load_w(const void* w, size_t i) {
  if (WD == LKV_DTYPE_BF16) return vld_bf16(static_cast<const uint16_t*>(w) + i);
  if (WD == LKV_DTYPE_F16) return vld_f16(static_cast<const uint16_t*>(w) + i);
  return vld(static_cast<const float*>(w) + i);
}

template <lkv_dtype WD>
inline float load_w1(const void* w, size_t i) {
  if (WD == LKV_DTYPE_BF16) return bf16_bits_to_f32(static_cast<const uint16_t*>(w)[i]);
  if (WD == LKV_DTYPE_F16) return f16_bits_to_f32(static_cast<const uint16_t*>(w)[i]);
  return static_cast<const float*>(w)[i];
}

template <lkv_dtype WD>
void append_rows(const Append& a, int32_t r0, int32_t r1) {
  const int32_t E = a.E, T = a.T;
  const float* X = a.p->hidden;
  const void* W = a.p->w_kv_a;
  for (int32_t e0 = 0; e0 < E; e0 += kAppEC) {
    const int32_t e1 = e0 + kAppEC < E ? e0 + kAppEC : E;
    const int32_t ev = e0 + (e1 - e0) / VL * VL;
    for (int32_t rg = r0; rg < r1; rg += kAppNR) {
      const int32_t nr = r1 - rg < kAppNR ? r1 - rg : kAppNR;
      size_t wrow[kAppNR];
      #pragma GCC unroll 32
      for (int i = 0; i < kAppNR; ++i) wrow[i] = static_cast<size_t>(rg + (i < nr ? i : 0)) * E;
      for (int32_t t0 = 0; t0 < T; t0 += kAppNT) {
        const int32_t ntk = T - t0 < kAppNT ? T - t0 : kAppNT;
        const float* x[kAppNT];
        #pragma GCC unroll 32
        for (int t = 0; t < kAppNT; ++t) x[t] = X + static_cast<size_t>(t0 + (t < ntk ? t : 0)) * E;
        V acc[kAppNR][kAppNT];
        #pragma GCC unroll 32
        for (int i = 0; i < kAppNR; ++i)
          #pragma GCC unroll 32
          for (int t = 0; t < kAppNT; ++t) acc[i][t] = vzero();
        for (int32_t e = e0; e < ev; e += VL) {
          V xv[kAppNT];
          #pragma GCC unroll 32
          for (int t = 0; t < kAppNT; ++t) xv[t] = vld(x[t] + e);
          #pragma GCC unroll 32
          for (int i = 0; i < kAppNR; ++i) {
            const V wv = load_w<WD>(W, wrow[i] + e);
            #pragma GCC unroll 32
            for (int t = 0; t < kAppNT; ++t) acc[i][t] = vfma(wv, xv[t], acc[i][t]);
          }
        }
        for (int i = 0; i < nr; ++i) {
          for (int t = 0; t < ntk; ++t) {
            float sum = vhsum(acc[i][t]);
            for (int32_t e = ev; e < e1; ++e) sum += load_w1<WD>(W, wrow[i] + e) * x[t][e];
            a.Y[static_cast<size_t>(t0 + t) * a.rows + rg + i] += sum;
          }
        }
      }
    }
  }
}

void append_matmul_task(void* ctx, int64_t task, int32_t /*worker*/) {
  const Append& a = *static_cast<const Append*>(ctx);
  const int32_t r0 = static_cast<int32_t>(task) * a.rows_per_task;
  const int32_t r1 = r0 + a.rows_per_task < a.rows ? r0 + a.rows_per_task : a.rows;
  switch (a.p->weight_dtype) {
    case LKV_DTYPE_BF16: append_rows<LKV_DTYPE_BF16>(a, r0, r1); break;
    case LKV_DTYPE_F16: append_rows<LKV_DTYPE_F16>(a, r0, r1); break;
    default: append_rows<LKV_DTYPE_F32>(a, r0, r1); break;
  }
}

// Per token: RMSNorm (double, as the reference), RoPE (the shared baseline rotate), then the
// cache's own rounding through the baseline write_row.
void append_finish_task(void* ctx, int64_t task, int32_t /*worker*/) {
  const Append& a = *static_cast<const Append*>(ctx);
  const lkv_mla_project_append_params& p = *a.p;
  const int32_t t = static_cast<int32_t>(task);
  const int64_t slot = p.slot_mapping[t];
  if (slot < 0) return;
  float* y = a.Y + static_cast<size_t>(t) * a.rows;
  if (p.norm_weight) {
    double ss = 0.0;
    for (int32_t r = 0; r < a.R; ++r) ss += static_cast<double>(y[r]) * y[r];
    const double inv_rms = 1.0 / __builtin_sqrt(ss / a.R + p.norm_eps);
    for (int32_t r = 0; r < a.R; ++r) y[r] = static_cast<float>(y[r] * inv_rms * p.norm_weight[r]);
  }
  const float af = p.rope.attention_factor == 0.0f ? 1.0f : p.rope.attention_factor;
  for (int32_t k = 0; k < p.rope_heads; ++k)
    rope_rotate(p.rope.style, a.inv_freq, af, p.rope_dim, p.positions[t], y + a.R + k * p.rope_dim);
  uint8_t* row = static_cast<uint8_t*>(p.cache) + slot * static_cast<int64_t>(a.layout.row_bytes);
  write_row(row, a.layout, p.cache_dtype, a.R, a.rw, y, y + a.R);
}

lkv_status mla_project_append_neon(const lkv_mla_project_append_params& p, ThreadPool& pool,
                                   lkv_error* err) {
  Append a{};
  a.p = &p;
  a.R = p.kv_lora_rank;
  a.rw = p.rope_dim * p.rope_heads;
  a.rows = a.R + a.rw;
  a.E = p.hidden_size;
  a.T = p.num_tokens;
  a.layout = cache_layout(p.cache_dtype, a.R, a.rw);
  if (a.T == 0) return ok(err);
  const size_t y_bytes = align64(sizeof(float) * a.T * a.rows);
  const size_t f_bytes = align64(sizeof(float) * (p.rope_dim / 2 + 1));
  uint8_t* mem = static_cast<uint8_t*>(simd_alloc(y_bytes + f_bytes));
  if (!mem) return fail(err, LKV_ERR_OUT_OF_MEMORY, "mla_project_append: could not allocate scratch");
  a.Y = reinterpret_cast<float*>(mem);
  std::memset(a.Y, 0, sizeof(float) * a.T * a.rows);
  float* inv_freq = reinterpret_cast<float*>(mem + y_bytes);
  rope_inv_freq(p.rope, p.rope_dim, inv_freq);
  a.inv_freq = inv_freq;
  // Each task owns whole weight rows, so every weight is read from memory once.
  const int32_t threads = pool.size();
  int32_t per = (a.rows + 4 * threads - 1) / (4 * threads);
  per = (per + kAppNR - 1) / kAppNR * kAppNR;
  if (per < kAppNR) per = kAppNR;
  a.rows_per_task = per;
  pool.run((a.rows + per - 1) / per, append_matmul_task, &a);
  pool.run(a.T, append_finish_task, &a);
  simd_free(mem);
  return ok(err);
}

}  // namespace

const KernelTable& neon_kernels() {
  static const KernelTable table = {
      /* .isa = */ LKV_CPU_ISA_NEON,
      /* .mla_decode = */ mla_decode_neon,
      /* .mla_project_append = */ mla_project_append_neon,
      /* .gqa_decode = */ nullptr,  // the reference serves GQA until a SIMD kernel lands
      /* .gqa_append = */ nullptr,
  };
  return table;
}

}  // namespace lkv::cpu
