#!/usr/bin/env bash
# Builds the native core and its C++ tests with AddressSanitizer and UndefinedBehaviorSanitizer
# and runs them: every kernel on every compiled ISA, its bad-input checks and the thread pool,
# with out-of-bounds accesses, use-after-free, leaks and undefined behaviour fatal.
#
#   scripts/test-sanitize.sh [test-name-substring]
#
# Environment: BUILD_DIR (default build-sanitize), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build-sanitize}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
flags="-O1 -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"

echo "== configure $BUILD_DIR (ASan + UBSan)"
cmake -S native -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Debug \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
echo "== build latentkv_native_tests"
cmake --build "$BUILD_DIR" --target latentkv_native_tests -j "$JOBS"
echo "== run"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$BUILD_DIR/latentkv_native_tests" "$@"
