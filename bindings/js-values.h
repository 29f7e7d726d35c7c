// Reading numbers and typed arrays out of JS params objects, with the checks every kernel's
// conversion needs: 32-bit integers, and buffers of the right type holding enough bytes for the
// dimensions, kept alive until an async call finishes.
#ifndef LATENTKV_BINDINGS_JS_VALUES_H_
#define LATENTKV_BINDINGS_JS_VALUES_H_

#include <napi.h>

#include <cstdint>
#include <initializer_list>
#include <vector>

namespace lkv::js {

// Keeps the JS buffers a native call points into alive until an async call finishes.
struct BufferRefs {
  std::vector<Napi::ObjectReference> refs;
  void keep(const Napi::Object& o) { refs.push_back(Napi::Persistent(o)); }
};

int32_t get_int(const Napi::Object& o, const char* key);
float get_float(const Napi::Object& o, const char* key, float fallback, bool required);

// A typed array of the given kind (any ArrayBufferView when any_view is set) with at least
// min_bytes bytes; returns its data pointer (nullptr for an absent optional one).
void* get_buffer(const Napi::Object& o, const char* key, napi_typedarray_type kind, size_t min_bytes,
                 bool optional, bool any_view, BufferRefs* refs);

// Product of dimensions, negatives counted as 0 (native validation rejects them with a message).
size_t count(std::initializer_list<int64_t> dims);

}  // namespace lkv::js

#endif  // LATENTKV_BINDINGS_JS_VALUES_H_
