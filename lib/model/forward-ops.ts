/**
 * The few numeric building blocks shared by the reference forwards (Llama and MLA). They are
 * deliberately plain loops: these forwards are the ground truth that the native kernels are
 * compared with, so being obviously right matters more than being fast.
 *
 * Precision: activations live in Float64Array ('f64', the reference) or Float32Array ('f32', which
 * rounds every stored activation to float like llama2.c does). Sums are accumulated in JS doubles
 * either way.
 */
import type { RopeStyle } from './llama-weights.js';

export type Precision = 'f32' | 'f64';
export type FloatArray = Float32Array | Float64Array;

export function allocate(precision: Precision, length: number): FloatArray {
  return precision === 'f64' ? new Float64Array(length) : new Float32Array(length);
}

/** out[r] = sum_c weight[r*cols + c] * x[xOffset + c] (+ bias[r]), for r < rows. */
export function matVec(
  out: FloatArray,
  weight: Float32Array | Float64Array,
  x: FloatArray,
  rows: number,
  cols: number,
  bias?: Float32Array,
  xOffset = 0,
  outOffset = 0,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let sum = bias === undefined ? 0 : bias[r]!;
    for (let c = 0; c < cols; c++) sum += weight[base + c]! * x[xOffset + c]!;
    out[outOffset + r] = sum;
  }
}

/** out = x / sqrt(mean(x^2) + eps) * gain, over `length` elements starting at the offsets. */
export function rmsNorm(
  out: FloatArray,
  x: FloatArray,
  gain: Float32Array,
  eps: number,
  length = gain.length,
  xOffset = 0,
  outOffset = 0,
): void {
  let sumSquares = 0;
  for (let i = 0; i < length; i++) sumSquares += x[xOffset + i]! * x[xOffset + i]!;
  const inv = 1 / Math.sqrt(sumSquares / length + eps);
  for (let i = 0; i < length; i++) out[outOffset + i] = x[xOffset + i]! * inv * gain[i]!;
}

/** In-place softmax over the first `length` entries. Subtracts the max for stability. */
export function softmaxInPlace(values: FloatArray, length = values.length): void {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < length; i++) if (values[i]! > max) max = values[i]!;
  let sum = 0;
  for (let i = 0; i < length; i++) {
    const e = Math.exp(values[i]! - max);
    values[i] = e;
    sum += e;
  }
  for (let i = 0; i < length; i++) values[i] = values[i]! / sum;
}

/** cos/sin of every rotation pair at one position, computed once per token and reused by all heads. */
export interface RopeAngles {
  cos: Float64Array;
  sin: Float64Array;
}

export function ropeAngles(position: number, rotaryDim: number, theta: number): RopeAngles {
  const pairs = rotaryDim / 2;
  const cos = new Float64Array(pairs);
  const sin = new Float64Array(pairs);
  for (let i = 0; i < pairs; i++) {
    const angle = position * theta ** ((-2 * i) / rotaryDim);
    cos[i] = Math.cos(angle);
    sin[i] = Math.sin(angle);
  }
  return { cos, sin };
}

/** Rotates one head vector of `2 * angles.cos.length` dims starting at `offset`, in place. */
export function applyRope(vec: FloatArray, offset: number, angles: RopeAngles, style: RopeStyle): void {
  const pairs = angles.cos.length;
  for (let i = 0; i < pairs; i++) {
    const a = style === 'interleaved' ? offset + 2 * i : offset + i;
    const b = style === 'interleaved' ? a + 1 : a + pairs;
    const x0 = vec[a]!;
    const x1 = vec[b]!;
    const c = angles.cos[i]!;
    const s = angles.sin[i]!;
    vec[a] = x0 * c - x1 * s;
    vec[b] = x0 * s + x1 * c;
  }
}

/** Weights of the SwiGLU block, shared by the Llama and MLA layer types. */
export interface FeedForwardWeights {
  rmsFfn: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
}

export interface FeedForwardScratch {
  normed: FloatArray;
  gate: FloatArray;
  up: FloatArray;
  down: FloatArray;
}

export function createFeedForwardScratch(
  precision: Precision,
  dim: number,
  hiddenDim: number,
): FeedForwardScratch {
  return {
    normed: allocate(precision, dim),
    gate: allocate(precision, hiddenDim),
    up: allocate(precision, hiddenDim),
    down: allocate(precision, dim),
  };
}

/** x += w2 (silu(w1 n) * (w3 n)) with n = RMSNorm(x): the residual SwiGLU block. */
export function feedForwardResidual(
  x: FloatArray,
  layer: FeedForwardWeights,
  scratch: FeedForwardScratch,
  dim: number,
  hiddenDim: number,
  eps: number,
): void {
  rmsNorm(scratch.normed, x, layer.rmsFfn, eps, dim);
  matVec(scratch.gate, layer.w1, scratch.normed, hiddenDim, dim);
  matVec(scratch.up, layer.w3, scratch.normed, hiddenDim, dim);
  for (let i = 0; i < hiddenDim; i++) {
    const g = scratch.gate[i]!;
    scratch.gate[i] = (g / (1 + Math.exp(-g))) * scratch.up[i]!;
  }
  matVec(scratch.down, layer.w2, scratch.gate, dim, hiddenDim);
  for (let i = 0; i < dim; i++) x[i] = x[i]! + scratch.down[i]!;
}

/** Throws a RangeError unless `value` is an integer in [0, limit). */
export function assertIndex(name: string, value: number, limit: number): void {
  if (!Number.isInteger(value) || value < 0 || value >= limit) {
    throw new RangeError(`${name} must be an integer in [0, ${limit}), got ${value}`);
  }
}
