#!/usr/bin/env bash
# One call on a GPU machine: the CUDA tests, compute-sanitizer on small grids, then the bench
# against the ceilings measured in the same run. BIN: a folder with latentkv_cuda_tests and
# latentkv_cuda_bench (default build-cuda-native). Logs go to $OUT (or /tmp) when set.
set -uo pipefail
BIN=${BIN:-build-cuda-native}
LOG=${OUT:-/tmp}
here=$(dirname "$0")
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem --format=csv,noheader
"$BIN/latentkv_cuda_tests" ${TESTS:-} 2>&1 | tee "$LOG/tests.log" | grep -v '^\[ RUN'
echo "tests rc=${PIPESTATUS[0]}"
if [ -n "${SANITIZE:-}" ]; then
  for tool in memcheck racecheck synccheck; do
    compute-sanitizer --tool $tool --error-exitcode 9 "$BIN/latentkv_cuda_tests" "$SANITIZE" >"$LOG/$tool.log" 2>&1
    echo "$tool rc=$? $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOG/$tool.log" | tail -1)"
  done
fi
if [ -n "${BENCH:-}" ]; then
  gemm=$(python3 "$here/ceilings.py" 2>"$LOG/ceilings.txt" | tail -1)
  cat "$LOG/ceilings.txt"
  "$BIN/latentkv_cuda_bench" $BENCH ${gemm:+--gemm-ceiling $gemm} --csv "$LOG/bench.csv" 2>&1 | tee "$LOG/bench.log"
fi
