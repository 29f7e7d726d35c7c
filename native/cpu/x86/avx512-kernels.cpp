// mla_decode and mla_project_append compiled with the avx512 flags of sources.json.
// Everything but avx512_kernels() has internal linkage (one-definition rule: no weak
// symbol from this file may replace a baseline one; checked by the build's nm test).
// GCC 12 warns inside its own AVX-512 headers (_mm512_undefined_* placeholders).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../core/cache-layout.h"
#include "../../core/error.h"
#include "../../core/rope.h"
#include "../cpu-kernels.h"
#include "../simd-support.h"
#include "../thread-pool.h"

#define LKV_VEC_BITS 512


namespace lkv::cpu {
namespace {
#include "x86-vec.inc"
#include "x86-mla.inc"
#include "x86-gqa.inc"
}  // namespace

const KernelTable& avx512_kernels() {
  static const KernelTable table = {
      /* .isa = */ LKV_CPU_ISA_AVX512,
      /* .mla_decode = */ mla_decode_simd,
      /* .mla_project_append = */ mla_project_append_simd,
      /* .gqa_decode = */ gqa_decode_simd,
      /* .gqa_append = */ gqa_append_simd,
  };
  return table;
}

}  // namespace lkv::cpu
