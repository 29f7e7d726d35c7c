/**
 * Symmetric eigendecomposition in float64: Householder reduction to tridiagonal form, then the
 * implicit symmetric QR iteration with Wilkinson shifts (Golub and Van Loan, algorithms 8.3.1 and
 * 8.3.2), accumulating every transformation into the eigenvector matrix. O(n^3), about 9 n^3 flops
 * with vectors. A cyclic Jacobi solver is kept beside it as an independent check for tests.
 */

export interface SymmetricEigen {
  /** Eigenvalues sorted in decreasing order. */
  values: Float64Array;
  /** [n, n] row-major; column j (vectors[i * n + j], i < n) is the unit eigenvector of values[j]. */
  vectors: Float64Array;
  n: number;
}

/** Eigenvalues and eigenvectors of the symmetric matrix `a` [n, n] (only read, never changed). */
export function eigh(a: ArrayLike<number>, n: number): SymmetricEigen {
  if (a.length !== n * n) throw new RangeError(`eigh: matrix has ${a.length} entries, expected ${n * n}`);
  if (n === 0) return { values: new Float64Array(0), vectors: new Float64Array(0), n };
  const m = Float64Array.from(a);
  for (let i = 0; i < m.length; i++) {
    if (!Number.isFinite(m[i]!)) throw new RangeError('eigh: matrix has a non-finite entry');
  }
  const z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  const d = new Float64Array(n);
  const e = new Float64Array(Math.max(0, n - 1));
  tridiagonalize(m, n, z, d, e);
  tridiagonalQr(d, e, z, n);
  return sortDescending(d, z, n);
}

/** Reduces m (symmetric, overwritten) to T = Q^T m Q; multiplies Q into z; writes diag d, subdiag e. */
function tridiagonalize(m: Float64Array, n: number, z: Float64Array, d: Float64Array, e: Float64Array): void {
  const v = new Float64Array(n);
  const p = new Float64Array(n);
  for (let k = 0; k < n - 2; k++) {
    const start = k + 1;
    let alpha = 0;
    for (let i = start; i < n; i++) alpha += m[i * n + k]! * m[i * n + k]!;
    alpha = Math.sqrt(alpha);
    if (alpha === 0) continue;
    const x0 = m[start * n + k]!;
    const sign = x0 >= 0 ? 1 : -1;
    let vNorm2 = 0;
    for (let i = start; i < n; i++) {
      v[i] = m[i * n + k]!;
      if (i === start) v[i] = v[i]! + sign * alpha;
      vNorm2 += v[i]! * v[i]!;
    }
    if (vNorm2 === 0) continue;
    const beta = 2 / vNorm2;
    // p = beta * A22 v; K = beta/2 * v.p; w = p - K v; A22 -= v w^T + w v^T.
    let vp = 0;
    for (let i = start; i < n; i++) {
      let s = 0;
      const row = i * n;
      for (let j = start; j < n; j++) s += m[row + j]! * v[j]!;
      p[i] = beta * s;
      vp += v[i]! * p[i]!;
    }
    const kk = (beta * vp) / 2;
    for (let i = start; i < n; i++) p[i] = p[i]! - kk * v[i]!;
    for (let i = start; i < n; i++) {
      const row = i * n;
      const vi = v[i]!;
      const wi = p[i]!;
      for (let j = start; j < n; j++) m[row + j] = m[row + j]! - vi * p[j]! - wi * v[j]!;
    }
    m[start * n + k] = -sign * alpha;
    m[k * n + start] = -sign * alpha;
    for (let i = start + 1; i < n; i++) {
      m[i * n + k] = 0;
      m[k * n + i] = 0;
    }
    // z <- z H on columns start..n-1.
    for (let r = 0; r < n; r++) {
      const row = r * n;
      let s = 0;
      for (let j = start; j < n; j++) s += z[row + j]! * v[j]!;
      s *= beta;
      if (s === 0) continue;
      for (let j = start; j < n; j++) z[row + j] = z[row + j]! - s * v[j]!;
    }
  }
  for (let i = 0; i < n; i++) d[i] = m[i * n + i]!;
  for (let i = 0; i < n - 1; i++) e[i] = m[(i + 1) * n + i]!;
}

/** Diagonalises the tridiagonal (d, e) in place by implicit shifted QR, rotating the columns of z. */
function tridiagonalQr(d: Float64Array, e: Float64Array, z: Float64Array, n: number): void {
  const eps = Number.EPSILON;
  let end = n - 1;
  let iterations = 0;
  const maxIterations = 60 * n + 100;
  while (end > 0) {
    for (let i = 0; i < end; i++) {
      if (Math.abs(e[i]!) <= eps * (Math.abs(d[i]!) + Math.abs(d[i + 1]!))) e[i] = 0;
    }
    if (e[end - 1] === 0) {
      end--;
      continue;
    }
    let start = end - 1;
    while (start > 0 && e[start - 1] !== 0) start--;
    if (++iterations > maxIterations) throw new Error('eigh: QR iteration did not converge');
    // Wilkinson shift from the trailing 2x2 block.
    const dd = (d[end - 1]! - d[end]!) / 2;
    const b = e[end - 1]!;
    const denom = dd + (dd >= 0 ? 1 : -1) * Math.hypot(dd, b);
    const mu = d[end]! - (denom === 0 ? 0 : (b * b) / denom);
    let x = d[start]! - mu;
    let bulge = e[start]!;
    for (let k = start; k < end; k++) {
      const r = Math.hypot(x, bulge);
      const c = r === 0 ? 1 : x / r;
      const s = r === 0 ? 0 : -bulge / r;
      if (k > start) e[k - 1] = c * x - s * bulge;
      const a = d[k]!;
      const bb = d[k + 1]!;
      const f = e[k]!;
      d[k] = c * c * a - 2 * c * s * f + s * s * bb;
      d[k + 1] = s * s * a + 2 * c * s * f + c * c * bb;
      e[k] = c * s * (a - bb) + (c * c - s * s) * f;
      if (k < end - 1) {
        const g = e[k + 1]!;
        bulge = -s * g;
        e[k + 1] = c * g;
        x = e[k]!;
      }
      for (let i = 0; i < n; i++) {
        const row = i * n;
        const zk = z[row + k]!;
        const zk1 = z[row + k + 1]!;
        z[row + k] = c * zk - s * zk1;
        z[row + k + 1] = s * zk + c * zk1;
      }
    }
  }
}

function sortDescending(d: Float64Array, z: Float64Array, n: number): SymmetricEigen {
  const order = Array.from({ length: n }, (_, i) => i).sort((i, j) => d[j]! - d[i]!);
  const values = new Float64Array(n);
  const vectors = new Float64Array(n * n);
  order.forEach((from, to) => {
    values[to] = d[from]!;
    for (let i = 0; i < n; i++) vectors[i * n + to] = z[i * n + from]!;
  });
  return { values, vectors, n };
}

/** Cyclic Jacobi eigen-solver: slow (about 10 sweeps of 6 n^3) but simple; the tests' reference. */
export function eighJacobi(a: ArrayLike<number>, n: number): SymmetricEigen {
  const m = Float64Array.from(a);
  const z = new Float64Array(n * n);
  for (let i = 0; i < n; i++) z[i * n + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let total = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        const v = m[i * n + j]! * m[i * n + j]!;
        total += v;
        if (i !== j) off += v;
      }
    }
    if (off <= 1e-30 * total || off === 0) break;
    for (let p = 0; p < n - 1; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = m[p * n + q]!;
        if (apq === 0) continue;
        const theta = (m[q * n + q]! - m[p * n + p]!) / (2 * apq);
        const t = (theta >= 0 ? 1 : -1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < n; k++) {
          const mkp = m[k * n + p]!;
          const mkq = m[k * n + q]!;
          m[k * n + p] = c * mkp - s * mkq;
          m[k * n + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < n; k++) {
          const mpk = m[p * n + k]!;
          const mqk = m[q * n + k]!;
          m[p * n + k] = c * mpk - s * mqk;
          m[q * n + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < n; k++) {
          const zkp = z[k * n + p]!;
          const zkq = z[k * n + q]!;
          z[k * n + p] = c * zkp - s * zkq;
          z[k * n + q] = s * zkp + c * zkq;
        }
      }
    }
  }
  const d = new Float64Array(n);
  for (let i = 0; i < n; i++) d[i] = m[i * n + i]!;
  return sortDescending(d, z, n);
}
