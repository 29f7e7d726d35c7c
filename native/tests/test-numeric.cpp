// Storage conversions: exhaustive over the 16- and 8-bit codes where that is cheap.
#include <cmath>
#include <cstdint>
#include <string>

#include "core/numeric.h"
#include "test-harness.h"

using namespace lkv;

TEST(f16_round_trips_every_code) {
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = f16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    if (f32_to_f16(f) != h) ++bad;
  }
  CHECK_MSG(bad == 0, std::to_string(bad) + " f16 codes do not round-trip");
}

TEST(f16_rounds_to_nearest_even) {
  CHECK(f32_to_f16(1.0f + 1.0f / 2048.0f) == 0x3c00);          // tie -> even (down)
  CHECK(f32_to_f16(1.0f + 3.0f / 2048.0f) == 0x3c02);          // tie -> even (up)
  CHECK(f32_to_f16(65520.0f) == 0x7c00);                        // rounds to inf
  CHECK(f32_to_f16(65504.0f) == 0x7bff);
  CHECK(f32_to_f16(std::ldexp(1.5f, -24)) == 0x0002);           // subnormal tie -> even (up)
  CHECK(f32_to_f16(std::ldexp(2.5f, -24)) == 0x0002);           // subnormal tie -> even (down)
  CHECK(std::isnan(f16_to_f32(f32_to_f16(NAN))));
}

TEST(bf16_round_trips_and_rounds_to_even) {
  int bad = 0;
  for (uint32_t h = 0; h < 0x10000; ++h) {
    const float f = bf16_to_f32(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    if (f32_to_bf16(f) != h) ++bad;
  }
  CHECK(bad == 0);
  CHECK(f32_to_bf16(bits_float(0x3f808000u)) == 0x3f80);  // tie, even stays
  CHECK(f32_to_bf16(bits_float(0x3f818000u)) == 0x3f82);  // tie, odd rounds up
  CHECK(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(fp8_e4m3_round_trips_and_saturates) {
  int bad = 0;
  for (uint32_t v = 0; v < 256; ++v) {
    const float f = fp8_e4m3_to_f32(static_cast<uint8_t>(v));
    if (std::isnan(f)) continue;
    if (f32_to_fp8_e4m3(f) != v && !(f == 0.0f)) ++bad;
  }
  CHECK(bad == 0);
  CHECK(fp8_e4m3_to_f32(0x7e) == 448.0f);
  CHECK(f32_to_fp8_e4m3(1e6f) == 0x7e);
  CHECK(f32_to_fp8_e4m3(-1e6f) == 0xfe);
  CHECK(fp8_e4m3_to_f32(0x01) == std::ldexp(1.0f, -9));
  // Every positive finite value rounds to the nearest code.
  for (float x = 0.001f; x < 440.0f; x *= 1.01f) {
    const float y = fp8_e4m3_to_f32(f32_to_fp8_e4m3(x));
    float best = INFINITY;
    for (uint32_t v = 0; v < 127; ++v) best = std::fmin(best, std::fabs(fp8_e4m3_to_f32(v) - x));
    CHECK(std::fabs(y - x) <= best);
  }
}
