// The machine's own ceilings, measured in the same run as a benchmark: memory read bandwidth
// and peak f32 FMA / bf16 dot-product rates with all threads.
#ifndef LATENTKV_CPU_CEILINGS_H_
#define LATENTKV_CPU_CEILINGS_H_

#include "latentkv.h"

namespace lkv::cpu {

lkv_cpu_ceilings measure_ceilings(int32_t threads, bool quick);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_CEILINGS_H_
