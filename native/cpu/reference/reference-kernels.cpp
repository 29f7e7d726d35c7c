#include "reference-kernels.h"

#include "../layer/mla-decode-layer.h"

namespace lkv::cpu {

const KernelTable& reference_kernels() {
  static const KernelTable table = {
      /* .isa = */ LKV_CPU_ISA_SCALAR,
      /* .mla_decode = */ mla_decode_reference,
      /* .mla_project_append = */ mla_project_append_reference,
      /* .gqa_decode = */ gqa_decode_reference,
      /* .gqa_append = */ gqa_append_reference,
      /* .mla_decode_layer = */ mla_decode_layer_reference,
      /* .mla_prefill = */ mla_prefill_reference,
  };
  return table;
}

}  // namespace lkv::cpu
