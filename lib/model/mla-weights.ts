/**
 * In-memory form of an MLA model in the DeepSeek-V2/V3 layout (see DESIGN.md "Notation" and
 * research/mla-methods.md section 1), for models whose other blocks are Llama's (RMSNorm, SwiGLU),
 * which is what converted Llama-family models are.
 *
 * Attention weights, all row-major (out, in):
 *   qProj              [H*(Dn+P), E]   per head: Dn "nope" rows, then P rope rows
 *   (or qAProj [qLoraRank, E], qALayernorm [qLoraRank], qBProj [H*(Dn+P), qLoraRank])
 *   kvAProjWithMqa     [R + P*ropeHeads, E]  rows 0..R-1 latent c, then one P-row rope key per rope head
 *   kvALayernorm       [R] or null (DeepSeek has it; exact conversions have none)
 *   kvBProj            [H*(Dn+Dv), R]  per head: Dn k_nope rows, then Dv value rows
 *   oProj              [E, H*Dv]
 * Query head h uses rope key floor(h / (H / ropeHeads)): ropeHeads = 1 is DeepSeek/TransMLA,
 * ropeHeads = g is MHA2MLA.
 */
import type { FeedForwardWeights } from './forward-ops.js';
import type { RopeStyle } from './llama-weights.js';

export interface MlaConfig {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  /** Query heads H. */
  nHeads: number;
  vocabSize: number;
  seqLen: number;
  normEps: number;
  /** null: plain qProj; a number: low-rank q through qAProj/qALayernorm/qBProj. */
  qLoraRank: number | null;
  /** R, the latent width. */
  kvLoraRank: number;
  /** Dn, per-head key dims without RoPE (may be 0). */
  qkNopeHeadDim: number;
  /** P, per-head key dims with RoPE. */
  qkRopeHeadDim: number;
  /** Dv, per-head value dims. */
  vHeadDim: number;
  /** Number of distinct rope keys per token (1 for DeepSeek; g for MHA2MLA). Divides nHeads. */
  ropeHeads: number;
  ropeTheta: number;
  /** DeepSeek is interleaved; kept as a field so the reference can describe other layouts. */
  ropeStyle: RopeStyle;
  /** Attention score scale; DeepSeek uses 1/sqrt(Dn+P) times the YaRN mscale^2. */
  softmaxScale: number;
  /**
   * Optional explicit RoPE inverse frequencies (radians per position), overriding ropeTheta: one
   * per rope pair (length P/2, shared by all rope heads), or one per rope head and pair (length
   * ropeHeads*P/2, head-major). Conversions use it to keep frequencies the DeepSeek layout's
   * theta^(-2p/P) cannot express. Absent or null: the standard theta^(-2p/P).
   */
  ropeInvFreq?: Float64Array | null;
}

export interface MlaLayerWeights extends FeedForwardWeights {
  rmsAtt: Float32Array;
  qProj: Float32Array | null;
  qAProj: Float32Array | null;
  qALayernorm: Float32Array | null;
  qBProj: Float32Array | null;
  kvAProjWithMqa: Float32Array;
  kvALayernorm: Float32Array | null;
  kvBProj: Float32Array;
  oProj: Float32Array;
  /**
   * Optional per-layer RoPE inverse frequencies, same shape rules as MlaConfig.ropeInvFreq, which
   * they override for this layer (conversions choose frequencies per layer).
   */
  ropeInvFreq?: Float64Array | null;
}

export interface MlaWeights {
  tokenEmbedding: Float32Array;
  layers: MlaLayerWeights[];
  rmsFinal: Float32Array;
  classifier: Float32Array;
}

export interface MlaCheckpoint {
  config: MlaConfig;
  weights: MlaWeights;
}

/** Values cached per token per layer: the latent plus the rope keys, [c (R) | k_rope (P*ropeHeads)]. */
export function mlaCacheValuesPerToken(config: MlaConfig): number {
  return config.kvLoraRank + config.qkRopeHeadDim * config.ropeHeads;
}

/** Throws (naming the tensor) when the weights do not fit the config. */
export function assertMlaWeightsMatch(weights: MlaWeights, config: MlaConfig): void {
  const {
    dim,
    hiddenDim,
    nHeads,
    vocabSize,
    kvLoraRank: R,
    qkNopeHeadDim: Dn,
    qkRopeHeadDim: P,
    vHeadDim: Dv,
    ropeHeads,
  } = config;
  if (!(Number.isInteger(ropeHeads) && ropeHeads >= 1 && nHeads % ropeHeads === 0)) {
    throw new RangeError(`ropeHeads (${ropeHeads}) must be a positive divisor of nHeads (${nHeads})`);
  }
  if (P % 2 !== 0) throw new RangeError(`qkRopeHeadDim (${P}) must be even for RoPE`);
  const checkTable = (name: string, table: Float64Array | null | undefined): void => {
    if (table === undefined || table === null) return;
    if (table.length !== P / 2 && table.length !== (ropeHeads * P) / 2) {
      throw new RangeError(
        `${name} has ${table.length} entries, expected ${P / 2} (per pair) or ${(ropeHeads * P) / 2} (per rope head and pair)`,
      );
    }
    if (!table.every((f) => Number.isFinite(f))) throw new RangeError(`${name} has a non-finite entry`);
  };
  checkTable('ropeInvFreq', config.ropeInvFreq);
  weights.layers.forEach((layer, i) => {
    checkTable(`layers.${i}.ropeInvFreq`, layer.ropeInvFreq);
  });
  if (weights.layers.length !== config.nLayers) {
    throw new RangeError(`weights have ${weights.layers.length} layers, config says ${config.nLayers}`);
  }
  const check = (name: string, array: Float32Array | null | undefined, expected: number): void => {
    if (array === null || array === undefined || array.length !== expected) {
      throw new RangeError(`tensor ${name} has ${array?.length ?? 'no'} elements, expected ${expected}`);
    }
  };
  check('tokenEmbedding', weights.tokenEmbedding, vocabSize * dim);
  check('rmsFinal', weights.rmsFinal, dim);
  check('classifier', weights.classifier, vocabSize * dim);
  const qRows = nHeads * (Dn + P);
  weights.layers.forEach((layer, i) => {
    const name = (tensor: string): string => `layers.${i}.${tensor}`;
    check(name('rmsAtt'), layer.rmsAtt, dim);
    if (config.qLoraRank === null) {
      check(name('qProj'), layer.qProj, qRows * dim);
    } else {
      check(name('qAProj'), layer.qAProj, config.qLoraRank * dim);
      // null: no norm on the query latent (converted models, like kvALayernorm null).
      if (layer.qALayernorm !== null) check(name('qALayernorm'), layer.qALayernorm, config.qLoraRank);
      check(name('qBProj'), layer.qBProj, qRows * config.qLoraRank);
    }
    check(name('kvAProjWithMqa'), layer.kvAProjWithMqa, (R + P * ropeHeads) * dim);
    if (layer.kvALayernorm !== null) check(name('kvALayernorm'), layer.kvALayernorm, R);
    check(name('kvBProj'), layer.kvBProj, nHeads * (Dn + Dv) * R);
    check(name('oProj'), layer.oProj, dim * nHeads * Dv);
    check(name('rmsFfn'), layer.rmsFfn, dim);
    check(name('w1'), layer.w1, hiddenDim * dim);
    check(name('w2'), layer.w2, dim * hiddenDim);
    check(name('w3'), layer.w3, hiddenDim * dim);
  });
}
