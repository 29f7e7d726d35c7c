// The CPU backend's per-ISA kernel table. Each ISA folder provides one table; the backend
// picks the best compiled one the CPU supports, below the caller's cap.
#ifndef LATENTKV_CPU_CPU_KERNELS_H_
#define LATENTKV_CPU_CPU_KERNELS_H_

#include "latentkv.h"

namespace lkv::cpu {

class ThreadPool;

struct KernelTable {
  lkv_cpu_isa isa;
  // Params are already validated by the dispatcher.
  lkv_status (*mla_decode)(const lkv_mla_decode_params& p, ThreadPool& pool, lkv_error* err);
  lkv_status (*mla_project_append)(const lkv_mla_project_append_params& p, ThreadPool& pool,
                                   lkv_error* err);
  // Optional in SIMD tables (nullptr: the backend uses the reference for that kernel).
  lkv_status (*gqa_decode)(const lkv_gqa_decode_params& p, ThreadPool& pool, lkv_error* err);
  lkv_status (*gqa_append)(const lkv_gqa_append_params& p, ThreadPool& pool, lkv_error* err);
  // Optional (nullptr: the backend runs the generic fast layer in native/cpu/layer/, which
  // calls this table's mla_decode and mla_project_append). `kernels` is the backend's table.
  lkv_status (*mla_decode_layer)(const lkv_mla_decode_layer_params& p, const KernelTable& kernels,
                                 ThreadPool& pool, lkv_error* err) = nullptr;
  // Optional (nullptr: the backend runs the tiled prefill of native/cpu/prefill/ with this
  // table's ISA for its GEMM).
  lkv_status (*mla_prefill)(const lkv_mla_prefill_params& p, ThreadPool& pool, lkv_error* err) = nullptr;
};

// The scalar reference: always compiled, the ground truth for every other kernel.
const KernelTable& reference_kernels();

// Tables for SIMD ISAs compiled into this binary (nullptr when not compiled).
const KernelTable* simd_kernels(lkv_cpu_isa isa);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_CPU_KERNELS_H_
