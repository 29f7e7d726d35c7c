// The C ABI rejects out-of-contract params with a status and a message that names the field.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernel-cases.h"
#include "test-harness.h"

using namespace lkv::test;

namespace {

bool rejects(lkv_backend* b, const lkv_mla_decode_params& p, const char* needle) {
  lkv_error err{};
  const lkv_status s = lkv_mla_decode(b, &p, &err);
  const bool ok = s == LKV_ERR_INVALID_ARGUMENT && std::strstr(err.message, needle) != nullptr;
  if (!ok) std::fprintf(stderr, "  expected error containing '%s', got %s: %s\n", needle, lkv_status_name(s), err.message);
  return ok;
}

}  // namespace

TEST(decode_rejects_bad_params) {
  lkv_backend* b = nullptr;
  CHECK(lkv_backend_create("cpu", nullptr, &b, nullptr) == LKV_OK);
  DecodeShape shape{2, 1, 4, 16, 4, 1, 8, LKV_DTYPE_F32, {10, 3}};
  DecodeCase c = make_decode_case(shape, 3);
  std::vector<float> out(c.out_size(), 7.0f);
  auto good = c.params(out.data(), nullptr);

  auto p = good; p.num_heads = 0;             CHECK(rejects(b, p, "num_heads"));
  p = good; p.rope_dim = 3;                   CHECK(rejects(b, p, "rope_dim"));
  p = good; p.rope_heads = 3;                 CHECK(rejects(b, p, "rope_heads"));
  p = good; p.block_size = 257;               CHECK(rejects(b, p, "block_size"));
  p = good; p.softmax_scale = NAN;            CHECK(rejects(b, p, "softmax_scale"));
  p = good; p.softmax_scale = INFINITY;       CHECK(rejects(b, p, "softmax_scale"));
  p = good; p.q_latent = nullptr;             CHECK(rejects(b, p, "NULL"));
  p = good; p.cache_dtype = static_cast<lkv_dtype>(9); CHECK(rejects(b, p, "cache_dtype"));
  std::vector<int32_t> lens = {10, 1000};
  p = good; p.seq_lens = lens.data();         CHECK(rejects(b, p, "seq_lens[1]"));
  std::vector<int32_t> table = c.block_table;
  table[0] = c.num_blocks;                    // out of range and used by sequence 0
  p = good; p.block_table = table.data();     CHECK(rejects(b, p, "block_table[0][0]"));
  for (float v : out) CHECK(v == 7.0f);       // rejected calls never touch the output
  lkv_backend_free(b);
}

TEST(backend_create_names_valid_values) {
  lkv_backend* b = nullptr;
  lkv_error err{};
  CHECK(lkv_backend_create("gpu", nullptr, &b, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK(std::strstr(err.message, "cpu, cuda, cann") != nullptr);
  CHECK(lkv_backend_create("cuda", nullptr, &b, &err) == LKV_ERR_BACKEND_UNAVAILABLE);
  lkv_backend_options o{static_cast<lkv_cpu_isa>(42), 0};
  CHECK(lkv_backend_create("cpu", &o, &b, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK(std::strstr(err.message, "avx512bf16") != nullptr);
#if defined(__x86_64__)
  o = {LKV_CPU_ISA_NEON, 0};
  CHECK(lkv_backend_create("cpu", &o, &b, &err) == LKV_ERR_BACKEND_UNAVAILABLE);
  CHECK(std::strstr(err.message, "neon") != nullptr);
#endif
  o = {LKV_CPU_ISA_SCALAR, 3};
  CHECK(lkv_backend_create("cpu", &o, &b, &err) == LKV_OK);
  lkv_backend_info info{};
  CHECK(lkv_backend_get_info(b, &info) == LKV_OK);
  CHECK(info.cpu_isa == LKV_CPU_ISA_SCALAR && info.num_threads == 3);
  CHECK(std::string(info.version) == "0.1.0");
  lkv_backend_free(b);
}

TEST(project_append_rejects_bad_params) {
  lkv_backend* b = nullptr;
  CHECK(lkv_backend_create("cpu", nullptr, &b, nullptr) == LKV_OK);
  AppendShape shape{4, 16, 8, 4, 1, 4, LKV_DTYPE_F32, LKV_DTYPE_F32, true, LKV_ROPE_INTERLEAVED};
  AppendCase c = make_append_case(shape, 5);
  std::vector<uint8_t> cache(c.cache_bytes(), 0xab);
  auto good = c.params(cache.data());
  lkv_error err{};
  auto p = good;
  std::vector<int64_t> slots = c.slots;
  slots[0] = 1 << 20;
  p.slot_mapping = slots.data();
  CHECK(lkv_mla_project_append(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK(std::strstr(err.message, "slot_mapping[0]") != nullptr);
  slots = c.slots;
  slots[3] = slots[0];
  p.slot_mapping = slots.data();
  CHECK(lkv_mla_project_append(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  p = good;
  p.rope.theta = NAN;
  CHECK(lkv_mla_project_append(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK(std::strstr(err.message, "theta") != nullptr);
  p = good;
  p.weight_dtype = LKV_DTYPE_INT8;
  CHECK(lkv_mla_project_append(b, &p, &err) == LKV_ERR_INVALID_ARGUMENT);
  for (uint8_t v : cache) CHECK(v == 0xab);
  lkv_backend_free(b);
}
