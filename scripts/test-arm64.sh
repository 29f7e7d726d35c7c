#!/usr/bin/env bash
# Cross-builds the native core for linux-arm64 with Debian's aarch64 toolchain and runs the C++
# tests under user-mode qemu, so the NEON kernels are executed and compared with the scalar
# reference, not just compiled.
#
#   apt-get install -y g++-aarch64-linux-gnu qemu-user   # once
#   scripts/test-arm64.sh [test-name-substring]
#
# Environment: BUILD_DIR (default build-arm64), JOBS (default nproc), QEMU (default qemu-aarch64),
# LATENTKV_THREADS etc. pass through to the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR="${BUILD_DIR:-build-arm64}"
JOBS="${JOBS:-$(nproc 2>/dev/null || echo 4)}"
QEMU="${QEMU:-qemu-aarch64}"
SYSROOT=/usr/aarch64-linux-gnu

for tool in aarch64-linux-gnu-g++ "$QEMU" cmake; do
  if ! command -v "$tool" >/dev/null; then
    echo "test-arm64: $tool not found (apt-get install -y g++-aarch64-linux-gnu qemu-user cmake)" >&2
    exit 2
  fi
done

echo "== configure $BUILD_DIR (aarch64-linux-gnu, static)"
cmake -S native -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_TOOLCHAIN_FILE="$PWD/native/cmake/aarch64-linux-gnu.cmake" >/dev/null
echo "== build latentkv_native_tests"
cmake --build "$BUILD_DIR" --target latentkv_native_tests -j "$JOBS"

log="$BUILD_DIR/test-arm64.log"
echo "== run under $QEMU -L $SYSROOT"
set +e
"$QEMU" -L "$SYSROOT" "$BUILD_DIR/latentkv_native_tests" "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
set -e

fail=0
if [ "$rc" -ne 0 ]; then
  echo "test-arm64: the tests exited with status $rc" >&2
  fail=1
fi
# The NEON path must really be under test (compiled in and reported supported by HWCAP logic),
# unless a filter selected tests that do not print the ISA line.
if [ $# -eq 0 ] && ! grep -q "SIMD ISAs under test: neon" "$log"; then
  echo "test-arm64: expected the line 'SIMD ISAs under test: neon'" >&2
  fail=1
fi
if ! grep -qE "^[0-9]+ tests, 0 failed$" "$log"; then
  echo "test-arm64: expected '<n> tests, 0 failed'" >&2
  fail=1
fi
if [ "$fail" -ne 0 ]; then exit 1; fi
echo "== arm64 (NEON under qemu): $(grep -E '^[0-9]+ tests, ' "$log")"
