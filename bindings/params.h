// JS params objects -> native params structs. Only conversion: each typed array becomes a
// pointer after a byte-length check against the dimensions, so native code never reads or
// writes past a caller's buffer. Semantic validation happens in lib/ (friendly messages)
// and in native/core/validate.cpp (the C ABI contract).
#ifndef LATENTKV_BINDINGS_PARAMS_H_
#define LATENTKV_BINDINGS_PARAMS_H_

#include <napi.h>

#include <vector>

#include "js-values.h"
#include "latentkv.h"

namespace lkv::js {

// Also holds storage the params point to (the rope frequency table).
struct DecodeCall {
  lkv_mla_decode_params params{};
  BufferRefs buffers;
};

struct ProjectAppendCall {
  lkv_mla_project_append_params params{};
  std::vector<float> inv_freq;
  BufferRefs buffers;
};

struct GqaDecodeCall {
  lkv_gqa_decode_params params{};
  BufferRefs buffers;
};

struct GqaAppendCall {
  lkv_gqa_append_params params{};
  BufferRefs buffers;
};

// Also holds the rope frequency table.
struct DecodeLayerCall {
  lkv_mla_decode_layer_params params{};
  std::vector<float> inv_freq;
  BufferRefs buffers;
};

struct PrefillCall {
  lkv_mla_prefill_params params{};
  BufferRefs buffers;
};

struct GemmCall {
  lkv_gemm_params params{};
  BufferRefs buffers;
};

void read_gemm_params(const Napi::Object& js, GemmCall* call);
void read_prefill_params(const Napi::Object& js, PrefillCall* call);
void read_decode_layer_params(const Napi::Object& js, DecodeLayerCall* call);
void read_gqa_decode_params(const Napi::Object& js, GqaDecodeCall* call);
void read_gqa_append_params(const Napi::Object& js, GqaAppendCall* call);
void read_decode_params(const Napi::Object& js, DecodeCall* call);
void read_project_append_params(const Napi::Object& js, ProjectAppendCall* call);

}  // namespace lkv::js

#endif  // LATENTKV_BINDINGS_PARAMS_H_
