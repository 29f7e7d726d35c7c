#include "cpu-features.h"

#include "latentkv.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <cpuid.h>
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

namespace lkv::cpu {
namespace {

constexpr uint32_t bit(lkv_cpu_isa isa) { return 1u << static_cast<uint32_t>(isa); }

#if defined(__x86_64__) || defined(_M_X64)
uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (static_cast<uint64_t>(edx) << 32) | eax;
}
#endif

}  // namespace

uint32_t detect_supported_isa_mask() {
  uint32_t mask = bit(LKV_CPU_ISA_SCALAR);
#if defined(__x86_64__) || defined(_M_X64)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return mask;
  const bool fma = c & (1u << 12), osxsave = c & (1u << 27), avx = c & (1u << 28),
             f16c = c & (1u << 29);
  if (!osxsave || !avx) return mask;
  const uint64_t xcr0 = read_xcr0();
  // The OS must save the YMM state (bits 1-2) and for AVX-512 also opmask/ZMM (bits 5-7).
  const bool os_ymm = (xcr0 & 0x6) == 0x6;
  const bool os_zmm = (xcr0 & 0xe6) == 0xe6;
  if (!os_ymm || __get_cpuid_max(0, nullptr) < 7) return mask;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5), avx512f = b & (1u << 16), avx512dq = b & (1u << 17),
             avx512bw = b & (1u << 30), avx512vl = b & (1u << 31);
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512bf16 = a & (1u << 5);
  if (avx2 && fma && f16c) mask |= bit(LKV_CPU_ISA_AVX2);
  const bool avx512 = os_zmm && avx512f && avx512dq && avx512bw && avx512vl && (mask & bit(LKV_CPU_ISA_AVX2));
  if (avx512) mask |= bit(LKV_CPU_ISA_AVX512);
  if (avx512 && avx512bf16) mask |= bit(LKV_CPU_ISA_AVX512BF16);
#elif defined(__aarch64__)
  mask |= bit(LKV_CPU_ISA_NEON);  // Advanced SIMD is mandatory on AArch64
#endif
  return mask;
}

}  // namespace lkv::cpu
