// The CUDA backend: the kernel table over device memory (see latentkv-cuda.h for the memory
// contract). Compiled only with LATENTKV_CUDA=ON (LKV_WITH_CUDA).
#ifndef LATENTKV_CUDA_CUDA_BACKEND_H_
#define LATENTKV_CUDA_CUDA_BACKEND_H_

#include "latentkv.h"

namespace lkv::cuda {

// Creates the context on device LATENTKV_CUDA_DEVICE (default 0); LKV_ERR_BACKEND_UNAVAILABLE
// with the driver's reason when there is no usable driver, device or kernel image.
lkv_status create_cuda_backend(const lkv_backend_options& options, const lkv_backend_vtable** vtable,
                               void** ctx, lkv_error* err);

}  // namespace lkv::cuda

#endif  // LATENTKV_CUDA_CUDA_BACKEND_H_
