// Tensor-core split kernel of gqa_decode for bf16 caches with head_dim 128, sm_80+ (mma.sync
// m16n8k16, ldmatrix, cp.async). One CTA (8 warps) owns a tile of 16 query rows (s, head) of one
// KV head and walks the token ranges the scheduler gave its part, 64 tokens per chunk:
//   - the chunk's K and V rows of this KV head stream into shared memory with cp.async,
//     double-buffered, 8 threads per token; the pages are looked up one chunk ahead;
//   - S = Q K^T: warp w takes the 8 tokens of n-tile w over all 128 dims;
//   - an online softmax in base 2 (16 threads per row), P rounded to bf16;
//   - O += P V: warp w owns dims [16w, 16w + 16), f32 registers for the whole token range.
// Two CTAs per SM (81 KB of shared memory each). Rows past the group's end (Llama-3-8B has 4
// query heads per KV head) are zero and never written.
#include <cuda_bf16.h>

#include <cmath>

#include "cuda-common.cuh"
#include "gqa-split-mma.h"
#include "mma-common.cuh"
#include "split-tile.cuh"
#include "split-schedule.h"

namespace lkv::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kD = 128;
constexpr int kRows = kGqaMmaRows;
constexpr int kTok = 64;
constexpr int kStride = kD + 8;     // bf16 elements per shared row (272 bytes: conflict-free ldmatrix)
constexpr int kPStride = kTok + 8;  // bf16 elements per P row
constexpr int kSStride = kTok + 4;  // floats per score row
constexpr int kPieces = kD * 2 / 16;  // 16-byte pieces of one K (or V) row (16)
constexpr int kCopyThreadsPerToken = 8;
constexpr int kCopyTokensPerPass = kThreads / kCopyThreadsPerToken;  // 32
constexpr int kCopyPasses = kTok / kCopyTokensPerPass;               // 2

static_assert(kTok == kWarps * 8, "one 8-token n-tile of S per warp");
static_assert(kD == kWarps * 16, "16 value dims (two n-tiles) of O per warp");
static_assert((2 * kPieces) % kCopyThreadsPerToken == 0, "K and V pieces split evenly over a row's threads");

struct Smem {
  __nv_bfloat16* q;  // [kRows][kStride]
  __nv_bfloat16* k;  // [2][kTok][kStride]
  __nv_bfloat16* v;  // [2][kTok][kStride]
  float* s;          // [kRows][kSStride]
  __nv_bfloat16* p;  // [kRows][kPStride]
  float* m;          // [kRows] running max (base 2)
  float* l;          // [kRows] running sum
  float* alpha;      // [kRows] this chunk's rescale factor
};

constexpr size_t kSmemBytes = kRows * kStride * 2 + 2 * 2 * kTok * kStride * 2 + kRows * kSStride * 4 +
                              kRows * kPStride * 2 + 3 * kRows * 4;

__device__ Smem carve(unsigned char* base) {
  Smem s;
  s.q = reinterpret_cast<__nv_bfloat16*>(base);
  s.k = s.q + kRows * kStride;
  s.v = s.k + 2 * kTok * kStride;
  s.s = reinterpret_cast<float*>(s.v + 2 * kTok * kStride);
  s.p = reinterpret_cast<__nv_bfloat16*>(s.s + kRows * kSStride);
  s.m = reinterpret_cast<float*>(s.p + kRows * kPStride);
  s.l = s.m + kRows;
  s.alpha = s.l + kRows;
  return s;
}

// Block-table entries of the rows this thread copies (-1: past the chunk's end).
__device__ __forceinline__ void fetch_pages(const GqaMmaArgs& a, int b, int t0, int count, int32_t (&pages)[kCopyPasses]) {
#pragma unroll
  for (int k = 0; k < kCopyPasses; ++k) {
    const int t = threadIdx.x / kCopyThreadsPerToken + k * kCopyTokensPerPass;
    pages[k] = t < count ? a.block_table[static_cast<int64_t>(b) * a.max_blocks + (t0 + t) / a.block_size] : -1;
  }
}

// Queues the K and V rows of KV head g for the chunk at t0; rows past its end are zero-filled
// (masked scores, and zero V keeps 0 * V finite).
__device__ __forceinline__ void issue_chunk(const GqaMmaArgs& a, int g, int t0, const int32_t (&pages)[kCopyPasses],
                                            const Smem& sm, int stage) {
  const int sub = threadIdx.x % kCopyThreadsPerToken;
#pragma unroll
  for (int k = 0; k < kCopyPasses; ++k) {
    const int t = threadIdx.x / kCopyThreadsPerToken + k * kCopyTokensPerPass;
    const uint8_t* row = a.cache;
    int bytes = 0;
    if (pages[k] >= 0) {
      const int token = t0 + t;
      row = a.cache + (static_cast<int64_t>(pages[k]) * a.block_size + token % a.block_size) * a.row_bytes +
            static_cast<int64_t>(g) * kD * 2;
      bytes = 16;
    }
    __nv_bfloat16* kd = sm.k + (stage * kTok + t) * kStride;
    __nv_bfloat16* vd = sm.v + (stage * kTok + t) * kStride;
#pragma unroll
    for (int i = sub; i < 2 * kPieces; i += kCopyThreadsPerToken) {
      const bool is_v = i >= kPieces;
      const int piece = is_v ? i - kPieces : i;
      const uint8_t* src = row + (is_v ? a.v_offset : 0) + piece * 16;
      cp_async16((is_v ? vd : kd) + piece * 8, bytes ? src : a.cache, bytes);
    }
  }
}

__global__ void __launch_bounds__(kThreads, 2) gqa_split_mma_kernel(const GqaMmaArgs a) {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  const Smem sm = carve(smem_raw);
  const int g = blockIdx.z;
  const Part part = read_part(a, blockIdx.y);
  if (part.begin_b < 0) return;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int gid = lane / 4, tig = lane % 4;
  const int rows_group = a.Sq * a.group;
  const int row0 = blockIdx.x * kRows;
  const TileRows tile{row0, rows_group};
  const RowState st{sm.m, sm.l, sm.alpha};

  for (int b = part.begin_b; b <= part.end_b; ++b) {
    const Segment seg = segment_of(a, part, b);
    const int len = seg.len, t_begin = seg.t_begin, t_end = seg.t_end;
    const int nchunks = t_end > t_begin ? (t_end - t_begin + kTok - 1) / kTok : 0;
    auto chunk_count = [&](int c) { return min(kTok, t_end - (t_begin + c * kTok)); };
    int32_t pages[kCopyPasses];
    if (nchunks > 0) {
      fetch_pages(a, b, t_begin, chunk_count(0), pages);
      issue_chunk(a, g, t_begin, pages, sm, 0);
    }
    cp_async_commit();
    if (nchunks > 1) fetch_pages(a, b, t_begin + kTok, chunk_count(1), pages);

    // Query rows of the tile in bf16; rows past the group's end are zero.
    for (int idx = threadIdx.x; idx < kRows * kD / 2; idx += kThreads) {
      const int r = idx / (kD / 2), i = (idx - r * (kD / 2)) * 2;
      const int mr = row0 + r;
      float2 v = make_float2(0.0f, 0.0f);
      if (mr < rows_group) {
        const int s = mr / a.group, h = g * a.group + mr % a.group;
        v = *reinterpret_cast<const float2*>(a.q + ((static_cast<int64_t>(b) * a.Sq + s) * a.H + h) * kD + i);
      }
      *reinterpret_cast<__nv_bfloat162*>(sm.q + r * kStride + i) = __float22bfloat162_rn(v);
    }
    for (int r = threadIdx.x; r < kRows; r += kThreads) {
      sm.m[r] = -INFINITY;
      sm.l[r] = 0.0f;
    }
    float o[1][2][4] = {};  // one m-tile, two n-tiles of 8 value dims

    for (int c = 0; c < nchunks; ++c) {
      const int t0 = t_begin + c * kTok;
      const int count = chunk_count(c);
      if (c + 1 < nchunks) {
        issue_chunk(a, g, t0 + kTok, pages, sm, (c + 1) & 1);
        if (c + 2 < nchunks) fetch_pages(a, b, t0 + 2 * kTok, chunk_count(c + 2), pages);
      }
      cp_async_commit();
      cp_async_wait<1>();
      __syncthreads();
      const __nv_bfloat16* kc = sm.k + (c & 1) * kTok * kStride;
      const __nv_bfloat16* vc = sm.v + (c & 1) * kTok * kStride;

      // S for tokens [8 * warp, 8 * warp + 8), all 16 rows, in two chains.
      {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f}, acc2[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        const __nv_bfloat16* kb = kc + (warp * 8 + lane % 8) * kStride + (lane / 8) * 8;
        const __nv_bfloat16* qa = sm.q + (lane % 16) * kStride + (lane / 16) * 8;
#pragma unroll
        for (int k = 0; k < kD; k += 32) {
          uint32_t bk[4], aq[4], aq2[4];
          ldmatrix_x4(bk, kb + k);
          ldmatrix_x4(aq, qa + k);
          ldmatrix_x4(aq2, qa + k + 16);
          mma_bf16(acc, aq, bk[0], bk[1]);
          mma_bf16(acc2, aq2, bk[2], bk[3]);
        }
        const int n = warp * 8 + tig * 2;
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int r = gid + half * 8, e = half * 2;
          *reinterpret_cast<float2*>(sm.s + r * kSStride + n) = make_float2(acc[e] + acc2[e], acc[e + 1] + acc2[e + 1]);
        }
      }
      __syncthreads();

      chunk_softmax<kThreads, kRows, kTok, 1, false>(a, tile, len, t0, count, sm.s, kSStride, sm.p, kPStride,
                                                     nullptr, st);
      __syncthreads();

      // O = alpha * O + P V for dims [16 * warp, 16 * warp + 16).
      {
        rescale_o(o, st, gid);
        const __nv_bfloat16* vb = vc + ((lane % 8) + ((lane / 8) % 2) * 8) * kStride + warp * 16 + (lane / 16) * 8;
        const __nv_bfloat16* pa = sm.p + (lane % 16) * kPStride + (lane / 16) * 8;
#pragma unroll
        for (int ks = 0; ks < kTok / 16; ++ks) {
          uint32_t ap[4], bv[4];
          ldmatrix_x4(ap, pa + ks * 16);
          ldmatrix_x4_trans(bv, vb + ks * 16 * kStride);
          mma_bf16(o[0][0], ap, bv[0], bv[1]);
          mma_bf16(o[0][1], ap, bv[2], bv[3]);
        }
      }
      __syncthreads();  // the next iteration's cp.async overwrites the stage read above
    }
    cp_async_wait<0>();
    __syncthreads();  // m and l (also when there were no chunks) before they are read below

    write_tile<kThreads, kRows, 1, 2, kD>(a, tile, g, b, part, o, st);
    __syncthreads();  // before the next segment rewrites q, m and l
  }
}

}  // namespace

bool gqa_mma_supported(const lkv_gqa_decode_params& p) {
  return p.cache_dtype == LKV_DTYPE_BF16 && p.head_dim == kD;
}

size_t gqa_mma_smem() { return kSmemBytes; }

cudaError_t gqa_mma_prepare(int* ctas_per_sm) {
  return prepare_split_kernel(gqa_split_mma_kernel, kThreads, kSmemBytes, ctas_per_sm);
}

cudaError_t launch_gqa_split_mma(const GqaMmaArgs& a, dim3 grid, cudaStream_t stream) {
  gqa_split_mma_kernel<<<grid, kThreads, kSmemBytes, stream>>>(a);
  return cudaGetLastError();
}

}  // namespace lkv::cuda
