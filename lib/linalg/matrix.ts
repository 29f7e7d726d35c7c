/**
 * Dense float64 matrix helpers for the conversion pipeline. Matrices are row-major Float64Array
 * (or Float32Array inputs) with explicit row/column counts; nothing here allocates more than its
 * result.
 */

export type Matrix = Float64Array;
export type ReadMatrix = Float64Array | Float32Array;

/** C = A B with A [m, k] and B [k, n]. */
export function matMul(a: ReadMatrix, b: ReadMatrix, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const outRow = i * n;
    for (let p = 0; p < k; p++) {
      const aip = a[i * k + p]!;
      if (aip === 0) continue;
      const bRow = p * n;
      for (let j = 0; j < n; j++) out[outRow + j] = out[outRow + j]! + aip * b[bRow + j]!;
    }
  }
  return out;
}

/** C = A B^T with A [m, k] and B [n, k]: dot products of rows. */
export function matMulBt(a: ReadMatrix, b: ReadMatrix, m: number, k: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let i = 0; i < m; i++) {
    const aRow = i * k;
    for (let j = 0; j < n; j++) {
      const bRow = j * k;
      let sum = 0;
      for (let p = 0; p < k; p++) sum += a[aRow + p]! * b[bRow + p]!;
      out[i * n + j] = sum;
    }
  }
  return out;
}

/** C = A^T B with A [k, m] and B [k, n]. */
export function matMulAt(a: ReadMatrix, b: ReadMatrix, k: number, m: number, n: number): Float64Array {
  const out = new Float64Array(m * n);
  for (let p = 0; p < k; p++) {
    const aRow = p * m;
    const bRow = p * n;
    for (let i = 0; i < m; i++) {
      const api = a[aRow + i]!;
      if (api === 0) continue;
      const outRow = i * n;
      for (let j = 0; j < n; j++) out[outRow + j] = out[outRow + j]! + api * b[bRow + j]!;
    }
  }
  return out;
}

export function transpose(a: ReadMatrix, rows: number, cols: number): Float64Array {
  const out = new Float64Array(rows * cols);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

/** A C A^T for A [m, n] and symmetric C [n, n]: the second moment of A x when C is that of x. */
export function congruence(a: ReadMatrix, c: ReadMatrix, m: number, n: number): Float64Array {
  const ac = matMul(a, c, m, n, n);
  const out = matMulBt(ac, a, m, n, m);
  symmetrize(out, m);
  return out;
}

/** Replaces A by (A + A^T) / 2 in place. */
export function symmetrize(a: Float64Array, n: number): void {
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = 0.5 * (a[i * n + j]! + a[j * n + i]!);
      a[i * n + j] = v;
      a[j * n + i] = v;
    }
  }
}

/** Rows `rows` (in that order) of a [*, cols] matrix, as a new float64 matrix. */
export function pickRows(a: ReadMatrix, cols: number, rows: ArrayLike<number>): Float64Array {
  const out = new Float64Array(rows.length * cols);
  for (let i = 0; i < rows.length; i++) {
    const from = rows[i]! * cols;
    for (let j = 0; j < cols; j++) out[i * cols + j] = a[from + j]!;
  }
  return out;
}

/** Columns [from, from + count) of a [rows, cols] matrix. */
export function pickColumns(
  a: ReadMatrix,
  rows: number,
  cols: number,
  from: number,
  count: number,
): Float64Array {
  const out = new Float64Array(rows * count);
  for (let i = 0; i < rows; i++) for (let j = 0; j < count; j++) out[i * count + j] = a[i * cols + from + j]!;
  return out;
}

export function identity(n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) out[i * n + i] = 1;
  return out;
}

export function frobeniusNorm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * a[i]!;
  return Math.sqrt(s);
}

export function toFloat32(a: ArrayLike<number>): Float32Array {
  return Float32Array.from(a);
}
