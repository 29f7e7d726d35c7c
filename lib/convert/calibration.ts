/**
 * Calibration for the conversions: runs the original model over token sequences and keeps, per
 * layer, what every activation-based step needs. All the statistics the methods use are of linear
 * maps of the attention input n = RMSNorm(x) * rms_att (keys, values, queries and their rotations),
 * so the uncentred second moment C = sum_t n_t n_t^T [E, E] (float64) determines them all:
 * E[(W n)(W n)^T] = W C W^T. Beside it the per-pair mean RoPE-pair norms of q and k (pre-RoPE) that
 * MHA2MLA's S_2-norm ranks by, which are means of norms and so need the tokens themselves.
 *
 * Calibration uses the original model's activations for every layer (TransMLA re-collects them on
 * its partially converted model; with the exact merge and the rope removal only, the difference is
 * second order).
 */

import type { LlamaCheckpoint } from '../model/llama-weights.js';
import { BOS_TOKEN, type Llama2cTokenizer } from '../model/llama2c-tokenizer.js';
import { createSampler } from '../model/sampling.js';
import { GqaModel } from '../runtime/gqa-model.js';
import { linear } from '../runtime/linear.js';
import type { AttentionBatch } from '../runtime/model.js';
import { throwIfAborted } from './progress.js';

export interface LayerCalibration {
  /** [E, E] sum over tokens of n n^T, n the attention input. */
  gram: Float64Array;
  /** [H, headDim/2] sum over tokens of the L2 norm of each pre-RoPE query rotation pair. */
  qPairNorm: Float64Array;
  /** [g, headDim/2] the same for keys. */
  kPairNorm: Float64Array;
}

export interface CalibrationStats {
  layers: LayerCalibration[];
  tokenCount: number;
  sequenceCount: number;
}

export interface CalibrateOptions {
  signal?: AbortSignal;
  /**
   * 'runtime' (default): the kernel-based GqaModel (float32 activations, native attention), with
   * the statistics accumulated in float64 from its attention inputs; 'reference': the float64
   * TypeScript forward below (slower; for cross-checks).
   */
  engine?: 'runtime' | 'reference';
  /** Sequences per runtime forward call (same length ones are batched; default 8). */
  batch?: number;
  /** Called after each sequence with (done, total). */
  onSequence?: (done: number, total: number) => void;
}

/** Dims (a, b) of rotation pair j in a head of `headDim` dims, for either RoPE layout. */
export function pairDims(style: 'interleaved' | 'half-split', headDim: number, j: number): [number, number] {
  return style === 'interleaved' ? [2 * j, 2 * j + 1] : [j, j + headDim / 2];
}

/**
 * A float64 incremental forward of the original Llama-family model that records calibration
 * statistics as it goes. `step` returns the logits, so it can also generate.
 */
class CalibrationForward {
  private readonly cfg: LlamaCheckpoint['config'];
  private readonly weights: LlamaCheckpoint['weights'];
  readonly stats: CalibrationStats;
  private readonly x: Float64Array;
  private readonly n: Float64Array;
  private readonly q: Float64Array;
  private readonly k: Float64Array;
  private readonly v: Float64Array;
  private readonly att: Float64Array;
  private readonly hb: Float64Array;
  private readonly hb2: Float64Array;
  private readonly scores: Float64Array;
  private keyCache: Float64Array[] = [];
  private valueCache: Float64Array[] = [];
  private readonly maxLen: number;

  constructor(checkpoint: LlamaCheckpoint, maxLen: number) {
    this.cfg = checkpoint.config;
    this.weights = checkpoint.weights;
    const { dim: E, nHeads: H, nKvHeads: g, headDim: hd, hiddenDim } = this.cfg;
    this.maxLen = maxLen;
    this.stats = {
      layers: Array.from({ length: this.cfg.nLayers }, () => ({
        gram: new Float64Array(E * E),
        qPairNorm: new Float64Array((H * hd) / 2),
        kPairNorm: new Float64Array((g * hd) / 2),
      })),
      tokenCount: 0,
      sequenceCount: 0,
    };
    this.x = new Float64Array(E);
    this.n = new Float64Array(E);
    this.q = new Float64Array(H * hd);
    this.k = new Float64Array(g * hd);
    this.v = new Float64Array(g * hd);
    this.att = new Float64Array(H * hd);
    this.hb = new Float64Array(hiddenDim);
    this.hb2 = new Float64Array(hiddenDim);
    this.scores = new Float64Array(maxLen);
    this.reset();
  }

  reset(): void {
    const kvDim = this.cfg.nKvHeads * this.cfg.headDim;
    this.keyCache = Array.from({ length: this.cfg.nLayers }, () => new Float64Array(this.maxLen * kvDim));
    this.valueCache = Array.from({ length: this.cfg.nLayers }, () => new Float64Array(this.maxLen * kvDim));
  }

  step(token: number, pos: number, record: boolean): Float64Array {
    const { dim: E, nHeads: H, nKvHeads: g, headDim: hd, hiddenDim, normEps, ropeStyle } = this.cfg;
    const w = this.weights;
    const x = this.x;
    const n = this.n;
    const kvDim = g * hd;
    const group = H / g;
    const pairs = hd / 2;
    for (let i = 0; i < E; i++) x[i] = w.tokenEmbedding[token * E + i]!;
    const cos = new Float64Array(pairs);
    const sin = new Float64Array(pairs);
    for (let j = 0; j < pairs; j++) {
      const angle = pos * this.cfg.ropeTheta ** ((-2 * j) / hd);
      cos[j] = Math.cos(angle);
      sin[j] = Math.sin(angle);
    }
    const pairIndex = Array.from({ length: pairs }, (_, j) => pairDims(ropeStyle, hd, j));
    for (let l = 0; l < this.cfg.nLayers; l++) {
      const layer = w.layers[l]!;
      rmsNormInto(n, x, layer.rmsAtt, normEps);
      matVecInto(this.q, layer.wq, n, H * hd, E, layer.bq);
      matVecInto(this.k, layer.wk, n, kvDim, E, layer.bk);
      matVecInto(this.v, layer.wv, n, kvDim, E, layer.bv);
      if (record) {
        const st = this.stats.layers[l]!;
        const gram = st.gram;
        for (let i = 0; i < E; i++) {
          const ni = n[i]!;
          const row = i * E;
          for (let j = i; j < E; j++) gram[row + j] = gram[row + j]! + ni * n[j]!;
        }
        for (let h = 0; h < H; h++) {
          for (let j = 0; j < pairs; j++) {
            const [a, b] = pairIndex[j]!;
            st.qPairNorm[h * pairs + j] =
              st.qPairNorm[h * pairs + j]! + Math.hypot(this.q[h * hd + a]!, this.q[h * hd + b]!);
          }
        }
        for (let h = 0; h < g; h++) {
          for (let j = 0; j < pairs; j++) {
            const [a, b] = pairIndex[j]!;
            st.kPairNorm[h * pairs + j] =
              st.kPairNorm[h * pairs + j]! + Math.hypot(this.k[h * hd + a]!, this.k[h * hd + b]!);
          }
        }
      }
      rope(this.q, H, hd, pairIndex, cos, sin);
      rope(this.k, g, hd, pairIndex, cos, sin);
      const kc = this.keyCache[l]!;
      const vc = this.valueCache[l]!;
      kc.set(this.k, pos * kvDim);
      vc.set(this.v, pos * kvDim);
      const scale = 1 / Math.sqrt(hd);
      for (let h = 0; h < H; h++) {
        const kvOff = Math.floor(h / group) * hd;
        for (let t = 0; t <= pos; t++) {
          let dot = 0;
          for (let d = 0; d < hd; d++) dot += this.q[h * hd + d]! * kc[t * kvDim + kvOff + d]!;
          this.scores[t] = dot * scale;
        }
        let max = Number.NEGATIVE_INFINITY;
        for (let t = 0; t <= pos; t++) max = Math.max(max, this.scores[t]!);
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          const e = Math.exp(this.scores[t]! - max);
          this.scores[t] = e;
          sum += e;
        }
        for (let d = 0; d < hd; d++) this.att[h * hd + d] = 0;
        for (let t = 0; t <= pos; t++) {
          const p = this.scores[t]! / sum;
          const base = t * kvDim + kvOff;
          for (let d = 0; d < hd; d++) this.att[h * hd + d] = this.att[h * hd + d]! + p * vc[base + d]!;
        }
      }
      matVecInto(n, layer.wo, this.att, E, H * hd);
      for (let i = 0; i < E; i++) x[i] = x[i]! + n[i]!;
      rmsNormInto(n, x, layer.rmsFfn, normEps);
      matVecInto(this.hb, layer.w1, n, hiddenDim, E);
      matVecInto(this.hb2, layer.w3, n, hiddenDim, E);
      for (let i = 0; i < hiddenDim; i++) {
        const gate = this.hb[i]!;
        this.hb[i] = (gate / (1 + Math.exp(-gate))) * this.hb2[i]!;
      }
      matVecInto(n, layer.w2, this.hb, E, hiddenDim);
      for (let i = 0; i < E; i++) x[i] = x[i]! + n[i]!;
    }
    rmsNormInto(n, x, w.rmsFinal, normEps);
    const logits = new Float64Array(this.cfg.vocabSize);
    matVecInto(logits, w.classifier, n, this.cfg.vocabSize, E);
    if (record) this.stats.tokenCount++;
    return logits;
  }

  finish(): CalibrationStats {
    const E = this.cfg.dim;
    for (const st of this.stats.layers) {
      for (let i = 0; i < E; i++) for (let j = 0; j < i; j++) st.gram[i * E + j] = st.gram[j * E + i]!;
    }
    return this.stats;
  }
}

function rmsNormInto(out: Float64Array, x: Float64Array, gain: Float32Array, eps: number): void {
  let ss = 0;
  for (let i = 0; i < x.length; i++) ss += x[i]! * x[i]!;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) out[i] = x[i]! * inv * gain[i]!;
}

function matVecInto(
  out: Float64Array,
  w: Float32Array,
  x: Float64Array,
  rows: number,
  cols: number,
  bias?: Float32Array,
): void {
  for (let r = 0; r < rows; r++) {
    const base = r * cols;
    let s = bias === undefined ? 0 : bias[r]!;
    for (let c = 0; c < cols; c++) s += w[base + c]! * x[c]!;
    out[r] = s;
  }
}

function rope(
  v: Float64Array,
  heads: number,
  hd: number,
  pairIndex: [number, number][],
  cos: Float64Array,
  sin: Float64Array,
): void {
  for (let h = 0; h < heads; h++) {
    for (let j = 0; j < pairIndex.length; j++) {
      const [a, b] = pairIndex[j]!;
      const x0 = v[h * hd + a]!;
      const x1 = v[h * hd + b]!;
      v[h * hd + a] = x0 * cos[j]! - x1 * sin[j]!;
      v[h * hd + b] = x0 * sin[j]! + x1 * cos[j]!;
    }
  }
}

/**
 * Adds rows^T rows (rows [n, E], float32) into the upper triangle of gram [E, E] (float64). The
 * product runs through `linear` (the native GEMM: f32 sums over the n rows of one call, then
 * accumulated in float64 here); in TypeScript it dominated calibration (about 10 s per 256-token
 * sequence at E = 2048).
 */
function accumulateGram(gram: Float64Array, rows: Float32Array, n: number, E: number): void {
  const transposed = new Float32Array(E * n);
  for (let t = 0; t < n; t++) {
    for (let i = 0; i < E; i++) transposed[i * n + t] = rows[t * E + i]!;
  }
  const product = new Float32Array(E * E);
  linear(product, transposed, transposed, E, E, n);
  for (let i = 0; i < E; i++) {
    const row = i * E;
    for (let j = i; j < E; j++) gram[row + j] = gram[row + j]! + product[row + j]!;
  }
}

/** GqaModel that records every layer's attention input into calibration statistics. */
class RecordingGqaModel extends GqaModel {
  readonly stats: CalibrationStats;
  readonly #source: LlamaCheckpoint;
  recording = true;

  constructor(checkpoint: LlamaCheckpoint, maxSeqLen: number) {
    super(checkpoint, { maxSeqLen });
    this.#source = checkpoint;
    const { dim: E, nHeads: H, nKvHeads: g, headDim: hd, nLayers } = checkpoint.config;
    this.stats = {
      layers: Array.from({ length: nLayers }, () => ({
        gram: new Float64Array(E * E),
        qPairNorm: new Float64Array((H * hd) / 2),
        kPairNorm: new Float64Array((g * hd) / 2),
      })),
      tokenCount: 0,
      sequenceCount: 0,
    };
  }

  protected override attention(l: number, normed: Float32Array, batch: AttentionBatch): Float32Array {
    if (this.recording) this.#record(l, normed, batch.rows);
    return super.attention(l, normed, batch);
  }

  #record(l: number, normed: Float32Array, rows: number): void {
    const { dim: E, nHeads: H, nKvHeads: g, headDim: hd, ropeStyle } = this.#source.config;
    const layer = this.#source.weights.layers[l]!;
    const st = this.stats.layers[l]!;
    accumulateGram(st.gram, normed, rows, E);
    const pairs = hd / 2;
    const q = new Float32Array(rows * H * hd);
    const k = new Float32Array(rows * g * hd);
    linear(q, normed, layer.wq, rows, H * hd, E, layer.bq);
    linear(k, normed, layer.wk, rows, g * hd, E, layer.bk);
    const addNorms = (out: Float64Array, v: Float32Array, heads: number): void => {
      for (let t = 0; t < rows; t++) {
        for (let h = 0; h < heads; h++) {
          const base = (t * heads + h) * hd;
          for (let j = 0; j < pairs; j++) {
            const [a, b] = pairDims(ropeStyle, hd, j);
            out[h * pairs + j] = out[h * pairs + j]! + Math.hypot(v[base + a]!, v[base + b]!);
          }
        }
      }
    };
    addNorms(st.qPairNorm, q, H);
    addNorms(st.kPairNorm, k, g);
  }
}

function finishStats(stats: CalibrationStats, E: number): CalibrationStats {
  for (const st of stats.layers) {
    for (let i = 0; i < E; i++) for (let j = 0; j < i; j++) st.gram[i * E + j] = st.gram[j * E + i]!;
  }
  return stats;
}

function calibrateWithRuntime(
  checkpoint: LlamaCheckpoint,
  sequences: readonly (readonly number[])[],
  longest: number,
  options: CalibrateOptions,
): CalibrationStats {
  const model = new RecordingGqaModel(checkpoint, longest);
  try {
    const perCall = Math.max(1, options.batch ?? 8);
    let done = 0;
    for (let start = 0; start < sequences.length; start += perCall) {
      throwIfAborted(options.signal);
      const chunk = sequences.slice(start, start + perCall);
      for (const seq of chunk) {
        for (const token of seq) {
          if (!(Number.isInteger(token) && token >= 0 && token < checkpoint.config.vocabSize)) {
            throw new RangeError(`calibration token ${token} is outside the vocabulary`);
          }
        }
      }
      const ids = chunk.map(() => model.createSequence());
      try {
        model.forward(chunk.map((tokens, i) => ({ seqId: ids[i]!, tokens })));
      } finally {
        for (const id of ids) model.freeSequence(id);
      }
      for (const seq of chunk) {
        model.stats.tokenCount += seq.length;
        model.stats.sequenceCount++;
        options.onSequence?.(++done, sequences.length);
      }
    }
    return finishStats(model.stats, checkpoint.config.dim);
  } finally {
    model.dispose();
  }
}

/** Runs the original model over `sequences` and returns the per-layer statistics. */
export function calibrate(
  checkpoint: LlamaCheckpoint,
  sequences: readonly (readonly number[])[],
  options: CalibrateOptions = {},
): CalibrationStats {
  if (sequences.length === 0) throw new RangeError('calibration needs at least one token sequence');
  const longest = Math.max(...sequences.map((s) => s.length));
  if (longest > checkpoint.config.seqLen) {
    throw new RangeError(
      `calibration sequences of ${longest} tokens exceed the model's context of ${checkpoint.config.seqLen}`,
    );
  }
  if ((options.engine ?? 'runtime') === 'runtime') {
    return calibrateWithRuntime(checkpoint, sequences, Math.max(1, longest), options);
  }
  const forward = new CalibrationForward(checkpoint, Math.max(1, longest));
  sequences.forEach((seq, i) => {
    throwIfAborted(options.signal);
    forward.reset();
    seq.forEach((token, pos) => {
      if (!(Number.isInteger(token) && token >= 0 && token < checkpoint.config.vocabSize)) {
        throw new RangeError(`calibration token ${token} is outside the vocabulary`);
      }
      forward.step(token, pos, true);
    });
    forward.stats.sequenceCount++;
    options.onSequence?.(i + 1, sequences.length);
  });
  return forward.finish();
}

export interface SampleOptions {
  count: number;
  length: number;
  seed: number;
  /** Default 1 (plain sampling from the model). */
  temperature?: number;
  signal?: AbortSignal;
  onSequence?: (done: number, total: number) => void;
}

/**
 * Token sequences sampled from the model itself (BOS first) with a fixed seed, for models without
 * a tokenizer or text. With `stats`, the same forward passes are also recorded as calibration.
 */
export function sampleSequences(
  checkpoint: LlamaCheckpoint,
  options: SampleOptions,
): { sequences: number[][]; stats: CalibrationStats } {
  const { count, length, seed, temperature = 1 } = options;
  if (!(Number.isInteger(count) && count >= 1))
    throw new RangeError(`count must be an integer >= 1, got ${count}`);
  if (!(Number.isInteger(length) && length >= 2 && length <= checkpoint.config.seqLen)) {
    throw new RangeError(`length must be an integer in [2, ${checkpoint.config.seqLen}], got ${length}`);
  }
  const forward = new CalibrationForward(checkpoint, length);
  const sequences: number[][] = [];
  for (let s = 0; s < count; s++) {
    throwIfAborted(options.signal);
    const sampler = createSampler({ temperature, seed: seed * 7919 + s });
    forward.reset();
    const tokens = [BOS_TOKEN];
    for (let pos = 0; pos < length; pos++) {
      const logits = forward.step(tokens[pos]!, pos, true);
      if (pos + 1 < length) tokens.push(sampler(logits));
    }
    forward.stats.sequenceCount++;
    sequences.push(tokens);
    options.onSequence?.(s + 1, count);
  }
  return { sequences, stats: forward.finish() };
}

/** Adds b's statistics into a (same model). */
export function mergeCalibration(a: CalibrationStats, b: CalibrationStats): CalibrationStats {
  return {
    layers: a.layers.map((la, i) => {
      const lb = b.layers[i]!;
      return {
        gram: la.gram.map((v, j) => v + lb.gram[j]!),
        qPairNorm: la.qPairNorm.map((v, j) => v + lb.qPairNorm[j]!),
        kPairNorm: la.kPairNorm.map((v, j) => v + lb.kPairNorm[j]!),
      };
    }),
    tokenCount: a.tokenCount + b.tokenCount,
    sequenceCount: a.sequenceCount + b.sequenceCount,
  };
}

export interface TextSampleOptions {
  /** Number of samples (official default 128). */
  count: number;
  /** Tokens per sample, BOS included (official default 256). */
  length: number;
  /** Official default 42. */
  seed: number;
}

/**
 * TransMLA's calibration sampler on a text: each sample starts at a random non-empty line and
 * concatenates the following lines (wrapping around) until it has `length` tokens, BOS first.
 */
export function textCalibrationSequences(
  tokenizer: Llama2cTokenizer,
  text: string,
  options: TextSampleOptions,
): number[][] {
  const lines = text
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  if (lines.length === 0) throw new RangeError('calibration text has no non-empty line');
  const encoded = lines.map((line) => tokenizer.encode(line, { bos: false }));
  const total = encoded.reduce((s, e) => s + e.length, 0);
  const length = Math.min(options.length, total + 1);
  const rng = createRngFor(options.seed);
  const out: number[][] = [];
  for (let s = 0; s < options.count; s++) {
    const tokens = [BOS_TOKEN];
    let line = Math.floor(rng() * lines.length);
    while (tokens.length < length) {
      for (const t of encoded[line]!) {
        if (tokens.length >= length) break;
        tokens.push(t);
      }
      line = (line + 1) % lines.length;
    }
    out.push(tokens);
  }
  return out;
}

function createRngFor(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Splits a text into a calibration part and a held-out evaluation part at a line boundary near
 * `calibrationFraction` of its characters, so evaluation never sees calibration text.
 */
export function splitText(text: string, calibrationFraction = 0.5): { calibration: string; heldOut: string } {
  const lines = text.split('\n');
  const target = text.length * calibrationFraction;
  let chars = 0;
  let cut = 0;
  while (cut < lines.length && chars < target) chars += lines[cut++]!.length + 1;
  return { calibration: lines.slice(0, cut).join('\n'), heldOut: lines.slice(cut).join('\n') };
}
