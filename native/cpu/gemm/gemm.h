// lkv_gemm on the CPU: C = A W^T (+ bias) with W row-major [N, K] in f32 or bf16.
#ifndef LATENTKV_CPU_GEMM_GEMM_H_
#define LATENTKV_CPU_GEMM_GEMM_H_

#include "../cpu-kernels.h"

namespace lkv::cpu {

// Validated params. Small M (and every ISA below AVX-512) runs the weight-streaming row products
// of layer-gemv.cpp split over N; M >= kGemmPanelMinRows on AVX-512 runs the register-blocked
// kernel in gemm.cpp. Both are deterministic for a given ISA and thread count.
lkv_status gemm_cpu(const lkv_gemm_params& p, lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err);

// Float64 reference (tests): same contract, one element at a time.
lkv_status gemm_reference(const lkv_gemm_params& p, lkv_error* err);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_GEMM_GEMM_H_
