import { describe, expect, it } from 'vitest';
import { eigh, eighJacobi } from '../../lib/linalg/eigh.js';
import { hadamardTransform, randomizedHadamardMatrix } from '../../lib/linalg/hadamard.js';
import { matMul, matMulBt, transpose } from '../../lib/linalg/matrix.js';
import { principalComponents, psdFactor, svd } from '../../lib/linalg/svd.js';
import { createRng } from '../../lib/model/sampling.js';

function randomMatrix(rows: number, cols: number, seed: number): Float64Array {
  const rng = createRng(seed);
  return Float64Array.from({ length: rows * cols }, () => rng() * 2 - 1);
}

function randomSymmetric(n: number, seed: number): Float64Array {
  const a = randomMatrix(n, n, seed);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) s[i * n + j] = a[i * n + j]! + a[j * n + i]!;
  return s;
}

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe('eigh (Householder + implicit QR)', () => {
  for (const n of [1, 2, 3, 7, 40, 129]) {
    it(`reconstructs A = V diag(w) V^T and V^T V = I for n = ${n}`, () => {
      const a = randomSymmetric(n, n);
      const { values, vectors } = eigh(a, n);
      for (let j = 1; j < n; j++) expect(values[j]!).toBeLessThanOrEqual(values[j - 1]!);
      const vd = new Float64Array(n * n);
      for (let i = 0; i < n; i++)
        for (let j = 0; j < n; j++) vd[i * n + j] = vectors[i * n + j]! * values[j]!;
      const rebuilt = matMulBt(vd, vectors, n, n, n);
      expect(maxAbs(rebuilt, a)).toBeLessThan(1e-11 * n);
      const gram = matMul(transpose(vectors, n, n), vectors, n, n, n);
      for (let i = 0; i < n; i++) gram[i * n + i] = gram[i * n + i]! - 1;
      expect(maxAbs(gram, new Float64Array(n * n))).toBeLessThan(1e-12 * n);
    });
  }

  it('agrees with the Jacobi solver, including repeated eigenvalues', () => {
    const n = 12;
    // Q diag(3,3,3,1,1,0,...) Q^T with a random orthogonal Q: degenerate eigenvalues.
    const q = eigh(randomSymmetric(n, 5), n).vectors;
    const diag = [3, 3, 3, 1, 1, 0, 0, 0, -2, -2, 5, 0.5];
    const qd = new Float64Array(n * n);
    for (let i = 0; i < n; i++) for (let j = 0; j < n; j++) qd[i * n + j] = q[i * n + j]! * diag[j]!;
    const a = matMulBt(qd, q, n, n, n);
    const fast = eigh(a, n);
    const slow = eighJacobi(a, n);
    expect(maxAbs(fast.values, slow.values)).toBeLessThan(1e-12);
    expect(Array.from(fast.values).map((v) => Math.round(v * 1e9) / 1e9 + 0)).toEqual(
      [...diag].sort((x, y) => y - x),
    );
  });

  it('handles diagonal, zero and already tridiagonal matrices', () => {
    expect(Array.from(eigh(new Float64Array([2, 0, 0, 5]), 2).values)).toEqual([5, 2]);
    expect(Array.from(eigh(new Float64Array(9), 3).values)).toEqual([0, 0, 0]);
    expect(() => eigh(new Float64Array([1, Number.NaN, Number.NaN, 1]), 2)).toThrow(/non-finite/);
  });
});

describe('svd and principal components', () => {
  it('thin SVD reconstructs wide and tall matrices', () => {
    for (const [m, n] of [
      [5, 9],
      [9, 5],
    ] as const) {
      const a = randomMatrix(m, n, m * 10 + n);
      const { u, s, vt, k } = svd(a, m, n);
      const us = new Float64Array(m * k);
      for (let i = 0; i < m; i++) for (let j = 0; j < k; j++) us[i * k + j] = u[i * k + j]! * s[j]!;
      expect(maxAbs(matMul(us, vt, m, k, n), a)).toBeLessThan(1e-12);
    }
  });

  it('the factored path (rows > cols) gives the same leading subspace as the direct one', () => {
    const rows = 30;
    const cols = 10;
    const m = randomMatrix(rows, cols, 3);
    const x = randomMatrix(50, cols, 4);
    const c = matMul(transpose(x, 50, cols), x, cols, 50, cols);
    const direct = principalComponents(m, c, rows, cols, 6);
    const factored = principalComponents(m, c, rows, cols, 6, psdFactor(c, cols));
    expect(maxAbs(direct.values, factored.values)).toBeLessThan(1e-9 * direct.values[0]!);
    expect(Math.abs(direct.total - factored.total)).toBeLessThan(1e-9 * direct.total);
    // Same projector (columns may differ in sign).
    const p1 = matMulBt(direct.basis, direct.basis, rows, 6, rows);
    const p2 = matMulBt(factored.basis, factored.basis, rows, 6, rows);
    expect(maxAbs(p1, p2)).toBeLessThan(1e-9);
  });
});

describe('Hadamard transform', () => {
  it('is orthonormal and its own inverse', () => {
    const x = randomMatrix(1, 16, 9);
    const y = Float64Array.from(x);
    hadamardTransform(y);
    let nx = 0;
    let ny = 0;
    for (let i = 0; i < 16; i++) {
      nx += x[i]! ** 2;
      ny += y[i]! ** 2;
    }
    expect(Math.abs(nx - ny)).toBeLessThan(1e-12);
    hadamardTransform(y);
    expect(maxAbs(x, y)).toBeLessThan(1e-14);
    const q = randomizedHadamardMatrix(8, 1);
    const qtq = matMul(transpose(q, 8, 8), q, 8, 8, 8);
    for (let i = 0; i < 8; i++) qtq[i * 8 + i] = qtq[i * 8 + i]! - 1;
    expect(maxAbs(qtq, new Float64Array(64))).toBeLessThan(1e-14);
    expect(() => hadamardTransform(new Float64Array(6))).toThrow(/power of two/);
  });
});
