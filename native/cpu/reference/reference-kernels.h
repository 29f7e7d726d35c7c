// The scalar reference kernels (LATENTKV_CPU_ISA=scalar).
#ifndef LATENTKV_CPU_REFERENCE_REFERENCE_KERNELS_H_
#define LATENTKV_CPU_REFERENCE_REFERENCE_KERNELS_H_

#include "../cpu-kernels.h"

namespace lkv::cpu {

lkv_status mla_decode_reference(const lkv_mla_decode_params& p, ThreadPool& pool, lkv_error* err);
lkv_status mla_project_append_reference(const lkv_mla_project_append_params& p, ThreadPool& pool,
                                        lkv_error* err);
lkv_status gqa_decode_reference(const lkv_gqa_decode_params& p, ThreadPool& pool, lkv_error* err);
lkv_status gqa_append_reference(const lkv_gqa_append_params& p, ThreadPool& pool, lkv_error* err);
lkv_status mla_prefill_reference(const lkv_mla_prefill_params& p, ThreadPool& pool, lkv_error* err);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_REFERENCE_REFERENCE_KERNELS_H_
