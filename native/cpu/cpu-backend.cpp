#include "cpu-backend.h"

#include <new>
#include <string>
#include <thread>

#include "../core/error.h"
#include "../core/version.h"
#include "cpu-features.h"
#include "cpu-kernels.h"
#include "gemm/gemm.h"
#include "layer/mla-decode-layer.h"
#include "prefill/mla-prefill.h"
#include "thread-pool.h"

namespace lkv::cpu {
namespace {

constexpr int32_t kMaxThreads = 1024;

struct CpuBackend {
  const KernelTable* kernels;
  ThreadPool pool;
  uint32_t supported_mask;
  CpuBackend(const KernelTable* k, int32_t threads, uint32_t mask)
      : kernels(k), pool(threads), supported_mask(mask) {}
};

std::string isa_list(uint32_t mask) {
  std::string s;
  for (int i = LKV_CPU_ISA_SCALAR; i <= LKV_CPU_ISA_NEON; ++i) {
    if (!(mask & (1u << i))) continue;
    if (!s.empty()) s += ", ";
    s += lkv_cpu_isa_name(static_cast<lkv_cpu_isa>(i));
  }
  return s;
}

lkv_status get_info(void* ctx, lkv_backend_info* out) {
  auto* b = static_cast<CpuBackend*>(ctx);
  out->name = "cpu";
  out->cpu_isa = b->kernels->isa;
  out->compiled_isa_mask = lkv_cpu_compiled_isa_mask();
  out->supported_isa_mask = b->supported_mask;
  out->num_threads = b->pool.size();
  out->api_version = LKV_API_VERSION;
  out->version = kVersionString;
  return LKV_OK;
}

lkv_status decode(void* ctx, const lkv_mla_decode_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  return b->kernels->mla_decode(*p, b->pool, err);
}

lkv_status project_append(void* ctx, const lkv_mla_project_append_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  return b->kernels->mla_project_append(*p, b->pool, err);
}

lkv_status gqa_decode(void* ctx, const lkv_gqa_decode_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  auto fn = b->kernels->gqa_decode ? b->kernels->gqa_decode : reference_kernels().gqa_decode;
  return fn(*p, b->pool, err);
}

lkv_status gqa_append(void* ctx, const lkv_gqa_append_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  auto fn = b->kernels->gqa_append ? b->kernels->gqa_append : reference_kernels().gqa_append;
  return fn(*p, b->pool, err);
}

lkv_status decode_layer(void* ctx, const lkv_mla_decode_layer_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  auto fn = b->kernels->mla_decode_layer ? b->kernels->mla_decode_layer : mla_decode_layer_fast;
  return fn(*p, *b->kernels, b->pool, err);
}

lkv_status gemm(void* ctx, const lkv_gemm_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  return gemm_cpu(*p, b->kernels->isa, b->pool, err);
}

lkv_status prefill(void* ctx, const lkv_mla_prefill_params* p, lkv_error* err) {
  auto* b = static_cast<CpuBackend*>(ctx);
  if (b->kernels->mla_prefill) return b->kernels->mla_prefill(*p, b->pool, err);
  return mla_prefill_fast(*p, *b->kernels, b->pool, err);
}

void destroy(void* ctx) { delete static_cast<CpuBackend*>(ctx); }

const lkv_backend_vtable kCpuVtable = {
    /* .api_version = */ LKV_API_VERSION,
    /* .name = */ "cpu",
    /* .get_info = */ get_info,
    /* .mla_decode = */ decode,
    /* .mla_project_append = */ project_append,
    /* .gqa_decode = */ gqa_decode,
    /* .gqa_append = */ gqa_append,
    /* .mla_decode_layer = */ decode_layer,
    /* .synchronize = */ nullptr,
    /* .destroy = */ destroy,
    /* .gemm = */ gemm,
    /* .mla_prefill = */ prefill,
};

}  // namespace

lkv_status create_cpu_backend(const lkv_backend_options& options, const lkv_backend_vtable** vtable,
                              void** ctx, lkv_error* err) {
  const uint32_t supported = detect_supported_isa_mask();
  const uint32_t compiled = lkv_cpu_compiled_isa_mask();
  lkv_cpu_isa cap = options.cpu_isa;
  if (cap != LKV_CPU_ISA_AUTO) {
    if (cap < LKV_CPU_ISA_SCALAR || cap > LKV_CPU_ISA_NEON) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT,
                  "cpu_isa must be auto, scalar, avx2, avx512, avx512bf16 or neon; got value %d",
                  static_cast<int>(cap));
    }
    if (!(supported & (1u << cap))) {
      return fail(err, LKV_ERR_BACKEND_UNAVAILABLE,
                  "CPU ISA %s was requested but this CPU/OS does not support it (supported: %s)",
                  lkv_cpu_isa_name(cap), isa_list(supported).c_str());
    }
  }
  const int top = cap == LKV_CPU_ISA_AUTO ? LKV_CPU_ISA_NEON : cap;
  const KernelTable* kernels = &reference_kernels();
  for (int isa = top; isa > LKV_CPU_ISA_SCALAR; --isa) {
    const uint32_t b = 1u << isa;
    if ((supported & b) && (compiled & b)) {
      kernels = simd_kernels(static_cast<lkv_cpu_isa>(isa));
      break;
    }
  }
  int32_t threads = options.num_threads;
  if (threads < 0 || threads > kMaxThreads) {
    return fail(err, LKV_ERR_INVALID_ARGUMENT, "num_threads must be in 0..%d (0 = one per core), got %d",
                kMaxThreads, threads);
  }
  if (threads == 0) {
    threads = static_cast<int32_t>(std::thread::hardware_concurrency());
    if (threads < 1) threads = 1;
  }
  auto* backend = new (std::nothrow) CpuBackend(kernels, threads, supported);
  if (!backend) return fail(err, LKV_ERR_OUT_OF_MEMORY, "could not allocate the CPU backend");
  *vtable = &kCpuVtable;
  *ctx = backend;
  return ok(err);
}

}  // namespace lkv::cpu

extern "C" {

uint32_t lkv_cpu_supported_isa_mask(void) { return lkv::cpu::detect_supported_isa_mask(); }

uint32_t lkv_cpu_compiled_isa_mask(void) {
  uint32_t mask = 1u << LKV_CPU_ISA_SCALAR;
  for (int isa = LKV_CPU_ISA_AVX2; isa <= LKV_CPU_ISA_NEON; ++isa) {
    if (lkv::cpu::simd_kernels(static_cast<lkv_cpu_isa>(isa))) mask |= 1u << isa;
  }
  return mask;
}

const char* lkv_cpu_isa_name(lkv_cpu_isa isa) {
  switch (isa) {
    case LKV_CPU_ISA_AUTO: return "auto";
    case LKV_CPU_ISA_SCALAR: return "scalar";
    case LKV_CPU_ISA_AVX2: return "avx2";
    case LKV_CPU_ISA_AVX512: return "avx512";
    case LKV_CPU_ISA_AVX512BF16: return "avx512bf16";
    case LKV_CPU_ISA_NEON: return "neon";
    default: break;  // not a valid value: handled below
  }
  return "unknown";
}

}  // extern "C"
