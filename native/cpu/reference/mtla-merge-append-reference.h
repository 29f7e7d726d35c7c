// MTLA merge-append (latentkv.h, kernel 7): the scalar reference, which is also the CPU kernel.
#ifndef LATENTKV_CPU_REFERENCE_MTLA_MERGE_APPEND_REFERENCE_H_
#define LATENTKV_CPU_REFERENCE_MTLA_MERGE_APPEND_REFERENCE_H_

#include "latentkv.h"

namespace lkv::cpu {

// p must have passed lkv::validate. Runs on the calling thread.
lkv_status mtla_merge_append_reference(const lkv_mtla_merge_append_params& p, lkv_error* err);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_REFERENCE_MTLA_MERGE_APPEND_REFERENCE_H_
