// The CPU backend: a kernel table chosen by ISA plus a thread pool.
#ifndef LATENTKV_CPU_CPU_BACKEND_H_
#define LATENTKV_CPU_CPU_BACKEND_H_

#include "latentkv.h"

namespace lkv::cpu {

// Creates the backend context and fills the table; on failure err says why.
lkv_status create_cpu_backend(const lkv_backend_options& options, const lkv_backend_vtable** vtable,
                              void** ctx, lkv_error* err);

}  // namespace lkv::cpu

#endif  // LATENTKV_CPU_CPU_BACKEND_H_
