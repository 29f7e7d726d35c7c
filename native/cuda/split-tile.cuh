// The per-chunk and per-segment steps both tensor-core split kernels share (mla-split-mma.cu,
// gqa-split-mma.cu): the online softmax of a chunk over a tile of query rows, the write-out of
// a tile's rows (the result, or a split's partial), and the launch preparation.
#ifndef LATENTKV_CUDA_SPLIT_TILE_CUH_
#define LATENTKV_CUDA_SPLIT_TILE_CUH_

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "split-args.h"
#include "split-schedule.h"

namespace lkv::cuda {

// The token ranges the schedule gave one part (split-schedule.h): sequences begin_b..end_b, the
// first from begin_tok, the last up to end_tok; begin_b < 0: no work.
struct Part {
  int begin_b, begin_tok, end_b, end_tok, begin_split;
};

__device__ __forceinline__ Part read_part(const SplitArgs& a, int part) {
  const int32_t* m = a.meta + part * kMetaInts;
  return Part{m[0], m[1], m[2], m[3], m[4]};
}

// This part's tokens [t_begin, t_end) of sequence b, of len in all.
struct Segment {
  int len, t_begin, t_end;
};

__device__ __forceinline__ Segment segment_of(const SplitArgs& a, const Part& part, int b) {
  const int len = a.seq_lens[b];
  return Segment{len, b == part.begin_b ? part.begin_tok : 0, b == part.end_b ? min(part.end_tok, len) : len};
}

// A tile's running softmax state in shared memory, one entry per row.
struct RowState {
  float* m;      // running max (base 2)
  float* l;      // running sum
  float* alpha;  // this chunk's rescale factor of O
};

// Where the tile's rows are: row r of the tile is row row0 + r of its group's Sq * group rows.
struct TileRows {
  int row0, rows_group;
};

// Online softmax of one chunk: kThreads / kRows neighbouring threads per row. s holds kParts
// partial score planes [kParts][kRows][s_stride] that are summed. Scores are scaled to base 2
// and masked past the chunk's `count` tokens and outside each query position's causal window.
// P goes to p as bf16, multiplied by p_scale[t] with kScaleP (fp8 row scales; l sums the plain P).
template <int kThreads, int kRows, int kTok, int kParts, bool kScaleP>
__device__ __forceinline__ void chunk_softmax(const SplitArgs& a, const TileRows& tile, int len, int t0, int count,
                                              const float* s, int s_stride, __nv_bfloat16* p, int p_stride,
                                              const float* p_scale, const RowState& st) {
  constexpr int kRowThreads = kThreads / kRows;
  constexpr int kRowTokens = kTok / kRowThreads;
  static_assert(kRowTokens % 2 == 0, "threads write pairs of P");
  const int r = threadIdx.x / kRowThreads, j = threadIdx.x % kRowThreads;
  const int tj = j * kRowTokens;
  const int q_pos = min(tile.row0 + r, tile.rows_group - 1) / a.group;
  const int limit = min(count, len - a.Sq + 1 + q_pos - t0);  // visible tokens of this chunk
  const float* srow = s + r * s_stride + tj;
  float sv[kRowTokens];
  float mx = -INFINITY;
#pragma unroll
  for (int t = 0; t < kRowTokens; ++t) {
    float d = srow[t];
#pragma unroll
    for (int w = 1; w < kParts; ++w) d += srow[w * kRows * s_stride + t];
    sv[t] = tj + t < limit ? d * a.scale_log2 : -INFINITY;
    mx = fmaxf(mx, sv[t]);
  }
#pragma unroll
  for (int off = kRowThreads / 2; off > 0; off /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, off));
  const float m_old = st.m[r];
  const float m_new = fmaxf(m_old, mx);
  float sum = 0.0f;
  __nv_bfloat16* prow = p + r * p_stride + tj;
#pragma unroll
  for (int t = 0; t < kRowTokens; t += 2) {
    float p0 = 0.0f, p1 = 0.0f;
    if (m_new != -INFINITY) {
      p0 = exp2f(sv[t] - m_new);  // exp2(-inf) = 0 for masked slots
      p1 = exp2f(sv[t + 1] - m_new);
    }
    sum += p0 + p1;
    if constexpr (kScaleP) {
      p0 *= p_scale[tj + t];
      p1 *= p_scale[tj + t + 1];
    }
    *reinterpret_cast<__nv_bfloat162*>(prow + t) = __floats2bfloat162_rn(p0, p1);
  }
#pragma unroll
  for (int off = kRowThreads / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  __syncwarp();  // every thread of the row has read m and l before thread 0 rewrites them
  if (j == 0) {
    const float alpha = m_old == -INFINITY ? (m_new == -INFINITY ? 1.0f : 0.0f) : exp2f(m_old - m_new);
    st.alpha[r] = alpha;
    st.l[r] = st.l[r] * alpha + sum;
    st.m[r] = m_new;
  }
}

// O *= alpha of each row, for a warp's MT x NT accumulator tiles (rows gid and gid + 8).
template <int MT, int NT>
__device__ __forceinline__ void rescale_o(float (&o)[MT][NT][4], const RowState& st, int gid) {
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    const float a0 = st.alpha[mt * 16 + gid], a1 = st.alpha[mt * 16 + gid + 8];
#pragma unroll
    for (int nt = 0; nt < NT; ++nt) {
      o[mt][nt][0] *= a0;
      o[mt][nt][1] *= a0;
      o[mt][nt][2] *= a1;
      o[mt][nt][3] *= a1;
    }
  }
}

// Writes the tile's rows of sequence b after its last chunk: O / l to out (one split) or to the
// split's partial slot, and the log-sum-exp in natural log. Warp w holds the value dims
// [w * NT * 8, w * NT * 8 + NT * 8) of every row; kDv is the value width.
template <int kThreads, int kRows, int MT, int NT, int kDv>
__device__ __forceinline__ void write_tile(const SplitArgs& a, const TileRows& tile, int g, int b, const Part& part,
                                           const float (&o)[MT][NT][4], const RowState& st) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, gid = lane / 4, tig = lane % 4;
  const int nsplits = a.split_prefix[b + 1] - a.split_prefix[b];
  const int slot = a.split_prefix[b] + (b == part.begin_b ? part.begin_split : 0);
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int r = mt * 16 + gid + half * 8;
      const int mr = tile.row0 + r;
      if (mr >= tile.rows_group) continue;
      const int s = mr / a.group, h = g * a.group + mr % a.group;
      const float l = st.l[r];
      const float inv = l > 0.0f ? 1.0f / l : 0.0f;
      float* dst = nsplits == 1 ? a.out + ((static_cast<int64_t>(b) * a.Sq + s) * a.H + h) * kDv
                                : a.part_o + ((static_cast<int64_t>(slot) * a.Sq + s) * a.H + h) * kDv;
#pragma unroll
      for (int nt = 0; nt < NT; ++nt) {
        const int col = warp * NT * 8 + nt * 8 + tig * 2;
        *reinterpret_cast<float2*>(dst + col) = make_float2(o[mt][nt][half * 2] * inv, o[mt][nt][half * 2 + 1] * inv);
      }
    }
  }
  for (int r = threadIdx.x; r < kRows; r += kThreads) {
    const int mr = tile.row0 + r;
    if (mr >= tile.rows_group) continue;
    const int s = mr / a.group, h = g * a.group + mr % a.group;
    const float l = st.l[r];
    const float lse = l > 0.0f ? (st.m[r] + log2f(l)) * 0.6931471805599453f : -INFINITY;
    if (nsplits == 1) {
      if (a.lse) a.lse[(static_cast<int64_t>(b) * a.H + h) * a.Sq + s] = lse;
    } else {
      a.part_lse[(static_cast<int64_t>(slot) * a.Sq + s) * a.H + h] = lse;
    }
  }
}

// The dynamic shared memory a kernel needs, all of the SM's L1/shared storage as shared memory
// (or two CTAs never fit), and how many CTAs then fit an SM.
template <typename Kernel>
cudaError_t prepare_split_kernel(Kernel kernel, int threads, size_t smem, int* ctas_per_sm) {
  cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
  if (e != cudaSuccess) return e;
  e = cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout, cudaSharedmemCarveoutMaxShared);
  if (e != cudaSuccess) return e;
  return cudaOccupancyMaxActiveBlocksPerMultiprocessor(ctas_per_sm, kernel, threads, smem);
}

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_SPLIT_TILE_CUH_
