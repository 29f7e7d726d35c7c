/**
 * Fast Walsh-Hadamard transform (orthonormal: scaled by 1/sqrt(n)), and its randomised form
 * H diag(signs), the orthogonal mixing used to spread outliers before a latent is sharded or
 * quantised (TPLA reparameterisation). n must be a power of two.
 */
import { createRng } from '../model/sampling.js';

export function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

/** In place: x <- H x / sqrt(n) over x[offset .. offset + n). Its own inverse. */
export function hadamardTransform(x: Float64Array | Float32Array, n = x.length, offset = 0): void {
  if (!isPowerOfTwo(n)) throw new RangeError(`Hadamard transform length must be a power of two, got ${n}`);
  for (let half = 1; half < n; half *= 2) {
    for (let start = 0; start < n; start += 2 * half) {
      for (let i = start; i < start + half; i++) {
        const a = x[offset + i]!;
        const b = x[offset + i + half]!;
        x[offset + i] = a + b;
        x[offset + i + half] = a - b;
      }
    }
  }
  const scale = 1 / Math.sqrt(n);
  for (let i = 0; i < n; i++) x[offset + i] = x[offset + i]! * scale;
}

/** Random signs (+1/-1) from a seed, for a randomised Hadamard rotation. */
export function randomSigns(n: number, seed: number): Float64Array {
  const rng = createRng(seed);
  return Float64Array.from({ length: n }, () => (rng() < 0.5 ? -1 : 1));
}

/** The orthogonal matrix Q = H diag(signs) / sqrt(n) as a dense [n, n] row-major array. */
export function randomizedHadamardMatrix(n: number, seed: number): Float64Array {
  const signs = randomSigns(n, seed);
  const out = new Float64Array(n * n);
  const column = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    column.fill(0);
    column[j] = signs[j]!;
    hadamardTransform(column);
    for (let i = 0; i < n; i++) out[i * n + j] = column[i]!;
  }
  return out;
}
