// The C ABI entry points: backend creation by name, and validated kernel dispatch.
#include <cstring>
#include <new>

#include "../cpu/cpu-backend.h"
#include "../cpu/reference/mtla-merge-append-reference.h"
#include "error.h"
#include "latentkv.h"
#include "validate.h"
#ifdef LKV_WITH_CUDA
#include "../cuda/cuda-backend.h"
#endif

struct lkv_backend {
  const lkv_backend_vtable* vtable;
  void* ctx;
  // Device-memory backends (cuda) validate inside their entries: the dispatcher's checks read
  // block tables and slot mappings, which may be device pointers there.
  bool validates_itself;
};

namespace {

// The dispatcher's own contract check, skipped for backends that validate themselves.
template <typename Params>
lkv_status dispatch_validate(const lkv_backend* backend, const Params& p, lkv_error* err) {
  if (backend->validates_itself) return LKV_OK;
  return lkv::validate(p, err);
}

}  // namespace

extern "C" {

lkv_status lkv_backend_create(const char* name, const lkv_backend_options* options,
                              lkv_backend** out, lkv_error* err) {
  if (!out) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "out must not be NULL");
  *out = nullptr;
  lkv_backend_options opts{LKV_CPU_ISA_AUTO, 0};
  if (options) opts = *options;
  const char* n = name ? name : "cpu";
  const lkv_backend_vtable* vtable = nullptr;
  void* ctx = nullptr;
  lkv_status s;
  if (std::strcmp(n, "cpu") == 0) {
    s = lkv::cpu::create_cpu_backend(opts, &vtable, &ctx, err);
  } else if (std::strcmp(n, "cuda") == 0) {
#ifdef LKV_WITH_CUDA
    s = lkv::cuda::create_cuda_backend(opts, &vtable, &ctx, err);
#else
    return lkv::fail(err, LKV_ERR_BACKEND_UNAVAILABLE,
                     "backend 'cuda' is not compiled into this library (it has: cpu); build the CUDA "
                     "addon with npm run build:cuda or cmake -DLATENTKV_CUDA=ON");
#endif
  } else if (std::strcmp(n, "cann") == 0) {
    return lkv::fail(err, LKV_ERR_BACKEND_UNAVAILABLE,
                     "backend '%s' is not compiled into this library (it has: %s)", n,
#ifdef LKV_WITH_CUDA
                     "cpu, cuda"
#else
                     "cpu"
#endif
    );
  } else {
    return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT,
                     "unknown backend '%s'; valid names are cpu, cuda, cann", n);
  }
  if (s != LKV_OK) return s;
  if (vtable->api_version != LKV_API_VERSION) {
    vtable->destroy(ctx);
    return lkv::fail(err, LKV_ERR_INTERNAL, "backend '%s' was built for API %d, expected %d", n,
                     vtable->api_version, LKV_API_VERSION);
  }
  auto* b = new (std::nothrow) lkv_backend{vtable, ctx, std::strcmp(n, "cuda") == 0};
  if (!b) {
    vtable->destroy(ctx);
    return lkv::fail(err, LKV_ERR_OUT_OF_MEMORY, "could not allocate the backend handle");
  }
  *out = b;
  return lkv::ok(err);
}

void lkv_backend_free(lkv_backend* backend) {
  if (!backend) return;
  backend->vtable->destroy(backend->ctx);
  delete backend;
}

lkv_status lkv_backend_get_info(const lkv_backend* backend, lkv_backend_info* out) {
  if (!backend || !out) return LKV_ERR_INVALID_ARGUMENT;
  return backend->vtable->get_info(backend->ctx, out);
}

lkv_status lkv_mla_decode(lkv_backend* backend, const lkv_mla_decode_params* p, lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  const lkv_status s = dispatch_validate(backend, *p, err);
  if (s != LKV_OK) return s;
  if (!backend->vtable->mla_decode) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no mla_decode", backend->vtable->name);
  }
  return backend->vtable->mla_decode(backend->ctx, p, err);
}

lkv_status lkv_mla_project_append(lkv_backend* backend, const lkv_mla_project_append_params* p,
                                  lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  const lkv_status s = dispatch_validate(backend, *p, err);
  if (s != LKV_OK) return s;
  if (p->num_tokens == 0) return lkv::ok(err);
  if (!backend->vtable->mla_project_append) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no mla_project_append",
                     backend->vtable->name);
  }
  return backend->vtable->mla_project_append(backend->ctx, p, err);
}

lkv_status lkv_gqa_decode(lkv_backend* backend, const lkv_gqa_decode_params* p, lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  const lkv_status s = dispatch_validate(backend, *p, err);
  if (s != LKV_OK) return s;
  if (!backend->vtable->gqa_decode) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no gqa_decode", backend->vtable->name);
  }
  return backend->vtable->gqa_decode(backend->ctx, p, err);
}

lkv_status lkv_gqa_append(lkv_backend* backend, const lkv_gqa_append_params* p, lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  const lkv_status s = dispatch_validate(backend, *p, err);
  if (s != LKV_OK) return s;
  if (p->num_tokens == 0) return lkv::ok(err);
  if (!backend->vtable->gqa_append) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no gqa_append", backend->vtable->name);
  }
  return backend->vtable->gqa_append(backend->ctx, p, err);
}

lkv_status lkv_mla_decode_layer(lkv_backend* backend, const lkv_mla_decode_layer_params* p,
                                lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  const lkv_status s = dispatch_validate(backend, *p, err);
  if (s != LKV_OK) return s;
  if (!backend->vtable->mla_decode_layer) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no mla_decode_layer",
                     backend->vtable->name);
  }
  return backend->vtable->mla_decode_layer(backend->ctx, p, err);
}

lkv_status lkv_mla_prefill(lkv_backend* backend, const lkv_mla_prefill_params* p, lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  // Unsupported first: a device backend's index arrays may not be readable here.
  if (!backend->vtable->mla_prefill) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no mla_prefill", backend->vtable->name);
  }
  const lkv_status s = dispatch_validate(backend, *p, err);
  if (s != LKV_OK) return s;
  return backend->vtable->mla_prefill(backend->ctx, p, err);
}

lkv_status lkv_gemm(lkv_backend* backend, const lkv_gemm_params* p, lkv_error* err) {
  if (!backend || !p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "backend and params must not be NULL");
  const lkv_status s = lkv::validate(*p, err);
  if (s != LKV_OK) return s;
  if (!backend->vtable->gemm) {
    return lkv::fail(err, LKV_ERR_UNSUPPORTED, "backend '%s' has no gemm", backend->vtable->name);
  }
  if (p->m == 0) return lkv::ok(err);
  return backend->vtable->gemm(backend->ctx, p, err);
}

lkv_status lkv_mtla_merge_append(lkv_backend* backend, const lkv_mtla_merge_append_params* p,
                                 lkv_error* err) {
  (void)backend;  // host-memory kernel for every backend so far (see latentkv.h)
  if (!p) return lkv::fail(err, LKV_ERR_INVALID_ARGUMENT, "params must not be NULL");
  const lkv_status s = lkv::validate(*p, err);
  if (s != LKV_OK) return s;
  if (p->num_tokens == 0) return lkv::ok(err);
  return lkv::cpu::mtla_merge_append_reference(*p, err);
}

}  // extern "C"
