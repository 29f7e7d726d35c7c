// What every tensor-core split kernel reads besides its own cache rows and query: the batch,
// the paging, the outputs, and the schedule with its partial-result workspace (attention.cu
// fills it once for both mla-split-mma.cu and gqa-split-mma.cu).
#ifndef LATENTKV_CUDA_SPLIT_ARGS_H_
#define LATENTKV_CUDA_SPLIT_ARGS_H_

#include <stdint.h>

namespace lkv::cuda {

struct SplitArgs {
  int B, Sq, H, group;  // group: query heads per key group (rope group or KV head)
  int block_size, max_blocks;
  float scale_log2;  // softmax_scale * log2(e): scores are kept in base 2
  const uint8_t* cache;
  const int32_t* block_table;
  const int32_t* seq_lens;
  float* out;  // [B, Sq, H, Dv]
  float* lse;  // [B, H, Sq] or null
  const int32_t* meta;          // [parts, kMetaInts] from the schedule
  const int32_t* split_prefix;  // [B + 1]
  float* part_o;                // [slots, Sq * H, Dv]
  float* part_lse;              // [slots, Sq * H]
};

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_SPLIT_ARGS_H_
