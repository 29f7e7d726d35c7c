#ifndef LATENTKV_CORE_VERSION_H_
#define LATENTKV_CORE_VERSION_H_

#include "latentkv.h"

#define LKV_STRINGIFY_(x) #x
#define LKV_STRINGIFY(x) LKV_STRINGIFY_(x)

namespace lkv {

// Compared by the JS loader with package.json's version: a mismatch refuses to load.
constexpr const char* kVersionString = LKV_STRINGIFY(LKV_VERSION_MAJOR) "." LKV_STRINGIFY(
    LKV_VERSION_MINOR) "." LKV_STRINGIFY(LKV_VERSION_PATCH);

}  // namespace lkv

#endif  // LATENTKV_CORE_VERSION_H_
