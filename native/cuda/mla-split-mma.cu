// Tensor-core split kernel of mla_decode for bf16 and fp8-e4m3 caches, sm_80+ (mma.sync
// m16n8k16, ldmatrix, cp.async). One CTA (8 warps) owns a tile of 16 or 32 query rows (s, head)
// of one rope group and walks the token ranges the scheduler gave its part, 64 tokens per chunk:
//   - the chunk's latent rows stream into shared memory with cp.async, double-buffered, so the
//     next chunk is in flight while this one is computed; the page of each row is looked up one
//     chunk ahead. bf16 rows (512 + 64 bf16) land where the mma reads them. fp8 rows (512 fp8,
//     an f32 scale, 64 bf16; 4-byte aligned only) land raw and are widened to bf16 in shared
//     memory (exact), and the row scale is applied to the latent part of S and folded into P;
//   - S = Q K^T: warp w takes tokens [8w, 8w + 8) of the chunk over all 576 dims;
//   - an online softmax in base 2 over the chunk (8 or 16 threads per row), P rounded to bf16;
//   - O += P V with V = the first 512 dims of the same rows: warp w owns dims [64w, 64w + 64),
//     accumulated in f32 registers for the whole token range.
// The latent rows are read from memory once per tile and serve as both K and V. Shared-memory
// rows are padded by 16 bytes so ldmatrix's 8 row addresses fall in 8 different bank groups.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>

#include <cmath>

#include "cuda-common.cuh"
#include "mla-split-mma.h"
#include "split-schedule.h"

namespace lkv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kDv = 512;               // latent rank, the value width
constexpr int kDr = 64;                // rope dims per group
constexpr int kDk = kDv + kDr;         // key width
constexpr int kTok = 64;               // tokens per chunk: 8 warps x 8 tokens
constexpr int kKvStride = kDk + 8;     // bf16 elements per shared row (1168 bytes)
constexpr int kPStride = kTok + 8;     // bf16 elements per P row (144 bytes)
constexpr int kSStride = kTok + 4;     // floats per score row
constexpr int kPiecesPerRow = kDk * 2 / 16;   // 16-byte cp.async pieces per token row (72)
constexpr int kLatentPieces = kDv * 2 / 16;   // of which latent (64)
constexpr int kThreadsPerToken = 8;
constexpr int kTokensPerPass = kThreads / kThreadsPerToken;  // 32

static_assert(kTok == kWarps * 8, "one 8-token n-tile of S per warp");
static_assert(kDv == kWarps * 64, "64 value dims of O per warp");
static_assert(kPiecesPerRow % kThreadsPerToken == 0, "pieces split evenly over a token's threads");

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

__device__ __forceinline__ void cp_async16(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// c += a (16x16, row) * b (16x8, col), bf16 in, f32 accumulate.
__device__ __forceinline__ void mma_bf16(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

constexpr int kRawStride = 656;  // bytes per staged fp8 row (644 used; 164 words: no conflicts)
constexpr int kRawWords = 161;   // 4-byte words of one fp8 row: 128 latent, 1 scale, 32 rope

struct Smem {
  __nv_bfloat16* q;   // [rows][kKvStride]
  __nv_bfloat16* kv;  // bf16: [2][kTok][kKvStride] stages; fp8: [kTok][kKvStride] widened chunk
  uint8_t* raw;       // fp8: [2][kTok][kRawStride] stages
  float* scale;       // fp8: [kTok] row scales of the chunk
  float* s;           // [rows][kSStride]
  __nv_bfloat16* p;   // [rows][kPStride]
  float* m;           // [rows] running max (base 2)
  float* l;           // [rows] running sum
  float* alpha;       // [rows] this chunk's rescale factor
};

__host__ __device__ constexpr size_t smem_size(int rows, bool fp8) {
  return static_cast<size_t>(rows) * kKvStride * 2 + (fp8 ? 1 : 2) * static_cast<size_t>(kTok) * kKvStride * 2 +
         (fp8 ? 2 * static_cast<size_t>(kTok) * kRawStride + kTok * 4 : 0) +
         static_cast<size_t>(rows) * kSStride * 4 + static_cast<size_t>(rows) * kPStride * 2 +
         3 * static_cast<size_t>(rows) * 4;
}

template <int ROWS, bool FP8>
__device__ Smem carve(unsigned char* base) {
  Smem s;
  s.q = reinterpret_cast<__nv_bfloat16*>(base);
  s.kv = s.q + ROWS * kKvStride;
  unsigned char* next = reinterpret_cast<unsigned char*>(s.kv + (FP8 ? 1 : 2) * kTok * kKvStride);
  s.raw = next;
  s.scale = reinterpret_cast<float*>(next + (FP8 ? 2 * kTok * kRawStride : 0));
  s.s = s.scale + (FP8 ? kTok : 0);
  s.p = reinterpret_cast<__nv_bfloat16*>(s.s + ROWS * kSStride);
  s.m = reinterpret_cast<float*>(s.p + ROWS * kPStride);
  s.l = s.m + ROWS;
  s.alpha = s.l + ROWS;
  return s;
}

// Each thread moves the rows of chunk tokens tid / 8 and tid / 8 + 32; pages[] holds their
// block-table entries (-1: past the chunk's end), read one chunk before they are needed.
__device__ __forceinline__ void fetch_pages(const MlaMmaArgs& a, int b, int t0, int count, int32_t (&pages)[2]) {
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const int t = threadIdx.x / kThreadsPerToken + k * kTokensPerPass;
    pages[k] = t < count ? a.block_table[static_cast<int64_t>(b) * a.max_blocks + (t0 + t) / a.block_size] : -1;
  }
}

__device__ __forceinline__ void cp_async4(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}

// Queues the rows of the chunk at t0 into a stage; rows past the chunk's end are zero-filled
// (their scores are masked, and zero V keeps 0 * V finite).
template <bool FP8>
__device__ __forceinline__ void issue_chunk(const MlaMmaArgs& a, int g, int t0, const int32_t (&pages)[2],
                                            const Smem& sm, int stage) {
  const int sub = threadIdx.x % kThreadsPerToken;
#pragma unroll
  for (int k = 0; k < 2; ++k) {
    const int t = threadIdx.x / kThreadsPerToken + k * kTokensPerPass;
    const uint8_t* row = a.cache;
    int bytes = 0;
    if (pages[k] >= 0) {
      const int token = t0 + t;
      row = a.cache + (static_cast<int64_t>(pages[k]) * a.block_size + token % a.block_size) * a.row_bytes;
      bytes = FP8 ? 4 : 16;
    }
    if constexpr (FP8) {
      uint8_t* dst = sm.raw + (stage * kTok + t) * kRawStride;
      for (int w = sub; w < kRawWords; w += kThreadsPerToken) cp_async4(dst + w * 4, bytes ? row + w * 4 : a.cache, bytes);
    } else {
      const uint8_t* rope = row + a.rope_offset + static_cast<int64_t>(g) * kDr * 2;
      __nv_bfloat16* dst = sm.kv + (stage * kTok + t) * kKvStride;
#pragma unroll
      for (int i = sub; i < kPiecesPerRow; i += kThreadsPerToken) {
        const uint8_t* src = i < kLatentPieces ? row + i * 16 : rope + (i - kLatentPieces) * 16;
        cp_async16(dst + i * 8, bytes ? src : a.cache, bytes);
      }
    }
  }
}

// fp8: widens a raw stage to bf16 rows in sm.kv (e4m3 values are exact in bf16) and keeps the
// row scales; 4 threads per token. Needs rope_heads == 1 (checked by mla_mma_supported).
__device__ __forceinline__ void widen_fp8_chunk(const Smem& sm, int stage) {
  const int t = threadIdx.x / 4, sub = threadIdx.x % 4;
  const uint32_t* src = reinterpret_cast<const uint32_t*>(sm.raw + (stage * kTok + t) * kRawStride);
  __nv_bfloat16* dst = sm.kv + t * kKvStride;
#pragma unroll 8
  for (int w = sub; w < kDv / 4; w += 4) {
    const uint32_t v = src[w];
    const __half2 lo = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(v & 0xffffu), __NV_E4M3));
    const __half2 hi = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(v >> 16), __NV_E4M3));
    __nv_bfloat162 out[2] = {__float22bfloat162_rn(__half22float2(lo)), __float22bfloat162_rn(__half22float2(hi))};
    *reinterpret_cast<uint2*>(dst + w * 4) = *reinterpret_cast<const uint2*>(out);
  }
  const uint32_t* rope = src + kDv / 4 + 1;
  uint32_t* rdst = reinterpret_cast<uint32_t*>(dst + kDv);
#pragma unroll
  for (int w = sub; w < kDr / 2; w += 4) rdst[w] = rope[w];
  if (sub == 0) sm.scale[t] = __uint_as_float(src[kDv / 4]);
}

template <int MT, bool FP8>
__global__ void __launch_bounds__(kThreads, 1) mla_split_mma_kernel(const MlaMmaArgs a) {
  constexpr int ROWS = MT * 16;
  constexpr int kRowThreads = kThreads / ROWS;     // softmax threads per row (8 or 16)
  constexpr int kRowTokens = kTok / kRowThreads;   // tokens per softmax thread (8 or 4)
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Smem sm = carve<ROWS, FP8>(smem_raw);

  const int tile = blockIdx.x, part = blockIdx.y, g = blockIdx.z;
  const int32_t* meta = a.meta + part * kMetaInts;
  const int begin_b = meta[0], begin_tok = meta[1], end_b = meta[2], end_tok = meta[3];
  if (begin_b < 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tig = lane % 4;
  const int rows_group = a.Sq * a.group;
  const int row0 = tile * ROWS;

  for (int b = begin_b; b <= end_b; ++b) {
    const int len = a.seq_lens[b];
    const int t_begin = b == begin_b ? begin_tok : 0;
    const int t_end = b == end_b ? min(end_tok, len) : len;
    const int nchunks = t_end > t_begin ? (t_end - t_begin + kTok - 1) / kTok : 0;
    int32_t pages[2];
    if (nchunks > 0) {
      fetch_pages(a, b, t_begin, min(kTok, t_end - t_begin), pages);
      issue_chunk<FP8>(a, g, t_begin, pages, sm, 0);
    }
    cp_async_commit();
    if (nchunks > 1) fetch_pages(a, b, t_begin + kTok, min(kTok, t_end - t_begin - kTok), pages);

    // Query rows of the tile in bf16; rows past the group's end are zero.
    for (int idx = threadIdx.x; idx < ROWS * kDk / 2; idx += kThreads) {
      const int r = idx / (kDk / 2), i = (idx - r * (kDk / 2)) * 2;
      const int mr = row0 + r;
      float2 v = make_float2(0.0f, 0.0f);
      if (mr < rows_group) {
        const int s = mr / a.group, h = g * a.group + mr % a.group;
        const int64_t qi = (static_cast<int64_t>(b) * a.Sq + s) * a.H + h;
        v = i < kDv ? *reinterpret_cast<const float2*>(a.q_latent + qi * kDv + i)
                    : *reinterpret_cast<const float2*>(a.q_rope + qi * kDr + (i - kDv));
      }
      *reinterpret_cast<__nv_bfloat162*>(sm.q + r * kKvStride + i) = __float22bfloat162_rn(v);
    }
    for (int r = threadIdx.x; r < ROWS; r += kThreads) {
      sm.m[r] = -INFINITY;
      sm.l[r] = 0.0f;
    }
    float o[MT][8][4];
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int nt = 0; nt < 8; ++nt)
#pragma unroll
        for (int e = 0; e < 4; ++e) o[mt][nt][e] = 0.0f;

    for (int c = 0; c < nchunks; ++c) {
      const int t0 = t_begin + c * kTok;
      const int count = min(kTok, t_end - t0);
      if (c + 1 < nchunks) {
        issue_chunk<FP8>(a, g, t0 + kTok, pages, sm, (c + 1) & 1);
        // The loads of the pages two chunks ahead overlap this chunk's work.
        if (c + 2 < nchunks) fetch_pages(a, b, t0 + 2 * kTok, min(kTok, t_end - t0 - 2 * kTok), pages);
      }
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      if constexpr (FP8) {
        widen_fp8_chunk(sm, c & 1);
        __syncthreads();
      }
      const __nv_bfloat16* kv = sm.kv + (FP8 ? 0 : (c & 1) * kTok * kKvStride);

      // S for tokens [8 * warp, 8 * warp + 8) of the chunk, all rows: latent and rope parts in
      // separate accumulators (fp8 scales only the latent part), the latent in two chains.
      {
        float acc[MT][4], acc2[MT][4], accr[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mt][e] = acc2[mt][e] = accr[mt][e] = 0.0f;
        const __nv_bfloat16* kb = kv + (warp * 8 + lane % 8) * kKvStride + (lane / 8) * 8;
        const __nv_bfloat16* qa = sm.q + (lane % 16) * kKvStride + (lane / 16) * 8;
#pragma unroll 4
        for (int k = 0; k < kDv; k += 32) {
          uint32_t bk[4];
          ldmatrix_x4(bk, kb + k);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            uint32_t aq[4];
            ldmatrix_x4(aq, qa + mt * 16 * kKvStride + k);
            mma_bf16(acc[mt], aq, bk[0], bk[1]);
            ldmatrix_x4(aq, qa + mt * 16 * kKvStride + k + 16);
            mma_bf16(acc2[mt], aq, bk[2], bk[3]);
          }
        }
#pragma unroll
        for (int k = kDv; k < kDk; k += 32) {
          uint32_t bk[4];
          ldmatrix_x4(bk, kb + k);
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            uint32_t aq[4];
            ldmatrix_x4(aq, qa + mt * 16 * kKvStride + k);
            mma_bf16(accr[mt], aq, bk[0], bk[1]);
            ldmatrix_x4(aq, qa + mt * 16 * kKvStride + k + 16);
            mma_bf16(accr[mt], aq, bk[2], bk[3]);
          }
        }
        const int n = warp * 8 + tig * 2;
        float s0 = 1.0f, s1 = 1.0f;
        if constexpr (FP8) {
          s0 = sm.scale[n];
          s1 = sm.scale[n + 1];
        }
        // Scale to base 2 and mask: chunk end, and the causal window of each query position.
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int r = mt * 16 + gid + half * 8;
            const int s = min(row0 + r, rows_group - 1) / a.group;
            const int visible = len - a.Sq + 1 + s;
            const int e = half * 2;
            const float d0 = (acc[mt][e] + acc2[mt][e]) * s0 + accr[mt][e];
            const float d1 = (acc[mt][e + 1] + acc2[mt][e + 1]) * s1 + accr[mt][e + 1];
            float2 v;
            v.x = (n < count && t0 + n < visible) ? d0 * a.scale_log2 : -INFINITY;
            v.y = (n + 1 < count && t0 + n + 1 < visible) ? d1 * a.scale_log2 : -INFINITY;
            *reinterpret_cast<float2*>(sm.s + r * kSStride + n) = v;
          }
        }
      }
      __syncthreads();

      // Online softmax of the chunk: kRowThreads neighbouring threads per row. fp8: P is
      // multiplied by the row scale (the V rows are unscaled), l sums the plain P.
      {
        const int r = threadIdx.x / kRowThreads, j = threadIdx.x % kRowThreads;
        const float* srow = sm.s + r * kSStride + j * kRowTokens;
        float sv[kRowTokens];
        float mx = -INFINITY;
#pragma unroll
        for (int t = 0; t < kRowTokens; ++t) {
          sv[t] = srow[t];
          mx = fmaxf(mx, sv[t]);
        }
#pragma unroll
        for (int off = kRowThreads / 2; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
        const float m_old = sm.m[r];
        const float m_new = fmaxf(m_old, mx);
        float sum = 0.0f;
        __nv_bfloat16* prow = sm.p + r * kPStride + j * kRowTokens;
#pragma unroll
        for (int t = 0; t < kRowTokens; t += 2) {
          float p0 = 0.0f, p1 = 0.0f;
          if (m_new != -INFINITY) {
            p0 = exp2f(sv[t] - m_new);  // exp2(-inf) = 0 for masked slots
            p1 = exp2f(sv[t + 1] - m_new);
          }
          sum += p0 + p1;
          if constexpr (FP8) {
            p0 *= sm.scale[j * kRowTokens + t];
            p1 *= sm.scale[j * kRowTokens + t + 1];
          }
          *reinterpret_cast<__nv_bfloat162*>(prow + t) = __floats2bfloat162_rn(p0, p1);
        }
#pragma unroll
        for (int off = kRowThreads / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
        if (j == 0) {
          const float alpha = m_old == -INFINITY ? (m_new == -INFINITY ? 1.0f : 0.0f) : exp2f(m_old - m_new);
          sm.alpha[r] = alpha;
          sm.l[r] = sm.l[r] * alpha + sum;
          sm.m[r] = m_new;
        }
      }
      __syncthreads();

      // O = alpha * O + P V for value dims [64 * warp, 64 * warp + 64).
      {
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
          const float a0 = sm.alpha[mt * 16 + gid], a1 = sm.alpha[mt * 16 + gid + 8];
#pragma unroll
          for (int nt = 0; nt < 8; ++nt) {
            o[mt][nt][0] *= a0;
            o[mt][nt][1] *= a0;
            o[mt][nt][2] *= a1;
            o[mt][nt][3] *= a1;
          }
        }
        const __nv_bfloat16* vb =
            kv + ((lane % 8) + ((lane / 8) % 2) * 8) * kKvStride + warp * 64 + (lane / 16) * 8;
        const __nv_bfloat16* pa = sm.p + (lane % 16) * kPStride + (lane / 16) * 8;
#pragma unroll
        for (int ks = 0; ks < kTok / 16; ++ks) {
          uint32_t ap[MT][4];
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) ldmatrix_x4(ap[mt], pa + mt * 16 * kPStride + ks * 16);
#pragma unroll
          for (int np = 0; np < 4; ++np) {
            uint32_t bv[4];
            ldmatrix_x4_trans(bv, vb + ks * 16 * kKvStride + np * 16);
#pragma unroll
            for (int mt = 0; mt < MT; ++mt) {
              mma_bf16(o[mt][2 * np], ap[mt], bv[0], bv[1]);
              mma_bf16(o[mt][2 * np + 1], ap[mt], bv[2], bv[3]);
            }
          }
        }
      }
      __syncthreads();  // the next iteration's cp.async overwrites the stage read above
    }
    if (nchunks == 0) __syncthreads();  // m and l were set above; nothing else ordered them

    // Result (one split) or partial (several): O / l and the log-sum-exp in natural log.
    const int nsplits = a.split_prefix[b + 1] - a.split_prefix[b];
    const int slot = a.split_prefix[b] + (b == begin_b ? meta[4] : 0);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const int r = mt * 16 + gid + half * 8;
        const int mr = row0 + r;
        if (mr >= rows_group) continue;
        const int s = mr / a.group, h = g * a.group + mr % a.group;
        const float l = sm.l[r];
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        float* dst = nsplits == 1 ? a.out + ((static_cast<int64_t>(b) * a.Sq + s) * a.H + h) * kDv
                                  : a.part_o + ((static_cast<int64_t>(slot) * a.Sq + s) * a.H + h) * kDv;
#pragma unroll
        for (int nt = 0; nt < 8; ++nt) {
          const int col = warp * 64 + nt * 8 + tig * 2;
          *reinterpret_cast<float2*>(dst + col) =
              make_float2(o[mt][nt][half * 2] * inv, o[mt][nt][half * 2 + 1] * inv);
        }
      }
    }
    for (int r = threadIdx.x; r < ROWS; r += kThreads) {
      const int mr = row0 + r;
      if (mr >= rows_group) continue;
      const int s = mr / a.group, h = g * a.group + mr % a.group;
      const float l = sm.l[r];
      const float lse = l > 0.0f ? (sm.m[r] + log2f(l)) * 0.6931471805599453f : -INFINITY;
      if (nsplits == 1) {
        if (a.lse) a.lse[(static_cast<int64_t>(b) * a.H + h) * a.Sq + s] = lse;
      } else {
        a.part_lse[(static_cast<int64_t>(slot) * a.Sq + s) * a.H + h] = lse;
      }
    }
    __syncthreads();  // before the next segment rewrites q, m and l
  }
}

template <int MT, bool FP8>
cudaError_t prepare(int* ctas_per_sm) {
  const size_t smem = smem_size(MT * 16, FP8);
  cudaError_t e = cudaFuncSetAttribute(mla_split_mma_kernel<MT, FP8>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(ctas_per_sm, mla_split_mma_kernel<MT, FP8>, kThreads, smem);
}

}  // namespace

bool mla_mma_supported(const lkv_mla_decode_params& p) {
  if (p.kv_lora_rank != kDv || p.rope_dim != kDr) return false;
  return p.cache_dtype == LKV_DTYPE_BF16 || (p.cache_dtype == LKV_DTYPE_FP8_E4M3 && p.rope_heads == 1);
}

int mla_mma_rows(int rows_per_group) { return rows_per_group <= 16 ? 16 : 32; }

size_t mla_mma_smem(int rows, bool fp8) { return smem_size(rows, fp8); }

cudaError_t mla_mma_prepare(int rows, bool fp8, int* ctas_per_sm) {
  if (fp8) return rows == 16 ? prepare<1, true>(ctas_per_sm) : prepare<2, true>(ctas_per_sm);
  return rows == 16 ? prepare<1, false>(ctas_per_sm) : prepare<2, false>(ctas_per_sm);
}

cudaError_t launch_mla_split_mma(const MlaMmaArgs& a, dim3 grid, cudaStream_t stream) {
  const size_t smem = smem_size(a.rows_per_tile, a.fp8);
  if (a.fp8) {
    if (a.rows_per_tile == 16) mla_split_mma_kernel<1, true><<<grid, kThreads, smem, stream>>>(a);
    else mla_split_mma_kernel<2, true><<<grid, kThreads, smem, stream>>>(a);
  } else {
    if (a.rows_per_tile == 16) mla_split_mma_kernel<1, false><<<grid, kThreads, smem, stream>>>(a);
    else mla_split_mma_kernel<2, false><<<grid, kThreads, smem, stream>>>(a);
  }
  return cudaGetLastError();
}

}  // namespace lkv::cuda
