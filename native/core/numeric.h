// Scalar conversions between f32 and the 16- and 8-bit storage types. Portable bit code, so
// every backend and ISA agrees on rounding (round to nearest, ties to even).
#ifndef LATENTKV_CORE_NUMERIC_H_
#define LATENTKV_CORE_NUMERIC_H_

#include <cmath>
#include <cstdint>
#include <cstring>

namespace lkv {

inline uint32_t float_bits(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return u;
}

inline float bits_float(uint32_t u) {
  float x;
  std::memcpy(&x, &u, sizeof x);
  return x;
}

inline float bf16_to_f32(uint16_t h) { return bits_float(static_cast<uint32_t>(h) << 16); }

inline uint16_t f32_to_bf16(float x) {
  uint32_t u = float_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

inline float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Subnormal or zero: mant * 2^-24 is exact in f32.
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;
    return sign ? -v : v;
  }
  if (exp == 31) return bits_float(sign | 0x7f800000u | (mant << 13));
  return bits_float(sign | ((exp + 112u) << 23) | (mant << 13));
}

inline uint16_t f32_to_f16(float x) {
  const uint32_t u = float_bits(x);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);  // NaN
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to inf
  if (a < 0x38800000u) {
    // Subnormal in f16 (value = mant * 2^-24): round a * 2^24 to an integer, ties to even.
    // A result of 1024 carries into the smallest normal, which is the right encoding.
    const float scaled = bits_float(a) * 16777216.0f;  // exact: a power-of-two scale
    const float r = std::nearbyint(scaled);
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(r));
  }
  uint32_t m = a + 0xfffu + ((a >> 13) & 1u);  // round the 13 dropped bits to even
  m -= 112u << 23;
  return static_cast<uint16_t>(sign | (m >> 13));
}

// OCP fp8 e4m3fn: bias 7, no infinities, 0x7f/0xff are NaN, largest finite 448.
inline float fp8_e4m3_to_f32(uint8_t v) {
  const bool neg = (v & 0x80u) != 0;
  const uint32_t exp = (v >> 3) & 0xfu;
  const uint32_t mant = v & 0x7u;
  float r;
  if (exp == 15 && mant == 7) return std::nanf("");
  if (exp == 0) {
    r = std::ldexp(static_cast<float>(mant), -9);
  } else {
    r = std::ldexp(1.0f + static_cast<float>(mant) / 8.0f, static_cast<int>(exp) - 7);
  }
  return neg ? -r : r;
}

inline uint8_t f32_to_fp8_e4m3(float x) {
  if (std::isnan(x)) return 0x7f;
  const uint8_t sign = std::signbit(x) ? 0x80 : 0x00;
  const float a = std::fabs(x);
  if (a >= 448.0f) return sign | 0x7e;  // saturate: e4m3fn has no infinity
  if (a < 0.015625f) {
    // Subnormal range, step 2^-9; a mantissa of 8 carries into the smallest normal.
    const float q = std::nearbyint(std::ldexp(a, 9));
    return sign | static_cast<uint8_t>(q);
  }
  int e;
  const float frac = std::frexp(a, &e);  // a = frac * 2^e, frac in [0.5, 1)
  int exp = e - 1;                        // a = (2 frac) * 2^exp, 2 frac in [1, 2)
  float mant = std::nearbyint((2.0f * frac - 1.0f) * 8.0f);
  if (mant >= 8.0f) {
    mant = 0.0f;
    ++exp;
  }
  const int biased = exp + 7;
  if (biased > 15 || (biased == 15 && mant >= 7.0f)) return sign | 0x7e;
  return sign | static_cast<uint8_t>((biased << 3) | static_cast<int>(mant));
}

}  // namespace lkv

#endif  // LATENTKV_CORE_NUMERIC_H_
