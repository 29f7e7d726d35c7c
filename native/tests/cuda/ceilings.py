"""The GPU's two ceilings through PyTorch (cuBLAS), for latentkv_cuda_bench --gemm-ceiling.

Prints one line per ceiling and, last, the bf16 matrix-product rate alone, so a script can pass
it on: `latentkv_cuda_bench --gemm-ceiling $(python3 ceilings.py | tail -1)`. Random data (zeros
run faster), 3 warm-ups, median of 10 timed runs with CUDA events.
"""
import statistics
import sys

import torch


def median_ms(fn, warmup=3, reps=10):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def main():
    if not torch.cuda.is_available():
        sys.exit("no CUDA device")
    n = 8192
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    ms = median_ms(lambda: a @ b)
    tflops = 2 * n**3 / (ms * 1e-3) / 1e12
    src = torch.empty(1 << 30, dtype=torch.uint8, device="cuda").random_(0, 255)
    dst = torch.empty_like(src)
    copy_ms = median_ms(lambda: dst.copy_(src))
    print(f"torch {torch.__version__}: bf16 {n}^3 matmul {tflops:.1f} TFLOP/s, "
          f"1 GiB device copy {2 * src.numel() / (copy_ms * 1e-3) / 1e9:.0f} GB/s (read + write)",
          file=sys.stderr)
    print(f"{tflops:.1f}")


if __name__ == "__main__":
    main()
