// The tensor-core split kernel of mla_decode (mla-split-mma.cu): DeepSeek's dimensions (latent
// 512, rope 64 per group) over a bf16 or fp8-e4m3 cache. attention.cu plans and launches it in place of the
// portable FP32 split kernel whenever mla_mma_supported() says yes; the schedule, the partial
// outputs and the log-sum-exp combine are shared.
#ifndef LATENTKV_CUDA_MLA_SPLIT_MMA_H_
#define LATENTKV_CUDA_MLA_SPLIT_MMA_H_

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "latentkv.h"
#include "split-args.h"

namespace lkv::cuda {

// Chunks (32 or 64 tokens) start at multiples of their size, so a chunk never crosses a run of
// this many tokens that starts at a multiple of it: with block_size % 64 == 0, never a page.
constexpr int kMlaMmaContiguousTokens = 64;

struct MlaMmaArgs : SplitArgs {
  int rows_per_tile;    // 16 * m-tiles
  bool fp8;             // fp8-e4m3 cache (else bf16)
  bool contiguous;      // fp8 with block_size % kMlaMmaContiguousTokens == 0: a chunk is one page's run
  const float* q_latent;  // [B, Sq, H, 512]
  const float* q_rope;    // [B, Sq, H, 64]
  int64_t row_bytes, rope_offset;
};

// Whether the tensor-core kernel handles these parameters: R = 512, P = 64, and a bf16 cache,
// or an fp8-e4m3 cache with one rope group.
bool mla_mma_supported(const lkv_mla_decode_params& p);
// Query rows per CTA tile (16 or 32) for Sq * H / rope_heads rows per group.
int mla_mma_rows(int rows_per_group);
// Dynamic shared memory of one CTA, and the one-time attribute that allows it.
size_t mla_mma_smem(int rows, bool fp8);
cudaError_t mla_mma_prepare(int rows, bool fp8, int* ctas_per_sm);
// grid: (row tiles, parts, rope groups).
cudaError_t launch_mla_split_mma(const MlaMmaArgs& a, dim3 grid, cudaStream_t stream);

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_MLA_SPLIT_MMA_H_
