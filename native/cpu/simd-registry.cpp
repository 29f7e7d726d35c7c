// Which SIMD kernel tables this binary contains. The build defines LKV_WITH_<ISA> for each
// ISA folder it compiles (with that ISA's flags) into the same binary.
#include "cpu-kernels.h"

namespace lkv::cpu {

#if defined(LKV_WITH_AVX2)
const KernelTable& avx2_kernels();
#endif
#if defined(LKV_WITH_AVX512)
const KernelTable& avx512_kernels();
#endif
#if defined(LKV_WITH_AVX512BF16)
const KernelTable& avx512bf16_kernels();
#endif
#if defined(LKV_WITH_NEON)
const KernelTable& neon_kernels();
#endif

const KernelTable* simd_kernels(lkv_cpu_isa isa) {
  switch (isa) {
#if defined(LKV_WITH_AVX2)
    case LKV_CPU_ISA_AVX2: return &avx2_kernels();
#endif
#if defined(LKV_WITH_AVX512)
    case LKV_CPU_ISA_AVX512: return &avx512_kernels();
#endif
#if defined(LKV_WITH_AVX512BF16)
    case LKV_CPU_ISA_AVX512BF16: return &avx512bf16_kernels();
#endif
#if defined(LKV_WITH_NEON)
    case LKV_CPU_ISA_NEON: return &neon_kernels();
#endif
    default: return nullptr;
  }
}

}  // namespace lkv::cpu
