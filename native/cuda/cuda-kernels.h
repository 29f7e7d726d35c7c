// Host-side launchers of the CUDA kernels (plain C++ declarations; the definitions are in the
// .cu files). Every pointer here is device memory, every launcher queues work on `stream` and
// returns the launch error (cudaGetLastError), never waits.
#ifndef LATENTKV_CUDA_CUDA_KERNELS_H_
#define LATENTKV_CUDA_CUDA_KERNELS_H_

#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

#include "latentkv.h"

namespace lkv::cuda {

// Per-device facts the launchers size their grids and shared memory from.
struct DeviceLimits {
  int multiprocessors = 1;
  int smem_optin = 48 * 1024;  // cudaDevAttrMaxSharedMemoryPerBlockOptin
};

// The split-KV attention shared by mla_decode and gqa_decode (see attention.cu).
struct AttentionPlan {
  int rows = 1;       // query rows (s, head) per CTA tile
  int tok = 1;        // tokens per shared-memory chunk (<= 32)
  int row_tiles = 1;  // tiles per group
  int groups = 1;     // MLA: rope_heads; GQA: num_kv_heads
  int num_parts = 1;  // CTAs per (tile, group) the scheduler spreads the KV work over
  int mma_rows = 0;   // > 0: the tensor-core MLA kernel with tiles of this many rows
  bool mma_fp8 = false;  // ... over an fp8-e4m3 cache
  bool gqa_mma = false;  // the tensor-core GQA kernel (16-row tiles)
  size_t smem = 0;    // dynamic shared memory per CTA
  // Workspace (floats / ints) the launch needs: partial outputs and the schedule.
  size_t part_floats = 0;
  size_t sched_ints = 0;
};

// Plans an mla_decode / gqa_decode launch; returns cudaErrorInvalidValue (and sets *why) when
// the head dimension cannot fit shared memory even with a 1x1 tile.
cudaError_t plan_mla_decode(const lkv_mla_decode_params& p, const DeviceLimits& dev,
                            AttentionPlan* plan, const char** why);
cudaError_t plan_gqa_decode(const lkv_gqa_decode_params& p, const DeviceLimits& dev,
                            AttentionPlan* plan, const char** why);

// workspace_f: plan.part_floats floats; workspace_i: plan.sched_ints ints (device memory).
cudaError_t launch_mla_decode(const lkv_mla_decode_params& p, const AttentionPlan& plan,
                              float* workspace_f, int32_t* workspace_i, cudaStream_t stream);
cudaError_t launch_gqa_decode(const lkv_gqa_decode_params& p, const AttentionPlan& plan,
                              float* workspace_f, int32_t* workspace_i, cudaStream_t stream);

// inv_freq: device [P/2] (rope frequencies computed on the host by lkv::rope_inv_freq);
// workspace: project_append_workspace_floats(p) floats (the projection before norm and RoPE).
size_t project_append_workspace_floats(const lkv_mla_project_append_params& p);
cudaError_t launch_mla_project_append(const lkv_mla_project_append_params& p,
                                      const float* inv_freq, float* workspace, cudaStream_t stream);
cudaError_t launch_gqa_append(const lkv_gqa_append_params& p, cudaStream_t stream);

// Checks that this binary has machine code or PTX the device can run (no-kernel-image errors).
cudaError_t probe_kernel_image();

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_CUDA_KERNELS_H_
