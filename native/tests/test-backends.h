// CPU backends for the C++ tests: one per ISA and thread count, freed at scope exit.
#ifndef LATENTKV_TESTS_TEST_BACKENDS_H_
#define LATENTKV_TESTS_TEST_BACKENDS_H_

#include <cstdint>
#include <vector>

#include "latentkv.h"

namespace lkv::test {

// A cpu backend with this ISA and thread count (a failure to create one is recorded as a test
// failure).
struct Backend {
  lkv_backend* handle = nullptr;
  Backend(lkv_cpu_isa isa, int32_t threads);
  ~Backend();
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;
};

// The SIMD ISAs compiled in and supported here (printed once per call).
std::vector<lkv_cpu_isa> simd_isas();

}  // namespace lkv::test

#endif  // LATENTKV_TESTS_TEST_BACKENDS_H_
