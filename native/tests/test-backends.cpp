#include "test-backends.h"

#include <cstdio>
#include <string>

#include "test-harness.h"

namespace lkv::test {

Backend::Backend(lkv_cpu_isa isa, int32_t threads) {
  lkv_backend_options o{isa, threads};
  lkv_error err{};
  if (lkv_backend_create("cpu", &o, &handle, &err) != LKV_OK) {
    record_failure(__FILE__, __LINE__, std::string("backend create: ") + err.message);
  }
}

Backend::~Backend() { lkv_backend_free(handle); }

std::vector<lkv_cpu_isa> simd_isas() {
  std::vector<lkv_cpu_isa> isas;
  const uint32_t usable = lkv_cpu_compiled_isa_mask() & lkv_cpu_supported_isa_mask();
  for (int i = LKV_CPU_ISA_AVX2; i <= LKV_CPU_ISA_NEON; ++i) {
    if (usable & (1u << i)) isas.push_back(static_cast<lkv_cpu_isa>(i));
  }
  std::printf("  SIMD ISAs under test:");
  for (auto i : isas) std::printf(" %s", lkv_cpu_isa_name(i));
  std::printf("%s\n", isas.empty() ? " none (only the scalar reference is compiled)" : "");
  return isas;
}

}  // namespace lkv::test
