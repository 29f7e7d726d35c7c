// GPU benchmark of mla_decode on the issue's standard shapes (R = 512, P = 64, block 64,
// batch 1..128, L 4K..32K, H 16 and 128), against two ceilings measured here on the device:
// a device-to-device copy (bytes read + written) and a bf16 tensor-core matrix product
// (our own WMMA kernel, no cuBLAS: a lower bound of the device's bf16 rate).
//
//   latentkv_cuda_bench [--quick] [--csv FILE]
// Kernel times are CUDA-event medians over repeated launches of the kernels alone (the split,
// schedule and combine launches; validation's index copy is outside). One API-call time per
// dtype is printed too, which includes lkv_mla_decode's validation (a device-to-host copy of the
// block table and a stream wait).
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "bench/append-params.h"
#include "core/cache-layout.h"
#include "core/rope.h"
#include "cuda/cuda-kernels.h"
#include "latentkv-cuda.h"
#include "latentkv.h"

namespace {

#define BENCH_CHECK(expr)                                                                    \
  do {                                                                                       \
    const cudaError_t e_ = (expr);                                                           \
    if (e_ != cudaSuccess) {                                                                 \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(2);                                                                          \
    }                                                                                        \
  } while (0)

template <typename F>
float median_ms(F&& launch, int warmup, int reps, cudaStream_t stream) {
  cudaEvent_t a, b;
  BENCH_CHECK(cudaEventCreate(&a));
  BENCH_CHECK(cudaEventCreate(&b));
  for (int i = 0; i < warmup; ++i) launch();
  BENCH_CHECK(cudaStreamSynchronize(stream));
  std::vector<float> t;
  for (int i = 0; i < reps; ++i) {
    BENCH_CHECK(cudaEventRecord(a, stream));
    launch();
    BENCH_CHECK(cudaEventRecord(b, stream));
    BENCH_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    BENCH_CHECK(cudaEventElapsedTime(&ms, a, b));
    t.push_back(ms);
  }
  BENCH_CHECK(cudaGetLastError());
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

__device__ uint32_t hash32(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdull;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ull;
  x ^= x >> 33;
  return static_cast<uint32_t>(x);
}

// Random cache bytes that decode to finite values: bf16 words in [-2, 2), fp8 codes without NaN.
__global__ void fill_random(uint8_t* p, size_t n, lkv_dtype d, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    const uint32_t h = hash32(seed * 0x9e3779b97f4a7c15ull + i);
    if (d == LKV_DTYPE_BF16 || d == LKV_DTYPE_F16) {
      if (i % 2 == 0) {
        const float v = (h >> 8) * (4.0f / 16777216.0f) - 2.0f;
        const uint16_t w = d == LKV_DTYPE_BF16 ? __bfloat16_as_ushort(__float2bfloat16(v))
                                               : __half_as_ushort(__float2half(v));
        if (i + 1 < n) {
          p[i] = static_cast<uint8_t>(w & 0xff);
          p[i + 1] = static_cast<uint8_t>(w >> 8);
        }
      }
    } else {
      uint8_t b = static_cast<uint8_t>(h & 0xff);
      if ((b & 0x7f) == 0x7f) b ^= 0x08;
      p[i] = b;
    }
  }
}

__global__ void fill_float(float* p, size_t n, uint64_t seed, float lo, float hi) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    p[i] = lo + (hi - lo) * (hash32(seed + i) >> 8) * (1.0f / 16777216.0f);
  }
}

// Quantized rows: a finite positive scale per row.
__global__ void fix_scales(uint8_t* cache, size_t rows, size_t row_bytes, size_t scale_offset) {
  for (size_t r = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; r < rows;
       r += static_cast<size_t>(gridDim.x) * blockDim.x) {
    *reinterpret_cast<float*>(cache + r * row_bytes + scale_offset) = 0.01f;
  }
}

__global__ void fill_bf16(__nv_bfloat16* p, size_t n, uint64_t seed) {
  for (size_t i = blockIdx.x * static_cast<size_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<size_t>(gridDim.x) * blockDim.x) {
    p[i] = __float2bfloat16((hash32(seed + i) >> 8) * (2.0f / 16777216.0f) - 1.0f);
  }
}

// ---- bf16 matrix-product ceiling: C[M,N] = A[M,K] B[N,K]^T, f32 accumulate, WMMA 16x16x16 ----
constexpr int kTileM = 128, kTileN = 128, kTileK = 32, kPad = 8;

__global__ void __launch_bounds__(256) gemm_bf16(const __nv_bfloat16* __restrict__ A,
                                                 const __nv_bfloat16* __restrict__ B, float* __restrict__ C,
                                                 int M, int N, int K) {
  using namespace nvcuda;
  __shared__ __align__(32) __nv_bfloat16 As[2][kTileM][kTileK + kPad];
  __shared__ __align__(32) __nv_bfloat16 Bs[2][kTileN][kTileK + kPad];
  const int warp = threadIdx.x / 32;
  const int wm = warp / 2, wn = warp % 2;  // 4 x 2 warps, each 32 x 64
  const int m0 = blockIdx.y * kTileM, n0 = blockIdx.x * kTileN;
  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][4];
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) wmma::fill_fragment(acc[i][j], 0.0f);
  // Each thread copies 16 bytes (8 bf16) of A and of B per pass; 2 passes per 128 x 32 tile.
  auto load = [&](int buf, int k0) {
#pragma unroll
    for (int pass = 0; pass < 2; ++pass) {
      const int idx = threadIdx.x + pass * 256;
      const int r = idx / 4, c = (idx % 4) * 8;
      *reinterpret_cast<uint4*>(&As[buf][r][c]) =
          *reinterpret_cast<const uint4*>(A + static_cast<size_t>(m0 + r) * K + k0 + c);
      *reinterpret_cast<uint4*>(&Bs[buf][r][c]) =
          *reinterpret_cast<const uint4*>(B + static_cast<size_t>(n0 + r) * K + k0 + c);
    }
  };
  load(0, 0);
  __syncthreads();
  for (int k0 = 0, buf = 0; k0 < K; k0 += kTileK, buf ^= 1) {
    if (k0 + kTileK < K) load(buf ^ 1, k0 + kTileK);
#pragma unroll
    for (int kk = 0; kk < kTileK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, __nv_bfloat16, wmma::row_major> a[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, __nv_bfloat16, wmma::col_major> b[4];
#pragma unroll
      for (int i = 0; i < 2; ++i) wmma::load_matrix_sync(a[i], &As[buf][wm * 32 + i * 16][kk], kTileK + kPad);
#pragma unroll
      for (int j = 0; j < 4; ++j) wmma::load_matrix_sync(b[j], &Bs[buf][wn * 64 + j * 16][kk], kTileK + kPad);
#pragma unroll
      for (int i = 0; i < 2; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) wmma::mma_sync(acc[i][j], a[i], b[j], acc[i][j]);
    }
    __syncthreads();
  }
#pragma unroll
  for (int i = 0; i < 2; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      float* c = C + static_cast<size_t>(m0 + wm * 32 + i * 16) * N + n0 + wn * 64 + j * 16;
      wmma::store_matrix_sync(c, acc[i][j], N, wmma::mem_row_major);
    }
}

double measure_gemm_tflops(cudaStream_t stream, bool check) {
  const int M = 8192, N = 8192, K = 8192;
  __nv_bfloat16 *A, *B;
  float* C;
  BENCH_CHECK(cudaMalloc(&A, sizeof(__nv_bfloat16) * M * K));
  BENCH_CHECK(cudaMalloc(&B, sizeof(__nv_bfloat16) * N * K));
  BENCH_CHECK(cudaMalloc(&C, sizeof(float) * M * N));
  fill_bf16<<<1024, 256, 0, stream>>>(A, static_cast<size_t>(M) * K, 1);
  fill_bf16<<<1024, 256, 0, stream>>>(B, static_cast<size_t>(N) * K, 2);
  const dim3 grid(N / kTileN, M / kTileM);
  auto run = [&] { gemm_bf16<<<grid, 256, 0, stream>>>(A, B, C, M, N, K); };
  const float ms = median_ms(run, 2, 10, stream);
  if (check) {  // a few entries against a double-precision dot product on the host
    std::vector<uint16_t> a(K), b(K);
    float c = 0;
    bool ok = true;
    for (int probe = 0; probe < 4; ++probe) {
      const int i = (probe * 2011) % M, j = (probe * 3037 + 5) % N;
      BENCH_CHECK(cudaMemcpy(a.data(), A + static_cast<size_t>(i) * K, 2 * K, cudaMemcpyDeviceToHost));
      BENCH_CHECK(cudaMemcpy(b.data(), B + static_cast<size_t>(j) * K, 2 * K, cudaMemcpyDeviceToHost));
      BENCH_CHECK(cudaMemcpy(&c, C + static_cast<size_t>(i) * N + j, 4, cudaMemcpyDeviceToHost));
      double want = 0;
      for (int k = 0; k < K; ++k) {
        uint32_t ua = static_cast<uint32_t>(a[k]) << 16, ub = static_cast<uint32_t>(b[k]) << 16;
        float fa, fb;
        std::memcpy(&fa, &ua, 4);
        std::memcpy(&fb, &ub, 4);
        want += static_cast<double>(fa) * fb;
      }
      if (std::fabs(c - want) > 1e-3 * std::max(1.0, std::sqrt(static_cast<double>(K)))) ok = false;
    }
    std::printf("gemm check: %s\n", ok ? "ok" : "WRONG (ceiling invalid)");
  }
  cudaFree(A);
  cudaFree(B);
  cudaFree(C);
  return 2.0 * M * N * K / (ms * 1e-3) / 1e12;
}

double measure_copy_gbs(cudaStream_t stream) {
  const size_t bytes = size_t(1) << 30;
  void *a, *b;
  BENCH_CHECK(cudaMalloc(&a, bytes));
  BENCH_CHECK(cudaMalloc(&b, bytes));
  BENCH_CHECK(cudaMemsetAsync(a, 1, bytes, stream));
  auto run = [&] { BENCH_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, stream)); };
  const float ms = median_ms(run, 2, 10, stream);
  cudaFree(a);
  cudaFree(b);
  return 2.0 * bytes / (ms * 1e-3) / 1e9;
}

struct Shape {
  int B, H, L, Sq;
  lkv_dtype dtype;
};

// gqa_decode at the CPU bench's shape (Llama-3-8B: H = 32, Hkv = 8, D = 128, pages of 64), bf16
// cache: bytes are the K and V rows read.
void bench_gqa(cudaStream_t stream, const lkv::cuda::DeviceLimits& limits, double copy_gbs, bool quick) {
  const int H = 32, KV = 8, D = 128, bs = 64;
  std::printf("\ngqa_decode H=%d Hkv=%d D=%d bf16 cache (tensor-core split kernel)\n", H, KV, D);
  std::printf("%4s %6s %10s %8s %6s\n", "B", "L", "us", "GB/s", "%copy");
  for (int B : quick ? std::vector<int>{1, 64} : std::vector<int>{1, 8, 64}) {
    for (int L : quick ? std::vector<int>{8192} : std::vector<int>{4096, 8192, 32768}) {
      const int per_seq = (L + bs - 1) / bs, blocks = B * per_seq;
      const size_t row_bytes = 2ull * 2 * KV * D;
      const size_t cache_bytes = static_cast<size_t>(blocks) * bs * row_bytes;
      uint8_t* cache;
      float *q, *out;
      int32_t *table, *lens;
      BENCH_CHECK(cudaMalloc(&cache, cache_bytes));
      BENCH_CHECK(cudaMalloc(&q, static_cast<size_t>(B) * H * D * 4));
      BENCH_CHECK(cudaMalloc(&out, static_cast<size_t>(B) * H * D * 4));
      BENCH_CHECK(cudaMalloc(&table, static_cast<size_t>(blocks) * 4));
      BENCH_CHECK(cudaMalloc(&lens, static_cast<size_t>(B) * 4));
      fill_random<<<2048, 256, 0, stream>>>(cache, cache_bytes, LKV_DTYPE_BF16, 21);
      fill_float<<<256, 256, 0, stream>>>(q, static_cast<size_t>(B) * H * D, 22, -1.0f, 1.0f);
      std::vector<int32_t> t(static_cast<size_t>(blocks)), l(static_cast<size_t>(B), L);
      std::iota(t.begin(), t.end(), 0);
      std::shuffle(t.begin(), t.end(), std::mt19937(5));
      BENCH_CHECK(cudaMemcpy(table, t.data(), t.size() * 4, cudaMemcpyHostToDevice));
      BENCH_CHECK(cudaMemcpy(lens, l.data(), l.size() * 4, cudaMemcpyHostToDevice));
      lkv_gqa_decode_params p{};
      p.batch = B;
      p.q_len = 1;
      p.num_heads = H;
      p.num_kv_heads = KV;
      p.head_dim = D;
      p.block_size = bs;
      p.num_blocks = blocks;
      p.max_blocks_per_seq = per_seq;
      p.cache_dtype = LKV_DTYPE_BF16;
      p.softmax_scale = 1.0f / std::sqrt(static_cast<float>(D));
      p.q = q;
      p.cache = cache;
      p.block_table = table;
      p.seq_lens = lens;
      p.out = out;
      lkv::cuda::AttentionPlan plan;
      const char* why = "";
      BENCH_CHECK(lkv::cuda::plan_gqa_decode(p, limits, &plan, &why));
      float* wf;
      int32_t* wi;
      BENCH_CHECK(cudaMalloc(&wf, plan.part_floats * 4));
      BENCH_CHECK(cudaMalloc(&wi, plan.sched_ints * 4));
      const float ms = median_ms([&] { BENCH_CHECK(lkv::cuda::launch_gqa_decode(p, plan, wf, wi, stream)); }, 3,
                                 quick ? 5 : 10, stream);
      const double gbs = static_cast<double>(B) * L * row_bytes / (ms * 1e-3) / 1e9;
      std::printf("%4d %6d %10.1f %8.0f %5.0f%%\n", B, L, ms * 1e3, gbs, 100 * gbs / copy_gbs);
      for (void* ptr : {static_cast<void*>(cache), static_cast<void*>(q), static_cast<void*>(out),
                        static_cast<void*>(table), static_cast<void*>(lens), static_cast<void*>(wf),
                        static_cast<void*>(wi)})
        cudaFree(ptr);
    }
  }
}

// mla_project_append at the CPU bench's shapes (E = 7168 and 2048, T = 1 and 64, bf16 cache):
// bytes are the weights read once per call, the term that bounds T = 1.
void bench_project_append(cudaStream_t stream, double copy_gbs) {
  const int R = 512, P = 64, bs = 64;
  std::printf("\nmla_project_append R=%d P=%d bf16 cache (GEMV over the GPU, then norm/RoPE/store)\n", R, P);
  std::printf("%6s %4s %5s %10s %8s %6s\n", "E", "T", "w", "us", "GB/s", "%copy");
  for (lkv_dtype wd : {LKV_DTYPE_BF16, LKV_DTYPE_F32}) {
    for (int E : {7168, 2048}) {
      for (int T : {1, 64}) {
        const size_t es = lkv_dtype_size(wd), wbytes = static_cast<size_t>(R + P) * E * es;
        const lkv_cache_layout lay = lkv::cache_layout(LKV_DTYPE_BF16, R, P);
        const int blocks = (T + bs - 1) / bs + 1;
        void* w;
        float *x, *gamma, *inv;
        int32_t* pos;
        int64_t* slots;
        uint8_t* cache;
        BENCH_CHECK(cudaMalloc(&w, wbytes));
        BENCH_CHECK(cudaMalloc(&x, static_cast<size_t>(T) * E * 4));
        BENCH_CHECK(cudaMalloc(&gamma, R * 4));
        BENCH_CHECK(cudaMalloc(&inv, P / 2 * 4));
        BENCH_CHECK(cudaMalloc(&pos, T * 4));
        BENCH_CHECK(cudaMalloc(&slots, T * 8));
        BENCH_CHECK(cudaMalloc(&cache, static_cast<size_t>(blocks) * bs * lay.row_bytes));
        fill_random<<<1024, 256, 0, stream>>>(static_cast<uint8_t*>(w), wbytes, wd, 31);
        fill_float<<<256, 256, 0, stream>>>(x, static_cast<size_t>(T) * E, 32, -1.0f, 1.0f);
        fill_float<<<4, 256, 0, stream>>>(gamma, R, 33, 0.5f, 1.5f);
        std::vector<int32_t> hp(static_cast<size_t>(T));
        std::vector<int64_t> hs(static_cast<size_t>(T));
        for (int t = 0; t < T; ++t) {
          hp[t] = 1000 + t;
          hs[t] = t;
        }
        BENCH_CHECK(cudaMemcpy(pos, hp.data(), T * 4, cudaMemcpyHostToDevice));
        BENCH_CHECK(cudaMemcpy(slots, hs.data(), T * 8, cudaMemcpyHostToDevice));
        lkv_mla_project_append_params p =
            lkv::bench::append_params(T, E, R, P, bs, blocks, wd, x, w, gamma, pos, slots, cache);
        std::vector<float> hinv(P / 2);
        lkv::rope_inv_freq(p.rope, P, hinv.data());
        BENCH_CHECK(cudaMemcpy(inv, hinv.data(), hinv.size() * 4, cudaMemcpyHostToDevice));
        float* ws;
        BENCH_CHECK(cudaMalloc(&ws, lkv::cuda::project_append_workspace_floats(p) * 4));
        const float ms =
            median_ms([&] { BENCH_CHECK(lkv::cuda::launch_mla_project_append(p, inv, ws, stream)); }, 3, 10, stream);
        cudaFree(ws);
        const double gbs = static_cast<double>(wbytes) / (ms * 1e-3) / 1e9;
        std::printf("%6d %4d %5s %10.1f %8.0f %5.0f%%\n", E, T, lkv_dtype_name(wd), ms * 1e3, gbs, 100 * gbs / copy_gbs);
        for (void* ptr : {w, static_cast<void*>(x), static_cast<void*>(gamma), static_cast<void*>(inv),
                          static_cast<void*>(pos), static_cast<void*>(slots), static_cast<void*>(cache)})
          cudaFree(ptr);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool quick = false;
  const char* csv_path = nullptr;
  // A bf16 matrix-product rate measured in the same run by a tuned library (cuBLAS through
  // PyTorch: native/tests/cuda/ceilings.py); the WMMA kernel here is only a lower bound.
  double given_gemm = 0;
  // --shape DTYPE,B,H,L,SQ: time this one shape (profilers); --no-ceilings skips the ceilings.
  const char* only = nullptr;
  bool ceilings = true;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--quick")) quick = true;
    else if (!std::strcmp(argv[i], "--csv") && i + 1 < argc) csv_path = argv[++i];
    else if (!std::strcmp(argv[i], "--gemm-ceiling") && i + 1 < argc) given_gemm = std::atof(argv[++i]);
    else if (!std::strcmp(argv[i], "--shape") && i + 1 < argc) only = argv[++i];
    else if (!std::strcmp(argv[i], "--no-ceilings")) ceilings = false;
  }
  int dev = 0;
  BENCH_CHECK(cudaSetDevice(dev));
  cudaDeviceProp prop{};
  BENCH_CHECK(cudaGetDeviceProperties(&prop, dev));
  lkv::cuda::DeviceLimits limits;
  limits.multiprocessors = prop.multiProcessorCount;
  BENCH_CHECK(cudaDeviceGetAttribute(&limits.smem_optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  cudaStream_t stream;
  BENCH_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  std::printf("device: %s sm_%d%d, %d SMs, L2 %d MB, smem opt-in %d KB\n", prop.name, prop.major, prop.minor,
              prop.multiProcessorCount, prop.l2CacheSize >> 20, limits.smem_optin >> 10);

  const double copy_gbs = ceilings ? measure_copy_gbs(stream) : 1.0;
  const double wmma_tflops = ceilings ? measure_gemm_tflops(stream, true) : 1.0;
  std::printf("ceilings: device-to-device copy %.0f GB/s (read + write); bf16 WMMA GEMM 8192^3 %.1f TFLOP/s\n",
              copy_gbs, wmma_tflops);
  const double gemm_tflops = given_gemm > wmma_tflops ? given_gemm : wmma_tflops;
  if (given_gemm > 0) std::printf("%%gemm is against %.1f TFLOP/s (--gemm-ceiling)\n", gemm_tflops);

  std::vector<Shape> shapes;
  const std::vector<int> batches = quick ? std::vector<int>{1, 64} : std::vector<int>{1, 8, 32, 64, 128};
  const std::vector<int> lens = quick ? std::vector<int>{8192} : std::vector<int>{4096, 8192, 16384, 32768};
  for (lkv_dtype d : {LKV_DTYPE_BF16, LKV_DTYPE_FP8_E4M3})
    for (int H : {16, 128})
      for (int B : batches)
        for (int L : lens) shapes.push_back({B, H, L, 1, d});
  shapes.push_back({64, 128, 8192, 2, LKV_DTYPE_BF16});  // MTP
  if (only) {
    char name[32] = {0};
    Shape one{1, 16, 8192, 1, LKV_DTYPE_BF16};
    if (std::sscanf(only, "%31[^,],%d,%d,%d,%d", name, &one.B, &one.H, &one.L, &one.Sq) != 5 ||
        (std::strcmp(name, "bf16") && std::strcmp(name, "fp8_e4m3"))) {
      std::fprintf(stderr, "--shape wants DTYPE,B,H,L,SQ with DTYPE bf16 or fp8_e4m3, got %s\n", only);
      return 2;
    }
    one.dtype = std::strcmp(name, "bf16") ? LKV_DTYPE_FP8_E4M3 : LKV_DTYPE_BF16;
    shapes.assign(1, one);
  }

  FILE* csv = csv_path ? std::fopen(csv_path, "w") : nullptr;
  if (csv) std::fprintf(csv, "dtype,B,H,L,Sq,splits_parts,us,GBps,copy_pct,TFLOPs,gemm_pct\n");
  std::printf("%-9s %4s %4s %6s %3s %6s %10s %8s %6s %8s %6s\n", "dtype", "B", "H", "L", "Sq", "parts", "us",
              "GB/s", "%copy", "TFLOP/s", "%gemm");
  const int R = 512, P = 64, bs = 64;
  size_t free_b = 0, total_b = 0;
  BENCH_CHECK(cudaMemGetInfo(&free_b, &total_b));
  bool api_timed_bf16 = false, api_timed_fp8 = false;
  for (const Shape& s : shapes) {
    const lkv_cache_layout layout = lkv::cache_layout(s.dtype, R, P);
    const int blocks_per_seq = (s.L + bs - 1) / bs;
    const int num_blocks = s.B * blocks_per_seq;
    const size_t cache_bytes = static_cast<size_t>(num_blocks) * bs * layout.row_bytes;
    if (cache_bytes > free_b / 2) {
      std::printf("%-9s %4d %4d %6d %3d  skipped: cache %.1f GB > half the free memory\n", lkv_dtype_name(s.dtype),
                  s.B, s.H, s.L, s.Sq, cache_bytes / 1e9);
      continue;
    }
    uint8_t* cache;
    BENCH_CHECK(cudaMalloc(&cache, cache_bytes));
    fill_random<<<2048, 256, 0, stream>>>(cache, cache_bytes, s.dtype, 7);
    if (lkv::is_quantized(s.dtype)) {
      fix_scales<<<1024, 256, 0, stream>>>(cache, static_cast<size_t>(num_blocks) * bs, layout.row_bytes,
                                           layout.scale_offset);
    }
    std::vector<int32_t> table(static_cast<size_t>(num_blocks));
    std::iota(table.begin(), table.end(), 0);
    std::shuffle(table.begin(), table.end(), std::mt19937(3));
    std::vector<int32_t> seq(static_cast<size_t>(s.B), s.L);
    const size_t q_rows = static_cast<size_t>(s.B) * s.Sq * s.H;
    float *q, *qr, *out, *lse;
    int32_t *d_table, *d_lens;
    BENCH_CHECK(cudaMalloc(&q, q_rows * R * 4));
    BENCH_CHECK(cudaMalloc(&qr, q_rows * P * 4));
    BENCH_CHECK(cudaMalloc(&out, q_rows * R * 4));
    BENCH_CHECK(cudaMalloc(&lse, q_rows * 4));
    BENCH_CHECK(cudaMalloc(&d_table, table.size() * 4));
    BENCH_CHECK(cudaMalloc(&d_lens, seq.size() * 4));
    BENCH_CHECK(cudaMemcpy(d_table, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
    BENCH_CHECK(cudaMemcpy(d_lens, seq.data(), seq.size() * 4, cudaMemcpyHostToDevice));
    fill_float<<<256, 256, 0, stream>>>(q, q_rows * R, 11, -1.0f, 1.0f);
    fill_float<<<256, 256, 0, stream>>>(qr, q_rows * P, 13, -1.0f, 1.0f);

    lkv_mla_decode_params p{};
    p.batch = s.B;
    p.q_len = s.Sq;
    p.num_heads = s.H;
    p.kv_lora_rank = R;
    p.rope_dim = P;
    p.rope_heads = 1;
    p.block_size = bs;
    p.num_blocks = num_blocks;
    p.max_blocks_per_seq = blocks_per_seq;
    p.cache_dtype = s.dtype;
    p.softmax_scale = 1.0f / std::sqrt(192.0f);
    p.q_latent = q;
    p.q_rope = qr;
    p.cache = cache;
    p.block_table = d_table;
    p.seq_lens = d_lens;
    p.out = out;
    p.lse = lse;
    lkv::cuda::AttentionPlan plan;
    const char* why = "";
    BENCH_CHECK(lkv::cuda::plan_mla_decode(p, limits, &plan, &why));
    float* wf;
    int32_t* wi;
    BENCH_CHECK(cudaMalloc(&wf, plan.part_floats * 4));
    BENCH_CHECK(cudaMalloc(&wi, plan.sched_ints * 4));
    auto run = [&] { BENCH_CHECK(lkv::cuda::launch_mla_decode(p, plan, wf, wi, stream)); };
    const float ms = median_ms(run, 3, quick ? 5 : 15, stream);
    const double bytes = static_cast<double>(s.B) * s.L * layout.row_bytes + q_rows * (R + P) * 4.0 + q_rows * R * 4.0;
    const double flops = 2.0 * s.B * s.Sq * s.H * static_cast<double>(s.L) * (R + P + R);
    const double gbs = bytes / (ms * 1e-3) / 1e9, tflops = flops / (ms * 1e-3) / 1e12;
    std::printf("%-9s %4d %4d %6d %3d %6d %10.1f %8.0f %5.0f%% %8.2f %5.1f%%\n", lkv_dtype_name(s.dtype), s.B, s.H,
                s.L, s.Sq, plan.num_parts, ms * 1e3, gbs, 100 * gbs / copy_gbs, tflops, 100 * tflops / gemm_tflops);
    if (csv) {
      std::fprintf(csv, "%s,%d,%d,%d,%d,%d,%.2f,%.1f,%.1f,%.3f,%.2f\n", lkv_dtype_name(s.dtype), s.B, s.H, s.L, s.Sq,
                   plan.num_parts, ms * 1e3, gbs, 100 * gbs / copy_gbs, tflops, 100 * tflops / gemm_tflops);
    }
    bool& api_timed = s.dtype == LKV_DTYPE_BF16 ? api_timed_bf16 : api_timed_fp8;
    if (!api_timed && s.B >= 32) {  // the public entry, validation included
      lkv_backend* backend = nullptr;
      lkv_error err{};
      if (lkv_backend_create("cuda", nullptr, &backend, &err) == LKV_OK) {
        auto api = [&] {
          if (lkv_mla_decode(backend, &p, &err) != LKV_OK) std::fprintf(stderr, "lkv_mla_decode: %s\n", err.message);
        };
        // The backend queues on its own stream: time with a device-wide sync instead of events.
        for (int i = 0; i < 3; ++i) api();
        BENCH_CHECK(cudaDeviceSynchronize());
        std::vector<double> t;
        for (int i = 0; i < 10; ++i) {
          cudaEvent_t e0, e1;
          cudaEventCreate(&e0);
          cudaEventCreate(&e1);
          cudaEventRecord(e0, nullptr);
          api();
          BENCH_CHECK(cudaDeviceSynchronize());
          cudaEventRecord(e1, nullptr);
          cudaEventSynchronize(e1);
          float m = 0;
          cudaEventElapsedTime(&m, e0, e1);
          t.push_back(m);
          cudaEventDestroy(e0);
          cudaEventDestroy(e1);
        }
        std::sort(t.begin(), t.end());
        std::printf("          lkv_mla_decode API call (validation + launch + sync): %.1f us (kernels %.1f us)\n",
                    t[t.size() / 2] * 1e3, ms * 1e3);
        lkv_backend_free(backend);
      } else {
        std::printf("          cuda backend: %s\n", err.message);
      }
      api_timed = true;
    }
    cudaFree(wf);
    cudaFree(wi);
    cudaFree(cache);
    cudaFree(q);
    cudaFree(qr);
    cudaFree(out);
    cudaFree(lse);
    cudaFree(d_table);
    cudaFree(d_lens);
  }
  if (csv) std::fclose(csv);
  if (!only) {
    bench_gqa(stream, limits, copy_gbs, quick);
    bench_project_append(stream, copy_gbs);
  }
  std::printf("targets (issue 7, H100): >= 80%% of copy GB/s at H=16, large B; >= 60%% of bf16 GEMM at H=128, B=64, L=8K\n");
  return 0;
}
