// The tensor-core split kernel of gqa_decode (gqa-split-mma.cu): head_dim 128 over a bf16 cache.
// attention.cu plans and launches it in place of the portable FP32 split kernel whenever
// gqa_mma_supported() says yes; the schedule, the partial outputs and the combine are shared.
#ifndef LATENTKV_CUDA_GQA_SPLIT_MMA_H_
#define LATENTKV_CUDA_GQA_SPLIT_MMA_H_

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "latentkv.h"
#include "split-args.h"

namespace lkv::cuda {

struct GqaMmaArgs : SplitArgs {
  const float* q;               // [B, Sq, H, 128]
  int64_t row_bytes, v_offset;  // bytes of one token row (K of all heads, then V), and of K
};

constexpr int kGqaMmaRows = 16;  // query rows (s, head of one KV group) per CTA tile

bool gqa_mma_supported(const lkv_gqa_decode_params& p);
size_t gqa_mma_smem();
cudaError_t gqa_mma_prepare(int* ctas_per_sm);
// grid: (row tiles, parts, KV heads).
cudaError_t launch_gqa_split_mma(const GqaMmaArgs& a, dim3 grid, cudaStream_t stream);

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_GQA_SPLIT_MMA_H_
