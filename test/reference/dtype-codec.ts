/**
 * Independent TypeScript encoders/decoders for the cache storage types, so the tests check
 * the native rounding instead of reusing it.
 */

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

export function bf16ToF32(h: number): number {
  u32[0] = h << 16;
  return f32[0] as number;
}

export function f32ToBf16(x: number): number {
  f32[0] = x;
  const u = u32[0] as number;
  if (Number.isNaN(f32[0])) return 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? Number.NaN : sign * Number.POSITIVE_INFINITY;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** Nearest f16 code by search over the codes' values (slow, obviously right). */
export function f32ToF16(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(Math.fround(x));
  if (a >= 65520) return sign | 0x7c00;
  let lo = 0;
  let hi = 0x7bff;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (f16ToF32(mid) <= a) lo = mid;
    else hi = mid - 1;
  }
  const below = lo;
  const above = Math.min(lo + 1, 0x7c00);
  const dBelow = a - f16ToF32(below);
  const dAbove = f16ToF32(above) - a;
  const pick = dBelow < dAbove || (dBelow === dAbove && below % 2 === 0) ? below : above;
  return sign | pick;
}

export function fp8ToF32(v: number): number {
  const sign = v & 0x80 ? -1 : 1;
  const exp = (v >> 3) & 0xf;
  const mant = v & 7;
  if (exp === 15 && mant === 7) return Number.NaN;
  if (exp === 0) return sign * mant * 2 ** -9;
  return sign * (1 + mant / 8) * 2 ** (exp - 7);
}

export function f32ToFp8(x: number): number {
  if (Number.isNaN(x)) return 0x7f;
  const sign = x < 0 ? 0x80 : 0;
  const a = Math.abs(x);
  if (a >= 448) return sign | 0x7e;
  let best = 0;
  let bestDiff = Number.POSITIVE_INFINITY;
  for (let v = 0; v <= 0x7e; v++) {
    const d = Math.abs(fp8ToF32(v) - a);
    if (d < bestDiff || (d === bestDiff && v % 2 === 0)) {
      best = v;
      bestDiff = d;
    }
  }
  return sign | best;
}
