// Contract checks for the kernel params structs, run once by the dispatcher before any
// backend sees the params, so kernels may assume valid input.
#ifndef LATENTKV_CORE_VALIDATE_H_
#define LATENTKV_CORE_VALIDATE_H_

#include "latentkv.h"

namespace lkv {

constexpr int32_t kMaxBlockSize = 256;

lkv_status validate(const lkv_mla_decode_params& p, lkv_error* err);
lkv_status validate(const lkv_mla_project_append_params& p, lkv_error* err);
lkv_status validate(const lkv_gqa_decode_params& p, lkv_error* err);
lkv_status validate(const lkv_gqa_append_params& p, lkv_error* err);
lkv_status validate(const lkv_mla_decode_layer_params& p, lkv_error* err);

// The cache slot of new token s (0..Sq-1) of sequence b in a validated layer call.
int64_t decode_layer_slot(const lkv_mla_decode_layer_params& p, int32_t b, int32_t s);

lkv_status validate(const lkv_mtla_merge_append_params& p, lkv_error* err);
lkv_status validate(const lkv_gemm_params& p, lkv_error* err);
lkv_status validate(const lkv_mla_prefill_params& p, lkv_error* err);

}  // namespace lkv

#endif  // LATENTKV_CORE_VALIDATE_H_
