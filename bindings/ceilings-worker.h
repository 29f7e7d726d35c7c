// measureCeilings(threads, quick) -> Promise<{readGBs, f32FmaGflops, bf16DotGflops, threads}>:
// about a second of all-core work, so it runs on a libuv worker thread.
#ifndef LATENTKV_BINDINGS_CEILINGS_WORKER_H_
#define LATENTKV_BINDINGS_CEILINGS_WORKER_H_

#include <napi.h>

namespace lkv::js {

Napi::Value MeasureCeilings(const Napi::CallbackInfo& info);

}  // namespace lkv::js

#endif  // LATENTKV_BINDINGS_CEILINGS_WORKER_H_
