/**
 * One MTLA attention layer (MTLA.py `MultiheadTemporalLatentAttention`, research/mla-methods.md
 * section 5) in the two forms that must agree:
 *
 * - mtlaTrainingForward: the parallel training form in float64, with the chunk mask, the partial
 *   merges C'[m] = sum_{n in chunk(m), n <= m} w[m, n] c_hat[n], the ORIGINAL per-token rope keys
 *   and the stride-aware causal mask (query m sees every completed chunk through its last row plus
 *   its own row). Non-absorbed: keys and values are up-projected from C' per head.
 * - MtlaDecoder: token-by-token decode on the native kernels: projections in TypeScript, then
 *   mtla_merge_append into an MtlaCache and the absorbed mla_decode over the merged rows.
 *
 * Weights are row-major (out, in) like PyTorch: wq [H(Dn+P), E], wkvA [R+P, E], kvNorm [R]
 * (LayerNorm weight and bias), wkvB [H(Dn+Dv), R] (per head Dn key rows then Dv value rows),
 * wo [E, H Dv], fcC / fcP [D, R] with biases [D]. RoPE is interleaved (MTLA.py) with theta.
 */
import type { Backend } from '../backend.js';
import { mlaDecodeSync } from '../mla/decode.js';
import type { MtlaCache } from './mtla-cache.js';

export interface MtlaLayerConfig {
  /** E */
  hiddenSize: number;
  /** H */
  numHeads: number;
  /** R (even) */
  kvLoraRank: number;
  /** Dn */
  qkNopeHeadDim: number;
  /** P (even) */
  qkRopeHeadDim: number;
  /** Dv */
  vHeadDim: number;
  /** s >= 1 */
  stride: number;
  /** Default 1e4. */
  ropeTheta?: number;
  /** Default 1e-5. */
  normEps?: number;
  /** Default (Dn + P)^-0.5. */
  softmaxScale?: number;
}

export interface MtlaLayerWeights {
  wq: Float32Array;
  wkvA: Float32Array;
  kvNormWeight: Float32Array;
  kvNormBias: Float32Array;
  wkvB: Float32Array;
  wo: Float32Array;
  fcC: Float32Array;
  fcCBias: Float32Array;
  fcP: Float32Array;
  fcPBias: Float32Array;
}

type Vec = Float64Array;

function matVec(
  w: ArrayLike<number>,
  x: ArrayLike<number>,
  rows: number,
  cols: number,
  xOff = 0,
  bias?: ArrayLike<number>,
): Vec {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = bias ? (bias[r] as number) : 0;
    const base = r * cols;
    for (let c = 0; c < cols; c++) s += (w[base + c] as number) * (x[xOff + c] as number);
    y[r] = s;
  }
  return y;
}

function ropeInterleaved(v: Vec, off: number, P: number, pos: number, theta: number): void {
  for (let i = 0; i < P / 2; i++) {
    const a = pos * theta ** ((-2 * i) / P);
    const c = Math.cos(a);
    const s = Math.sin(a);
    const x0 = v[off + 2 * i] as number;
    const x1 = v[off + 2 * i + 1] as number;
    v[off + 2 * i] = x0 * c - x1 * s;
    v[off + 2 * i + 1] = x0 * s + x1 * c;
  }
}

function layerNorm(x: Vec, weight: ArrayLike<number>, bias: ArrayLike<number>, eps: number, R: number): Vec {
  let mean = 0;
  for (let r = 0; r < R; r++) mean += x[r] as number;
  mean /= R;
  let v = 0;
  for (let r = 0; r < R; r++) v += ((x[r] as number) - mean) ** 2;
  const inv = 1 / Math.sqrt(v / R + eps);
  const y = new Float64Array(R);
  for (let r = 0; r < R; r++)
    y[r] = ((x[r] as number) - mean) * inv * (weight[r] as number) + (bias[r] as number);
  return y;
}

/** MTLA's chunk position embedding: pe[2k] = sin(j 10000^(-2k/R)), pe[2k+1] = cos(...). */
export function mtlaChunkPe(chunk: number, R: number): Vec {
  const pe = new Float64Array(R);
  for (let k = 0; k < R / 2; k++) {
    const a = chunk * 10000 ** ((-2 * k) / R);
    pe[2 * k] = Math.sin(a);
    pe[2 * k + 1] = Math.cos(a);
  }
  return pe;
}

/** The stride-aware causal mask of the training form: may query m attend to row n? */
export function mtlaMaskAllows(m: number, n: number, stride: number): boolean {
  return n === m || (n <= m && (n + 1) % stride === 0);
}

interface Resolved {
  E: number;
  H: number;
  R: number;
  Dn: number;
  P: number;
  Dv: number;
  s: number;
  D: number;
  theta: number;
  eps: number;
  scale: number;
}

function resolve(c: MtlaLayerConfig, w: MtlaLayerWeights): Resolved {
  const R = c.kvLoraRank;
  return {
    E: c.hiddenSize,
    H: c.numHeads,
    R,
    Dn: c.qkNopeHeadDim,
    P: c.qkRopeHeadDim,
    Dv: c.vHeadDim,
    s: c.stride,
    D: w.fcC.length / R,
    theta: c.ropeTheta ?? 1e4,
    eps: c.normEps ?? 1e-5,
    scale: c.softmaxScale ?? (c.qkNopeHeadDim + c.qkRopeHeadDim) ** -0.5,
  };
}

/** Per-token projections shared by both forms: q (roped), pre-norm latent, c_hat, roped k_pe. */
function project(
  r: Resolved,
  w: MtlaLayerWeights,
  hidden: ArrayLike<number>,
  t: number,
  pos: number,
): { q: Vec; latent: Vec; cHat: Vec; kPe: Vec } {
  const { E, H, R, Dn, P, theta, eps } = r;
  const q = matVec(w.wq, hidden, H * (Dn + P), E, t * E);
  for (let h = 0; h < H; h++) ropeInterleaved(q, h * (Dn + P) + Dn, P, pos, theta);
  const kv = matVec(w.wkvA, hidden, R + P, E, t * E);
  const latent = kv.subarray(0, R);
  const cHat = layerNorm(latent, w.kvNormWeight, w.kvNormBias, eps, R);
  const kPe = kv.slice(R, R + P);
  ropeInterleaved(kPe, 0, P, pos, theta);
  return { q, latent: latent.slice(), cHat, kPe };
}

export interface MtlaTrainingResult {
  /** [T, E] layer outputs. */
  out: Float64Array;
  /** [T, R] partial merges C' (row m: m's chunk merged up to m). */
  merged: Float64Array;
  /** [T] merge weight of token n: sigmoid(fc_c(pe_{n / s}) . fc_p(c_hat_n)). */
  weights: Float64Array;
  /** [T, P] roped keys. */
  kPe: Float64Array;
}

/**
 * The parallel (training) form over T tokens at positions 0..T-1 (or `positions`), in float64.
 * hidden: [T, E].
 */
export function mtlaTrainingForward(
  config: MtlaLayerConfig,
  weights: MtlaLayerWeights,
  hidden: ArrayLike<number>,
  positions?: ArrayLike<number>,
): MtlaTrainingResult {
  const r = resolve(config, weights);
  const { E, H, R, Dn, P, Dv, s, D, scale } = r;
  const T = hidden.length / E;
  const toks = Array.from({ length: T }, (_, t) =>
    project(r, weights, hidden, t, positions ? (positions[t] as number) : t),
  );
  // W[m, n] only matters inside a chunk, where floor(m/s) = floor(n/s): w depends on n and the chunk.
  const wts = new Float64Array(T);
  for (let n = 0; n < T; n++) {
    const fcC = matVec(weights.fcC, mtlaChunkPe(Math.floor(n / s), R), D, R, 0, weights.fcCBias);
    const fcP = matVec(weights.fcP, toks[n]!.cHat, D, R, 0, weights.fcPBias);
    let dot = 0;
    for (let d = 0; d < D; d++) dot += (fcC[d] as number) * (fcP[d] as number);
    wts[n] = 1 / (1 + Math.exp(-dot));
  }
  // C' = (W . M_chunk) c_hat: M_chunk[m, n] = same chunk and (m mod s) >= (n mod s).
  const merged = new Float64Array(T * R);
  for (let m = 0; m < T; m++) {
    for (let n = Math.floor(m / s) * s; n <= m; n++) {
      const c = toks[n]!.cHat;
      for (let k = 0; k < R; k++)
        merged[m * R + k] = (merged[m * R + k] as number) + (wts[n] as number) * (c[k] as number);
    }
  }
  // Per-row keys (nope part) and values, up-projected from C' (the non-absorbed form).
  const kv = Array.from({ length: T }, (_, n) => matVec(weights.wkvB, merged, H * (Dn + Dv), R, n * R));
  const out = new Float64Array(T * E);
  const attn = new Float64Array(H * Dv);
  const scores = new Float64Array(T);
  for (let m = 0; m < T; m++) {
    const q = toks[m]!.q;
    for (let h = 0; h < H; h++) {
      let max = Number.NEGATIVE_INFINITY;
      for (let n = 0; n < T; n++) {
        if (!mtlaMaskAllows(m, n, s)) {
          scores[n] = Number.NEGATIVE_INFINITY;
          continue;
        }
        let dot = 0;
        const k = kv[n]!;
        for (let d = 0; d < Dn; d++)
          dot += (q[h * (Dn + P) + d] as number) * (k[h * (Dn + Dv) + d] as number);
        const kp = toks[n]!.kPe;
        for (let d = 0; d < P; d++) dot += (q[h * (Dn + P) + Dn + d] as number) * (kp[d] as number);
        scores[n] = dot * scale;
        if (scores[n]! > max) max = scores[n] as number;
      }
      let sum = 0;
      for (let n = 0; n < T; n++) {
        const e = scores[n] === Number.NEGATIVE_INFINITY ? 0 : Math.exp((scores[n] as number) - max);
        scores[n] = e;
        sum += e;
      }
      for (let d = 0; d < Dv; d++) {
        let acc = 0;
        for (let n = 0; n < T; n++) {
          if (scores[n] !== 0) acc += (scores[n] as number) * (kv[n]![h * (Dn + Dv) + Dn + d] as number);
        }
        attn[h * Dv + d] = acc / sum;
      }
    }
    const o = matVec(weights.wo, attn, E, H * Dv);
    out.set(o, m * E);
  }
  const kPe = new Float64Array(T * P);
  toks.forEach((t, n) => {
    kPe.set(t.kPe, n * P);
  });
  return { out, merged, weights: wts, kPe };
}

export interface MtlaDecoderOptions {
  backend?: Backend;
}

/**
 * Token-by-token MTLA decode of one layer on the native kernels: per step the TypeScript
 * projections (float64, stored as f32), mtla_merge_append into `cache`, the absorbed mla_decode
 * over the merged rows, then W_UV per head and wo. One sequence per decoder.
 */
export class MtlaDecoder {
  readonly #r: Resolved;
  readonly #w: MtlaLayerWeights;
  readonly #cache: MtlaCache;
  readonly #seq: number;
  readonly #backend: Backend | undefined;

  constructor(
    config: MtlaLayerConfig,
    weights: MtlaLayerWeights,
    cache: MtlaCache,
    options: MtlaDecoderOptions = {},
  ) {
    this.#r = resolve(config, weights);
    if (cache.stride !== config.stride)
      throw new RangeError(`cache stride ${cache.stride} != config stride ${config.stride}`);
    this.#w = weights;
    this.#cache = cache;
    this.#seq = cache.createSequence();
    this.#backend = options.backend;
  }

  get sequenceId(): number {
    return this.#seq;
  }

  /** One token: hidden [E] at `position` (default: the tokens decoded so far). Returns out [E]. */
  step(hidden: ArrayLike<number>, position?: number): Float64Array {
    const r = this.#r;
    const w = this.#w;
    const { E, H, R, Dn, P, Dv, scale } = r;
    const pos = position ?? this.#cache.tokens(this.#seq);
    const tok = project(r, w, hidden, 0, pos);
    this.#cache.appendSync(this.#seq, {
      latent: Float32Array.from(tok.latent),
      kRope: Float32Array.from(tok.kPe),
      hyper: { fcC: w.fcC, fcCBias: w.fcCBias, fcP: w.fcP, fcPBias: w.fcPBias },
      norm: { weight: w.kvNormWeight, bias: w.kvNormBias, eps: r.eps },
    });
    // Absorbed queries: q_latent_h = W_UK,h^T q_nope_h.
    const qLatent = new Float32Array(H * R);
    const qRope = new Float32Array(H * P);
    for (let h = 0; h < H; h++) {
      for (let c = 0; c < R; c++) {
        let acc = 0;
        for (let d = 0; d < Dn; d++)
          acc += (w.wkvB[(h * (Dn + Dv) + d) * R + c] as number) * (tok.q[h * (Dn + P) + d] as number);
        qLatent[h * R + c] = acc;
      }
      for (let d = 0; d < P; d++) qRope[h * P + d] = tok.q[h * (Dn + P) + Dn + d] as number;
    }
    const { out: lat } = mlaDecodeSync({
      cache: this.#cache.view([this.#seq]),
      numHeads: H,
      qLatent,
      qRope: P > 0 ? qRope : undefined,
      softmaxScale: scale,
      backend: this.#backend,
    });
    const attn = new Float64Array(H * Dv);
    for (let h = 0; h < H; h++) {
      for (let d = 0; d < Dv; d++) {
        let acc = 0;
        const base = (h * (Dn + Dv) + Dn + d) * R;
        for (let c = 0; c < R; c++) acc += (w.wkvB[base + c] as number) * (lat[h * R + c] as number);
        attn[h * Dv + d] = acc;
      }
    }
    return matVec(w.wo, attn, E, H * Dv);
  }
}
