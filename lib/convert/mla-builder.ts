/**
 * The part every conversion shares: given, for one layer, how the keys split into a RoPE part (rope
 * key rows plus the query rows that meet them) and a NoPE part (key features plus, per head, the map
 * from those features into the head's q_nope space), compress [K_nope ; V] into one latent and write
 * the DeepSeek-layout weights. Everything is float64 until the final Float32Array.
 *
 * Notation per layer: E model width, H query heads, g KV heads, hd head dim, Dn q_nope dims per head,
 * P rope dims per rope head, nNope key features, r latent rank.
 */
import { eigh } from '../linalg/eigh.js';
import { congruence, matMul, type ReadMatrix } from '../linalg/matrix.js';
import { principalComponents, principalComponentsOfMoment, svd } from '../linalg/svd.js';

/** How [K_nope ; V] becomes the latent. */
export type Decomposition =
  /** TransMLA: PCA of calibration activations (BKV-balanced unless bkv is false). */
  | 'pca'
  /** MHA2MLA SVD_joint: truncated SVD of the stacked weights, no activations. */
  | 'svd-joint'
  /** MHA2MLA SVD_split: separate SVDs of K_nope and V weights, half the rank each. */
  | 'svd-split'
  /**
   * latentkv: PCA in the metric of what attention computes: K_nope errors weighted by the second
   * moment of the queries that score them, V errors by what o_proj makes of them.
   */
  | 'attention';

/** The RoPE/NoPE split of one layer's keys, produced by a method's first stage. */
export interface RopeSplit {
  /** Per rope head rope dims P (even). */
  ropeDim: number;
  ropeHeads: number;
  /** [ropeHeads * P, E] pre-RoPE rope key rows, interleaved pairs (2p, 2p+1). */
  ropeKeyRows: Float64Array;
  /** Per query head [P, hd]: q_rope_h = coef q_h (q_h the original pre-RoPE query of head h). */
  qRopeCoef: Float64Array[];
  /** q_nope dims per head. */
  nopeDim: number;
  /** Per query head [Dn, hd]: q_nope_h = coef q_h; null means the identity (Dn = hd). */
  qNopeCoef: Float64Array[] | null;
  /** Number of NoPE key features. */
  nopeFeatures: number;
  /** [nNope, E] NoPE key feature rows. */
  kNopeRows: Float64Array;
  /** Per query head [Dn, nNope]: the head's NoPE score is q_nope_h . (kUp_h k_nope). */
  kUp: Float64Array[];
}

export interface LayerSource {
  wq: Float32Array;
  wk: Float32Array;
  wv: Float32Array;
  wo: Float32Array;
}

export interface Dims {
  E: number;
  H: number;
  g: number;
  hd: number;
}

export interface DecomposeOptions {
  decomposition: Decomposition;
  /** Latent rank r. */
  rank: number;
  /** BKV balancing before 'pca' (TransMLA default on). */
  bkv: boolean;
  /** 'attention' only: extra weight of the K part relative to V after balancing (default 1). */
  keyWeight?: number;
}

export interface LatentFactors {
  /** [r, E] latent rows of kv_a_proj_with_mqa. */
  latentRows: Float64Array;
  /** [nNope, r]: k_nope ~ kRecon c. */
  kRecon: Float64Array;
  /** [g*hd, r]: v ~ vRecon c. */
  vRecon: Float64Array;
  /** BKV ratio alpha used (1 when none). */
  alpha: number;
  /** Fraction of the (weighted) second moment the latent keeps, where the method defines one. */
  explained: number | null;
}

/** diag(W C W^T) for W [rows, E]. */
function rowEnergies(w: ReadMatrix, c: ReadMatrix, rows: number, E: number): Float64Array {
  const out = new Float64Array(rows);
  const tmp = new Float64Array(E);
  for (let r = 0; r < rows; r++) {
    tmp.fill(0);
    for (let i = 0; i < E; i++) {
      const wi = w[r * E + i]!;
      if (wi === 0) continue;
      const row = i * E;
      for (let j = 0; j < E; j++) tmp[j] = tmp[j]! + wi * c[row + j]!;
    }
    let s = 0;
    for (let j = 0; j < E; j++) s += tmp[j]! * w[r * E + j]!;
    out[r] = s;
  }
  return out;
}

/**
 * TransMLA code's BKV ratio: mean over features of each feature's L2 norm over all calibration
 * tokens, K over V (research/mla-methods.md 2.5; the paper's per-token mean differs).
 */
export function bkvRatio(
  kRows: ReadMatrix,
  vRows: ReadMatrix,
  kCount: number,
  vCount: number,
  c: ReadMatrix,
  E: number,
): number {
  if (kCount === 0) return 1;
  const meanNorm = (rows: ReadMatrix, count: number): number => {
    const e = rowEnergies(rows, c, count, E);
    let s = 0;
    for (let i = 0; i < count; i++) s += Math.sqrt(Math.max(0, e[i]!));
    return s / count;
  };
  const k = meanNorm(kRows, kCount);
  const v = meanNorm(vRows, vCount);
  return v > 0 && k > 0 ? k / v : 1;
}

function stack(a: Float64Array, b: ReadMatrix): Float64Array {
  const out = new Float64Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/** Symmetric M^(1/2) and M^(-1/2), eigenvalues floored at `floor` * max for the inverse. */
function sqrtAndInverse(
  m: Float64Array,
  n: number,
  floor = 1e-8,
): { root: Float64Array; inverse: Float64Array } {
  const { values, vectors } = eigh(m, n);
  const cut = Math.max(values[0] ?? 0, 0) * floor;
  const root = new Float64Array(n * n);
  const inverse = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const lambda = Math.max(values[k]!, cut);
    if (!(lambda > 0)) continue;
    const s = Math.sqrt(lambda);
    for (let i = 0; i < n; i++) {
      const vi = vectors[i * n + k]!;
      if (vi === 0) continue;
      for (let j = 0; j < n; j++) {
        const p = vi * vectors[j * n + k]!;
        root[i * n + j] = root[i * n + j]! + s * p;
        inverse[i * n + j] = inverse[i * n + j]! + p / s;
      }
    }
  }
  return { root, inverse };
}

/** Compresses [K_nope ; V] of one layer to a rank-r latent. */
export function decompose(
  split: RopeSplit,
  source: LayerSource,
  dims: Dims,
  gram: Float64Array,
  factor: Float64Array | undefined,
  options: DecomposeOptions,
): LatentFactors {
  const { E, g, hd, H } = dims;
  const nK = split.nopeFeatures;
  const nV = g * hd;
  const n = nK + nV;
  const r = options.rank;
  if (!(Number.isInteger(r) && r >= 1 && r <= n)) {
    throw new RangeError(`kv latent rank ${r} must be an integer in [1, ${n}] (NoPE key features + values)`);
  }
  const kRows = split.kNopeRows;
  const vRows = source.wv;
  const kRecon = new Float64Array(nK * r);
  const vRecon = new Float64Array(nV * r);

  switch (options.decomposition) {
    case 'pca': {
      let alpha: number;
      let m: Float64Array;
      let pcs: ReturnType<typeof principalComponents>;
      if (factor === undefined || n <= E) {
        // One second moment S of [K_nope ; V] serves BKV (its diagonal) and the PCA (BKV scales
        // the K rows and columns by 1/alpha), instead of forming W C W^T twice.
        const moment = congruence(stack(Float64Array.from(kRows), vRows), gram, n, E);
        alpha = 1;
        if (options.bkv && nK > 0) {
          const meanNorm = (from: number, to: number): number => {
            let sum = 0;
            for (let i = from; i < to; i++) sum += Math.sqrt(Math.max(0, moment[i * n + i]!));
            return sum / (to - from);
          };
          const k = meanNorm(0, nK);
          const v = meanNorm(nK, n);
          alpha = v > 0 && k > 0 ? k / v : 1;
        }
        if (alpha !== 1) {
          for (let i = 0; i < n; i++) {
            const si = i < nK ? 1 / alpha : 1;
            for (let j = 0; j < n; j++)
              moment[i * n + j] = moment[i * n + j]! * si * (j < nK ? 1 / alpha : 1);
          }
        }
        m = stack(
          kRows.map((v) => v / alpha),
          vRows,
        );
        pcs = principalComponentsOfMoment(moment, n, r);
      } else {
        alpha = options.bkv ? bkvRatio(kRows, vRows, nK, nV, gram, E) : 1;
        m = stack(
          kRows.map((v) => v / alpha),
          vRows,
        );
        pcs = principalComponents(m, gram, n, E, r, factor);
      }
      const latentRows = matMulTransposedBasis(pcs.basis, m, n, r, E);
      for (let i = 0; i < nK; i++)
        for (let j = 0; j < r; j++) kRecon[i * r + j] = alpha * pcs.basis[i * r + j]!;
      for (let i = 0; i < nV; i++)
        for (let j = 0; j < r; j++) vRecon[i * r + j] = pcs.basis[(nK + i) * r + j]!;
      let kept = 0;
      for (let j = 0; j < r; j++) kept += pcs.values[j]!;
      return { latentRows, kRecon, vRecon, alpha, explained: pcs.total > 0 ? kept / pcs.total : null };
    }
    case 'svd-joint': {
      const m = stack(Float64Array.from(kRows), vRows);
      const { u, s, vt, k } = svd(m, n, E, r);
      const latentRows = new Float64Array(r * E);
      latentRows.set(vt);
      for (let i = 0; i < nK; i++) for (let j = 0; j < k; j++) kRecon[i * r + j] = u[i * k + j]! * s[j]!;
      for (let i = 0; i < nV; i++)
        for (let j = 0; j < k; j++) vRecon[i * r + j] = u[(nK + i) * k + j]! * s[j]!;
      return { latentRows, kRecon, vRecon, alpha: 1, explained: null };
    }
    case 'svd-split': {
      const rk = nK === 0 ? 0 : Math.min(nK, Math.ceil(r / 2));
      const rv = r - rk;
      if (rv > nV) throw new RangeError(`svd-split: value rank ${rv} exceeds ${nV}`);
      const latentRows = new Float64Array(r * E);
      if (rk > 0) {
        const sk = svd(kRows, nK, E, rk);
        latentRows.set(sk.vt, 0);
        for (let i = 0; i < nK; i++)
          for (let j = 0; j < sk.k; j++) kRecon[i * r + j] = sk.u[i * sk.k + j]! * sk.s[j]!;
      }
      const sv = svd(vRows, nV, E, rv);
      latentRows.set(sv.vt, rk * E);
      for (let i = 0; i < nV; i++)
        for (let j = 0; j < sv.k; j++) vRecon[i * r + rk + j] = sv.u[i * sv.k + j]! * sv.s[j]!;
      return { latentRows, kRecon, vRecon, alpha: 1, explained: null };
    }
    case 'attention': {
      // Metric for K: sum over heads of kUp_h^T E[q_nope_h q_nope_h^T] kUp_h.
      const mk = new Float64Array(nK * nK);
      if (nK > 0) {
        for (let h = 0; h < H; h++) {
          const wqh = source.wq.subarray(h * hd * E, (h + 1) * hd * E);
          const qn = split.qNopeCoef === null ? wqh : matMul(split.qNopeCoef[h]!, wqh, split.nopeDim, hd, E);
          const sq = congruence(qn, gram, split.nopeDim, E);
          // kUp_h^T sq kUp_h
          const kUp = split.kUp[h]!;
          const t = matMul(sq, kUp, split.nopeDim, split.nopeDim, nK);
          for (let d = 0; d < split.nopeDim; d++) {
            for (let i = 0; i < nK; i++) {
              const a = kUp[d * nK + i]!;
              if (a === 0) continue;
              for (let j = 0; j < nK; j++) mk[i * nK + j] = mk[i * nK + j]! + a * t[d * nK + j]!;
            }
          }
        }
      }
      // Metric for V: per KV group, sum over its query heads of W_O,h^T W_O,h.
      const mv = new Float64Array(nV * nV);
      const group = H / g;
      const cols = H * hd;
      for (let h = 0; h < H; h++) {
        const base = Math.floor(h / group) * hd;
        for (let e = 0; e < E; e++) {
          const row = e * cols + h * hd;
          for (let a = 0; a < hd; a++) {
            const wa = source.wo[row + a]!;
            for (let b = 0; b < hd; b++)
              mv[(base + a) * nV + base + b] = mv[(base + a) * nV + base + b]! + wa * source.wo[row + b]!;
          }
        }
      }
      const kMetric =
        nK > 0 ? sqrtAndInverse(mk, nK) : { root: new Float64Array(0), inverse: new Float64Array(0) };
      const vMetric = sqrtAndInverse(mv, nV);
      const kw = nK > 0 ? matMul(kMetric.root, kRows, nK, nK, E) : new Float64Array(0);
      const vw = matMul(vMetric.root, vRows, nV, nV, E);
      const alpha = bkvRatio(kw, vw, nK, nV, gram, E) / (options.keyWeight ?? 1);
      const m = stack(
        kw.map((v) => v / alpha),
        vw,
      );
      const pcs = principalComponents(m, gram, n, E, r, factor);
      const latentRows = matMulTransposedBasis(pcs.basis, m, n, r, E);
      if (nK > 0) {
        const bk = new Float64Array(nK * r);
        for (let i = 0; i < nK; i++)
          for (let j = 0; j < r; j++) bk[i * r + j] = alpha * pcs.basis[i * r + j]!;
        kRecon.set(matMul(kMetric.inverse, bk, nK, nK, r));
      }
      const bv = new Float64Array(nV * r);
      for (let i = 0; i < nV; i++) for (let j = 0; j < r; j++) bv[i * r + j] = pcs.basis[(nK + i) * r + j]!;
      vRecon.set(matMul(vMetric.inverse, bv, nV, nV, r));
      let kept = 0;
      for (let j = 0; j < r; j++) kept += pcs.values[j]!;
      return { latentRows, kRecon, vRecon, alpha, explained: pcs.total > 0 ? kept / pcs.total : null };
    }
  }
}

/** basis^T m for basis [n, r] and m [n, E]. */
function matMulTransposedBasis(
  basis: Float64Array,
  m: Float64Array,
  n: number,
  r: number,
  E: number,
): Float64Array {
  const out = new Float64Array(r * E);
  for (let i = 0; i < n; i++) {
    const mRow = i * E;
    for (let j = 0; j < r; j++) {
      const b = basis[i * r + j]!;
      if (b === 0) continue;
      const oRow = j * E;
      for (let e = 0; e < E; e++) out[oRow + e] = out[oRow + e]! + b * m[mRow + e]!;
    }
  }
  return out;
}

export interface AttentionWeights {
  qProj: Float32Array | null;
  qAProj: Float32Array | null;
  qBProj: Float32Array | null;
  kvAProjWithMqa: Float32Array;
  kvBProj: Float32Array;
}

export interface AssembleOptions {
  /** Multiplies every query row; sqrt((Dn + P) / hd) keeps 1/sqrt(hd) under DeepSeek's 1/sqrt(Dn + P). */
  qScale: number;
  /** Low-rank q basis [H*hd, qRank] (orthonormal columns), or null for a full q_proj. */
  qBasis: Float64Array | null;
  qRank: number;
}

/** Writes q_proj (or q_a/q_b), kv_a_proj_with_mqa and kv_b_proj of one layer. */
export function assembleLayer(
  split: RopeSplit,
  latent: LatentFactors,
  source: LayerSource,
  dims: Dims,
  options: AssembleOptions,
): AttentionWeights {
  const { E, H, g, hd } = dims;
  const r = latent.latentRows.length / E;
  const P = split.ropeDim;
  const Dn = split.nopeDim;
  const nK = split.nopeFeatures;
  const group = H / g;

  const kvA = new Float32Array((r + split.ropeHeads * P) * E);
  for (let i = 0; i < latent.latentRows.length; i++) kvA[i] = latent.latentRows[i]!;
  for (let i = 0; i < split.ropeKeyRows.length; i++) kvA[r * E + i] = split.ropeKeyRows[i]!;

  const kvB = new Float32Array(H * (Dn + hd) * r);
  for (let h = 0; h < H; h++) {
    const base = h * (Dn + hd) * r;
    if (nK > 0) {
      const kRows = matMul(split.kUp[h]!, latent.kRecon, Dn, nK, r);
      for (let i = 0; i < Dn * r; i++) kvB[base + i] = kRows[i]!;
    }
    const vBase = Math.floor(h / group) * hd;
    for (let d = 0; d < hd; d++) {
      for (let j = 0; j < r; j++) kvB[base + (Dn + d) * r + j] = latent.vRecon[(vBase + d) * r + j]!;
    }
  }

  // Per head query rows in terms of the head's original query: [qNopeCoef ; qRopeCoef] [Dn + P, hd].
  const headCoef = (h: number): Float64Array => {
    const coef = new Float64Array((Dn + P) * hd);
    if (split.qNopeCoef === null) {
      for (let d = 0; d < Dn; d++) coef[d * hd + d] = 1;
    } else {
      coef.set(split.qNopeCoef[h]!, 0);
    }
    coef.set(split.qRopeCoef[h]!, Dn * hd);
    return coef;
  };
  const rowsPerHead = Dn + P;
  if (options.qBasis === null) {
    const qProj = new Float32Array(H * rowsPerHead * E);
    for (let h = 0; h < H; h++) {
      const rows = matMul(headCoef(h), source.wq.subarray(h * hd * E, (h + 1) * hd * E), rowsPerHead, hd, E);
      for (let i = 0; i < rows.length; i++) qProj[h * rowsPerHead * E + i] = rows[i]! * options.qScale;
    }
    return { qProj, qAProj: null, qBProj: null, kvAProjWithMqa: kvA, kvBProj: kvB };
  }
  const rq = options.qRank;
  const basis = options.qBasis;
  const qAProj = new Float32Array(matMulTransposedBasis(basis, Float64Array.from(source.wq), H * hd, rq, E));
  const qBProj = new Float32Array(H * rowsPerHead * rq);
  for (let h = 0; h < H; h++) {
    const rows = matMul(headCoef(h), basis.subarray(h * hd * rq, (h + 1) * hd * rq), rowsPerHead, hd, rq);
    for (let i = 0; i < rows.length; i++) qBProj[h * rowsPerHead * rq + i] = rows[i]! * options.qScale;
  }
  return { qProj: null, qAProj, qBProj, kvAProjWithMqa: kvA, kvBProj: kvB };
}
