#include "rope.h"

#include <algorithm>
#include <cmath>

#include "error.h"

namespace lkv {
namespace {

constexpr double kPi = 3.14159265358979323846;

// DeepSeek's yarn_find_correction_dim: the rope pair index whose wavelength completes
// num_rotations turns over the original context.
double yarn_correction_dim(double num_rotations, int32_t dim, double base, double max_pos) {
  return dim * std::log(max_pos / (num_rotations * 2.0 * kPi)) / (2.0 * std::log(base));
}

bool finite_positive(float v) { return std::isfinite(v) && v > 0.0f; }

}  // namespace

lkv_status validate_rope(const lkv_rope_params& rope, int32_t rope_dim, lkv_error* err) {
  if (rope.style != LKV_ROPE_INTERLEAVED && rope.style != LKV_ROPE_HALF_SPLIT) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "rope.style must be interleaved (0) or half-split (1), got %d",
                static_cast<int>(rope.style));
  }
  if (!std::isfinite(rope.attention_factor) || rope.attention_factor < 0.0f) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT,
                "rope.attention_factor must be finite and >= 0, got %g", rope.attention_factor);
  }
  const bool needs_theta = rope.scaling != LKV_ROPE_SCALING_TABLE;
  if (needs_theta && (!finite_positive(rope.theta) || rope.theta <= 1.0f)) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope.theta must be finite and > 1, got %g",
                rope.theta);
  }
  switch (rope.scaling) {
    case LKV_ROPE_SCALING_NONE: return ok(err);
    case LKV_ROPE_SCALING_LINEAR:
      if (!finite_positive(rope.factor)) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope.factor must be > 0, got %g", rope.factor);
      }
      return ok(err);
    case LKV_ROPE_SCALING_LLAMA3:
      if (!finite_positive(rope.factor) || !finite_positive(rope.low_freq_factor) ||
          !finite_positive(rope.high_freq_factor) ||
          rope.high_freq_factor <= rope.low_freq_factor || rope.original_max_position < 1) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT,
                    "llama3 rope scaling needs factor > 0, 0 < low_freq_factor < high_freq_factor "
                    "and original_max_position >= 1; got %g, %g, %g, %d",
                    rope.factor, rope.low_freq_factor, rope.high_freq_factor,
                    rope.original_max_position);
      }
      return ok(err);
    case LKV_ROPE_SCALING_YARN:
      if (!finite_positive(rope.factor) || !finite_positive(rope.beta_fast) ||
          !finite_positive(rope.beta_slow) || rope.original_max_position < 1) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT,
                    "yarn rope scaling needs factor, beta_fast, beta_slow > 0 and "
                    "original_max_position >= 1; got %g, %g, %g, %d",
                    rope.factor, rope.beta_fast, rope.beta_slow, rope.original_max_position);
      }
      return ok(err);
    case LKV_ROPE_SCALING_TABLE:
      if (rope_dim > 0 && rope.inv_freq == nullptr) {
        return fail(err, LKV_ERR_INVALID_ARGUMENT,
                    "rope.inv_freq must point to rope_dim/2 = %d frequencies for table scaling",
                    rope_dim / 2);
      }
      for (int32_t i = 0; i < rope_dim / 2; ++i) {
        if (!std::isfinite(rope.inv_freq[i])) {
          return fail(err, LKV_ERR_INVALID_ARGUMENT, "rope.inv_freq[%d] is not finite", i);
        }
      }
      return ok(err);
    default: break;  // not a valid value: handled below
  }
  return fail(err, LKV_ERR_INVALID_ARGUMENT,
              "rope.scaling must be none, linear, llama3, yarn or table (0..4), got %d",
              static_cast<int>(rope.scaling));
}

void rope_inv_freq(const lkv_rope_params& rope, int32_t rope_dim, float* inv_freq) {
  const int32_t half = rope_dim / 2;
  if (rope.scaling == LKV_ROPE_SCALING_TABLE) {
    std::copy(rope.inv_freq, rope.inv_freq + half, inv_freq);
    return;
  }
  const double base = rope.theta;
  double low = 0.0, high = 0.0;
  if (rope.scaling == LKV_ROPE_SCALING_YARN) {
    low = std::floor(yarn_correction_dim(rope.beta_fast, rope_dim, base, rope.original_max_position));
    high = std::ceil(yarn_correction_dim(rope.beta_slow, rope_dim, base, rope.original_max_position));
    low = std::max(low, 0.0);
    high = std::min(high, static_cast<double>(rope_dim - 1));
    if (low == high) high += 0.001;  // as DeepSeek's linear ramp, avoids dividing by zero
  }
  for (int32_t i = 0; i < half; ++i) {
    const double f = std::pow(base, -2.0 * i / rope_dim);
    double v = f;
    switch (rope.scaling) {
      case LKV_ROPE_SCALING_LINEAR: v = f / rope.factor; break;
      case LKV_ROPE_SCALING_LLAMA3: {
        const double old_ctx = rope.original_max_position;
        const double low_wavelen = old_ctx / rope.low_freq_factor;
        const double high_wavelen = old_ctx / rope.high_freq_factor;
        const double wavelen = 2.0 * kPi / f;
        if (wavelen > low_wavelen) {
          v = f / rope.factor;
        } else if (wavelen >= high_wavelen) {
          const double smooth = (old_ctx / wavelen - rope.low_freq_factor) /
                                (rope.high_freq_factor - rope.low_freq_factor);
          v = (1.0 - smooth) * f / rope.factor + smooth * f;
        }
        break;
      }
      case LKV_ROPE_SCALING_YARN: {
        const double ramp = std::clamp((i - low) / (high - low), 0.0, 1.0);
        const double extrapolation_weight = 1.0 - ramp;
        v = f / rope.factor * (1.0 - extrapolation_weight) + f * extrapolation_weight;
        break;
      }
      default: break;
    }
    inv_freq[i] = static_cast<float>(v);
  }
}

void rope_rotate(lkv_rope_style style, const float* inv_freq, float attention_factor,
                 int32_t rope_dim, int32_t position, float* x) {
  const int32_t half = rope_dim / 2;
  for (int32_t i = 0; i < half; ++i) {
    const double angle = static_cast<double>(position) * inv_freq[i];
    const double c = std::cos(angle) * attention_factor;
    const double s = std::sin(angle) * attention_factor;
    const int32_t a = style == LKV_ROPE_INTERLEAVED ? 2 * i : i;
    const int32_t b = style == LKV_ROPE_INTERLEAVED ? 2 * i + 1 : i + half;
    const double xa = x[a], xb = x[b];
    x[a] = static_cast<float>(xa * c - xb * s);
    x[b] = static_cast<float>(xa * s + xb * c);
  }
}

}  // namespace lkv

extern "C" lkv_status lkv_rope_inv_freq(const lkv_rope_params* rope, int32_t rope_dim,
                                        float* inv_freq_out, lkv_error* err) {
  if (!rope || (rope_dim > 0 && !inv_freq_out)) {
    return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "rope and inv_freq_out must not be NULL");
  }
  if (rope_dim < 0 || rope_dim % 2 != 0) {
    return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "rope_dim must be even and >= 0, got %d",
                     rope_dim);
  }
  const lkv_status s = lkv::validate_rope(*rope, rope_dim, err);
  if (s != LKV_OK) return s;
  lkv::rope_inv_freq(*rope, rope_dim, inv_freq_out);
  return lkv::ok(err);
}
