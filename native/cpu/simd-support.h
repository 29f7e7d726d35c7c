// Baseline-compiled helpers for the SIMD kernel translation units. ISA TUs call these
// instead of instantiating shared inline code, so no weak symbol is ever compiled with
// AVX-512 flags (see x86/README.md, "one definition rule").
#ifndef LATENTKV_CPU_SIMD_SUPPORT_H_
#define LATENTKV_CPU_SIMD_SUPPORT_H_

#include <cstddef>
#include <cstdint>

namespace lkv::cpu {

// 256 entries: fp8 e4m3fn byte -> f32 (same values as numeric.h's fp8_e4m3_to_f32).
const float* fp8_e4m3_table();

// 64-byte aligned scratch; nullptr on failure. Never throws.
void* simd_alloc(size_t bytes);
void simd_free(void* p);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_SIMD_SUPPORT_H_
