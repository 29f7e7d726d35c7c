// mla_prefill on the CPU: the attention of a prompt chunk (latentkv.h, Kernel 4), in both forms.
#ifndef LATENTKV_CPU_PREFILL_MLA_PREFILL_H_
#define LATENTKV_CPU_PREFILL_MLA_PREFILL_H_

#include "../cpu-kernels.h"

namespace lkv::cpu {

// Validated params. The non-absorbed form, per sequence, a tile of cached tokens at a time: the
// latent rows are dequantised to f32 and up-projected to K_nope and V of every head by one GEMM
// (the ISA's kernel); then per head the scores and P V are GEMMs too, with an online softmax in
// between. Scratch is allocated per call.
lkv_status mla_prefill_tiled(const lkv_mla_prefill_params& p, lkv_cpu_isa isa, ThreadPool& pool, lkv_error* err);

// Validated params. The absorbed form: q_latent = W_UK,h^T q_nope (one GEMM per head against
// W_UK,h^T in f32), the table's mla_decode over chunks of the new tokens (each chunk with the
// lengths that give its causal windows), then out = W_UV,h latent (one GEMM per head against
// kv_b_proj as stored). Reads the cache once per chunk.
lkv_status mla_prefill_absorbed(const lkv_mla_prefill_params& p, const KernelTable& kernels, ThreadPool& pool,
                                lkv_error* err);

// Whether the non-absorbed form is estimated cheaper than the absorbed one for these params
// (a cost model fitted to measurements, see mla-prefill.cpp); mla_decode_layer asks it too.
bool mla_prefill_prefers_non_absorbed(const lkv_mla_prefill_params& p);

// Picks the cheaper form for these params.
lkv_status mla_prefill_fast(const lkv_mla_prefill_params& p, const KernelTable& kernels, ThreadPool& pool,
                            lkv_error* err);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_PREFILL_MLA_PREFILL_H_
