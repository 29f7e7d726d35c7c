// The CUDA backend's host side: device choice, the stream, workspace, validation of the index
// arrays (copied to the host when they live on the device), staging of host pointers, and the
// mapping of every CUDA error to an lkv_status with a message.
#include "cuda-backend.h"

#include <cuda_runtime.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <vector>

#include "../core/cache-layout.h"
#include "../core/error.h"
#include "../core/rope.h"
#include "../core/validate.h"
#include "../core/version.h"
#include "cuda-kernels.h"
#include "latentkv-cuda.h"

namespace lkv::cuda {
namespace {

bool is_sticky(cudaError_t e) {
  switch (e) {
    case cudaErrorIllegalAddress:
    case cudaErrorLaunchFailure:
    case cudaErrorIllegalInstruction:
    case cudaErrorMisalignedAddress:
    case cudaErrorInvalidAddressSpace:
    case cudaErrorInvalidPc:
    case cudaErrorHardwareStackError:
    case cudaErrorAssert:
    case cudaErrorLaunchTimeout:
      return true;
    default:
      return false;
  }
}

lkv_status status_of(cudaError_t e) {
  switch (e) {
    case cudaErrorMemoryAllocation: return LKV_ERR_OUT_OF_MEMORY;
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInitializationError:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInvalidDevice:
      return LKV_ERR_BACKEND_UNAVAILABLE;
    default:
      return LKV_ERR_INTERNAL;
  }
}

lkv_status cuda_fail(lkv_error* err, cudaError_t e, const char* what) {
  return fail(err, status_of(e), "CUDA %s failed: %s (%s)%s", what, cudaGetErrorName(e),
              cudaGetErrorString(e),
              is_sticky(e) ? "; the CUDA context is unusable from now on: restart the process" : "");
}

#define LKV_CUDA_TRY(expr, what)                       \
  do {                                                 \
    const cudaError_t lkv_e_ = (expr);                 \
    if (lkv_e_ != cudaSuccess) return cuda_fail(err, lkv_e_, what); \
  } while (0)

struct Context {
  int device = 0;
  char name[256] = {0};
  int cc_major = 0, cc_minor = 0;
  DeviceLimits limits;
  cudaStream_t stream = nullptr;
  std::mutex mu;
  float* wf = nullptr;
  size_t wf_cap = 0;
  int32_t* wi = nullptr;
  size_t wi_cap = 0;
  float* inv_freq = nullptr;
  size_t inv_cap = 0;
};

// Grows a device buffer (waiting for the stream before freeing the old one).
template <typename T>
lkv_status ensure(Context& c, T** buf, size_t* cap, size_t count, lkv_error* err) {
  if (count <= *cap && *buf) return LKV_OK;
  if (*buf) {
    LKV_CUDA_TRY(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize (workspace growth)");
    cudaFree(*buf);
    *buf = nullptr;
    *cap = 0;
  }
  void* p = nullptr;
  LKV_CUDA_TRY(cudaMalloc(&p, (count ? count : 1) * sizeof(T)), "cudaMalloc (workspace)");
  *buf = static_cast<T*>(p);
  *cap = count;
  return LKV_OK;
}

// Where a pointer lives: device-accessible (returned as is, or its mapped device alias), or
// ordinary host memory that must be staged.
bool device_accessible(const void* p, const void** dev) {
  cudaPointerAttributes attr{};
  const cudaError_t e = cudaPointerGetAttributes(&attr, p);
  if (e != cudaSuccess) {
    cudaGetLastError();  // clear: older runtimes report unregistered host memory as an error
    return false;
  }
  switch (attr.type) {
    case cudaMemoryTypeDevice:
    case cudaMemoryTypeManaged:
      *dev = p;
      return true;
    case cudaMemoryTypeHost:
      if (attr.devicePointer) {
        *dev = attr.devicePointer;
        return true;
      }
      return false;
    default:
      return false;
  }
}

// Copies host-resident params buffers to scratch device memory and back (outputs) at the end.
class Stager {
 public:
  explicit Stager(Context& c) : c_(c) {}
  Stager(const Stager&) = delete;
  Stager& operator=(const Stager&) = delete;
  ~Stager() {
    for (auto& e : entries_) cudaFree(e.dev);
  }

  template <typename T>
  lkv_status stage(T*& ptr, size_t bytes, bool output, lkv_error* err) {
    if (!ptr || bytes == 0) return LKV_OK;
    const void* dev = nullptr;
    if (device_accessible(ptr, &dev)) {
      ptr = static_cast<T*>(const_cast<void*>(dev));
      return LKV_OK;
    }
    void* d = nullptr;
    LKV_CUDA_TRY(cudaMalloc(&d, bytes), "cudaMalloc (staging a host buffer)");
    entries_.push_back({d, const_cast<void*>(static_cast<const void*>(ptr)), bytes, output});
    LKV_CUDA_TRY(cudaMemcpyAsync(d, ptr, bytes, cudaMemcpyHostToDevice, c_.stream), "cudaMemcpyAsync (host to device)");
    ptr = static_cast<T*>(d);
    return LKV_OK;
  }

  // After the kernels: with any host buffer, waits and copies the outputs back.
  lkv_status finish(lkv_error* err) {
    if (entries_.empty()) return LKV_OK;
    for (auto& e : entries_) {
      if (!e.output) continue;
      LKV_CUDA_TRY(cudaMemcpyAsync(e.host, e.dev, e.bytes, cudaMemcpyDeviceToHost, c_.stream),
                   "cudaMemcpyAsync (device to host)");
    }
    LKV_CUDA_TRY(cudaStreamSynchronize(c_.stream), "kernel execution (cudaStreamSynchronize)");
    return LKV_OK;
  }

 private:
  struct Entry {
    void* dev;
    void* host;
    size_t bytes;
    bool output;
  };
  Context& c_;
  std::vector<Entry> entries_;
};

// A host copy of an index array for validation; points at the original when already on the host.
template <typename T>
lkv_status host_view(Context& c, const T* p, size_t count, std::vector<T>& storage, const T** out,
                     lkv_error* err) {
  *out = p;
  const void* dev = nullptr;
  if (!p || count == 0 || !device_accessible(p, &dev)) return LKV_OK;
  storage.resize(count);
  LKV_CUDA_TRY(cudaMemcpyAsync(storage.data(), p, count * sizeof(T), cudaMemcpyDeviceToHost, c.stream),
               "cudaMemcpyAsync (index array for validation)");
  LKV_CUDA_TRY(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize (index array for validation)");
  *out = storage.data();
  return LKV_OK;
}

lkv_status begin_call(Context& c, lkv_error* err) {
  LKV_CUDA_TRY(cudaSetDevice(c.device), "cudaSetDevice");
  const cudaError_t pending = cudaGetLastError();
  if (pending != cudaSuccess) return cuda_fail(err, pending, "earlier queued work");
  return LKV_OK;
}

size_t mla_cache_bytes(lkv_dtype d, int32_t R, int32_t P, int32_t rope_heads, int32_t num_blocks,
                       int32_t block_size) {
  const lkv_cache_layout l = cache_layout(d, R, P * rope_heads);
  return static_cast<size_t>(num_blocks) * block_size * l.row_bytes;
}

size_t gqa_cache_bytes(lkv_dtype d, int32_t kv_heads, int32_t D, int32_t num_blocks, int32_t block_size) {
  return static_cast<size_t>(num_blocks) * block_size * 2 * kv_heads * D * lkv_dtype_size(d);
}

// ---- vtable entries --------------------------------------------------------------------------

lkv_status get_info(void* ctx, lkv_backend_info* out) {
  auto* c = static_cast<Context*>(ctx);
  (void)c;
  out->name = "cuda";
  out->cpu_isa = LKV_CPU_ISA_SCALAR;
  out->compiled_isa_mask = 1u << LKV_CPU_ISA_SCALAR;
  out->supported_isa_mask = 1u << LKV_CPU_ISA_SCALAR;
  out->num_threads = 1;
  out->api_version = LKV_API_VERSION;
  out->version = kVersionString;
  return LKV_OK;
}

lkv_status mla_decode(void* ctx, const lkv_mla_decode_params* pp, lkv_error* err) {
  auto& c = *static_cast<Context*>(ctx);
  std::lock_guard<std::mutex> lock(c.mu);
  lkv_status s = begin_call(c, err);
  if (s != LKV_OK) return s;
  lkv_mla_decode_params p = *pp;
  if (p.batch < 1 || p.max_blocks_per_seq < 1) return validate(p, err);  // scalar errors first
  {
    std::vector<int32_t> lens, table;
    lkv_mla_decode_params h = p;
    s = host_view(c, p.seq_lens, static_cast<size_t>(p.batch), lens, &h.seq_lens, err);
    if (s == LKV_OK)
      s = host_view(c, p.block_table, static_cast<size_t>(p.batch) * p.max_blocks_per_seq, table, &h.block_table, err);
    if (s == LKV_OK) s = validate(h, err);
    if (s != LKV_OK) return s;
  }
  const size_t q = static_cast<size_t>(p.batch) * p.q_len * p.num_heads;
  Stager st(c);
  if ((s = st.stage(p.q_latent, q * p.kv_lora_rank * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.q_rope, q * p.rope_dim * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.cache, mla_cache_bytes(p.cache_dtype, p.kv_lora_rank, p.rope_dim, p.rope_heads,
                                             p.num_blocks, p.block_size), false, err)) != LKV_OK)
    return s;
  if ((s = st.stage(p.block_table, static_cast<size_t>(p.batch) * p.max_blocks_per_seq * 4, false, err)) != LKV_OK)
    return s;
  if ((s = st.stage(p.seq_lens, static_cast<size_t>(p.batch) * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.out, q * p.kv_lora_rank * 4, true, err)) != LKV_OK) return s;
  if ((s = st.stage(p.lse, q * 4, true, err)) != LKV_OK) return s;

  AttentionPlan plan;
  const char* why = "";
  cudaError_t e = plan_mla_decode(p, c.limits, &plan, &why);
  if (e == cudaErrorInvalidValue) return fail(err, LKV_ERR_UNSUPPORTED, "cuda mla_decode: %s", why);
  if (e != cudaSuccess) return cuda_fail(err, e, why);
  if ((s = ensure(c, &c.wf, &c.wf_cap, plan.part_floats, err)) != LKV_OK) return s;
  if ((s = ensure(c, &c.wi, &c.wi_cap, plan.sched_ints, err)) != LKV_OK) return s;
  LKV_CUDA_TRY(launch_mla_decode(p, plan, c.wf, c.wi, c.stream), "mla_decode launch");
  return st.finish(err);
}

lkv_status gqa_decode(void* ctx, const lkv_gqa_decode_params* pp, lkv_error* err) {
  auto& c = *static_cast<Context*>(ctx);
  std::lock_guard<std::mutex> lock(c.mu);
  lkv_status s = begin_call(c, err);
  if (s != LKV_OK) return s;
  lkv_gqa_decode_params p = *pp;
  if (p.batch < 1 || p.max_blocks_per_seq < 1) return validate(p, err);
  {
    std::vector<int32_t> lens, table;
    lkv_gqa_decode_params h = p;
    s = host_view(c, p.seq_lens, static_cast<size_t>(p.batch), lens, &h.seq_lens, err);
    if (s == LKV_OK)
      s = host_view(c, p.block_table, static_cast<size_t>(p.batch) * p.max_blocks_per_seq, table, &h.block_table, err);
    if (s == LKV_OK) s = validate(h, err);
    if (s != LKV_OK) return s;
  }
  const size_t q = static_cast<size_t>(p.batch) * p.q_len * p.num_heads;
  Stager st(c);
  if ((s = st.stage(p.q, q * p.head_dim * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.cache, gqa_cache_bytes(p.cache_dtype, p.num_kv_heads, p.head_dim, p.num_blocks, p.block_size),
                    false, err)) != LKV_OK)
    return s;
  if ((s = st.stage(p.block_table, static_cast<size_t>(p.batch) * p.max_blocks_per_seq * 4, false, err)) != LKV_OK)
    return s;
  if ((s = st.stage(p.seq_lens, static_cast<size_t>(p.batch) * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.out, q * p.head_dim * 4, true, err)) != LKV_OK) return s;
  if ((s = st.stage(p.lse, q * 4, true, err)) != LKV_OK) return s;

  AttentionPlan plan;
  const char* why = "";
  cudaError_t e = plan_gqa_decode(p, c.limits, &plan, &why);
  if (e == cudaErrorInvalidValue) return fail(err, LKV_ERR_UNSUPPORTED, "cuda gqa_decode: %s", why);
  if (e != cudaSuccess) return cuda_fail(err, e, why);
  if ((s = ensure(c, &c.wf, &c.wf_cap, plan.part_floats, err)) != LKV_OK) return s;
  if ((s = ensure(c, &c.wi, &c.wi_cap, plan.sched_ints, err)) != LKV_OK) return s;
  LKV_CUDA_TRY(launch_gqa_decode(p, plan, c.wf, c.wi, c.stream), "gqa_decode launch");
  return st.finish(err);
}

lkv_status mla_project_append(void* ctx, const lkv_mla_project_append_params* pp, lkv_error* err) {
  auto& c = *static_cast<Context*>(ctx);
  std::lock_guard<std::mutex> lock(c.mu);
  lkv_status s = begin_call(c, err);
  if (s != LKV_OK) return s;
  lkv_mla_project_append_params p = *pp;
  if (p.num_tokens < 0) return validate(p, err);
  {
    std::vector<int32_t> pos;
    std::vector<int64_t> slots;
    lkv_mla_project_append_params h = p;
    s = host_view(c, p.positions, static_cast<size_t>(p.num_tokens), pos, &h.positions, err);
    if (s == LKV_OK) s = host_view(c, p.slot_mapping, static_cast<size_t>(p.num_tokens), slots, &h.slot_mapping, err);
    if (s == LKV_OK) s = validate(h, err);
    if (s != LKV_OK) return s;
  }
  if (p.num_tokens == 0) return ok(err);
  const size_t T = static_cast<size_t>(p.num_tokens);
  const size_t rows = static_cast<size_t>(p.kv_lora_rank) + static_cast<size_t>(p.rope_dim) * p.rope_heads;
  Stager st(c);
  if ((s = st.stage(p.hidden, T * p.hidden_size * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.w_kv_a, rows * p.hidden_size * lkv_dtype_size(p.weight_dtype), false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.norm_weight, static_cast<size_t>(p.kv_lora_rank) * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.positions, T * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.slot_mapping, T * 8, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.cache, mla_cache_bytes(p.cache_dtype, p.kv_lora_rank, p.rope_dim, p.rope_heads, p.num_blocks,
                                             p.block_size), true, err)) != LKV_OK)
    return s;
  const size_t half = static_cast<size_t>(p.rope_dim / 2);
  std::vector<float> inv(half ? half : 1);
  rope_inv_freq(p.rope, p.rope_dim, inv.data());
  if ((s = ensure(c, &c.inv_freq, &c.inv_cap, inv.size(), err)) != LKV_OK) return s;
  // inv lives on this stack frame: copy synchronously with respect to the host buffer.
  LKV_CUDA_TRY(cudaMemcpyAsync(c.inv_freq, inv.data(), inv.size() * 4, cudaMemcpyHostToDevice, c.stream),
               "cudaMemcpyAsync (rope frequencies)");
  LKV_CUDA_TRY(cudaStreamSynchronize(c.stream), "cudaStreamSynchronize (rope frequencies)");
  if ((s = ensure(c, &c.wf, &c.wf_cap, project_append_workspace_floats(p), err)) != LKV_OK) return s;
  LKV_CUDA_TRY(launch_mla_project_append(p, c.inv_freq, c.wf, c.stream), "mla_project_append launch");
  return st.finish(err);
}

lkv_status gqa_append(void* ctx, const lkv_gqa_append_params* pp, lkv_error* err) {
  auto& c = *static_cast<Context*>(ctx);
  std::lock_guard<std::mutex> lock(c.mu);
  lkv_status s = begin_call(c, err);
  if (s != LKV_OK) return s;
  lkv_gqa_append_params p = *pp;
  if (p.num_tokens < 0) return validate(p, err);
  {
    std::vector<int64_t> slots;
    lkv_gqa_append_params h = p;
    s = host_view(c, p.slot_mapping, static_cast<size_t>(p.num_tokens), slots, &h.slot_mapping, err);
    if (s == LKV_OK) s = validate(h, err);
    if (s != LKV_OK) return s;
  }
  if (p.num_tokens == 0) return ok(err);
  const size_t T = static_cast<size_t>(p.num_tokens);
  const size_t width = static_cast<size_t>(p.num_kv_heads) * p.head_dim;
  Stager st(c);
  if ((s = st.stage(p.k, T * width * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.v, T * width * 4, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.slot_mapping, T * 8, false, err)) != LKV_OK) return s;
  if ((s = st.stage(p.cache, gqa_cache_bytes(p.cache_dtype, p.num_kv_heads, p.head_dim, p.num_blocks, p.block_size),
                    true, err)) != LKV_OK)
    return s;
  LKV_CUDA_TRY(launch_gqa_append(p, c.stream), "gqa_append launch");
  return st.finish(err);
}

lkv_status synchronize(void* ctx, lkv_error* err) {
  auto& c = *static_cast<Context*>(ctx);
  std::lock_guard<std::mutex> lock(c.mu);
  LKV_CUDA_TRY(cudaSetDevice(c.device), "cudaSetDevice");
  LKV_CUDA_TRY(cudaStreamSynchronize(c.stream), "kernel execution (cudaStreamSynchronize)");
  LKV_CUDA_TRY(cudaGetLastError(), "kernel execution");
  return ok(err);
}

void destroy(void* ctx) {
  auto* c = static_cast<Context*>(ctx);
  if (!c) return;
  cudaSetDevice(c->device);
  if (c->stream) cudaStreamSynchronize(c->stream);
  cudaFree(c->wf);
  cudaFree(c->wi);
  cudaFree(c->inv_freq);
  if (c->stream) cudaStreamDestroy(c->stream);
  delete c;
}

const lkv_backend_vtable kVtable = {
    LKV_API_VERSION, "cuda", get_info, mla_decode, mla_project_append, gqa_decode, gqa_append,
    nullptr /* mla_decode_layer: not on the GPU yet */, synchronize, destroy,
    nullptr /* gemm: host memory only */, nullptr /* mla_prefill: not on the GPU yet */,
};

lkv_status open_device(Context& c, lkv_error* err) {
  int count = 0;
  LKV_CUDA_TRY(cudaGetDeviceCount(&count), "cudaGetDeviceCount (is an NVIDIA driver installed?)");
  if (count < 1) return fail(err, LKV_ERR_BACKEND_UNAVAILABLE, "no CUDA device is visible");
  if (const char* env = std::getenv("LATENTKV_CUDA_DEVICE")) {
    char* end = nullptr;
    const long d = std::strtol(env, &end, 10);
    if (!*env || *end || d < 0 || d >= count) {
      return fail(err, LKV_ERR_INVALID_ARGUMENT, "LATENTKV_CUDA_DEVICE=%s is not a device index in 0..%d", env,
                  count - 1);
    }
    c.device = static_cast<int>(d);
  }
  LKV_CUDA_TRY(cudaSetDevice(c.device), "cudaSetDevice");
  cudaDeviceProp prop{};
  LKV_CUDA_TRY(cudaGetDeviceProperties(&prop, c.device), "cudaGetDeviceProperties");
  std::snprintf(c.name, sizeof c.name, "%s", prop.name);
  c.cc_major = prop.major;
  c.cc_minor = prop.minor;
  if (prop.major < 8) {
    return fail(err, LKV_ERR_BACKEND_UNAVAILABLE,
                "CUDA device %d (%s) has compute capability %d.%d; latentkv's CUDA kernels need 8.0 or newer",
                c.device, prop.name, prop.major, prop.minor);
  }
  c.limits.multiprocessors = prop.multiProcessorCount;
  int optin = 0;
  LKV_CUDA_TRY(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, c.device),
               "cudaDeviceGetAttribute(MaxSharedMemoryPerBlockOptin)");
  c.limits.smem_optin = optin;
  LKV_CUDA_TRY(probe_kernel_image(), "loading the kernels (no machine code or PTX for this GPU?)");
  LKV_CUDA_TRY(cudaStreamCreateWithFlags(&c.stream, cudaStreamNonBlocking), "cudaStreamCreate");
  return LKV_OK;
}

}  // namespace

lkv_status create_cuda_backend(const lkv_backend_options& options, const lkv_backend_vtable** vtable, void** ctx,
                               lkv_error* err) {
  (void)options;  // cpu_isa and num_threads do not apply to the GPU
  auto* c = new (std::nothrow) Context();
  if (!c) return fail(err, LKV_ERR_OUT_OF_MEMORY, "could not allocate the CUDA backend context");
  const lkv_status s = open_device(*c, err);
  if (s != LKV_OK) {
    destroy(c);
    return s;
  }
  *vtable = &kVtable;
  *ctx = c;
  return ok(err);
}

}  // namespace lkv::cuda

// ---- device memory helpers (latentkv-cuda.h) -----------------------------------------------------

namespace {
using lkv::cuda::cuda_fail;
}  // namespace



extern "C" {

lkv_status lkv_cuda_device_count(int32_t* count, lkv_error* err) {
  if (!count) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "count must not be NULL");
  *count = 0;
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    return cuda_fail(err, e, "cudaGetDeviceCount");
  }
  *count = n;
  if (n == 0) return lkv::fail(err, LKV_ERR_BACKEND_UNAVAILABLE, "no CUDA device is visible");
  return lkv::ok(err);
}

lkv_status lkv_cuda_device_info(char* name, size_t name_capacity, int32_t* cc_major, int32_t* cc_minor,
                                int32_t* multiprocessors, lkv_error* err) {
  int dev = 0;
  LKV_CUDA_TRY(cudaGetDevice(&dev), "cudaGetDevice");
  cudaDeviceProp prop{};
  LKV_CUDA_TRY(cudaGetDeviceProperties(&prop, dev), "cudaGetDeviceProperties");
  if (name && name_capacity) std::snprintf(name, name_capacity, "%s", prop.name);
  if (cc_major) *cc_major = prop.major;
  if (cc_minor) *cc_minor = prop.minor;
  if (multiprocessors) *multiprocessors = prop.multiProcessorCount;
  return lkv::ok(err);
}

lkv_status lkv_cuda_malloc(void** out, size_t bytes, lkv_error* err) {
  if (!out) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "out must not be NULL");
  *out = nullptr;
  LKV_CUDA_TRY(cudaMalloc(out, bytes ? bytes : 1), "cudaMalloc");
  return lkv::ok(err);
}

lkv_status lkv_cuda_free(void* ptr, lkv_error* err) {
  if (!ptr) return lkv::ok(err);
  LKV_CUDA_TRY(cudaFree(ptr), "cudaFree");
  return lkv::ok(err);
}

lkv_status lkv_cuda_memcpy(void* dst, const void* src, size_t bytes, lkv_cuda_copy_kind kind, lkv_error* err) {
  if (bytes == 0) return lkv::ok(err);
  if (!dst || !src) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "dst and src must not be NULL");
  cudaMemcpyKind k;
  switch (kind) {
    case LKV_CUDA_HOST_TO_DEVICE: k = cudaMemcpyHostToDevice; break;
    case LKV_CUDA_DEVICE_TO_HOST: k = cudaMemcpyDeviceToHost; break;
    case LKV_CUDA_DEVICE_TO_DEVICE: k = cudaMemcpyDeviceToDevice; break;
    default:
      return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "kind must be 1 (host to device), 2 or 3, got %d",
                       static_cast<int>(kind));
  }
  LKV_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize (before a copy)");
  LKV_CUDA_TRY(cudaMemcpy(dst, src, bytes, k), "cudaMemcpy");
  return lkv::ok(err);
}

lkv_status lkv_cuda_memset(void* dst, int value, size_t bytes, lkv_error* err) {
  if (bytes == 0) return lkv::ok(err);
  if (!dst) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "dst must not be NULL");
  LKV_CUDA_TRY(cudaMemset(dst, value, bytes), "cudaMemset");
  LKV_CUDA_TRY(cudaDeviceSynchronize(), "cudaDeviceSynchronize (after a fill)");
  return lkv::ok(err);
}

}  // extern "C"
