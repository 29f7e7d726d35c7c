/** Names of the storage types and CPU ISAs, and their numeric values in the C ABI. */

export const CACHE_DTYPES = ['f32', 'f16', 'bf16', 'int8', 'fp8_e4m3'] as const;
export type CacheDtype = (typeof CACHE_DTYPES)[number];

export const WEIGHT_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type WeightDtype = (typeof WEIGHT_DTYPES)[number];

/** lkv_dtype values. */
export const DTYPE_CODE: Record<CacheDtype, number> = { f32: 0, f16: 1, bf16: 2, int8: 3, fp8_e4m3: 4 };

export const CPU_ISAS = ['auto', 'scalar', 'avx2', 'avx512', 'avx512bf16', 'neon'] as const;
export type CpuIsa = (typeof CPU_ISAS)[number];

/** lkv_cpu_isa values. */
export const CPU_ISA_CODE: Record<CpuIsa, number> = {
  auto: -1,
  scalar: 0,
  avx2: 1,
  avx512: 2,
  avx512bf16: 3,
  neon: 4,
};

export function isaFromCode(code: number): CpuIsa {
  const found = CPU_ISAS.find((name) => CPU_ISA_CODE[name] === code);
  return found ?? 'scalar';
}

/** Names of the ISAs whose bit is set in a lkv mask (bit 1 << code). */
export function isasInMask(mask: number): CpuIsa[] {
  return CPU_ISAS.filter((name) => name !== 'auto' && (mask & (1 << CPU_ISA_CODE[name])) !== 0);
}

export const BACKEND_NAMES = ['auto', 'cpu', 'cuda', 'cann'] as const;
export type BackendName = (typeof BACKEND_NAMES)[number];
