/**
 * Reference forward of the Llama architecture in plain TypeScript: RMSNorm, grouped-query attention
 * with a KV cache, RoPE (interleaved as llama2.c, or half-split as Hugging Face), SwiGLU, final norm,
 * classifier. It mirrors llama2.c's `forward()` step by step and is the ground truth that the
 * kernel-based runtime and the MLA conversions are compared with.
 */
import {
  allocate,
  applyRope,
  assertIndex,
  createFeedForwardScratch,
  type FeedForwardScratch,
  type FloatArray,
  feedForwardResidual,
  matVec,
  type Precision,
  rmsNorm,
  ropeAngles,
  softmaxInPlace,
} from './forward-ops.js';
import { assertLlamaWeightsMatch, type LlamaConfig, type LlamaWeights } from './llama-weights.js';

export interface ForwardOptions {
  /** 'f64' (default) computes in Float64Array; 'f32' rounds activations to float like llama2.c. */
  precision?: Precision;
  /** KV cache length; defaults to config.seqLen. */
  maxSeqLen?: number;
}

export interface LlamaState {
  readonly config: LlamaConfig;
  readonly weights: LlamaWeights;
  readonly precision: Precision;
  readonly maxSeqLen: number;
  /** Residual stream [dim]. */
  x: FloatArray;
  normed: FloatArray;
  q: FloatArray;
  k: FloatArray;
  v: FloatArray;
  attnOut: FloatArray;
  projected: FloatArray;
  scores: FloatArray;
  ffn: FeedForwardScratch;
  /** Per layer [maxSeqLen, nKvHeads*headDim], keys stored after RoPE. */
  keyCache: FloatArray[];
  valueCache: FloatArray[];
}

export function createLlamaState(
  weights: LlamaWeights,
  config: LlamaConfig,
  options: ForwardOptions = {},
): LlamaState {
  assertLlamaWeightsMatch(weights, config);
  const precision = options.precision ?? 'f64';
  const maxSeqLen = options.maxSeqLen ?? config.seqLen;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen <= 0)
    throw new RangeError(`maxSeqLen must be a positive integer, got ${maxSeqLen}`);
  const qDim = config.nHeads * config.headDim;
  const kvDim = config.nKvHeads * config.headDim;
  return {
    config,
    weights,
    precision,
    maxSeqLen,
    x: allocate(precision, config.dim),
    normed: allocate(precision, config.dim),
    q: allocate(precision, qDim),
    k: allocate(precision, kvDim),
    v: allocate(precision, kvDim),
    attnOut: allocate(precision, qDim),
    projected: allocate(precision, config.dim),
    scores: allocate(precision, maxSeqLen),
    ffn: createFeedForwardScratch(precision, config.dim, config.hiddenDim),
    keyCache: Array.from({ length: config.nLayers }, () => allocate(precision, maxSeqLen * kvDim)),
    valueCache: Array.from({ length: config.nLayers }, () => allocate(precision, maxSeqLen * kvDim)),
  };
}

/**
 * Runs one token at position `pos` (positions 0..pos-1 must already be in the cache, as in
 * llama2.c) and returns a fresh array of next-token logits [vocabSize].
 */
export function forwardToken(state: LlamaState, token: number, pos: number): FloatArray {
  const { config, weights } = state;
  assertIndex('token', token, config.vocabSize);
  assertIndex('pos', pos, state.maxSeqLen);
  const { dim, headDim, nHeads, nKvHeads } = config;
  const qDim = nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const groupSize = nHeads / nKvHeads;
  const scale = 1 / Math.sqrt(headDim);
  const angles = ropeAngles(pos, headDim, config.ropeTheta);
  const x = state.x;

  const embeddingRow = token * dim;
  for (let i = 0; i < dim; i++) x[i] = weights.tokenEmbedding[embeddingRow + i]!;

  for (let l = 0; l < config.nLayers; l++) {
    const layer = weights.layers[l]!;
    const keyCache = state.keyCache[l]!;
    const valueCache = state.valueCache[l]!;

    rmsNorm(state.normed, x, layer.rmsAtt, config.normEps, dim);
    matVec(state.q, layer.wq, state.normed, qDim, dim, layer.bq);
    matVec(state.k, layer.wk, state.normed, kvDim, dim, layer.bk);
    matVec(state.v, layer.wv, state.normed, kvDim, dim, layer.bv);
    for (let h = 0; h < nHeads; h++) applyRope(state.q, h * headDim, angles, config.ropeStyle);
    for (let h = 0; h < nKvHeads; h++) applyRope(state.k, h * headDim, angles, config.ropeStyle);
    keyCache.set(state.k, pos * kvDim);
    valueCache.set(state.v, pos * kvDim);

    for (let h = 0; h < nHeads; h++) {
      const qOffset = h * headDim;
      const kvOffset = Math.floor(h / groupSize) * headDim;
      for (let t = 0; t <= pos; t++) {
        const keyOffset = t * kvDim + kvOffset;
        let dot = 0;
        for (let d = 0; d < headDim; d++) dot += state.q[qOffset + d]! * keyCache[keyOffset + d]!;
        state.scores[t] = dot * scale;
      }
      softmaxInPlace(state.scores, pos + 1);
      for (let d = 0; d < headDim; d++) {
        let sum = 0;
        for (let t = 0; t <= pos; t++) sum += state.scores[t]! * valueCache[t * kvDim + kvOffset + d]!;
        state.attnOut[qOffset + d] = sum;
      }
    }
    matVec(state.projected, layer.wo, state.attnOut, dim, qDim);
    for (let i = 0; i < dim; i++) x[i] = x[i]! + state.projected[i]!;

    feedForwardResidual(x, layer, state.ffn, dim, config.hiddenDim, config.normEps);
  }

  rmsNorm(state.normed, x, weights.rmsFinal, config.normEps, dim);
  const logits = allocate(state.precision, config.vocabSize);
  matVec(logits, weights.classifier, state.normed, config.vocabSize, dim);
  return logits;
}

/** Logits after every token of `tokens` (entry i predicts token i+1), from a fresh cache. */
export function forwardSequence(
  weights: LlamaWeights,
  config: LlamaConfig,
  tokens: readonly number[],
  options: ForwardOptions = {},
): FloatArray[] {
  // A cache just long enough; longer than config.seqLen is refused (positions the model never saw).
  const maxSeqLen = options.maxSeqLen ?? Math.max(1, Math.min(tokens.length, config.seqLen));
  const state = createLlamaState(weights, config, { ...options, maxSeqLen });
  return tokens.map((token, pos) => forwardToken(state, token, pos));
}
