// RoPE frequencies and rotation shared by every backend's project_append and layer kernels.
#ifndef LATENTKV_CORE_ROPE_H_
#define LATENTKV_CORE_ROPE_H_

#include "latentkv.h"

namespace lkv {

// Checks the scaling parameters; message names the field that is wrong.
lkv_status validate_rope(const lkv_rope_params& rope, int32_t rope_dim, lkv_error* err);

// inv_freq[P/2] for validated params, computed in double then rounded.
void rope_inv_freq(const lkv_rope_params& rope, int32_t rope_dim, float* inv_freq);

// Scale applied to cos and sin (YaRN's _mscale); 1 when attention_factor is 0.
inline float rope_attention_factor(const lkv_rope_params& rope) {
  return rope.attention_factor == 0.0f ? 1.0f : rope.attention_factor;
}

// Rotates x[P] in place at `position` (double precision angle, as the reference does).
void rope_rotate(lkv_rope_style style, const float* inv_freq, float attention_factor,
                 int32_t rope_dim, int32_t position, float* x);

}  // namespace lkv

#endif  // LATENTKV_CORE_ROPE_H_
