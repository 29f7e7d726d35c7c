// Device-side conversions and helpers shared by the CUDA kernels. The conversions are bit-for-bit
// the portable code of native/core/numeric.h (round to nearest even, the same NaN encodings), so
// a cache written by the GPU reads back exactly as one written by the CPU.
#ifndef LATENTKV_CUDA_CUDA_COMMON_CUH_
#define LATENTKV_CUDA_CUDA_COMMON_CUH_

#include <cuda_runtime.h>
#include <stdint.h>

#include "latentkv.h"

namespace lkv::cuda {

__device__ __forceinline__ float bf16_to_f32(uint16_t h) {
  return __uint_as_float(static_cast<uint32_t>(h) << 16);
}

__device__ __forceinline__ uint16_t f32_to_bf16(float x) {
  uint32_t u = __float_as_uint(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

__device__ __forceinline__ float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return __uint_as_float(sign | 0x7f800000u | (mant << 13));
  return __uint_as_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

__device__ __forceinline__ uint16_t f32_to_f16(float x) {
  const uint32_t u = __float_as_uint(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a < 0x38800000u) {
    const float scaled = __uint_as_float(a) * 16777216.0f;
    const float r = rintf(scaled);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(r));
  }
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u);
  m -= 112u << 23;
  return static_cast<uint16_t>(sign | (m >> 13));
}

__device__ __forceinline__ float fp8_e4m3_to_f32(uint8_t v) {
  const bool neg = (v & 0x80u) != 0;
  const uint32_t exp = (v >> 3) & 0xfu;
  const uint32_t mant = v & 0x7u;
  if (exp == 15 && mant == 7) return __uint_as_float(0x7fc00000u);
  float r;
  if (exp == 0) {
    r = static_cast<float>(mant) * 0.001953125f;  // mant * 2^-9, exact
  } else {
    // (8 + mant) * 2^(exp - 10), exact: build the power of two from its bits.
    r = static_cast<float>(8u + mant) * __uint_as_float((exp - 10u + 127u) << 23);
  }
  return neg ? -r : r;
}

__device__ __forceinline__ uint8_t f32_to_fp8_e4m3(float x) {
  if (isnan(x)) return 0x7f;
  const uint8_t sign = signbit(x) ? 0x80 : 0x00;
  const float a = fabsf(x);
  if (a >= 448.0f) return sign | 0x7e;
  if (a < 0.015625f) {
    const float q = rintf(ldexpf(a, 9));
    return sign | static_cast<uint8_t>(q);
  }
  int e;
  const float frac = frexpf(a, &e);
  int exp = e - 1;
  float mant = rintf((2.0f * frac - 1.0f) * 8.0f);
  if (mant >= 8.0f) {
    mant = 0.0f;
    ++exp;
  }
  const int biased = exp + 7;
  if (biased > 15 || (biased == 15 && mant >= 7.0f)) return sign | 0x7e;
  return sign | static_cast<uint8_t>((biased << 3) | static_cast<int>(mant));
}

__device__ __forceinline__ int8_t f32_to_int8(float v) {
  return static_cast<int8_t>(rintf(fmaxf(-127.0f, fminf(127.0f, v))));
}

// One element of a cache row in the given dtype (unscaled for the quantized types).
__device__ __forceinline__ float load_elem(const uint8_t* p, lkv_dtype d, int64_t i) {
  switch (d) {
    case LKV_DTYPE_F32: return reinterpret_cast<const float*>(p)[i];
    case LKV_DTYPE_F16: return f16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    case LKV_DTYPE_BF16: return bf16_to_f32(reinterpret_cast<const uint16_t*>(p)[i]);
    case LKV_DTYPE_INT8: return static_cast<float>(static_cast<int8_t>(p[i]));
    case LKV_DTYPE_FP8_E4M3: return fp8_e4m3_to_f32(p[i]);
  }
  return __uint_as_float(0x7fc00000u);
}

__device__ __forceinline__ void store_elem(uint8_t* p, lkv_dtype d, int64_t i, float v) {
  switch (d) {
    case LKV_DTYPE_F32: reinterpret_cast<float*>(p)[i] = v; return;
    case LKV_DTYPE_F16: reinterpret_cast<uint16_t*>(p)[i] = f32_to_f16(v); return;
    case LKV_DTYPE_BF16: reinterpret_cast<uint16_t*>(p)[i] = f32_to_bf16(v); return;
    case LKV_DTYPE_INT8: p[i] = static_cast<uint8_t>(f32_to_int8(v)); return;
    case LKV_DTYPE_FP8_E4M3: p[i] = f32_to_fp8_e4m3(v); return;
  }
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_CUDA_COMMON_CUH_
