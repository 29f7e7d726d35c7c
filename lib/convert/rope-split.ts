/**
 * The RoPE stages of the two methods, per layer, as a RopeSplit (see mla-builder.ts). Keys are in
 * the interleaved layout here (pair j = dims 2j, 2j+1 of a head); half-split sources are permuted
 * first (source.ts).
 *
 * TransMLA (research/mla-methods.md 2.3-2.4): all g KV heads merge into one latent head; frequencies
 * are grouped ff at a time (FreqFold); per group one PCA over the g*ff (real) and g*ff (imaginary)
 * components of the pre-RoPE keys, the same rotation U_i on the real and on the imaginary parts (so
 * with ff = 1 the RoPE inner products are unchanged); the leading components keep RoPE (d_R dims in
 * all), the rest become NoPE features.
 *
 * MHA2MLA (3.1): per KV head, r rotation pairs chosen by S_high, S_low, S_uniform or S_2-norm keep
 * RoPE (one rope key per KV head); the other dims of every head become NoPE features.
 */
import { eigh } from '../linalg/eigh.js';
import { congruence, pickRows } from '../linalg/matrix.js';
import type { LayerCalibration } from './calibration.js';
import type { Dims, LayerSource, RopeSplit } from './mla-builder.js';

/** How the kept RoPE components are spread over the frequency groups. */
export type RopeAllocation =
  /** Official: every group keeps d_R * ff / hd components (the code's "collapse"). */
  | 'uniform'
  /** latentkv: the d_R/2 components of largest energy over all groups (needs a frequency table). */
  | 'energy'
  /**
   * latentkv: the d_R/2 components whose RoPE removal costs most: energy times the mean
   * 1 - cos(omega * distance) over the context (a slow component barely rotates, so it loses
   * little as NoPE). Needs a frequency table.
   */
  | 'rotation';

/** Which frequency a kept component rotates with. */
export type RopeFrequencies =
  /** DeepSeek layout: pair p uses theta^(-2p/d_R) (= original index p * hd/d_R); no table needed. */
  | 'deepseek'
  /** latentkv table: the energy-weighted geometric mean of the frequencies the component mixes. */
  | 'weighted';

export interface TransMlaRopeOptions {
  ropeDim: number;
  freqfold: number;
  allocation: RopeAllocation;
  frequencies: RopeFrequencies;
  /** Context length over which 'rotation' averages (default 256). */
  contextLength?: number;
}

export interface RopeStageResult {
  split: RopeSplit;
  /** One inverse frequency per rope pair (per rope head and pair for MHA2MLA S_2-norm), or null. */
  invFreq: Float64Array | null;
  /** Fraction of the key energy that keeps RoPE. */
  ropeEnergy: number;
}

export function originalInvFreq(theta: number, hd: number, j: number): number {
  return theta ** ((-2 * j) / hd);
}

/** Checks (d_R, ff) for TransMLA and returns the kept components per group. */
export function transMlaKeptPerGroup(hd: number, g: number, ropeDim: number, freqfold: number): number {
  const pairs = hd / 2;
  if (!(Number.isInteger(freqfold) && freqfold >= 1 && pairs % freqfold === 0)) {
    throw new RangeError(`freqfold ${freqfold} must divide the ${pairs} frequencies of a head`);
  }
  if (!(Number.isInteger(ropeDim) && ropeDim >= 2 && ropeDim % 2 === 0 && ropeDim <= g * hd)) {
    throw new RangeError(`rope dim ${ropeDim} must be even and in [2, ${g * hd}]`);
  }
  const kept = (ropeDim * freqfold) / hd;
  if (!Number.isInteger(kept) || kept < 1 || kept > g * freqfold) {
    throw new RangeError(
      `rope dim ${ropeDim} with freqfold ${freqfold} keeps ${kept} components per frequency group; it must be an integer in [1, ${g * freqfold}] (choose freqfold a multiple of ${hd}/${ropeDim})`,
    );
  }
  return kept;
}

export function transMlaRopeStage(
  source: LayerSource,
  dims: Dims,
  calib: LayerCalibration,
  theta: number,
  options: TransMlaRopeOptions,
): RopeStageResult {
  const { E, H, g, hd } = dims;
  const { ropeDim: dR, freqfold: ff } = options;
  const perGroup = options.allocation === 'uniform' ? transMlaKeptPerGroup(hd, g, dR, ff) : 0;
  if (options.allocation !== 'uniform') {
    if (!(Number.isInteger(ff) && ff >= 1 && (hd / 2) % ff === 0)) {
      throw new RangeError(`freqfold ${ff} must divide the ${hd / 2} frequencies of a head`);
    }
    if (!(Number.isInteger(dR) && dR >= 2 && dR % 2 === 0 && dR <= g * hd)) {
      throw new RangeError(`rope dim ${dR} must be even and in [2, ${g * hd}]`);
    }
  }
  if (options.frequencies === 'deepseek' && options.allocation !== 'uniform') {
    throw new RangeError(
      "the DeepSeek frequencies need the 'uniform' allocation (use frequencies 'weighted')",
    );
  }
  const groups = hd / 2 / ff;
  const m = g * ff;
  const group = H / g;
  // Per frequency group: PCA of the real and imaginary parts together, the same U for both.
  const rot: { u: Float64Array; values: Float64Array; re: Float64Array; im: Float64Array }[] = [];
  let totalEnergy = 0;
  for (let i = 0; i < groups; i++) {
    const reRows: number[] = [];
    const imRows: number[] = [];
    for (let k = 0; k < g; k++) {
      for (let f = 0; f < ff; f++) {
        reRows.push(k * hd + 2 * (i * ff + f));
        imRows.push(k * hd + 2 * (i * ff + f) + 1);
      }
    }
    const wRe = pickRows(source.wk, E, reRows);
    const wIm = pickRows(source.wk, E, imRows);
    const h = congruence(wRe, calib.gram, m, E);
    const hIm = congruence(wIm, calib.gram, m, E);
    for (let t = 0; t < h.length; t++) h[t] = h[t]! + hIm[t]!;
    const { values, vectors } = eigh(h, m);
    for (let t = 0; t < m; t++) totalEnergy += Math.max(0, values[t]!);
    // Rotated key rows: component e = sum_j U[j, e] w[j].
    const re = new Float64Array(m * E);
    const im = new Float64Array(m * E);
    for (let e = 0; e < m; e++) {
      for (let j = 0; j < m; j++) {
        const u = vectors[j * m + e]!;
        if (u === 0) continue;
        for (let c = 0; c < E; c++) {
          re[e * E + c] = re[e * E + c]! + u * wRe[j * E + c]!;
          im[e * E + c] = im[e * E + c]! + u * wIm[j * E + c]!;
        }
      }
    }
    rot.push({ u: vectors, values, re, im });
  }

  // Which (group, component) pairs keep RoPE, in pair order (group-major, then component).
  const kept: { i: number; e: number }[] = [];
  if (options.allocation === 'uniform') {
    for (let i = 0; i < groups; i++) for (let e = 0; e < perGroup; e++) kept.push({ i, e });
  } else {
    const context = options.contextLength ?? 256;
    const rotationCost = (omega: number): number => {
      let s = 0;
      for (let d = 0; d < context; d++) s += 1 - Math.cos(omega * d);
      return s / context;
    };
    const all: { i: number; e: number; v: number }[] = [];
    rot.forEach((r, i) => {
      for (let e = 0; e < m; e++) {
        let v = r.values[e]!;
        if (options.allocation === 'rotation')
          v *= rotationCost(weightedFrequency(r.u, m, g, ff, e, i, theta, hd));
        all.push({ i, e, v });
      }
    });
    all.sort((a, b) => b.v - a.v || a.i - b.i || a.e - b.e);
    kept.push(...all.slice(0, dR / 2).sort((a, b) => a.i - b.i || a.e - b.e));
  }
  const keptSet = new Set(kept.map(({ i, e }) => i * m + e));
  let ropeEnergy = 0;
  for (const { i, e } of kept) ropeEnergy += Math.max(0, rot[i]!.values[e]!);

  const P = dR;
  const ropeKeyRows = new Float64Array(P * E);
  const qRopeCoef = Array.from({ length: H }, () => new Float64Array(P * hd));
  const invFreq = new Float64Array(P / 2);
  kept.forEach(({ i, e }, p) => {
    const r = rot[i]!;
    ropeKeyRows.set(r.re.subarray(e * E, (e + 1) * E), 2 * p * E);
    ropeKeyRows.set(r.im.subarray(e * E, (e + 1) * E), (2 * p + 1) * E);
    for (let h = 0; h < H; h++) {
      const k = Math.floor(h / group);
      for (let f = 0; f < ff; f++) {
        const u = r.u[(k * ff + f) * m + e]!;
        const dim = 2 * (i * ff + f);
        qRopeCoef[h]![2 * p * hd + dim] = u;
        qRopeCoef[h]![(2 * p + 1) * hd + dim + 1] = u;
      }
    }
    invFreq[p] =
      options.frequencies === 'deepseek'
        ? theta ** ((-2 * p) / P)
        : weightedFrequency(r.u, m, g, ff, e, i, theta, hd);
  });

  // NoPE features: every other rotated component, real then imaginary.
  const nope: { i: number; e: number; half: 0 | 1 }[] = [];
  for (let i = 0; i < groups; i++) {
    for (let e = 0; e < m; e++) {
      if (keptSet.has(i * m + e)) continue;
      nope.push({ i, e, half: 0 }, { i, e, half: 1 });
    }
  }
  const nK = nope.length;
  const kNopeRows = new Float64Array(nK * E);
  const kUp = Array.from({ length: H }, () => new Float64Array(hd * nK));
  nope.forEach(({ i, e, half }, feature) => {
    const r = rot[i]!;
    kNopeRows.set((half === 0 ? r.re : r.im).subarray(e * E, (e + 1) * E), feature * E);
    for (let h = 0; h < H; h++) {
      const k = Math.floor(h / group);
      for (let f = 0; f < ff; f++) {
        const dim = 2 * (i * ff + f) + half;
        kUp[h]![dim * nK + feature] = r.u[(k * ff + f) * m + e]!;
      }
    }
  });

  return {
    split: {
      ropeDim: P,
      ropeHeads: 1,
      ropeKeyRows,
      qRopeCoef,
      nopeDim: hd,
      qNopeCoef: null,
      nopeFeatures: nK,
      kNopeRows,
      kUp,
    },
    invFreq: options.frequencies === 'deepseek' ? null : invFreq,
    ropeEnergy: totalEnergy > 0 ? ropeEnergy / totalEnergy : 0,
  };
}

/** Energy-weighted geometric mean of the frequencies that rotated component e of group i mixes. */
function weightedFrequency(
  u: Float64Array,
  m: number,
  g: number,
  ff: number,
  e: number,
  i: number,
  theta: number,
  hd: number,
): number {
  let logSum = 0;
  let weight = 0;
  for (let k = 0; k < g; k++) {
    for (let f = 0; f < ff; f++) {
      const w = u[(k * ff + f) * m + e]! ** 2;
      logSum += w * Math.log(originalInvFreq(theta, hd, i * ff + f));
      weight += w;
    }
  }
  return Math.exp(logSum / weight);
}

/** MHA2MLA's partial-RoPE selection strategies. */
export type PartialRopeStrategy = 'high' | 'low' | 'uniform' | '2-norm';

/** Kept rotation pairs (sorted) per KV head. */
export function partialRopePairs(
  strategy: PartialRopeStrategy,
  pairsPerHead: number,
  dims: Dims,
  calib: LayerCalibration | null,
): number[][] {
  const { H, g, hd } = dims;
  const half = hd / 2;
  const r = pairsPerHead;
  if (!(Number.isInteger(r) && r >= 1 && r <= half)) {
    throw new RangeError(`rope pairs per head ${r} must be an integer in [1, ${half}]`);
  }
  const same = (pairs: number[]): number[][] => Array.from({ length: g }, () => pairs);
  switch (strategy) {
    case 'high':
      return same(Array.from({ length: r }, (_, k) => k));
    case 'low':
      return same(Array.from({ length: r }, (_, k) => half - r + k));
    case 'uniform': {
      const step = Math.floor(hd / (2 * r));
      return same(Array.from({ length: r }, (_, k) => k * step));
    }
    case '2-norm': {
      if (calib === null) throw new RangeError('S_2-norm needs calibration statistics');
      const group = H / g;
      return Array.from({ length: g }, (_, k) => {
        const score = Array.from({ length: half }, (_, j) => {
          let q = 0;
          for (let h = k * group; h < (k + 1) * group; h++) q += calib.qPairNorm[h * half + j]!;
          return q * calib.kPairNorm[k * half + j]!;
        });
        return Array.from({ length: half }, (_, j) => j)
          .sort((a, b) => score[b]! - score[a]! || a - b)
          .slice(0, r)
          .sort((a, b) => a - b);
      });
    }
  }
}

export function mha2mlaRopeStage(
  source: LayerSource,
  dims: Dims,
  keptPairs: number[][],
  theta: number,
): RopeStageResult {
  const { E, H, g, hd } = dims;
  const r = keptPairs[0]!.length;
  const P = 2 * r;
  const Dn = hd - P;
  const group = H / g;
  const ropeKeyRows = new Float64Array(g * P * E);
  const nopeDims: number[][] = keptPairs.map((pairs) => {
    const keptDims = new Set(pairs.flatMap((j) => [2 * j, 2 * j + 1]));
    return Array.from({ length: hd }, (_, d) => d).filter((d) => !keptDims.has(d));
  });
  keptPairs.forEach((pairs, k) => {
    pairs.forEach((j, p) => {
      ropeKeyRows.set(pickRows(source.wk, E, [k * hd + 2 * j, k * hd + 2 * j + 1]), (k * P + 2 * p) * E);
    });
  });
  const nK = g * Dn;
  const kNopeRows = pickRows(
    source.wk,
    E,
    nopeDims.flatMap((ds, k) => ds.map((d) => k * hd + d)),
  );
  const qRopeCoef: Float64Array[] = [];
  const qNopeCoef: Float64Array[] = [];
  const kUp: Float64Array[] = [];
  for (let h = 0; h < H; h++) {
    const k = Math.floor(h / group);
    const rope = new Float64Array(P * hd);
    keptPairs[k]!.forEach((j, p) => {
      rope[2 * p * hd + 2 * j] = 1;
      rope[(2 * p + 1) * hd + 2 * j + 1] = 1;
    });
    const nopeSel = new Float64Array(Dn * hd);
    nopeDims[k]!.forEach((d, i) => {
      nopeSel[i * hd + d] = 1;
    });
    const up = new Float64Array(Dn * nK);
    for (let i = 0; i < Dn; i++) up[i * nK + k * Dn + i] = 1;
    qRopeCoef.push(rope);
    qNopeCoef.push(nopeSel);
    kUp.push(up);
  }
  const shared = keptPairs.every((pairs) => pairs.every((j, p) => j === keptPairs[0]![p]));
  const invFreq = new Float64Array(shared ? r : g * r);
  (shared ? [keptPairs[0]!] : keptPairs).forEach((pairs, k) => {
    pairs.forEach((j, p) => {
      invFreq[k * r + p] = originalInvFreq(theta, hd, j);
    });
  });
  // Energy fraction (pre-RoPE keys) on the kept dims.
  return {
    split: {
      ropeDim: P,
      ropeHeads: g,
      ropeKeyRows,
      qRopeCoef,
      nopeDim: Dn,
      qNopeCoef,
      nopeFeatures: nK,
      kNopeRows,
      kUp,
    },
    invFreq,
    ropeEnergy: Number.NaN,
  };
}
