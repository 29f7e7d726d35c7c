// Cache writers: mla_project_append (low-rank KV projection, RMSNorm, RoPE, quantise-on-write)
// and gqa_append. mla_project_append runs in two launches:
//  1. project_gemv_kernel: y[t, o] = W[o, :] . x[t, :] over the whole GPU, a warp per output
//     row and up to kGemvTokens tokens at once, so the weights are read once per 8 tokens (one
//     CTA per token, the first version, kept one SM busy: 3.5 ms at E = 7168, T = 1 on an H100);
//  2. project_finish_kernel: one CTA per token for RMSNorm and RoPE in double, as the
//     reference does, and quantise-on-write with the CPU's exact rounding.
#include "../core/cache-layout.h"
#include "cuda-common.cuh"
#include "cuda-kernels.h"

namespace lkv::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float weight_at(const void* w, lkv_dtype d, int64_t i) {
  switch (d) {
    case LKV_DTYPE_F16: return f16_to_f32(static_cast<const uint16_t*>(w)[i]);
    case LKV_DTYPE_BF16: return bf16_to_f32(static_cast<const uint16_t*>(w)[i]);
    default: return static_cast<const float*>(w)[i];
  }
}

__device__ double block_sum_double(double v, double* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  double total = 0.0;
  for (int w = 0; w < nwarps; ++w) total += scratch[w];
  __syncthreads();
  return total;
}

__device__ float block_max_float(float v, float* scratch) {
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  v = warp_max(v);
  if (lane == 0) scratch[warp] = v;
  __syncthreads();
  float total = 0.0f;
  for (int w = 0; w < nwarps; ++w) total = fmaxf(total, scratch[w]);
  __syncthreads();
  return total;
}

struct AppendArgs {
  int T, E, R, P, rope_heads;
  lkv_dtype cache_dtype, weight_dtype, rope_dtype;
  bool quantized;
  int64_t row_bytes, scale_offset, rope_offset;
  float norm_eps, attention_factor;
  lkv_rope_style style;
  const float* hidden;
  const void* w;
  const float* norm_weight;
  const int32_t* positions;
  const int64_t* slots;
  const float* inv_freq;
  uint8_t* cache;
};

constexpr int kGemvWarps = 4;   // output rows per CTA
constexpr int kGemvTokens = 8;  // tokens per CTA: each weight read serves this many

// Eight consecutive weights as floats (16-bit dtypes: one 16-byte load; f32: two).
__device__ __forceinline__ void load8(const void* w, lkv_dtype d, int64_t i, float (&v)[8]) {
  if (d == LKV_DTYPE_F32) {
    const float4 a = *reinterpret_cast<const float4*>(static_cast<const float*>(w) + i);
    const float4 b = *reinterpret_cast<const float4*>(static_cast<const float*>(w) + i + 4);
    v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    return;
  }
  const uint4 u = *reinterpret_cast<const uint4*>(static_cast<const uint16_t*>(w) + i);
  const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const uint16_t lo = static_cast<uint16_t>(words[k] & 0xffffu), hi = static_cast<uint16_t>(words[k] >> 16);
    v[2 * k] = d == LKV_DTYPE_BF16 ? bf16_to_f32(lo) : f16_to_f32(lo);
    v[2 * k + 1] = d == LKV_DTYPE_BF16 ? bf16_to_f32(hi) : f16_to_f32(hi);
  }
}

// grid (ceil(rows / kGemvWarps), ceil(T / kGemvTokens)); y: [T, rows]. vec8: E % 8 == 0 and the
// weights 16-byte aligned, so every lane reads 8 weights at a time; else one at a time.
__global__ void __launch_bounds__(kGemvWarps * 32) project_gemv_kernel(const AppendArgs a, bool vec8, float* y) {
  const int rows = a.R + a.P * a.rope_heads;
  const int o = blockIdx.x * kGemvWarps + threadIdx.x / 32, lane = threadIdx.x % 32;
  const int t0 = blockIdx.y * kGemvTokens;
  if (o >= rows) return;
  const int nt = min(kGemvTokens, a.T - t0);
  const int64_t base = static_cast<int64_t>(o) * a.E;
  const float* x = a.hidden + static_cast<int64_t>(t0) * a.E;
  float acc[kGemvTokens];
#pragma unroll
  for (int k = 0; k < kGemvTokens; ++k) acc[k] = 0.0f;
  if (vec8) {
    for (int e = lane * 8; e < a.E; e += 32 * 8) {
      float w8[8];
      load8(a.w, a.weight_dtype, base + e, w8);
#pragma unroll
      for (int k = 0; k < kGemvTokens; ++k) {
        if (k >= nt) break;
        const float4 xa = *reinterpret_cast<const float4*>(x + static_cast<int64_t>(k) * a.E + e);
        const float4 xb = *reinterpret_cast<const float4*>(x + static_cast<int64_t>(k) * a.E + e + 4);
        float d = acc[k];
        d = fmaf(w8[0], xa.x, d);
        d = fmaf(w8[1], xa.y, d);
        d = fmaf(w8[2], xa.z, d);
        d = fmaf(w8[3], xa.w, d);
        d = fmaf(w8[4], xb.x, d);
        d = fmaf(w8[5], xb.y, d);
        d = fmaf(w8[6], xb.z, d);
        d = fmaf(w8[7], xb.w, d);
        acc[k] = d;
      }
    }
  } else {
    for (int e = lane; e < a.E; e += 32) {
      const float w = weight_at(a.w, a.weight_dtype, base + e);
#pragma unroll
      for (int k = 0; k < kGemvTokens; ++k) {
        if (k >= nt) break;
        acc[k] = fmaf(w, x[static_cast<int64_t>(k) * a.E + e], acc[k]);
      }
    }
  }
#pragma unroll
  for (int k = 0; k < kGemvTokens; ++k) {
    const float d = warp_sum(acc[k]);
    if (lane == 0 && k < nt) y[static_cast<int64_t>(t0 + k) * rows + o] = d;
  }
}

__global__ void __launch_bounds__(kThreads) project_finish_kernel(const AppendArgs a, const float* y) {
  extern __shared__ float y_s[];  // [R + P * rope_heads]
  __shared__ double dscratch[kThreads / 32];
  __shared__ float fscratch[kThreads / 32];
  const int t = blockIdx.x;
  const int64_t slot = a.slots[t];
  if (slot < 0) return;  // uniform across the CTA
  const int rows = a.R + a.P * a.rope_heads;
  for (int o = threadIdx.x; o < rows; o += blockDim.x) y_s[o] = y[static_cast<int64_t>(t) * rows + o];
  __syncthreads();

  if (a.norm_weight) {
    double ss = 0.0;
    for (int r = threadIdx.x; r < a.R; r += blockDim.x) ss += static_cast<double>(y_s[r]) * y_s[r];
    ss = block_sum_double(ss, dscratch);
    const double inv_rms = 1.0 / sqrt(ss / a.R + static_cast<double>(a.norm_eps));
    for (int r = threadIdx.x; r < a.R; r += blockDim.x) {
      y_s[r] = static_cast<float>(y_s[r] * inv_rms * a.norm_weight[r]);
    }
    __syncthreads();
  }

  const int half = a.P / 2;
  const int32_t pos = a.positions[t];
  for (int idx = threadIdx.x; idx < half * a.rope_heads; idx += blockDim.x) {
    const int k = idx / half, i = idx - k * half;
    float* xr = y_s + a.R + k * a.P;
    const double angle = static_cast<double>(pos) * a.inv_freq[i];
    const double c = cos(angle) * a.attention_factor;
    const double s = sin(angle) * a.attention_factor;
    const int ia = a.style == LKV_ROPE_INTERLEAVED ? 2 * i : i;
    const int ib = a.style == LKV_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
    const double xa = xr[ia], xb = xr[ib];
    xr[ia] = static_cast<float>(xa * c - xb * s);
    xr[ib] = static_cast<float>(xa * s + xb * c);
  }
  __syncthreads();

  uint8_t* row = a.cache + slot * a.row_bytes;
  float scale = 1.0f;
  if (a.quantized) {
    float amax = 0.0f;
    for (int r = threadIdx.x; r < a.R; r += blockDim.x) amax = fmaxf(amax, fabsf(y_s[r]));
    amax = block_max_float(amax, fscratch);
    const float qmax = a.cache_dtype == LKV_DTYPE_INT8 ? 127.0f : 448.0f;
    scale = amax > 0.0f ? amax / qmax : 1.0f;
    for (int64_t i = a.R + threadIdx.x; i < a.scale_offset; i += blockDim.x) row[i] = 0;
    if (threadIdx.x == 0) *reinterpret_cast<float*>(row + a.scale_offset) = scale;
  }
  for (int r = threadIdx.x; r < a.R; r += blockDim.x) store_elem(row, a.cache_dtype, r, y_s[r] / scale);
  uint8_t* rp = row + a.rope_offset;
  for (int i = threadIdx.x; i < a.P * a.rope_heads; i += blockDim.x) {
    store_elem(rp, a.rope_dtype, i, y_s[a.R + i]);
  }
}

__global__ void gqa_append_kernel(int64_t width, lkv_dtype d, const float* __restrict__ k,
                                  const float* __restrict__ v, const int64_t* __restrict__ slots,
                                  uint8_t* __restrict__ cache) {
  const int t = blockIdx.x;
  const int64_t slot = slots[t];
  if (slot < 0) return;
  const int64_t row = slot * 2 * width;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) {
    store_elem(cache, d, row + i, k[t * width + i]);
    store_elem(cache, d, row + width + i, v[t * width + i]);
  }
}

}  // namespace

size_t project_append_workspace_floats(const lkv_mla_project_append_params& p) {
  return static_cast<size_t>(p.num_tokens) * (p.kv_lora_rank + static_cast<size_t>(p.rope_dim) * p.rope_heads);
}

cudaError_t launch_mla_project_append(const lkv_mla_project_append_params& p, const float* inv_freq,
                                      float* workspace, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int32_t rope_width = p.rope_dim * p.rope_heads;
  const lkv_cache_layout layout = cache_layout(p.cache_dtype, p.kv_lora_rank, rope_width);
  AppendArgs a{};
  a.T = p.num_tokens;
  a.E = p.hidden_size;
  a.R = p.kv_lora_rank;
  a.P = p.rope_dim;
  a.rope_heads = p.rope_heads;
  a.cache_dtype = p.cache_dtype;
  a.weight_dtype = p.weight_dtype;
  a.rope_dtype = layout.rope_dtype;
  a.quantized = is_quantized(p.cache_dtype);
  a.row_bytes = static_cast<int64_t>(layout.row_bytes);
  a.scale_offset = static_cast<int64_t>(layout.scale_offset);
  a.rope_offset = static_cast<int64_t>(layout.rope_offset);
  a.norm_eps = p.norm_eps;
  a.attention_factor = p.rope.attention_factor == 0.0f ? 1.0f : p.rope.attention_factor;
  a.style = p.rope.style;
  a.hidden = p.hidden;
  a.w = p.w_kv_a;
  a.norm_weight = p.norm_weight;
  a.positions = p.positions;
  a.slots = p.slot_mapping;
  a.inv_freq = inv_freq;
  a.cache = static_cast<uint8_t*>(p.cache);
  const int rows = p.kv_lora_rank + rope_width;
  const bool vec8 = p.hidden_size % 8 == 0 && reinterpret_cast<uintptr_t>(p.w_kv_a) % 16 == 0 &&
                    reinterpret_cast<uintptr_t>(p.hidden) % 16 == 0;
  const dim3 grid((rows + kGemvWarps - 1) / kGemvWarps, (p.num_tokens + kGemvTokens - 1) / kGemvTokens);
  project_gemv_kernel<<<grid, kGemvWarps * 32, 0, stream>>>(a, vec8, workspace);
  cudaError_t e = cudaGetLastError();
  if (e != cudaSuccess) return e;
  const size_t smem = sizeof(float) * static_cast<size_t>(rows);
  if (smem > 48 * 1024) {
    e = cudaFuncSetAttribute(project_finish_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  project_finish_kernel<<<p.num_tokens, kThreads, smem, stream>>>(a, workspace);
  return cudaGetLastError();
}

cudaError_t launch_gqa_append(const lkv_gqa_append_params& p, cudaStream_t stream) {
  if (p.num_tokens == 0) return cudaSuccess;
  const int64_t width = static_cast<int64_t>(p.num_kv_heads) * p.head_dim;
  gqa_append_kernel<<<p.num_tokens, 128, 0, stream>>>(width, p.cache_dtype, p.k, p.v, p.slot_mapping,
                                                      static_cast<uint8_t*>(p.cache));
  return cudaGetLastError();
}

}  // namespace lkv::cuda
