// The fields every attention params struct names alike (mla_decode, mla_prefill,
// mla_decode_layer): shape, cache geometry, paging and scale. One kernel's params handed on to
// another copy them here, then set what differs.
#ifndef LATENTKV_CORE_ATTENTION_FIELDS_H_
#define LATENTKV_CORE_ATTENTION_FIELDS_H_

namespace lkv {

template <typename Dst, typename Src>
void copy_attention_fields(const Src& s, Dst& d) {
  d.batch = s.batch;
  d.q_len = s.q_len;
  d.num_heads = s.num_heads;
  d.kv_lora_rank = s.kv_lora_rank;
  d.rope_dim = s.rope_dim;
  d.rope_heads = s.rope_heads;
  d.block_size = s.block_size;
  d.num_blocks = s.num_blocks;
  d.max_blocks_per_seq = s.max_blocks_per_seq;
  d.cache_dtype = s.cache_dtype;
  d.softmax_scale = s.softmax_scale;
  d.cache = s.cache;
  d.block_table = s.block_table;
  d.seq_lens = s.seq_lens;
}

}  // namespace lkv

#endif  // LATENTKV_CORE_ATTENTION_FIELDS_H_
