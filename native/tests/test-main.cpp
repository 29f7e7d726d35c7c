#include <cstring>

#include "test-harness.h"

namespace lkv::test {
namespace {
int g_failures = 0;
}

std::vector<TestCase>& registry() {
  static std::vector<TestCase> tests;
  return tests;
}

void record_failure(const char* file, int line, const std::string& message) {
  ++g_failures;
  if (g_failures <= 50) std::fprintf(stderr, "  FAIL %s:%d: %s\n", file, line, message.c_str());
}

}  // namespace lkv::test

// Usage: latentkv_native_tests [substring]   runs the tests whose name contains substring.
int main(int argc, char** argv) {
  const char* filter = argc > 1 ? argv[1] : nullptr;
  int run = 0, failed_tests = 0;
  for (const auto& t : lkv::test::registry()) {
    if (filter && !std::strstr(t.name, filter)) continue;
    const int before = lkv::test::g_failures;
    std::printf("[ RUN  ] %s\n", t.name);
    std::fflush(stdout);
    t.fn();
    ++run;
    const bool ok = lkv::test::g_failures == before;
    if (!ok) ++failed_tests;
    std::printf("[ %s ] %s\n", ok ? " OK " : "FAIL", t.name);
  }
  std::printf("%d tests, %d failed\n", run, failed_tests);
  return failed_tests == 0 && run > 0 ? 0 : 1;
}
