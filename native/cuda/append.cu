// Cache writers: mla_project_append (low-rank KV projection, RMSNorm, RoPE, quantise-on-write)
// and gqa_append. One CTA per token; a warp per output row of the projection. Correctness
// first: the weight matrix is read once per token (a GEMV per token), which is right for
// decode (T = B small) and slow for long prefills.
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

__global__ void __launch_bounds__(kThreads) project_append_kernel(const AppendArgs a) {
  extern __shared__ float y_s[];  // [R + P * rope_heads]
  __shared__ double dscratch[kThreads / 32];
  __shared__ float fscratch[kThreads / 32];
  const int t = blockIdx.x;
  const int64_t slot = a.slots[t];
  if (slot < 0) return;  // uniform across the CTA
  const int rows = a.R + a.P * a.rope_heads;
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nwarps = blockDim.x / 32;
  const float* x = a.hidden + static_cast<int64_t>(t) * a.E;

  for (int o = warp; o < rows; o += nwarps) {
    const int64_t base = static_cast<int64_t>(o) * a.E;
    float dot = 0.0f;
    for (int e = lane; e < a.E; e += 32) dot = fmaf(weight_at(a.w, a.weight_dtype, base + e), x[e], dot);
    dot = warp_sum(dot);
    if (lane == 0) y_s[o] = dot;
  }
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

cudaError_t launch_mla_project_append(const lkv_mla_project_append_params& p, const float* inv_freq,
                                      cudaStream_t stream) {
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
  const size_t smem = sizeof(float) * static_cast<size_t>(p.kv_lora_rank + rope_width);
  if (smem > 48 * 1024) {
    const cudaError_t e = cudaFuncSetAttribute(project_append_kernel,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    if (e != cudaSuccess) return e;
  }
  project_append_kernel<<<p.num_tokens, kThreads, smem, stream>>>(a);
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
