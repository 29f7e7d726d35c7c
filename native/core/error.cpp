#include "error.h"

#include <cstdarg>
#include <cstdio>

namespace lkv {

lkv_status fail(lkv_error* err, lkv_status status, const char* format, ...) {
  if (err) {
    err->status = status;
    va_list args;
    va_start(args, format);
    std::vsnprintf(err->message, sizeof err->message, format, args);
    va_end(args);
  }
  return status;
}

}  // namespace lkv

extern "C" const char* lkv_status_name(lkv_status status) {
  switch (status) {
    case LKV_OK: return "LKV_OK";
    case LKV_ERR_INVALID_ARGUMENT: return "LKV_ERR_INVALID_ARGUMENT";
    case LKV_ERR_UNSUPPORTED: return "LKV_ERR_UNSUPPORTED";
    case LKV_ERR_OUT_OF_MEMORY: return "LKV_ERR_OUT_OF_MEMORY";
    case LKV_ERR_BACKEND_UNAVAILABLE: return "LKV_ERR_BACKEND_UNAVAILABLE";
    case LKV_ERR_INTERNAL: return "LKV_ERR_INTERNAL";
    default: break;  // not a valid value: handled below
  }
  return "LKV_ERR_UNKNOWN";
}
