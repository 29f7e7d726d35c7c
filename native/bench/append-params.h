// mla_project_append params with the benches' fixed choices (one rope head, interleaved RoPE,
// theta 10000, bf16 cache), shared by the CPU bench and the CUDA bench so both time the same call.
#ifndef LATENTKV_BENCH_APPEND_PARAMS_H_
#define LATENTKV_BENCH_APPEND_PARAMS_H_

#include <cstdint>

#include "latentkv.h"

namespace lkv::bench {

inline lkv_mla_project_append_params append_params(int32_t T, int32_t E, int32_t R, int32_t P, int32_t bs,
                                                   int32_t num_blocks, lkv_dtype wd, const float* x,
                                                   const void* w, const float* gamma, const int32_t* pos,
                                                   const int64_t* slots, void* cache) {
  lkv_mla_project_append_params p{};
  p.num_tokens = T;
  p.hidden_size = E;
  p.kv_lora_rank = R;
  p.rope_dim = P;
  p.rope_heads = 1;
  p.block_size = bs;
  p.num_blocks = num_blocks;
  p.cache_dtype = LKV_DTYPE_BF16;
  p.weight_dtype = wd;
  p.norm_eps = 1e-6f;
  p.rope.style = LKV_ROPE_INTERLEAVED;
  p.rope.theta = 10000.0f;
  p.hidden = x;
  p.w_kv_a = w;
  p.norm_weight = gamma;
  p.positions = pos;
  p.slot_mapping = slots;
  p.cache = cache;
  return p;
}

}  // namespace lkv::bench

#endif  // LATENTKV_BENCH_APPEND_PARAMS_H_
