// Tensor-core split kernel of mla_decode for bf16 and fp8-e4m3 caches, sm_80+ (mma.sync
// m16n8k16, ldmatrix, cp.async). One CTA (8 warps) owns a tile of 16 or 32 query rows (s, head)
// of one rope group and walks the token ranges the scheduler gave its part, chunk by chunk
// (32 or 64 tokens, see Cfg):
//   - the chunks' latent rows stream into shared memory with cp.async, double-buffered, 8
//     threads per row (whole 128-byte lines per warp instruction); the page of each row is
//     looked up one chunk before its copy is issued. bf16 rows (512 + 64 bf16) land where the
//     mma reads them. fp8 rows (512 fp8, an f32 scale, 64 bf16; 4-byte aligned only) land raw
//     (a page's run in 16-byte pieces when pages hold a multiple of 64 rows) and are widened
//     to bf16 in shared memory (exact); the row scale multiplies the latent part of S and is
//     folded into P;
//   - S = Q K^T: each warp takes one 8-token n-tile over all 576 dims (64-token chunks) or over
//     half of them (32-token chunks; the halves meet in the softmax);
//   - an online softmax in base 2 (several threads per row), P rounded to bf16;
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
#include "mma-common.cuh"
#include "split-tile.cuh"
#include "split-schedule.h"

namespace lkv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kDv = 512;               // latent rank, the value width
constexpr int kDr = 64;                // rope dims per group
constexpr int kDk = kDv + kDr;         // key width
constexpr int kKvStride = kDk + 8;     // bf16 elements per shared row (1168 bytes)
constexpr int kPiecesPerRow = kDk * 2 / 16;   // 16-byte cp.async pieces per token row (72)
constexpr int kLatentPieces = kDv * 2 / 16;   // of which latent (64)
static_assert(kDv == kWarps * 64, "64 value dims of O per warp");
// Copies: 8 threads per row, so a warp instruction covers whole 128-byte lines of 4 rows (4
// threads per row, 64-byte pieces, measured 5% slower); 32 rows per pass.
constexpr int kCopyThreadsPerToken = 8;
constexpr int kCopyTokensPerPass = kThreads / kCopyThreadsPerToken;
static_assert(kPiecesPerRow % kCopyThreadsPerToken == 0, "pieces split evenly over a row's threads");
static_assert(kUnitTokens % kMlaMmaContiguousTokens == 0, "schedule units start on 64-token boundaries");

// One variant's shape: tokens per chunk, pipeline stages, CTAs per SM. Measured on an H100
// (B = 64, L = 8K): 32-row tiles and bf16 16-row tiles run best with 64-token chunks and one CTA
// per SM; fp8 16-row tiles (whose chunks also need widening) with 32-token chunks and two CTAs
// per SM. Deeper pipelines measured slower, and so did Q's fragments held in registers (half
// the shared-memory reads): the kernel is bound by latency inside the SM, not by bandwidth.
template <int MT, bool FP8>
struct Cfg {
  static constexpr bool kSmall = MT == 1 && FP8;
  static constexpr int kTok = kSmall ? 32 : 64;
  static constexpr int kStages = 2;
  static constexpr int kCtas = kSmall ? 2 : 1;
  static constexpr int kRows = MT * 16;
  static constexpr int kWarpsPerTile = kWarps / (kTok / 8);  // warps sharing one 8-token n-tile of S
  static constexpr int kKRange = kDk / kWarpsPerTile;        // dims of S per warp
  static constexpr int kPStride = kTok + 8;                  // bf16 elements per P row
  static constexpr int kSStride = kTok + 4;                  // floats per score row
  static constexpr int kCopyPasses = kTok / kCopyTokensPerPass;  // rows each thread helps copy
  static_assert(kMlaMmaContiguousTokens % kTok == 0, "chunks stay inside 64-aligned page runs");
  static_assert(kKRange % 32 == 0, "S in steps of two k16");
};

constexpr int kRawStride = 644;  // bytes per staged fp8 row: the global layout, so a page's run copies as is
constexpr int kRawWords = 161;   // 4-byte words of one fp8 row: 128 latent, 1 scale, 32 rope

struct Smem {
  __nv_bfloat16* q;   // [rows][kKvStride]
  __nv_bfloat16* kv;  // bf16: [stages][tok][kKvStride]; fp8: [tok][kKvStride] widened chunk
  uint8_t* raw;       // fp8: [stages][tok][kRawStride]
  float* scale;       // fp8: [tok] row scales of the chunk
  float* s;           // [warps per n-tile][rows][s stride] partial sums of S
  __nv_bfloat16* p;   // [rows][p stride]
  float* m;           // [rows] running max (base 2)
  float* l;           // [rows] running sum
  float* alpha;       // [rows] this chunk's rescale factor
};

template <int MT, bool FP8>
__host__ __device__ constexpr size_t smem_size() {
  using C = Cfg<MT, FP8>;
  return static_cast<size_t>(C::kRows) * kKvStride * 2 +
         (FP8 ? 1 : C::kStages) * static_cast<size_t>(C::kTok) * kKvStride * 2 +
         (FP8 ? static_cast<size_t>(C::kStages) * C::kTok * kRawStride + C::kTok * 4 : 0) +
         static_cast<size_t>(C::kWarpsPerTile) * C::kRows * C::kSStride * 4 +
         static_cast<size_t>(C::kRows) * C::kPStride * 2 + 3 * static_cast<size_t>(C::kRows) * 4;
}

template <int MT, bool FP8>
__device__ Smem carve(unsigned char* base) {
  using C = Cfg<MT, FP8>;
  Smem s;
  s.q = reinterpret_cast<__nv_bfloat16*>(base);
  s.kv = s.q + C::kRows * kKvStride;
  unsigned char* next = reinterpret_cast<unsigned char*>(s.kv + (FP8 ? 1 : C::kStages) * C::kTok * kKvStride);
  s.raw = next;
  s.scale = reinterpret_cast<float*>(next + (FP8 ? C::kStages * C::kTok * kRawStride : 0));
  s.s = s.scale + (FP8 ? C::kTok : 0);
  s.p = reinterpret_cast<__nv_bfloat16*>(s.s + C::kWarpsPerTile * C::kRows * C::kSStride);
  s.m = reinterpret_cast<float*>(s.p + C::kRows * C::kPStride);
  s.l = s.m + C::kRows;
  s.alpha = s.l + C::kRows;
  return s;
}

// The block-table entries of the chunk rows this thread copies (-1: past the chunk's end). With
// contiguous chunks (a.contiguous) every thread needs only the one page of the chunk.
template <int N>
struct Pages {
  int32_t v[N];
};

template <class C>
__device__ __forceinline__ void fetch_pages(const MlaMmaArgs& a, int b, int t0, int count,
                                            Pages<C::kCopyPasses>& pages) {
#pragma unroll
  for (int k = 0; k < C::kCopyPasses; ++k) {
    const int t = a.contiguous ? 0 : threadIdx.x / kCopyThreadsPerToken + k * kCopyTokensPerPass;
    pages.v[k] = t < count ? a.block_table[static_cast<int64_t>(b) * a.max_blocks + (t0 + t) / a.block_size] : -1;
  }
}

__device__ __forceinline__ void cp_async4(void* dst, const void* src, int src_bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src),
               "r"(src_bytes));
}

// Queues the rows of the chunk at t0 into a stage; rows past the chunk's end are zero-filled
// (bf16: their scores are masked, and zero V keeps 0 * V finite; fp8: widen_fp8_chunk zeroes).
template <class C, bool FP8>
__device__ __forceinline__ void issue_chunk(const MlaMmaArgs& a, int g, int t0, int count,
                                            const Pages<C::kCopyPasses>& pages,
                                            const Smem& sm, int stage) {
  constexpr int kTok = C::kTok;
  if (FP8 && a.contiguous) {
    // The chunk is count rows of one page: 16-byte pieces of the whole run. Rounding up reads
    // at most 15 bytes of the next row, which is inside the page (count < tok ends mid-page).
    const uint8_t* base =
        a.cache + (static_cast<int64_t>(pages.v[0]) * a.block_size + t0 % a.block_size) * a.row_bytes;
    uint8_t* dst = sm.raw + stage * kTok * kRawStride;
    const int pieces = (count * kRawStride + 15) / 16;
    for (int i = threadIdx.x; i < pieces; i += kThreads) cp_async16(dst + i * 16, base + i * 16, 16);
    return;
  }
  const int sub = threadIdx.x % kCopyThreadsPerToken;
#pragma unroll
  for (int k = 0; k < C::kCopyPasses; ++k) {
    const int t = threadIdx.x / kCopyThreadsPerToken + k * kCopyTokensPerPass;
    const uint8_t* row = a.cache;
    int bytes = 0;
    if (pages.v[k] >= 0) {
      const int token = t0 + t;
      row = a.cache + (static_cast<int64_t>(pages.v[k]) * a.block_size + token % a.block_size) * a.row_bytes;
      bytes = FP8 ? 4 : 16;
    }
    if constexpr (FP8) {
      uint8_t* dst = sm.raw + (stage * kTok + t) * kRawStride;
      for (int w = sub; w < kRawWords; w += kCopyThreadsPerToken)
        cp_async4(dst + w * 4, bytes ? row + w * 4 : a.cache, bytes);
    } else {
      const uint8_t* rope = row + a.rope_offset + static_cast<int64_t>(g) * kDr * 2;
      __nv_bfloat16* dst = sm.kv + (stage * kTok + t) * kKvStride;
#pragma unroll
      for (int i = sub; i < kPiecesPerRow; i += kCopyThreadsPerToken) {
        const uint8_t* src = i < kLatentPieces ? row + i * 16 : rope + (i - kLatentPieces) * 16;
        cp_async16(dst + i * 8, bytes ? src : a.cache, bytes);
      }
    }
  }
}

// fp8: widens a raw stage to bf16 rows in sm.kv (e4m3 values are exact in bf16) and keeps the
// row scales; a warp per row, a lane per word (conflict-free). Rows past count become zeros
// (a contiguous copy brings whatever the page holds there). Needs rope_heads == 1.
template <class C>
__device__ __forceinline__ void widen_fp8_chunk(const Smem& sm, int stage, int count) {
  constexpr int kTok = C::kTok;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  for (int t = warp; t < kTok; t += kWarps) {
    const uint32_t* src = reinterpret_cast<const uint32_t*>(sm.raw + (stage * kTok + t) * kRawStride);
    __nv_bfloat16* dst = sm.kv + t * kKvStride;
    uint32_t* rdst = reinterpret_cast<uint32_t*>(dst + kDv);
    if (t >= count) {
#pragma unroll
      for (int j = 0; j < kDv / 128; ++j) *reinterpret_cast<uint2*>(dst + (lane + 32 * j) * 4) = make_uint2(0, 0);
      rdst[lane] = 0;
      if (lane == 0) sm.scale[t] = 0.0f;
      continue;
    }
#pragma unroll
    for (int j = 0; j < kDv / 128; ++j) {
      const uint32_t v = src[lane + 32 * j];
      const __half2 lo = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(v & 0xffffu), __NV_E4M3));
      const __half2 hi = __half2(__nv_cvt_fp8x2_to_halfraw2(static_cast<__nv_fp8x2_storage_t>(v >> 16), __NV_E4M3));
      __nv_bfloat162 out[2] = {__float22bfloat162_rn(__half22float2(lo)), __float22bfloat162_rn(__half22float2(hi))};
      *reinterpret_cast<uint2*>(dst + (lane + 32 * j) * 4) = *reinterpret_cast<const uint2*>(out);
    }
    static_assert(kDr / 2 == 32, "one rope word per lane");
    rdst[lane] = src[kDv / 4 + 1 + lane];
    if (lane == 0) sm.scale[t] = __uint_as_float(src[kDv / 4]);
  }
}

template <int MT, bool FP8>
__global__ void __launch_bounds__(kThreads, Cfg<MT, FP8>::kCtas) mla_split_mma_kernel(const MlaMmaArgs a) {
  using C = Cfg<MT, FP8>;
  constexpr int ROWS = C::kRows, kTok = C::kTok, kStages = C::kStages;
  constexpr int kPStride = C::kPStride, kSStride = C::kSStride, kKRange = C::kKRange;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Smem sm = carve<MT, FP8>(smem_raw);

  const int g = blockIdx.z;
  const Part part = read_part(a, blockIdx.y);
  if (part.begin_b < 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tig = lane % 4;
  const int rows_group = a.Sq * a.group;
  const int row0 = blockIdx.x * ROWS;
  const TileRows tile{row0, rows_group};
  const RowState st{sm.m, sm.l, sm.alpha};
  // This warp's part of S: an n-tile (8 tokens) and a range of the 576 dims.
  const int ntile = warp % (kTok / 8), kpart = warp / (kTok / 8);

  for (int b = part.begin_b; b <= part.end_b; ++b) {
    const Segment seg = segment_of(a, part, b);
    const int len = seg.len, t_begin = seg.t_begin, t_end = seg.t_end;
    const int nchunks = t_end > t_begin ? (t_end - t_begin + kTok - 1) / kTok : 0;
    auto chunk_count = [&](int c) { return min(kTok, t_end - (t_begin + c * kTok)); };
    // Prologue: the first kStages - 1 chunks in flight, the page of the next one in hand.
    Pages<C::kCopyPasses> pages{};
    if (nchunks > 0) fetch_pages<C>(a, b, t_begin, chunk_count(0), pages);
#pragma unroll
    for (int c = 0; c < kStages - 1; ++c) {
      if (c < nchunks) {
        issue_chunk<C, FP8>(a, g, t_begin + c * kTok, chunk_count(c), pages, sm, c);
        if (c + 1 < nchunks) fetch_pages<C>(a, b, t_begin + (c + 1) * kTok, chunk_count(c + 1), pages);
      }
      cp_async_commit();
    }

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
      const int count = chunk_count(c);
      const int ahead = c + kStages - 1;
      if (ahead < nchunks) {
        issue_chunk<C, FP8>(a, g, t_begin + ahead * kTok, chunk_count(ahead), pages, sm, ahead % kStages);
        // The page lookup for the next copy overlaps this chunk's work.
        if (ahead + 1 < nchunks) fetch_pages<C>(a, b, t_begin + (ahead + 1) * kTok, chunk_count(ahead + 1), pages);
      }
      cp_async_commit();
      cp_async_wait<kStages - 1>();
      __syncthreads();
      if constexpr (FP8) {
        widen_fp8_chunk<C>(sm, c % kStages, count);
        __syncthreads();
      }
      const __nv_bfloat16* kv = sm.kv + (FP8 ? 0 : (c % kStages) * kTok * kKvStride);

      // This warp's part of S for n-tile `ntile`, all rows: latent and rope dims in separate
      // accumulators (fp8 scales only the latent part), the latent in two chains.
      {
        float acc[MT][4], acc2[MT][4], accr[MT][4];
#pragma unroll
        for (int mt = 0; mt < MT; ++mt)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[mt][e] = acc2[mt][e] = accr[mt][e] = 0.0f;
        const int k0 = C::kWarpsPerTile == 1 ? 0 : kpart * kKRange;  // 0: the rope test below folds
        const __nv_bfloat16* kb = kv + (ntile * 8 + lane % 8) * kKvStride + k0 + (lane / 8) * 8;
        const __nv_bfloat16* qa = sm.q + (lane % 16) * kKvStride + k0 + (lane / 16) * 8;
#pragma unroll
        for (int k = 0; k < kKRange; k += 32) {
          uint32_t bk[4];
          ldmatrix_x4(bk, kb + k);
          const bool rope = k0 + k >= kDv;  // warp-uniform
#pragma unroll
          for (int mt = 0; mt < MT; ++mt) {
            uint32_t aq[4], aq2[4];
            ldmatrix_x4(aq, qa + mt * 16 * kKvStride + k);
            ldmatrix_x4(aq2, qa + mt * 16 * kKvStride + k + 16);
            if (rope) {
              mma_bf16(accr[mt], aq, bk[0], bk[1]);
              mma_bf16(accr[mt], aq2, bk[2], bk[3]);
            } else {
              mma_bf16(acc[mt], aq, bk[0], bk[1]);
              mma_bf16(acc2[mt], aq2, bk[2], bk[3]);
            }
          }
        }
        const int n = ntile * 8 + tig * 2;
        float s0 = 1.0f, s1 = 1.0f;
        if constexpr (FP8) {
          s0 = sm.scale[n];
          s1 = sm.scale[n + 1];
        }
        float* sh = sm.s + kpart * ROWS * kSStride;
#pragma unroll
        for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int r = mt * 16 + gid + half * 8, e = half * 2;
            *reinterpret_cast<float2*>(sh + r * kSStride + n) =
                make_float2((acc[mt][e] + acc2[mt][e]) * s0 + accr[mt][e],
                            (acc[mt][e + 1] + acc2[mt][e + 1]) * s1 + accr[mt][e + 1]);
          }
        }
      }
      __syncthreads();

      // Online softmax of the chunk (fp8: P carries the row scales, the V rows are unscaled).
      chunk_softmax<kThreads, ROWS, kTok, C::kWarpsPerTile, FP8>(a, tile, len, t0, count, sm.s, kSStride, sm.p,
                                                                  kPStride, sm.scale, st);
      __syncthreads();

      // O = alpha * O + P V for value dims [64 * warp, 64 * warp + 64).
      {
        rescale_o(o, st, gid);
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
      __syncthreads();  // a later iteration's cp.async overwrites the stage read above
    }
    cp_async_wait<0>();  // no copy of this segment may land after the next one starts
    __syncthreads();     // m and l (also when there were no chunks) before they are read below

    write_tile<kThreads, ROWS, MT, 8, kDv>(a, tile, g, b, part, o, st);
    __syncthreads();  // before the next segment rewrites q, m and l
  }
}

template <int MT, bool FP8>
cudaError_t prepare(int* ctas_per_sm) {
  return prepare_split_kernel(mla_split_mma_kernel<MT, FP8>, kThreads, smem_size<MT, FP8>(), ctas_per_sm);
}

template <int MT, bool FP8>
cudaError_t launch(const MlaMmaArgs& a, dim3 grid, cudaStream_t stream) {
  mla_split_mma_kernel<MT, FP8><<<grid, kThreads, smem_size<MT, FP8>(), stream>>>(a);
  return cudaGetLastError();
}

}  // namespace

bool mla_mma_supported(const lkv_mla_decode_params& p) {
  if (p.kv_lora_rank != kDv || p.rope_dim != kDr) return false;
  return p.cache_dtype == LKV_DTYPE_BF16 || (p.cache_dtype == LKV_DTYPE_FP8_E4M3 && p.rope_heads == 1);
}

int mla_mma_rows(int rows_per_group) { return rows_per_group <= 16 ? 16 : 32; }

size_t mla_mma_smem(int rows, bool fp8) {
  if (fp8) return rows == 16 ? smem_size<1, true>() : smem_size<2, true>();
  return rows == 16 ? smem_size<1, false>() : smem_size<2, false>();
}

cudaError_t mla_mma_prepare(int rows, bool fp8, int* ctas_per_sm) {
  if (fp8) return rows == 16 ? prepare<1, true>(ctas_per_sm) : prepare<2, true>(ctas_per_sm);
  return rows == 16 ? prepare<1, false>(ctas_per_sm) : prepare<2, false>(ctas_per_sm);
}

cudaError_t launch_mla_split_mma(const MlaMmaArgs& a, dim3 grid, cudaStream_t stream) {
  if (a.fp8) return a.rows_per_tile == 16 ? launch<1, true>(a, grid, stream) : launch<2, true>(a, grid, stream);
  return a.rows_per_tile == 16 ? launch<1, false>(a, grid, stream) : launch<2, false>(a, grid, stream);
}

}  // namespace lkv::cuda
