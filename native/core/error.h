// Building lkv_error values. Native code never throws across the C ABI and never aborts:
// every failure becomes a status plus a message for the caller.
#ifndef LATENTKV_CORE_ERROR_H_
#define LATENTKV_CORE_ERROR_H_

#include "latentkv.h"

namespace lkv {

// Fills err (when not null) with status and a printf-style message; returns status.
lkv_status fail(lkv_error* err, lkv_status status, const char* format, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 3, 4)))
#endif
    ;

inline lkv_status ok(lkv_error* err) {
  if (err) {
    err->status = LKV_OK;
    err->message[0] = '\0';
  }
  return LKV_OK;
}

}  // namespace lkv

#endif  // LATENTKV_CORE_ERROR_H_
