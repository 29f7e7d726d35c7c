#include "js-values.h"

#include <string>

#include "errors.h"

namespace lkv::js {

int32_t get_int(const Napi::Object& o, const char* key) {
  Napi::Value v = o.Get(key);
  if (!v.IsNumber()) throw_invalid(o.Env(), std::string(key) + " must be a number");
  const double d = v.As<Napi::Number>().DoubleValue();
  if (!(d >= -2147483648.0 && d <= 2147483647.0) || d != static_cast<double>(static_cast<int32_t>(d))) {
    throw_invalid(o.Env(), std::string(key) + " must be a 32-bit integer");
  }
  return static_cast<int32_t>(d);
}

float get_float(const Napi::Object& o, const char* key, float fallback, bool required) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined() && !required) return fallback;
  if (!v.IsNumber()) throw_invalid(o.Env(), std::string(key) + " must be a number");
  return v.As<Napi::Number>().FloatValue();
}

void* get_buffer(const Napi::Object& o, const char* key, napi_typedarray_type kind, size_t min_bytes,
                 bool optional, bool any_view, BufferRefs* refs) {
  Napi::Value v = o.Get(key);
  if (optional && (v.IsUndefined() || v.IsNull())) return nullptr;
  void* data = nullptr;
  size_t bytes = 0;
  if (v.IsTypedArray()) {
    Napi::TypedArray ta = v.As<Napi::TypedArray>();
    if (!any_view && ta.TypedArrayType() != kind) throw_invalid(o.Env(), std::string(key) + " has the wrong typed-array type");
    data = static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset();
    bytes = ta.ByteLength();
  } else if (any_view && v.IsDataView()) {
    Napi::DataView dv = v.As<Napi::DataView>();
    data = static_cast<uint8_t*>(dv.ArrayBuffer().Data()) + dv.ByteOffset();
    bytes = dv.ByteLength();
  } else {
    throw_invalid(o.Env(), std::string(key) + " must be a typed array");
  }
  if (bytes < min_bytes) {
    throw_invalid(o.Env(), std::string(key) + " holds " + std::to_string(bytes) + " bytes, needs " +
                               std::to_string(min_bytes));
  }
  refs->keep(v.As<Napi::Object>());
  return data;
}

size_t count(std::initializer_list<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d < 0 ? 0 : d;
  return static_cast<size_t>(n);
}

}  // namespace lkv::js
