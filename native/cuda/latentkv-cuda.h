/*
 * latentkv CUDA backend: device memory helpers for host programs (C ABI).
 *
 * With the "cuda" backend (lkv_backend_create("cuda", ...)), every data pointer in a kernel's
 * params struct (q, cache, block_table, seq_lens, slot_mapping, positions, weights, out, lse)
 * may be device memory from lkv_cuda_malloc (or cudaMalloc in the same process), which is the
 * fast path: nothing is copied. Pointers to ordinary host memory are also accepted: the backend
 * detects them (cudaPointerGetAttributes), copies them to scratch device memory, runs, and
 * copies the outputs back before returning (slow; for tests and small calls). Mixing both in
 * one call is allowed. rope.inv_freq (table RoPE scaling) is always host memory.
 *
 * Kernels run on the backend's own non-blocking stream; every entry point returns after the
 * work is queued, except with host pointers (then it waits). lkv_cuda_memcpy and the backend's
 * synchronize entry wait for the stream. Every CUDA error becomes an lkv_status with a message;
 * nothing aborts. These helpers work without a backend (they use the current device).
 */
#ifndef LATENTKV_CUDA_H_
#define LATENTKV_CUDA_H_

#include "latentkv.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum lkv_cuda_copy_kind {
  LKV_CUDA_HOST_TO_DEVICE = 1,
  LKV_CUDA_DEVICE_TO_HOST = 2,
  LKV_CUDA_DEVICE_TO_DEVICE = 3
} lkv_cuda_copy_kind;

/* Number of CUDA devices; 0 (and LKV_ERR_BACKEND_UNAVAILABLE with the driver's reason) when none. */
lkv_status lkv_cuda_device_count(int32_t* count, lkv_error* err);

/* Name and compute capability of the current device ("NVIDIA H100 80GB HBM3", 9, 0). */
lkv_status lkv_cuda_device_info(char* name, size_t name_capacity, int32_t* cc_major,
                                int32_t* cc_minor, int32_t* multiprocessors, lkv_error* err);

lkv_status lkv_cuda_malloc(void** out, size_t bytes, lkv_error* err);
/* Waits for queued work of the backend streams first is the caller's job (synchronize). */
lkv_status lkv_cuda_free(void* ptr, lkv_error* err);
/* Synchronous copy (waits for the whole device first, so queued kernels finish). */
lkv_status lkv_cuda_memcpy(void* dst, const void* src, size_t bytes, lkv_cuda_copy_kind kind,
                           lkv_error* err);
/* Synchronous byte fill of device memory. */
lkv_status lkv_cuda_memset(void* dst, int value, size_t bytes, lkv_error* err);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* LATENTKV_CUDA_H_ */
