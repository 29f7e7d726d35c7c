// Run-time CPU feature detection: which lkv_cpu_isa levels this CPU and OS can execute.
#ifndef LATENTKV_CPU_CPU_FEATURES_H_
#define LATENTKV_CPU_CPU_FEATURES_H_

#include <cstdint>

namespace lkv::cpu {

// Bit (1 << lkv_cpu_isa) for each level the CPU supports and the OS has enabled state for.
uint32_t detect_supported_isa_mask();

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_CPU_FEATURES_H_
