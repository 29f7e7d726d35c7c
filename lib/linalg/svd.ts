/**
 * Thin SVD and principal components in float64, through the symmetric eigendecomposition of the
 * smaller Gram matrix. Squaring the singular values costs half the relative precision of the small
 * ones; for low-rank approximation (which keeps the large ones) that is harmless.
 */
import { eigh } from './eigh.js';
import { congruence, matMul, matMulAt, matMulBt, type ReadMatrix } from './matrix.js';

export interface ThinSvd {
  /** [m, k], orthonormal columns (a column is zero where its singular value is zero). */
  u: Float64Array;
  /** [k], decreasing. */
  s: Float64Array;
  /** [k, n], orthonormal rows (a row is zero where its singular value is zero). */
  vt: Float64Array;
  k: number;
}

/** Relative size below which a squared singular value counts as zero. */
const RANK_TOLERANCE = 1e-13;

/** The `rank` leading singular triplets of A [m, n] (rank <= min(m, n); default min(m, n)). */
export function svd(a: ReadMatrix, m: number, n: number, rank = Math.min(m, n)): ThinSvd {
  const k = Math.min(rank, m, n);
  const u = new Float64Array(m * k);
  const s = new Float64Array(k);
  const vt = new Float64Array(k * n);
  if (m <= n) {
    const { values, vectors } = eigh(matMulBt(a, a, m, n, m), m);
    const cut = Math.max(0, values[0] ?? 0) * RANK_TOLERANCE;
    for (let j = 0; j < k; j++) {
      const lambda = values[j]!;
      if (!(lambda > cut)) continue;
      const sigma = Math.sqrt(lambda);
      s[j] = sigma;
      for (let i = 0; i < m; i++) u[i * k + j] = vectors[i * m + j]!;
      // v_j = A^T u_j / sigma
      for (let i = 0; i < m; i++) {
        const uij = vectors[i * m + j]! / sigma;
        if (uij === 0) continue;
        for (let c = 0; c < n; c++) vt[j * n + c] = vt[j * n + c]! + uij * a[i * n + c]!;
      }
    }
  } else {
    const ata = matMulAt(a, a, m, n, n);
    const { values, vectors } = eigh(ata, n);
    const cut = Math.max(0, values[0] ?? 0) * RANK_TOLERANCE;
    for (let j = 0; j < k; j++) {
      const lambda = values[j]!;
      if (!(lambda > cut)) continue;
      const sigma = Math.sqrt(lambda);
      s[j] = sigma;
      for (let c = 0; c < n; c++) vt[j * n + c] = vectors[c * n + j]!;
      for (let i = 0; i < m; i++) {
        let sum = 0;
        for (let c = 0; c < n; c++) sum += a[i * n + c]! * vectors[c * n + j]!;
        u[i * k + j] = sum / sigma;
      }
    }
  }
  return { u, s, vt, k };
}

/** A factor L [n, n] with C = L L^T for a symmetric positive semi-definite C (negative modes dropped). */
export function psdFactor(c: ReadMatrix, n: number): Float64Array {
  const { values, vectors } = eigh(c, n);
  const out = new Float64Array(n * n);
  for (let j = 0; j < n; j++) {
    const root = Math.sqrt(Math.max(0, values[j]!));
    if (root === 0) continue;
    for (let i = 0; i < n; i++) out[i * n + j] = vectors[i * n + j]! * root;
  }
  return out;
}

export interface PrincipalComponents {
  /** [rows, rank]: column j is the j-th principal direction (zero past the data's rank). */
  basis: Float64Array;
  /** [rank] second-moment eigenvalues, decreasing. */
  values: Float64Array;
  /** Sum of all eigenvalues (the total second moment), for explained-energy ratios. */
  total: number;
  rank: number;
}

/**
 * Leading eigenvectors of S = M C M^T, the uncentred second moment of y = M x when C is the second
 * moment of x (M [rows, cols]). With `factor` (C = L L^T) and rows > cols, it works in the smaller
 * cols-dimensional space: S = B B^T with B = M L, whose left singular vectors are S's eigenvectors.
 * Directions past the rank of S come back as zero columns: for any x in the span of the data they
 * carry nothing, so a rank-`rank` projection with them is still exact on that span.
 */
export function principalComponents(
  m: ReadMatrix,
  c: ReadMatrix,
  rows: number,
  cols: number,
  rank: number,
  factor?: ReadMatrix,
): PrincipalComponents {
  if (!(Number.isInteger(rank) && rank >= 0 && rank <= rows)) {
    throw new RangeError(`principal components: rank ${rank} must be an integer in [0, ${rows}]`);
  }
  const basis = new Float64Array(rows * rank);
  const values = new Float64Array(rank);
  if (factor === undefined || rows <= cols) {
    return principalComponentsOfMoment(congruence(m, c, rows, cols), rows, rank);
  }
  const b = matMul(m, factor, rows, cols, cols);
  const { u, s } = svd(b, rows, cols, Math.min(rank, cols));
  const k = s.length;
  let total = 0;
  for (let i = 0; i < b.length; i++) total += b[i]! * b[i]!;
  for (let j = 0; j < k; j++) {
    values[j] = s[j]! * s[j]!;
    for (let i = 0; i < rows; i++) basis[i * rank + j] = u[i * k + j]!;
  }
  return { basis, values, total, rank };
}

/** Leading eigenvectors of a second-moment matrix S [rows, rows] that is already formed. */
export function principalComponentsOfMoment(s: ReadMatrix, rows: number, rank: number): PrincipalComponents {
  if (!(Number.isInteger(rank) && rank >= 0 && rank <= rows)) {
    throw new RangeError(`principal components: rank ${rank} must be an integer in [0, ${rows}]`);
  }
  const basis = new Float64Array(rows * rank);
  const values = new Float64Array(rank);
  let total = 0;
  for (let i = 0; i < rows; i++) total += s[i * rows + i]!;
  const eig = eigh(s, rows);
  for (let j = 0; j < rank; j++) {
    values[j] = eig.values[j]!;
    for (let i = 0; i < rows; i++) basis[i * rank + j] = eig.vectors[i * rows + j]!;
  }
  return { basis, values, total, rank };
}
