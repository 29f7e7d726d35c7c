// mla_decode_layer: the fast path (every compiled ISA, 1-3 threads, and the generic fast path
// over the scalar kernels) against the float64 reference layer; bad input gets a status and
// leaves the cache and out untouched.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/numeric.h"
#include "core/validate.h"
#include "cpu/cpu-kernels.h"
#include "cpu/layer/mla-decode-layer.h"
#include "cpu/thread-pool.h"
#include "kernel-cases.h"
#include "test-backends.h"
#include "test-harness.h"

using namespace lkv;
using namespace lkv::test;

namespace {

struct LayerShape {
  int32_t batch, q_len, hidden, heads, q_lora, nope, v, rank, rope_dim, rope_heads, block_size;
  lkv_dtype cache_dtype, weight_dtype;
  bool kv_norm;
  lkv_rope_style style;
  std::vector<int32_t> seq_lens;
  std::string describe() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "B=%d Sq=%d E=%d H=%d Q=%d Dn=%d Dv=%d R=%d P=%d ropeHeads=%d bs=%d cache=%s w=%s%s",
                  batch, q_len, hidden, heads, q_lora, nope, v, rank, rope_dim, rope_heads, block_size,
                  lkv_dtype_name(cache_dtype), lkv_dtype_name(weight_dtype), kv_norm ? " kvnorm" : "");
    return buf;
  }
};

struct LayerCase {
  LayerShape shape;
  DecodeCase decode;  // cache, block table, lengths
  std::vector<float> hidden, q_a_norm, kv_a_norm;
  std::vector<uint8_t> w_q, w_q_a, w_q_b, w_kv_a, w_kv_b, w_o;
  std::vector<int32_t> positions;

  lkv_mla_decode_layer_params params(void* cache, float* out) const {
    const LayerShape& s = shape;
    lkv_mla_decode_layer_params p{};
    p.batch = s.batch;
    p.q_len = s.q_len;
    p.hidden_size = s.hidden;
    p.num_heads = s.heads;
    p.q_lora_rank = s.q_lora;
    p.qk_nope_head_dim = s.nope;
    p.v_head_dim = s.v;
    p.kv_lora_rank = s.rank;
    p.rope_dim = s.rope_dim;
    p.rope_heads = s.rope_heads;
    p.block_size = s.block_size;
    p.num_blocks = decode.num_blocks;
    p.max_blocks_per_seq = decode.max_blocks;
    p.cache_dtype = s.cache_dtype;
    p.weight_dtype = s.weight_dtype;
    p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(s.nope + s.rope_dim));
    p.norm_eps = 1e-6f;
    p.rope.style = s.style;
    p.rope.scaling = LKV_ROPE_SCALING_NONE;
    p.rope.theta = 10000.0f;
    p.hidden = hidden.data();
    if (s.q_lora == 0) {
      p.w_q = w_q.data();
    } else {
      p.w_q_a = w_q_a.data();
      p.q_a_norm_weight = q_a_norm.data();
      p.w_q_b = w_q_b.data();
    }
    p.w_kv_a = w_kv_a.data();
    p.kv_a_norm_weight = s.kv_norm ? kv_a_norm.data() : nullptr;
    p.w_kv_b = w_kv_b.data();
    p.w_o = w_o.data();
    p.positions = positions.data();
    p.cache = cache;
    p.block_table = decode.block_table.data();
    p.seq_lens = decode.shape.seq_lens.data();
    p.out = out;
    return p;
  }
  size_t out_size() const { return static_cast<size_t>(shape.batch) * shape.q_len * shape.hidden; }
};

std::vector<uint8_t> random_weights(std::mt19937& rng, int64_t rows, int64_t cols, lkv_dtype dtype) {
  std::normal_distribution<float> normal(0.0f, 1.0f / std::sqrt(static_cast<float>(cols)));
  std::vector<uint8_t> bytes(static_cast<size_t>(rows * cols) * (dtype == LKV_DTYPE_BF16 ? 2 : 4));
  for (int64_t i = 0; i < rows * cols; ++i) {
    const float v = normal(rng);
    if (dtype == LKV_DTYPE_BF16) {
      const uint16_t h = f32_to_bf16(v);
      std::memcpy(bytes.data() + 2 * i, &h, 2);
    } else {
      std::memcpy(bytes.data() + 4 * i, &v, 4);
    }
  }
  return bytes;
}

LayerCase make_layer_case(const LayerShape& s, uint32_t seed) {
  LayerCase c;
  c.shape = s;
  c.decode = make_decode_case({s.batch, s.q_len, s.heads, s.rank, s.rope_dim, s.rope_heads,
                               s.block_size, s.cache_dtype, s.seq_lens},
                              seed);
  std::mt19937 rng(seed * 7919u + 1u);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const int64_t T = static_cast<int64_t>(s.batch) * s.q_len, H = s.heads;
  c.hidden.resize(static_cast<size_t>(T * s.hidden));
  for (float& v : c.hidden) v = normal(rng);
  const int64_t qrows = H * (s.nope + s.rope_dim);
  if (s.q_lora == 0) {
    c.w_q = random_weights(rng, qrows, s.hidden, s.weight_dtype);
  } else {
    c.w_q_a = random_weights(rng, s.q_lora, s.hidden, s.weight_dtype);
    c.w_q_b = random_weights(rng, qrows, s.q_lora, s.weight_dtype);
    c.q_a_norm.resize(static_cast<size_t>(s.q_lora));
    for (float& v : c.q_a_norm) v = 1.0f + 0.1f * normal(rng);
  }
  c.w_kv_a = random_weights(rng, s.rank + s.rope_dim * s.rope_heads, s.hidden, s.weight_dtype);
  c.kv_a_norm.resize(static_cast<size_t>(s.rank));
  for (float& v : c.kv_a_norm) v = 1.0f + 0.1f * normal(rng);
  // Large enough that the scores are not all flat.
  c.w_kv_b = random_weights(rng, H * (s.nope + s.v), s.rank, s.weight_dtype);
  c.w_o = random_weights(rng, s.hidden, H * s.v, s.weight_dtype);
  for (int32_t b = 0; b < s.batch; ++b) {
    for (int32_t q = 0; q < s.q_len; ++q) c.positions.push_back(s.seq_lens[b] - s.q_len + q);
  }
  return c;
}

std::vector<LayerShape> layer_grid() {
  std::vector<LayerShape> g;
  const auto I = LKV_ROPE_INTERLEAVED, S = LKV_ROPE_HALF_SPLIT;
  for (lkv_dtype cd : {LKV_DTYPE_F32, LKV_DTYPE_BF16}) {
    for (lkv_dtype wd : {LKV_DTYPE_F32, LKV_DTYPE_BF16}) {
      g.push_back({1, 1, 96, 4, 0, 16, 16, 64, 16, 1, 16, cd, wd, true, I, {37}});
      g.push_back({2, 2, 67, 5, 24, 12, 9, 33, 6, 1, 7, cd, wd, false, S, {2, 50}});
      g.push_back({3, 1, 40, 3, 0, 0, 8, 24, 8, 1, 4, cd, wd, true, I, {1, 9, 20}});    // Dn = 0
      g.push_back({2, 2, 48, 6, 20, 8, 8, 16, 4, 3, 5, cd, wd, true, S, {4, 13}});     // rope heads 3
      g.push_back({1, 2, 64, 7, 0, 8, 12, 20, 0, 1, 8, cd, wd, false, I, {10}});       // P = 0
    }
  }
  g.push_back({2, 1, 256, 16, 64, 32, 32, 128, 16, 1, 64, LKV_DTYPE_INT8, LKV_DTYPE_BF16, true, I, {70, 300}});
  return g;
}

}  // namespace

TEST(decode_layer_fast_matches_reference) {
  Backend ref(LKV_CPU_ISA_SCALAR, 1);
  std::vector<lkv_cpu_isa> isas;
  const uint32_t usable = lkv_cpu_compiled_isa_mask() & lkv_cpu_supported_isa_mask();
  for (int i = LKV_CPU_ISA_AVX2; i <= LKV_CPU_ISA_NEON; ++i) {
    if (usable & (1u << i)) isas.push_back(static_cast<lkv_cpu_isa>(i));
  }
  uint32_t seed = 11;
  double worst_f32 = 0.0, worst_other = 0.0;
  int compared = 0;
  for (const auto& shape : layer_grid()) {
    const LayerCase c = make_layer_case(shape, seed++);
    std::vector<uint8_t> cache_ref = c.decode.cache;
    std::vector<float> want(c.out_size(), NAN);
    lkv_error err{};
    auto p = c.params(cache_ref.data(), want.data());
    CHECK_MSG(lkv_mla_decode_layer(ref.handle, &p, &err) == LKV_OK, err.message);
    CHECK_MSG(relative_error(want.data(), want.data(), want.size()) == 0.0,
              "reference output is not finite: " + shape.describe());
    // Rows that are not a new token's slot must keep their bytes (NaN poison included).
    std::vector<bool> written(c.decode.cache.size() / c.decode.layout.row_bytes, false);
    for (int32_t b = 0; b < shape.batch; ++b) {
      for (int32_t q = 0; q < shape.q_len; ++q) written[static_cast<size_t>(decode_layer_slot(p, b, q))] = true;
    }
    auto compare = [&](const std::vector<float>& got, const std::vector<uint8_t>& cache,
                       const std::string& what) {
      const double e = relative_error(got.data(), want.data(), got.size());
      double& worst = shape.cache_dtype == LKV_DTYPE_F32 ? worst_f32 : worst_other;
      worst = std::max(worst, e);
      ++compared;
      CHECK_MSG(e < tolerance(shape.cache_dtype), what + " rel err " + std::to_string(e));
      const size_t rb = c.decode.layout.row_bytes;
      for (size_t row = 0; row < written.size(); ++row) {
        if (written[row]) continue;
        if (std::memcmp(cache.data() + row * rb, c.decode.cache.data() + row * rb, rb) != 0) {
          CHECK_MSG(false, what + " wrote row " + std::to_string(row) + " that is no new token's slot");
          break;
        }
      }
    };
    {
      cpu::ThreadPool pool(2);
      std::vector<uint8_t> cache = c.decode.cache;
      std::vector<float> got(c.out_size(), NAN);
      auto q = c.params(cache.data(), got.data());
      CHECK_MSG(cpu::mla_decode_layer_fast(q, cpu::reference_kernels(), pool, &err) == LKV_OK, err.message);
      compare(got, cache, "fast/scalar kernels " + shape.describe());
    }
    for (lkv_cpu_isa isa : isas) {
      for (int32_t threads : {1, 3}) {
        Backend simd(isa, threads);
        std::vector<uint8_t> cache = c.decode.cache;
        std::vector<float> got(c.out_size(), NAN);
        auto q = c.params(cache.data(), got.data());
        CHECK_MSG(lkv_mla_decode_layer(simd.handle, &q, &err) == LKV_OK, err.message);
        compare(got, cache, std::string(lkv_cpu_isa_name(isa)) + " threads=" + std::to_string(threads) +
                                " " + shape.describe());
      }
    }
  }
  std::printf("  %d fast runs vs reference; worst rel err: f32 cache %.3g, 16/8-bit caches %.3g\n",
              compared, worst_f32, worst_other);
}

TEST(decode_layer_rejects_bad_input_and_writes_nothing) {
  Backend backend(LKV_CPU_ISA_AUTO, 2);
  const LayerShape shape{2, 2, 32, 3, 0, 8, 8, 16, 4, 1, 4, LKV_DTYPE_F32, LKV_DTYPE_F32, true,
                         LKV_ROPE_INTERLEAVED, {5, 9}};
  const LayerCase c = make_layer_case(shape, 5);
  std::vector<int32_t> short_lens = {1, 9};
  std::vector<int64_t> wrong_slots(4, 0);
  std::vector<int32_t> bad_positions = {0, -1, 2, 3};
  struct Bad {
    const char* what;
    void (*mutate)(lkv_mla_decode_layer_params&, void*);
    void* arg;
  };
  const Bad cases[] = {
      {"fold_absorption", [](lkv_mla_decode_layer_params& p, void*) { p.fold_absorption = 1; }, nullptr},
      {"weight f16", [](lkv_mla_decode_layer_params& p, void*) { p.weight_dtype = LKV_DTYPE_F16; }, nullptr},
      {"null w_o", [](lkv_mla_decode_layer_params& p, void*) { p.w_o = nullptr; }, nullptr},
      {"null w_q", [](lkv_mla_decode_layer_params& p, void*) { p.w_q = nullptr; }, nullptr},
      {"low rank without q_b", [](lkv_mla_decode_layer_params& p, void*) { p.q_lora_rank = 4; }, nullptr},
      {"nan scale", [](lkv_mla_decode_layer_params& p, void*) { p.softmax_scale = NAN; }, nullptr},
      {"Dn + P = 0", [](lkv_mla_decode_layer_params& p, void*) { p.qk_nope_head_dim = 0; p.rope_dim = 0; }, nullptr},
      {"seq_lens < q_len", [](lkv_mla_decode_layer_params& p, void* a) { p.seq_lens = static_cast<int32_t*>(a); }, &short_lens},
      {"slot mapping mismatch", [](lkv_mla_decode_layer_params& p, void* a) { p.slot_mapping = static_cast<std::vector<int64_t>*>(a)->data(); }, &wrong_slots},
      {"negative position", [](lkv_mla_decode_layer_params& p, void* a) { p.positions = static_cast<std::vector<int32_t>*>(a)->data(); }, &bad_positions},
      {"rope heads", [](lkv_mla_decode_layer_params& p, void*) { p.rope_heads = 2; }, nullptr},
  };
  short_lens[0] = 1;
  for (const Bad& b : cases) {
    std::vector<uint8_t> cache = c.decode.cache;
    std::vector<float> out(c.out_size(), 7.0f);
    auto p = c.params(cache.data(), out.data());
    void* arg = b.arg;
    if (arg == &short_lens) arg = short_lens.data();
    b.mutate(p, arg);
    lkv_error err{};
    const lkv_status st = lkv_mla_decode_layer(backend.handle, &p, &err);
    CHECK_MSG(st == LKV_ERR_INVALID_ARGUMENT, std::string(b.what) + ": status " + lkv_status_name(st));
    CHECK_MSG(err.message[0] != '\0', std::string(b.what) + ": no message");
    CHECK_MSG(std::memcmp(cache.data(), c.decode.cache.data(), cache.size()) == 0, std::string(b.what) + ": cache written");
    bool out_kept = true;
    for (float v : out) out_kept = out_kept && v == 7.0f;
    CHECK_MSG(out_kept, std::string(b.what) + ": out written");
  }
  lkv_error err{};
  CHECK(lkv_mla_decode_layer(backend.handle, nullptr, &err) == LKV_ERR_INVALID_ARGUMENT);
  // A matching slot mapping is accepted.
  std::vector<uint8_t> cache = c.decode.cache;
  std::vector<float> out(c.out_size());
  auto p = c.params(cache.data(), out.data());
  std::vector<int64_t> slots;
  for (int32_t b = 0; b < shape.batch; ++b) {
    for (int32_t q = 0; q < shape.q_len; ++q) slots.push_back(decode_layer_slot(p, b, q));
  }
  p.slot_mapping = slots.data();
  CHECK_MSG(lkv_mla_decode_layer(backend.handle, &p, &err) == LKV_OK, err.message);
}
