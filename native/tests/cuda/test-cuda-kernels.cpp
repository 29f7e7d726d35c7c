// Every CUDA kernel against the CPU reference on the same random cases: odd head counts, ragged
// and zero lengths, Sq > 1 (causal), NaN-poisoned pages and rows, shuffled block tables with
// out-of-range sentinels. Needs a CUDA GPU (sm_80+); no Node. Outputs are poisoned (0xff, NaN)
// before every run so an unwritten element fails, and every case is run twice to catch races.
//
//   build-cuda-native/latentkv_cuda_tests [substring]
#include <cmath>
#include <cstdio>
#include <algorithm>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/cache-layout.h"
#include "cuda/cuda-cases.h"
#include "cuda/split-schedule.h"
#include "kernel-cases.h"
#include "latentkv-cuda.h"
#include "test-harness.h"

using namespace lkv;
using namespace lkv::test;

namespace {

struct Backend {
  lkv_backend* handle = nullptr;
  std::string error;
  Backend(const char* name, lkv_cpu_isa isa = LKV_CPU_ISA_AUTO, int32_t threads = 0) {
    lkv_backend_options o{isa, threads};
    lkv_error err{};
    if (lkv_backend_create(name, &o, &handle, &err) != LKV_OK) error = err.message;
  }
  ~Backend() { lkv_backend_free(handle); }
};

Backend& gpu() {
  static Backend b("cuda");
  return b;
}

bool have_gpu() {
  if (!gpu().handle) {
    record_failure(__FILE__, __LINE__, "cuda backend unavailable: " + gpu().error);
    return false;
  }
  return true;
}

// Scalar reference for small cases; the multi-threaded SIMD CPU kernels (themselves tested
// against it in latentkv_native_tests) for large ones, which the scalar code takes minutes on.
Backend& reference_for(double work) {
  static Backend scalar("cpu", LKV_CPU_ISA_SCALAR, 1);
  static Backend simd("cpu", LKV_CPU_ISA_AUTO, 0);
  return work > 4e8 ? simd : scalar;
}

double decode_tolerance(lkv_dtype d) { return d == LKV_DTYPE_F32 ? 1e-4 : 1e-2; }

// lkv_cuda_memset waits for the whole device, so asynchronous kernel errors surface here.
void sync_gpu() {
  DeviceBuffer tmp(4);
  tmp.fill(0);
}

}  // namespace

TEST(cuda_backend_creates_and_reports) {
  if (!have_gpu()) return;
  lkv_backend_info info{};
  CHECK(lkv_backend_get_info(gpu().handle, &info) == LKV_OK);
  CHECK(std::strcmp(info.name, "cuda") == 0);
  char name[256] = {0};
  int32_t major = 0, minor = 0, sms = 0;
  lkv_error err{};
  CHECK_MSG(lkv_cuda_device_info(name, sizeof name, &major, &minor, &sms, &err) == LKV_OK, err.message);
  std::printf("  device: %s, sm_%d%d, %d SMs\n", name, major, minor, sms);
  CHECK(major >= 8);
}

// Every shape: the GPU result against the CPU reference, twice (bitwise equal), and with lse = NULL.
static int check_decode_shapes(const std::vector<DecodeShape>& shapes) {
  uint32_t seed = 1;
  int cases = 0;
  for (const auto& shape : shapes) {
    const DecodeCase c = make_decode_case(shape, seed++);
    double lsum = 0;
    for (int32_t l : shape.seq_lens) lsum += l;
    const double work = lsum * shape.q_len * shape.heads * (shape.rank + shape.rope_dim);
    std::vector<float> want(c.out_size()), want_lse(c.lse_size());
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK_MSG(lkv_mla_decode(reference_for(work).handle, &p, &err) == LKV_OK, err.message);

    DeviceBuffer q(c.q_latent.data(), c.q_latent.size() * 4);
    DeviceBuffer qr(c.q_rope.data(), c.q_rope.size() * 4);
    DeviceBuffer cache(c.cache.data(), c.cache.size());
    DeviceBuffer table(c.block_table.data(), c.block_table.size() * 4);
    DeviceBuffer lens(shape.seq_lens.data(), shape.seq_lens.size() * 4);
    DeviceBuffer out(c.out_size() * 4), lse(c.lse_size() * 4);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      out.fill(0xff);
      lse.fill(0xff);
      auto d = c.params(out.as<float>(), lse.as<float>());
      d.q_latent = q.as<float>();
      d.q_rope = shape.rope_dim > 0 ? qr.as<float>() : nullptr;
      d.cache = cache.get();
      d.block_table = table.as<int32_t>();
      d.seq_lens = lens.as<int32_t>();
      CHECK_MSG(lkv_mla_decode(gpu().handle, &d, &err) == LKV_OK, err.message);
      const auto got = out.to_host<float>();
      const auto got_lse = lse.to_host<float>();
      const double e = relative_error(got.data(), want.data(), got.size());
      const double el = relative_error(got_lse.data(), want_lse.data(), got_lse.size());
      const std::string what = "run " + std::to_string(run) + " " + shape.describe();
      CHECK_MSG(e < decode_tolerance(shape.dtype), "out rel err " + std::to_string(e) + " " + what);
      CHECK_MSG(el < decode_tolerance(shape.dtype), "lse rel err " + std::to_string(el) + " " + what);
      if (run == 0) first = got;
      else CHECK_MSG(std::memcmp(first.data(), got.data(), got.size() * 4) == 0, "nondeterministic: " + what);
    }
    // lse = NULL is allowed.
    out.fill(0xff);
    auto d = c.params(out.as<float>(), nullptr);
    d.q_latent = q.as<float>();
    d.q_rope = shape.rope_dim > 0 ? qr.as<float>() : nullptr;
    d.cache = cache.get();
    d.block_table = table.as<int32_t>();
    d.seq_lens = lens.as<int32_t>();
    CHECK_MSG(lkv_mla_decode(gpu().handle, &d, &err) == LKV_OK, err.message);
    const auto got = out.to_host<float>();
    CHECK_MSG(relative_error(got.data(), want.data(), got.size()) < decode_tolerance(shape.dtype),
              "no-lse " + shape.describe());
    ++cases;
  }
  return cases;
}

TEST(cuda_mla_decode_matches_reference) {
  if (!have_gpu()) return;
  std::printf("  %d decode cases\n", check_decode_shapes(cuda_decode_grid()));
}

// Small shapes for compute-sanitizer (memcheck, racecheck): both split kernels, every
// tensor-core variant (bf16/fp8, 16/32-row tiles, contiguous and per-row fp8 loads), splits,
// chunk tails, Sq = 2, an empty sequence.
TEST(cuda_sanitizer_grid) {
  if (!have_gpu()) return;
  const std::vector<DecodeShape> shapes = {
      {2, 1, 16, 512, 64, 1, 64, LKV_DTYPE_BF16, {300, 0}},
      {1, 2, 24, 512, 64, 1, 16, LKV_DTYPE_BF16, {200}},
      {2, 1, 16, 512, 64, 1, 64, LKV_DTYPE_FP8_E4M3, {150, 70}},
      {1, 2, 32, 512, 64, 1, 8, LKV_DTYPE_FP8_E4M3, {190}},
      {2, 2, 8, 24, 4, 4, 1, LKV_DTYPE_F32, {9, 17}},
  };
  std::printf("  %d decode cases\n", check_decode_shapes(shapes));
}

TEST(cuda_mla_decode_stages_host_pointers) {
  if (!have_gpu()) return;
  // The same call with ordinary host memory: the backend copies in and out.
  for (lkv_dtype dt : {LKV_DTYPE_BF16, LKV_DTYPE_FP8_E4M3}) {
    const DecodeCase c = make_decode_case({3, 2, 9, 64, 16, 1, 16, dt, {70, 0, 33}}, 99);
    std::vector<float> want(c.out_size()), want_lse(c.lse_size());
    std::vector<float> got(c.out_size(), NAN), got_lse(c.lse_size(), NAN);
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK(lkv_mla_decode(reference_for(0).handle, &p, &err) == LKV_OK);
    auto q = c.params(got.data(), got_lse.data());
    CHECK_MSG(lkv_mla_decode(gpu().handle, &q, &err) == LKV_OK, err.message);
    CHECK(relative_error(got.data(), want.data(), got.size()) < 1e-2);
    CHECK(relative_error(got_lse.data(), want_lse.data(), got_lse.size()) < 1e-2);
  }
}

TEST(cuda_mla_project_append_matches_reference) {
  if (!have_gpu()) return;
  uint32_t seed = 100;
  for (const auto& shape : cuda_append_grid()) {
    const AppendCase c = make_append_case(shape, seed++);
    std::vector<uint8_t> want(c.cache_bytes(), 0xff);
    lkv_error err{};
    auto p = c.params(want.data());
    CHECK_MSG(lkv_mla_project_append(reference_for(0).handle, &p, &err) == LKV_OK, err.message);

    DeviceBuffer hidden(c.hidden.data(), c.hidden.size() * 4);
    DeviceBuffer w(c.weights.data(), c.weights.size());
    DeviceBuffer norm(c.norm_weight.data(), c.norm_weight.size() * 4);
    DeviceBuffer pos(c.positions.data(), c.positions.size() * 4);
    DeviceBuffer slots(c.slots.data(), c.slots.size() * 8);
    DeviceBuffer cache(c.cache_bytes());
    cache.fill(0xff);
    auto d = c.params(cache.get());
    d.hidden = hidden.as<float>();
    d.w_kv_a = w.get();
    if (d.norm_weight) d.norm_weight = norm.as<float>();
    d.positions = pos.as<int32_t>();
    d.slot_mapping = slots.as<int64_t>();
    CHECK_MSG(lkv_mla_project_append(gpu().handle, &d, &err) == LKV_OK, err.message);
    const auto got = cache.to_host<uint8_t>();

    const int32_t rope_width = shape.rope_dim * shape.rope_heads;
    std::vector<float> wl(shape.rank), wr(rope_width), gl(shape.rank), gr(rope_width);
    const double tol = shape.cache_dtype == LKV_DTYPE_F32 ? 1e-5
                       : shape.cache_dtype == LKV_DTYPE_INT8 ? 1.5 / 127
                       : shape.cache_dtype == LKV_DTYPE_FP8_E4M3 ? 0.07 : 1e-2;
    for (int32_t t = 0; t < shape.tokens; ++t) {
      if (c.slots[t] < 0) continue;
      const size_t off = static_cast<size_t>(c.slots[t]) * c.layout.row_bytes;
      read_row(want.data() + off, c.layout, shape.cache_dtype, shape.rank, rope_width, wl.data(), wr.data());
      read_row(got.data() + off, c.layout, shape.cache_dtype, shape.rank, rope_width, gl.data(), gr.data());
      const std::string what = "token " + std::to_string(t) + " " + shape.describe();
      CHECK_MSG(relative_error(gl.data(), wl.data(), wl.size()) < tol, "latent " + what);
      CHECK_MSG(relative_error(gr.data(), wr.data(), wr.size()) < (rope_width ? 1e-2 : 1.0), "rope " + what);
      // Quantized rows: the padding between the codes and the scale is zero, as on the CPU.
      if (is_quantized(shape.cache_dtype)) {
        for (size_t i = static_cast<size_t>(shape.rank); i < c.layout.scale_offset; ++i) {
          CHECK_MSG(got[off + i] == 0, "padding " + what);
        }
      }
    }
    std::vector<bool> written(c.cache_bytes() / c.layout.row_bytes, false);
    for (auto s : c.slots) if (s >= 0) written[static_cast<size_t>(s)] = true;
    for (size_t r = 0; r < written.size(); ++r) {
      if (written[r]) continue;
      for (size_t i = 0; i < c.layout.row_bytes; ++i) {
        if (got[r * c.layout.row_bytes + i] != 0xff) {
          record_failure(__FILE__, __LINE__, "unwritten row changed " + shape.describe());
          break;
        }
      }
    }
  }
}

TEST(cuda_gqa_decode_matches_reference) {
  if (!have_gpu()) return;
  uint32_t seed = 500;
  for (const auto& shape : cuda_gqa_grid()) {
    const GqaCase c = make_gqa_case(shape, seed++);
    std::vector<float> want(c.out_size()), want_lse(c.lse_size());
    lkv_error err{};
    auto p = c.params(want.data(), want_lse.data());
    CHECK_MSG(lkv_gqa_decode(reference_for(0).handle, &p, &err) == LKV_OK, err.message);
    DeviceBuffer q(c.q.data(), c.q.size() * 4);
    DeviceBuffer cache(c.cache.data(), c.cache.size());
    DeviceBuffer table(c.block_table.data(), c.block_table.size() * 4);
    DeviceBuffer lens(shape.seq_lens.data(), shape.seq_lens.size() * 4);
    DeviceBuffer out(c.out_size() * 4), lse(c.lse_size() * 4);
    std::vector<float> first;
    for (int run = 0; run < 2; ++run) {
      out.fill(0xff);
      lse.fill(0xff);
      auto d = c.params(out.as<float>(), lse.as<float>());
      d.q = q.as<float>();
      d.cache = cache.get();
      d.block_table = table.as<int32_t>();
      d.seq_lens = lens.as<int32_t>();
      CHECK_MSG(lkv_gqa_decode(gpu().handle, &d, &err) == LKV_OK, err.message);
      const auto got = out.to_host<float>();
      const auto got_lse = lse.to_host<float>();
      const std::string what = "run " + std::to_string(run) + " " + shape.describe();
      const double tol = decode_tolerance(shape.dtype);
      CHECK_MSG(relative_error(got.data(), want.data(), got.size()) < tol, "gqa out " + what);
      CHECK_MSG(relative_error(got_lse.data(), want_lse.data(), got_lse.size()) < tol, "gqa lse " + what);
      if (run == 0) first = got;
      else CHECK_MSG(std::memcmp(first.data(), got.data(), got.size() * 4) == 0, "nondeterministic: " + what);
    }
  }
}

TEST(cuda_gqa_append_bit_exact) {
  if (!have_gpu()) return;
  std::mt19937 rng(77);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float specials[] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-40f, -3e-39f, 65519.0f, 65520.0f,
                            -1e9f, 6.0e-8f, 3.0e-8f, 1.00390625f, 1.01171875f, 3.4e38f};
  for (lkv_dtype d : {LKV_DTYPE_F32, LKV_DTYPE_F16, LKV_DTYPE_BF16}) {
    for (int32_t kvh : {1, 3, 8}) {
      for (int32_t D : {5, 16, 24, 128}) {
        const int32_t T = 9, bs = 4, nb = 5;
        const int64_t width = static_cast<int64_t>(kvh) * D;
        std::vector<float> k(T * width), v(T * width);
        for (size_t i = 0; i < k.size(); ++i) {
          k[i] = i % 7 == 3 ? specials[i % 16] : normal(rng) * (i % 5 == 0 ? 1e4f : 1.0f);
          v[i] = i % 11 == 2 ? specials[(i / 3) % 16] : normal(rng);
        }
        std::vector<int64_t> slots = {3, 0, -1, 19, 7, 12, -5, 8, 15};
        lkv_gqa_append_params p{};
        p.num_tokens = T;
        p.num_kv_heads = kvh;
        p.head_dim = D;
        p.block_size = bs;
        p.num_blocks = nb;
        p.cache_dtype = d;
        p.k = k.data();
        p.v = v.data();
        p.slot_mapping = slots.data();
        const size_t bytes = static_cast<size_t>(nb) * bs * 2 * width * lkv_dtype_size(d);
        std::vector<uint8_t> want(bytes, 0xa5);
        p.cache = want.data();
        lkv_error err{};
        CHECK_MSG(lkv_gqa_append(reference_for(0).handle, &p, &err) == LKV_OK, err.message);
        DeviceBuffer dk(k.data(), k.size() * 4), dv(v.data(), v.size() * 4), ds(slots.data(), slots.size() * 8);
        DeviceBuffer cache(bytes);
        cache.fill(0xa5);
        lkv_gqa_append_params q = p;
        q.k = dk.as<float>();
        q.v = dv.as<float>();
        q.slot_mapping = ds.as<int64_t>();
        q.cache = cache.get();
        CHECK_MSG(lkv_gqa_append(gpu().handle, &q, &err) == LKV_OK, err.message);
        CHECK_MSG(cache.to_host<uint8_t>() == want, std::string("gqa_append differs: ") + lkv_dtype_name(d) +
                                                        " kvh=" + std::to_string(kvh) + " D=" + std::to_string(D));
      }
    }
  }
}

TEST(cuda_errors_are_statuses_not_crashes) {
  if (!have_gpu()) return;
  // A device block table with an out-of-range page: validation copies it back and refuses.
  DecodeCase c = make_decode_case({2, 1, 4, 32, 8, 1, 8, LKV_DTYPE_BF16, {20, 9}}, 5);
  c.block_table[1] = c.num_blocks + 7;  // sequence 0, page 1 (tokens 8..15 are in use)
  DeviceBuffer q(c.q_latent.data(), c.q_latent.size() * 4);
  DeviceBuffer qr(c.q_rope.data(), c.q_rope.size() * 4);
  DeviceBuffer cache(c.cache.data(), c.cache.size());
  DeviceBuffer table(c.block_table.data(), c.block_table.size() * 4);
  DeviceBuffer lens(c.shape.seq_lens.data(), c.shape.seq_lens.size() * 4);
  DeviceBuffer out(c.out_size() * 4);
  auto d = c.params(out.as<float>(), nullptr);
  d.q_latent = q.as<float>();
  d.q_rope = qr.as<float>();
  d.cache = cache.get();
  d.block_table = table.as<int32_t>();
  d.seq_lens = lens.as<int32_t>();
  lkv_error err{};
  CHECK(lkv_mla_decode(gpu().handle, &d, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK_MSG(std::strstr(err.message, "block_table[0][1]") != nullptr, err.message);
  // A duplicate device slot in an append.
  std::vector<int64_t> slots = {3, 3};
  DeviceBuffer ds(slots.data(), 16);
  std::vector<float> kv(2 * 4 * 8, 1.0f);
  DeviceBuffer dk(kv.data(), kv.size() * 4);
  DeviceBuffer gcache(static_cast<size_t>(4) * 4 * 2 * 32 * 2);
  lkv_gqa_append_params a{};
  a.num_tokens = 2;
  a.num_kv_heads = 4;
  a.head_dim = 8;
  a.block_size = 4;
  a.num_blocks = 4;
  a.cache_dtype = LKV_DTYPE_BF16;
  a.k = dk.as<float>();
  a.v = dk.as<float>();
  a.slot_mapping = ds.as<int64_t>();
  a.cache = gcache.get();
  CHECK(lkv_gqa_append(gpu().handle, &a, &err) == LKV_ERR_INVALID_ARGUMENT);
  CHECK_MSG(std::strstr(err.message, "both write slot 3") != nullptr, err.message);
  // mla_decode_layer is not on the GPU yet: a clear UNSUPPORTED, nothing read.
  lkv_mla_decode_layer_params layer{};
  CHECK(lkv_mla_decode_layer(gpu().handle, &layer, &err) == LKV_ERR_UNSUPPORTED);
  // A copy of the wrong kind is an error, not a crash.
  CHECK(lkv_cuda_memcpy(out.get(), kv.data(), 4, static_cast<lkv_cuda_copy_kind>(9), &err) ==
        LKV_ERR_INVALID_ARGUMENT);
  // The backend still works afterwards.
  c.block_table[1] = make_decode_case({2, 1, 4, 32, 8, 1, 8, LKV_DTYPE_BF16, {20, 9}}, 5).block_table[1];
  DeviceBuffer table2(c.block_table.data(), c.block_table.size() * 4);
  d.block_table = table2.as<int32_t>();
  CHECK_MSG(lkv_mla_decode(gpu().handle, &d, &err) == LKV_OK, err.message);
  sync_gpu();
}

// Runs on the CPU (no GPU needed): the split schedule the GPU computes covers every token of
// every sequence exactly once, in splits whose workspace slots are distinct and within the
// B + num_parts slots the launcher allocates.
TEST(cuda_split_schedule_covers_every_token) {
  std::mt19937 rng(2024);
  int checked = 0;
  for (int trial = 0; trial < 3000; ++trial) {
    const int B = 1 + static_cast<int>(rng() % 70);
    const int parts = 1 + static_cast<int>(rng() % 300);
    const int maxlen = std::vector<int>{1, 64, 200, 5000, 40000}[rng() % 5];
    std::vector<int32_t> lens(B), units(B);
    for (int b = 0; b < B; ++b) {
      lens[b] = rng() % 7 == 0 ? 0 : static_cast<int32_t>(rng() % (maxlen + 1));
      units[b] = (lens[b] + lkv::cuda::kUnitTokens - 1) / lkv::cuda::kUnitTokens;
    }
    std::vector<int32_t> meta(static_cast<size_t>(parts) * lkv::cuda::kMetaInts, 12345), prefix(B + 1, -7);
    lkv::cuda::compute_split_schedule(lens.data(), units.data(), B, parts, meta.data(), prefix.data());
    std::vector<int32_t> covered(B, 0), segments(B, 0);
    std::vector<std::vector<int>> slots(B);
    bool ok = true;
    for (int p = 0; p < parts && ok; ++p) {
      const int32_t* m = meta.data() + p * lkv::cuda::kMetaInts;
      if (m[0] < 0) continue;
      if (m[0] >= B || m[2] >= B || m[2] < m[0]) { ok = false; break; }
      for (int b = m[0]; b <= m[2]; ++b) {  // exactly the split kernel's walk
        const int t_begin = b == m[0] ? m[1] : 0;
        const int t_end = b == m[2] ? std::min(m[3], lens[b]) : lens[b];
        const int local = b == m[0] ? m[4] : 0;
        if (t_begin != covered[b] || t_end < t_begin) { ok = false; break; }
        covered[b] = t_end;
        ++segments[b];
        slots[b].push_back(prefix[b] + local);
      }
    }
    for (int b = 0; b < B && ok; ++b) {
      const int n = prefix[b + 1] - prefix[b];
      if (covered[b] != lens[b] || segments[b] != n || n < 1) ok = false;
      for (int i = 0; i < static_cast<int>(slots[b].size()) && ok; ++i) {
        if (slots[b][i] != prefix[b] + i) ok = false;
      }
    }
    if (prefix[B] > B + parts) ok = false;
    if (!ok) {
      std::string lens_s;
      for (int b = 0; b < B; ++b) lens_s += std::to_string(lens[b]) + " ";
      record_failure(__FILE__, __LINE__, "schedule wrong for parts=" + std::to_string(parts) + " lens=" + lens_s);
      return;
    }
    ++checked;
  }
  std::printf("  %d random schedules checked\n", checked);
}
