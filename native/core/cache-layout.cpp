#include "cache-layout.h"

#include <cmath>
#include <cstring>

#include "error.h"
#include "numeric.h"

namespace lkv {
namespace {

float load(const uint8_t* p, lkv_dtype d, int64_t i) {
  switch (d) {
    case LKV_DTYPE_F32: {
      float v;
      std::memcpy(&v, p + 4 * i, 4);
      return v;
    }
    case LKV_DTYPE_F16:
    case LKV_DTYPE_BF16: {
      uint16_t h;
      std::memcpy(&h, p + 2 * i, 2);
      return d == LKV_DTYPE_F16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
    case LKV_DTYPE_INT8: return static_cast<float>(static_cast<int8_t>(p[i]));
    case LKV_DTYPE_FP8_E4M3: return fp8_e4m3_to_f32(p[i]);
    default: break;  // not a valid value: handled below
  }
  return NAN;
}

void store(uint8_t* p, lkv_dtype d, int64_t i, float v) {
  switch (d) {
    case LKV_DTYPE_F32: std::memcpy(p + 4 * i, &v, 4); return;
    case LKV_DTYPE_F16: {
      const uint16_t h = f32_to_f16(v);
      std::memcpy(p + 2 * i, &h, 2);
      return;
    }
    case LKV_DTYPE_BF16: {
      const uint16_t h = f32_to_bf16(v);
      std::memcpy(p + 2 * i, &h, 2);
      return;
    }
    case LKV_DTYPE_INT8: {
      const float r = std::nearbyint(std::fmax(-127.0f, std::fmin(127.0f, v)));
      p[i] = static_cast<uint8_t>(static_cast<int8_t>(r));
      return;
    }
    case LKV_DTYPE_FP8_E4M3: p[i] = f32_to_fp8_e4m3(v); return;
    default: break;  // not a valid value: handled below
  }
}

}  // namespace

lkv_cache_layout cache_layout(lkv_dtype cache_dtype, int32_t kv_lora_rank, int32_t rope_width) {
  lkv_cache_layout layout{};
  if (is_quantized(cache_dtype)) {
    layout.scale_offset = (static_cast<size_t>(kv_lora_rank) + 3) & ~static_cast<size_t>(3);
    layout.rope_offset = layout.scale_offset + 4;
    layout.rope_dtype = LKV_DTYPE_BF16;
    layout.row_bytes = layout.rope_offset + 2 * static_cast<size_t>(rope_width);
    // Keep rows 4-byte aligned so the scale of every row is aligned.
    layout.row_bytes = (layout.row_bytes + 3) & ~static_cast<size_t>(3);
  } else {
    const size_t e = lkv_dtype_size(cache_dtype);
    layout.scale_offset = 0;
    layout.rope_offset = e * static_cast<size_t>(kv_lora_rank);
    layout.rope_dtype = cache_dtype;
    layout.row_bytes = e * (static_cast<size_t>(kv_lora_rank) + static_cast<size_t>(rope_width));
  }
  return layout;
}

void read_row(const uint8_t* row, const lkv_cache_layout& layout, lkv_dtype cache_dtype,
              int32_t kv_lora_rank, int32_t rope_width, float* latent, float* rope) {
  float scale = 1.0f;
  if (is_quantized(cache_dtype)) std::memcpy(&scale, row + layout.scale_offset, 4);
  for (int32_t r = 0; r < kv_lora_rank; ++r) latent[r] = load(row, cache_dtype, r) * scale;
  const uint8_t* rp = row + layout.rope_offset;
  for (int32_t i = 0; i < rope_width; ++i) rope[i] = load(rp, layout.rope_dtype, i);
}

void write_row(uint8_t* row, const lkv_cache_layout& layout, lkv_dtype cache_dtype,
               int32_t kv_lora_rank, int32_t rope_width, const float* latent, const float* rope) {
  float scale = 1.0f;
  if (is_quantized(cache_dtype)) {
    float amax = 0.0f;
    for (int32_t r = 0; r < kv_lora_rank; ++r) amax = std::fmax(amax, std::fabs(latent[r]));
    const float qmax = cache_dtype == LKV_DTYPE_INT8 ? 127.0f : 448.0f;
    scale = amax > 0.0f ? amax / qmax : 1.0f;
    std::memset(row, 0, layout.scale_offset);
    std::memcpy(row + layout.scale_offset, &scale, 4);
  }
  for (int32_t r = 0; r < kv_lora_rank; ++r) store(row, cache_dtype, r, latent[r] / scale);
  uint8_t* rp = row + layout.rope_offset;
  for (int32_t i = 0; i < rope_width; ++i) store(rp, layout.rope_dtype, i, rope[i]);
}

}  // namespace lkv

extern "C" {

const char* lkv_dtype_name(lkv_dtype dtype) {
  switch (dtype) {
    case LKV_DTYPE_F32: return "f32";
    case LKV_DTYPE_F16: return "f16";
    case LKV_DTYPE_BF16: return "bf16";
    case LKV_DTYPE_INT8: return "int8";
    case LKV_DTYPE_FP8_E4M3: return "fp8_e4m3";
    default: break;  // not a valid value: handled below
  }
  return "unknown";
}

size_t lkv_dtype_size(lkv_dtype dtype) {
  switch (dtype) {
    case LKV_DTYPE_F32: return 4;
    case LKV_DTYPE_F16:
    case LKV_DTYPE_BF16: return 2;
    case LKV_DTYPE_INT8:
    case LKV_DTYPE_FP8_E4M3: return 1;
    default: break;  // not a valid value: handled below
  }
  return 0;
}

lkv_status lkv_cache_layout_get(lkv_dtype cache_dtype, int32_t kv_lora_rank, int32_t rope_dim,
                                int32_t rope_heads, lkv_cache_layout* out, lkv_error* err) {
  if (!out) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "out must not be NULL");
  if (lkv_dtype_size(cache_dtype) == 0) {
    return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT,
                     "cache dtype must be f32, f16, bf16, int8 or fp8_e4m3, got value %d",
                     static_cast<int>(cache_dtype));
  }
  if (kv_lora_rank < 1 || rope_dim < 0 || rope_heads < 1 || rope_dim % 2 != 0) {
    return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT,
                     "expected kv_lora_rank >= 1, even rope_dim >= 0, rope_heads >= 1; got %d, %d, %d",
                     kv_lora_rank, rope_dim, rope_heads);
  }
  *out = lkv::cache_layout(cache_dtype, kv_lora_rank, rope_dim * rope_heads);
  return lkv::ok(err);
}

}  // extern "C"
