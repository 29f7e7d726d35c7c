// Split-KV paged attention for mla_decode and gqa_decode (FlashMLA's contract, our own code).
//
// Three launches per call, all on one stream:
//  1. schedule_kernel (1 CTA): spreads the KV work of all sequences over num_parts CTAs. A
//     sequence costs ceil(len / 64) units plus kOverheadUnits; each part takes an equal share of
//     units, so a long sequence is split across parts and short ones share a part. It writes
//     one PartMeta per part and split_prefix[B + 1] (how many splits each sequence got).
//  2. split_kernel, grid (num_parts, row_tiles, groups): each CTA walks its segments (sequence,
//     token range) with an online softmax over chunks of `tok` tokens held in shared memory, for
//     a tile of `rows` query rows (s, head) that share one key group (MLA: the rope head, so
//     the latent rows are read once for every head of the tile; GQA: the KV head). A sequence
//     with one split writes out/lse directly; otherwise the split writes a normalised partial
//     output and its log-sum-exp.
//  3. combine_kernel: one CTA per (b, s, h) of a split sequence merges the partials by
//     log-sum-exp (natural log, as the CPU reference and FlashMLA return it).
// split_kernel is the portable path with FP32 FMA arithmetic, for every dtype and shape. MLA
// with a bf16 or fp8 cache and DeepSeek's dimensions runs the tensor-core kernel of
// mla-split-mma.cu in its place, and GQA with a bf16 cache and head_dim 128 that of
// gqa-split-mma.cu.
#include <algorithm>
#include <cmath>

#include "../core/cache-layout.h"
#include "cuda-common.cuh"
#include "cuda-kernels.h"
#include "gqa-split-mma.h"
#include "mla-split-mma.h"
#include "split-schedule.h"

namespace lkv::cuda {
namespace {

constexpr int kThreads = 256;

// What the split kernel reads keys and values from.
struct AttnArgs {
  int B, Sq, H, G, group;  // group = H / G query heads per key group
  int Dk, Dv;              // key length (R + P, or D) and value length (R, or D)
  int q_main_dim, q_rope_dim;
  int block_size, max_blocks;
  float scale;
  const float* q_main;  // [B, Sq, H, q_main_dim]
  const float* q_rope;  // [B, Sq, H, q_rope_dim] or null
  const uint8_t* cache;
  lkv_dtype dtype;
  bool gqa;
  // MLA row layout.
  int64_t row_bytes;
  int64_t scale_offset, rope_offset;
  lkv_dtype rope_dtype;
  bool quantized;
  // GQA: elements of one token row (2 * kv_heads * D) and of K (kv_heads * D).
  int64_t gqa_row_elems, gqa_width;
  const int32_t* block_table;
  const int32_t* seq_lens;
  float* out;  // [B, Sq, H, Dv]
  float* lse;  // [B, H, Sq] or null
  // Plan and workspace.
  int rows, tok, q_stride, k_stride, v_stride;
  const int32_t* meta;          // [num_parts, kMetaInts]
  const int32_t* split_prefix;  // [B + 1]
  float* part_o;                // [slots, Sq * H, Dv]
  float* part_lse;              // [slots, Sq * H]
};

__device__ __forceinline__ int64_t page_slot(const AttnArgs& a, int b, int token) {
  const int32_t page = a.block_table[static_cast<int64_t>(b) * a.max_blocks + token / a.block_size];
  return static_cast<int64_t>(page) * a.block_size + token % a.block_size;
}

// Loads `count` tokens starting at `t0` of sequence b into k_s (and v_s for GQA), dequantised
// to f32; slots past count are zero-filled (and masked by the caller).
__device__ void load_chunk(const AttnArgs& a, int b, int g, int t0, int count, float* k_s, float* v_s) {
  const int total_k = a.tok * a.Dk;
  for (int idx = threadIdx.x; idx < total_k; idx += blockDim.x) {
    const int t = idx / a.Dk, i = idx - t * a.Dk;
    float v = 0.0f;
    if (t < count) {
      const int64_t slot = page_slot(a, b, t0 + t);
      if (a.gqa) {
        v = load_elem(a.cache, a.dtype, slot * a.gqa_row_elems + static_cast<int64_t>(g) * a.Dk + i);
      } else {
        const uint8_t* row = a.cache + slot * a.row_bytes;
        const int R = a.q_main_dim;
        if (i < R) {
          v = load_elem(row, a.dtype, i);
          if (a.quantized) v *= *reinterpret_cast<const float*>(row + a.scale_offset);
        } else {
          v = load_elem(row + a.rope_offset, a.rope_dtype,
                        static_cast<int64_t>(g) * a.q_rope_dim + (i - R));
        }
      }
    }
    k_s[t * a.k_stride + i] = v;
  }
  if (!a.gqa) return;
  const int total_v = a.tok * a.Dv;
  for (int idx = threadIdx.x; idx < total_v; idx += blockDim.x) {
    const int t = idx / a.Dv, i = idx - t * a.Dv;
    float v = 0.0f;
    if (t < count) {
      const int64_t slot = page_slot(a, b, t0 + t);
      v = load_elem(a.cache, a.dtype,
                    slot * a.gqa_row_elems + a.gqa_width + static_cast<int64_t>(g) * a.Dv + i);
    }
    v_s[t * a.v_stride + i] = v;
  }
}

// Units of a sequence computed from its length in shared memory.
struct UnitsFromLens {
  const int32_t* lens;
  __device__ int operator[](int b) const { return (lens[b] + kUnitTokens - 1) / kUnitTokens; }
};

__global__ void schedule_kernel(const int32_t* __restrict__ seq_lens, int B, int num_parts,
                                int32_t* __restrict__ meta, int32_t* __restrict__ split_prefix) {
  // The serial scan below reads every length several times: from global memory each read
  // would be a dependent round trip (25 us at B = 64), from shared memory it is not.
  extern __shared__ int32_t lens_s[];  // [B]
  for (int b = threadIdx.x; b < B; b += blockDim.x) lens_s[b] = seq_lens[b];
  __syncthreads();
  if (threadIdx.x == 0) compute_split_schedule(lens_s, UnitsFromLens{lens_s}, B, num_parts, meta, split_prefix);
}

__global__ void __launch_bounds__(kThreads) split_kernel(const AttnArgs a) {
  extern __shared__ float smem[];
  const int part = blockIdx.x, tile = blockIdx.y, g = blockIdx.z;
  const int32_t* m = a.meta + part * kMetaInts;
  const int begin_b = m[0], begin_tok = m[1], end_b = m[2], end_tok = m[3], begin_split = m[4];
  if (begin_b < 0) return;

  float* q_s = smem;
  float* k_s = q_s + a.rows * a.q_stride;
  float* v_s = a.gqa ? k_s + a.tok * a.k_stride : k_s;  // MLA: V is the latent part of K
  float* o_s = (a.gqa ? v_s + a.tok * a.v_stride : k_s + a.tok * a.k_stride);
  float* p_s = o_s + a.rows * a.Dv;
  float* m_s = p_s + a.rows * a.tok;
  float* l_s = m_s + a.rows;
  float* alpha_s = l_s + a.rows;
  const int vstride = a.gqa ? a.v_stride : a.k_stride;

  const int msub = a.Sq * a.group;  // query rows of one group
  const int row0 = tile * a.rows;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
  const float neg_inf = -INFINITY;

  for (int b = begin_b; b <= end_b; ++b) {
    const int len = a.seq_lens[b];
    const int t_begin = b == begin_b ? begin_tok : 0;
    const int t_end = b == end_b ? min(end_tok, len) : len;
    const int split_local = b == begin_b ? begin_split : 0;
    const int nsplits = a.split_prefix[b + 1] - a.split_prefix[b];

    // Query rows of this tile, and the running softmax state.
    for (int idx = threadIdx.x; idx < a.rows * a.Dk; idx += blockDim.x) {
      const int r = idx / a.Dk, i = idx - r * a.Dk;
      const int mr = row0 + r;
      float v = 0.0f;
      if (mr < msub) {
        const int s = mr / a.group, h = g * a.group + mr % a.group;
        const int64_t qi = (static_cast<int64_t>(b) * a.Sq + s) * a.H + h;
        v = i < a.q_main_dim ? a.q_main[qi * a.q_main_dim + i]
                             : a.q_rope[qi * a.q_rope_dim + (i - a.q_main_dim)];
      }
      q_s[r * a.q_stride + i] = v;
    }
    for (int idx = threadIdx.x; idx < a.rows * a.Dv; idx += blockDim.x) o_s[idx] = 0.0f;
    for (int r = threadIdx.x; r < a.rows; r += blockDim.x) {
      m_s[r] = neg_inf;
      l_s[r] = 0.0f;
    }
    __syncthreads();

    for (int t0 = t_begin; t0 < t_end; t0 += a.tok) {
      const int count = min(a.tok, t_end - t0);
      load_chunk(a, b, g, t0, count, k_s, v_s);
      __syncthreads();
      // Scores, masked per row by the causal window and the chunk end.
      for (int idx = threadIdx.x; idx < a.rows * a.tok; idx += blockDim.x) {
        const int r = idx / a.tok, t = idx - r * a.tok;
        const int mr = row0 + r;
        float sc = neg_inf;
        if (mr < msub && t < count) {
          const int s = mr / a.group;
          const int visible = len - a.Sq + 1 + s;
          if (t0 + t < visible) {
            const float* q = q_s + r * a.q_stride;
            const float* k = k_s + t * a.k_stride;
            float dot = 0.0f;
            for (int i = 0; i < a.Dk; ++i) dot = fmaf(q[i], k[i], dot);
            sc = dot * a.scale;
          }
        }
        p_s[idx] = sc;
      }
      __syncthreads();
      // Online softmax: one warp per row (tok <= 32, one token per lane).
      for (int r = warp; r < a.rows; r += nwarps) {
        const float sc = lane < a.tok ? p_s[r * a.tok + lane] : neg_inf;
        const float m_old = m_s[r];
        const float m_new = fmaxf(m_old, warp_max(sc));
        float pr = 0.0f, alpha = 1.0f;
        if (m_new != neg_inf) {
          pr = sc == neg_inf ? 0.0f : expf(sc - m_new);
          alpha = m_old == neg_inf ? 0.0f : expf(m_old - m_new);
        }
        const float sum = warp_sum(pr);
        if (lane < a.tok) p_s[r * a.tok + lane] = pr;
        __syncwarp();  // every lane has read m_s[r] and l_s[r] before lane 0 rewrites them
        if (lane == 0) {
          m_s[r] = m_new;
          l_s[r] = l_s[r] * alpha + sum;
          alpha_s[r] = alpha;
        }
      }
      __syncthreads();
      for (int idx = threadIdx.x; idx < a.rows * a.Dv; idx += blockDim.x) {
        const int r = idx / a.Dv, c = idx - r * a.Dv;
        const float* pr = p_s + r * a.tok;
        float acc = o_s[idx] * alpha_s[r];
        for (int t = 0; t < count; ++t) acc = fmaf(pr[t], v_s[t * vstride + c], acc);
        o_s[idx] = acc;
      }
      __syncthreads();
    }

    // Write the result (one split) or the partial (several).
    const int slot = a.split_prefix[b] + split_local;
    for (int idx = threadIdx.x; idx < a.rows * a.Dv; idx += blockDim.x) {
      const int r = idx / a.Dv, c = idx - r * a.Dv;
      const int mr = row0 + r;
      if (mr >= msub) continue;
      const int s = mr / a.group, h = g * a.group + mr % a.group;
      const float l = l_s[r];
      const float v = l > 0.0f ? o_s[idx] / l : 0.0f;
      if (nsplits == 1) {
        a.out[((static_cast<int64_t>(b) * a.Sq + s) * a.H + h) * a.Dv + c] = v;
      } else {
        a.part_o[((static_cast<int64_t>(slot) * a.Sq + s) * a.H + h) * a.Dv + c] = v;
      }
    }
    for (int r = threadIdx.x; r < a.rows; r += blockDim.x) {
      const int mr = row0 + r;
      if (mr >= msub) continue;
      const int s = mr / a.group, h = g * a.group + mr % a.group;
      const float l = l_s[r];
      const float lse = l > 0.0f ? m_s[r] + logf(l) : neg_inf;
      if (nsplits == 1) {
        if (a.lse) a.lse[(static_cast<int64_t>(b) * a.H + h) * a.Sq + s] = lse;
      } else {
        a.part_lse[(static_cast<int64_t>(slot) * a.Sq + s) * a.H + h] = lse;
      }
    }
    __syncthreads();  // before the next segment reuses q_s / o_s / l_s
  }
}

// One CTA per (b, s, h) row of a sequence with more than one split and 128 output columns: the
// split weights exp(lse_i - lse) go to shared memory first, then every thread sums its column
// over the splits, 16 loads at a time (a sequence may have hundreds of splits at B = 1).
constexpr int kCombineThreads = 128;

__global__ void __launch_bounds__(kCombineThreads) combine_kernel(int B, int Sq, int H, int Dv,
                                                                  const int32_t* __restrict__ split_prefix,
                                                                  const float* __restrict__ part_o,
                                                                  const float* __restrict__ part_lse,
                                                                  float* __restrict__ out, float* __restrict__ lse) {
  extern __shared__ float w_s[];  // [splits] weights, then 2 * warps reduction slots
  const int64_t row = blockIdx.x;
  const int col0 = blockIdx.y * blockDim.x;  // this CTA's output columns: one per thread
  const int h = static_cast<int>(row % H);
  const int s = static_cast<int>((row / H) % Sq);
  const int b = static_cast<int>(row / (static_cast<int64_t>(H) * Sq));
  const int first = split_prefix[b], n = split_prefix[b + 1] - first;
  if (n <= 1) return;
  float* red = w_s + n;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, nwarps = blockDim.x / 32;
  const int64_t stride = static_cast<int64_t>(Sq) * H;
  const int64_t sh = static_cast<int64_t>(s) * H + h;
  float mx = -INFINITY;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float li = part_lse[(first + i) * stride + sh];
    w_s[i] = li;
    mx = fmaxf(mx, li);
  }
  mx = warp_max(mx);
  if (lane == 0) red[warp] = mx;
  __syncthreads();
  mx = red[0];
  for (int w = 1; w < nwarps; ++w) mx = fmaxf(mx, red[w]);
  float* o = out + row * Dv;
  const int c = col0 + threadIdx.x;
  const bool writes_lse = lse && blockIdx.y == 0 && threadIdx.x == 0;
  if (mx == -INFINITY) {  // every split empty (causal rows with nothing visible)
    if (c < Dv) o[c] = 0.0f;
    if (writes_lse) lse[(static_cast<int64_t>(b) * H + h) * Sq + s] = -INFINITY;
    return;
  }
  float sum = 0.0f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const float e = expf(w_s[i] - mx);
    w_s[i] = e;
    sum += e;
  }
  sum = warp_sum(sum);
  if (lane == 0) red[nwarps + warp] = sum;
  __syncthreads();
  sum = 0.0f;
  for (int w = 0; w < nwarps; ++w) sum += red[nwarps + w];
  const float inv = 1.0f / sum;
  const float* po = part_o + (static_cast<int64_t>(first) * stride + sh) * Dv;
  const int64_t split_stride = stride * Dv;
  if (c < Dv) {
    // 16 loads in flight before their sums: one L2 round trip per 16 splits, not per split.
    constexpr int kBatch = 16;
    float acc = 0.0f;
    int i = 0;
    for (; i + kBatch <= n; i += kBatch) {
      float v[kBatch];
#pragma unroll
      for (int k = 0; k < kBatch; ++k) v[k] = po[(i + k) * split_stride + c];
#pragma unroll
      for (int k = 0; k < kBatch; ++k) acc = fmaf(w_s[i + k], v[k], acc);  // w = 0: empty split
    }
    for (; i < n; ++i) acc = fmaf(w_s[i], po[i * split_stride + c], acc);
    o[c] = acc * inv;
  }
  if (writes_lse) lse[(static_cast<int64_t>(b) * H + h) * Sq + s] = mx + logf(sum);
}

int odd_stride(int n) { return n | 1; }

size_t smem_bytes(int rows, int tok, int Dk, int Dv, bool gqa) {
  size_t f = static_cast<size_t>(rows) * odd_stride(Dk) + static_cast<size_t>(tok) * odd_stride(Dk) +
             (gqa ? static_cast<size_t>(tok) * odd_stride(Dv) : 0) + static_cast<size_t>(rows) * Dv +
             static_cast<size_t>(rows) * tok + 3 * static_cast<size_t>(rows);
  return f * sizeof(float);
}

// Parts per (tile, group): as many CTAs as fit the device at once, at most 4096.
void plan_parts(int B, int Sq, int H, int Dv, int per_sm, const DeviceLimits& dev, AttentionPlan* plan) {
  per_sm = std::max(per_sm, 1);
  const long long ctas = static_cast<long long>(dev.multiprocessors) * per_sm;
  const long long per_part = static_cast<long long>(plan->row_tiles) * plan->groups;
  plan->num_parts = static_cast<int>(std::max<long long>(1, std::min<long long>(ctas / per_part, 4096)));
  const size_t slots = static_cast<size_t>(B) + plan->num_parts;
  plan->part_floats = slots * Sq * H * (static_cast<size_t>(Dv) + 1);
  plan->sched_ints = static_cast<size_t>(plan->num_parts) * kMetaInts + B + 1;
}

// The schedule and combine kernels ask for the same shared-memory carveout as the tensor-core
// split kernels, so the SMs never reconfigure L1/shared between the three launches.
cudaError_t share_carveout() {
  cudaError_t e = cudaFuncSetAttribute(schedule_kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       cudaSharedmemCarveoutMaxShared);
  if (e != cudaSuccess) return e;
  return cudaFuncSetAttribute(combine_kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                              cudaSharedmemCarveoutMaxShared);
}

cudaError_t plan_common(int B, int Sq, int H, int G, int Dk, int Dv, bool gqa, const DeviceLimits& dev,
                        AttentionPlan* plan, const char** why) {
  if (static_cast<size_t>(B) * 4 > 48 * 1024) {
    *why = "batch > 12288 is not supported by the CUDA scheduler";
    return cudaErrorInvalidValue;
  }
  const int msub = Sq * (H / G);
  if (plan->gqa_mma && gqa_mma_smem() <= static_cast<size_t>(dev.smem_optin)) {
    plan->rows = kGqaMmaRows;
    plan->tok = 64;
    plan->row_tiles = (msub + kGqaMmaRows - 1) / kGqaMmaRows;
    plan->groups = G;
    plan->smem = gqa_mma_smem();
    int per_sm = 0;
    cudaError_t e = gqa_mma_prepare(&per_sm);
    if (e == cudaSuccess) e = share_carveout();
    if (e != cudaSuccess) {
      *why = "preparing the tensor-core gqa_decode kernel";
      return e;
    }
    plan_parts(B, Sq, H, Dv, per_sm, dev, plan);
    return cudaSuccess;
  }
  plan->gqa_mma = false;
  if (plan->mma_rows > 0) {  // the caller chose the tensor-core MLA kernel
    const int rows = mla_mma_rows(msub);
    plan->mma_rows = rows;
    plan->rows = rows;
    plan->tok = 64;  // informational: the kernel picks 32 or 64 per variant
    plan->row_tiles = (msub + rows - 1) / rows;
    plan->groups = G;
    plan->smem = mla_mma_smem(rows, plan->mma_fp8);
    if (plan->smem > static_cast<size_t>(dev.smem_optin)) {
      plan->mma_rows = 0;  // a device with less shared memory: the portable kernel below
    } else {
      int per_sm = 0;
      cudaError_t e = mla_mma_prepare(rows, plan->mma_fp8, &per_sm);
      if (e == cudaSuccess) e = share_carveout();
      if (e != cudaSuccess) {
        *why = "preparing the tensor-core mla_decode kernel";
        return e;
      }
      plan_parts(B, Sq, H, Dv, per_sm, dev, plan);
      return cudaSuccess;
    }
  }
  int rows = std::min(msub, 16), tok = 32;
  size_t smem = smem_bytes(rows, tok, Dk, Dv, gqa);
  while (smem > static_cast<size_t>(dev.smem_optin)) {
    if (tok > 8) {
      tok /= 2;
    } else if (rows > 1) {
      rows = (rows + 1) / 2;
    } else if (tok > 1) {
      tok /= 2;
    } else {
      *why = "the head dimension does not fit the device's shared memory even with a 1x1 tile";
      return cudaErrorInvalidValue;
    }
    smem = smem_bytes(rows, tok, Dk, Dv, gqa);
  }
  plan->rows = rows;
  plan->tok = tok;
  plan->row_tiles = (msub + rows - 1) / rows;
  plan->groups = G;
  plan->smem = smem;
  if (smem > 48 * 1024) {
    const cudaError_t e =
        cudaFuncSetAttribute(split_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) {
      *why = "cudaFuncSetAttribute(MaxDynamicSharedMemorySize)";
      return e;
    }
  }
  int per_sm = 0;
  cudaError_t e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, split_kernel, kThreads, smem);
  if (e != cudaSuccess) {
    *why = "cudaOccupancyMaxActiveBlocksPerMultiprocessor";
    return e;
  }
  plan_parts(B, Sq, H, Dv, per_sm, dev, plan);
  return cudaSuccess;
}

// The part of a tensor-core kernel's arguments every split kernel shares.
SplitArgs split_args(const AttnArgs& a) {
  SplitArgs c{};
  c.B = a.B;
  c.Sq = a.Sq;
  c.H = a.H;
  c.group = a.group;
  c.block_size = a.block_size;
  c.max_blocks = a.max_blocks;
  c.scale_log2 = a.scale * 1.4426950408889634f;
  c.cache = a.cache;
  c.block_table = a.block_table;
  c.seq_lens = a.seq_lens;
  c.out = a.out;
  c.lse = a.lse;
  c.meta = a.meta;
  c.split_prefix = a.split_prefix;
  c.part_o = a.part_o;
  c.part_lse = a.part_lse;
  return c;
}

cudaError_t launch_common(AttnArgs a, const AttentionPlan& plan, float* wf, int32_t* wi,
                          cudaStream_t stream) {
  int32_t* meta = wi;
  int32_t* prefix = wi + static_cast<size_t>(plan.num_parts) * kMetaInts;
  const size_t slots = static_cast<size_t>(a.B) + plan.num_parts;
  a.meta = meta;
  a.split_prefix = prefix;
  a.part_o = wf;
  a.part_lse = wf + slots * a.Sq * a.H * a.Dv;
  a.rows = plan.rows;
  a.tok = plan.tok;
  a.q_stride = odd_stride(a.Dk);
  a.k_stride = odd_stride(a.Dk);
  a.v_stride = odd_stride(a.Dv);
  // The schedule keeps per-sequence unit counts in shared memory (B ints; plan checked B).
  schedule_kernel<<<1, kThreads, static_cast<size_t>(a.B) * 4, stream>>>(a.seq_lens, a.B, plan.num_parts,
                                                                        meta, prefix);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  if (plan.gqa_mma) {
    GqaMmaArgs m{};
    static_cast<SplitArgs&>(m) = split_args(a);
    m.q = a.q_main;
    m.row_bytes = a.gqa_row_elems * 2;  // bf16
    m.v_offset = a.gqa_width * 2;
    e = launch_gqa_split_mma(m, dim3(plan.row_tiles, plan.num_parts, plan.groups), stream);
  } else if (plan.mma_rows > 0) {
    MlaMmaArgs m{};
    static_cast<SplitArgs&>(m) = split_args(a);
    m.rows_per_tile = plan.mma_rows;
    m.fp8 = plan.mma_fp8;
    // Chunks start at multiples of their size (the schedule's unit is a multiple of it), so
    // with such pages a chunk never crosses a page.
    m.contiguous = plan.mma_fp8 && a.block_size % kMlaMmaContiguousTokens == 0;
    m.q_latent = a.q_main;
    m.q_rope = a.q_rope;
    m.row_bytes = a.row_bytes;
    m.rope_offset = a.rope_offset;
    e = launch_mla_split_mma(m, dim3(plan.row_tiles, plan.num_parts, plan.groups), stream);
  } else {
    const dim3 grid(plan.num_parts, plan.row_tiles, plan.groups);
    split_kernel<<<grid, kThreads, plan.smem, stream>>>(a);
    e = cudaGetLastError();
  }
  if (e != cudaSuccess) return e;
  // A sequence has at most num_parts splits.
  const int64_t rows = static_cast<int64_t>(a.B) * a.Sq * a.H;
  const size_t combine_smem = (static_cast<size_t>(plan.num_parts) + 2 * kCombineThreads / 32) * sizeof(float);
  const dim3 combine_grid(static_cast<unsigned>(rows), static_cast<unsigned>((a.Dv + kCombineThreads - 1) / kCombineThreads));
  combine_kernel<<<combine_grid, kCombineThreads, combine_smem, stream>>>(
      a.B, a.Sq, a.H, a.Dv, prefix, a.part_o, a.part_lse, a.out, a.lse);
  return cudaGetLastError();
}

}  // namespace

cudaError_t plan_mla_decode(const lkv_mla_decode_params& p, const DeviceLimits& dev, AttentionPlan* plan,
                            const char** why) {
  plan->mma_rows = mla_mma_supported(p) ? 1 : 0;
  plan->mma_fp8 = p.cache_dtype == LKV_DTYPE_FP8_E4M3;
  return plan_common(p.batch, p.q_len, p.num_heads, p.rope_heads, p.kv_lora_rank + p.rope_dim,
                     p.kv_lora_rank, false, dev, plan, why);
}

cudaError_t plan_gqa_decode(const lkv_gqa_decode_params& p, const DeviceLimits& dev, AttentionPlan* plan,
                            const char** why) {
  plan->gqa_mma = gqa_mma_supported(p);
  return plan_common(p.batch, p.q_len, p.num_heads, p.num_kv_heads, p.head_dim, p.head_dim, true, dev,
                     plan, why);
}

cudaError_t launch_mla_decode(const lkv_mla_decode_params& p, const AttentionPlan& plan, float* wf,
                              int32_t* wi, cudaStream_t stream) {
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, p.kv_lora_rank, p.rope_dim * p.rope_heads);
  AttnArgs a{};
  a.B = p.batch;
  a.Sq = p.q_len;
  a.H = p.num_heads;
  a.G = p.rope_heads;
  a.group = p.num_heads / p.rope_heads;
  a.Dk = p.kv_lora_rank + p.rope_dim;
  a.Dv = p.kv_lora_rank;
  a.q_main_dim = p.kv_lora_rank;
  a.q_rope_dim = p.rope_dim;
  a.block_size = p.block_size;
  a.max_blocks = p.max_blocks_per_seq;
  a.scale = p.softmax_scale;
  a.q_main = p.q_latent;
  a.q_rope = p.q_rope;
  a.cache = static_cast<const uint8_t*>(p.cache);
  a.dtype = p.cache_dtype;
  a.gqa = false;
  a.row_bytes = static_cast<int64_t>(layout.row_bytes);
  a.scale_offset = static_cast<int64_t>(layout.scale_offset);
  a.rope_offset = static_cast<int64_t>(layout.rope_offset);
  a.rope_dtype = layout.rope_dtype;
  a.quantized = is_quantized(p.cache_dtype);
  a.block_table = p.block_table;
  a.seq_lens = p.seq_lens;
  a.out = p.out;
  a.lse = p.lse;
  return launch_common(a, plan, wf, wi, stream);
}

cudaError_t launch_gqa_decode(const lkv_gqa_decode_params& p, const AttentionPlan& plan, float* wf,
                              int32_t* wi, cudaStream_t stream) {
  AttnArgs a{};
  a.B = p.batch;
  a.Sq = p.q_len;
  a.H = p.num_heads;
  a.G = p.num_kv_heads;
  a.group = p.num_heads / p.num_kv_heads;
  a.Dk = p.head_dim;
  a.Dv = p.head_dim;
  a.q_main_dim = p.head_dim;
  a.q_rope_dim = 0;
  a.block_size = p.block_size;
  a.max_blocks = p.max_blocks_per_seq;
  a.scale = p.softmax_scale;
  a.q_main = p.q;
  a.q_rope = nullptr;
  a.cache = static_cast<const uint8_t*>(p.cache);
  a.dtype = p.cache_dtype;
  a.gqa = true;
  a.gqa_width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  a.gqa_row_elems = 2 * a.gqa_width;
  a.block_table = p.block_table;
  a.seq_lens = p.seq_lens;
  a.out = p.out;
  a.lse = p.lse;
  return launch_common(a, plan, wf, wi, stream);
}

cudaError_t probe_kernel_image() {
  cudaFuncAttributes attr{};
  return cudaFuncGetAttributes(&attr, split_kernel);
}

}  // namespace lkv::cuda
