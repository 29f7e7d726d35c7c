// A minimal test harness for the native core, so the C++ tests run on machines without Node
// or a test framework package (the GPU machine).
#ifndef LATENTKV_TESTS_TEST_HARNESS_H_
#define LATENTKV_TESTS_TEST_HARNESS_H_

#include <cstdio>
#include <functional>
#include <string>
#include <vector>

namespace lkv::test {

struct TestCase {
  const char* name;
  std::function<void()> fn;
};

std::vector<TestCase>& registry();
void record_failure(const char* file, int line, const std::string& message);

struct Registrar {
  Registrar(const char* name, std::function<void()> fn) { registry().push_back({name, std::move(fn)}); }
};

}  // namespace lkv::test

#define LKV_TEST_CONCAT_(a, b) a##b
#define LKV_TEST_CONCAT(a, b) LKV_TEST_CONCAT_(a, b)
#define TEST(name)                                                                  \
  static void name();                                                               \
  static ::lkv::test::Registrar LKV_TEST_CONCAT(registrar_, name)(#name, name);     \
  static void name()

#define CHECK(cond)                                                                 \
  do {                                                                              \
    if (!(cond)) ::lkv::test::record_failure(__FILE__, __LINE__, "CHECK(" #cond ")"); \
  } while (0)

#define CHECK_MSG(cond, msg)                                                        \
  do {                                                                              \
    if (!(cond)) ::lkv::test::record_failure(__FILE__, __LINE__, (msg));            \
  } while (0)

#endif  // LATENTKV_TESTS_TEST_HARNESS_H_
