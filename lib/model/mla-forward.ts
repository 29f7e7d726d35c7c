/**
 * Reference forward of an MLA model (DeepSeek-V2/V3 attention, Llama-style rest) in plain
 * TypeScript, in two mathematically equal forms:
 *
 * - 'expanded' (default; DeepSeek's training/prefill form): per token, kv_a gives the latent c and
 *   the rope keys; kv_b up-projects c to k_nope and v for every head; head h attends with
 *   k_h = [k_nope_h ; RoPE(k_rope_{group(h)})], q_h = [q_nope_h ; RoPE(q_rope_h)].
 * - 'absorbed' (what the native decode kernel computes): only [c | k_rope] is cached;
 *   q_latent_h = W_UK,h^T q_nope_h, score = q_latent_h . c_j + q_rope_h . k_rope_{j,group(h)},
 *   latent output = sum_j p_j c_j, head output = W_UV,h (latent output).
 *
 * Comparing the two checks the weight layout; comparing either with the original Llama forward
 * checks a conversion.
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
  type RopeAngles,
  rmsNorm,
  ropeAngles,
  softmaxInPlace,
} from './forward-ops.js';
import {
  assertMlaWeightsMatch,
  type MlaConfig,
  type MlaWeights,
  mlaCacheValuesPerToken,
} from './mla-weights.js';

export type MlaAttentionForm = 'expanded' | 'absorbed';

export interface MlaForwardOptions {
  /** Default 'f64'. */
  precision?: Precision;
  /** Default 'expanded'. */
  form?: MlaAttentionForm;
  /** KV cache length; defaults to config.seqLen. */
  maxSeqLen?: number;
}

export interface MlaState {
  readonly config: MlaConfig;
  readonly weights: MlaWeights;
  readonly precision: Precision;
  readonly form: MlaAttentionForm;
  readonly maxSeqLen: number;
  x: FloatArray;
  normed: FloatArray;
  /** Low-rank query latent, when qLoraRank is set. */
  qLatent: FloatArray | null;
  /** [H, Dn+P] */
  q: FloatArray;
  /** [R + P*ropeHeads]: this token's latent and rope keys. */
  kvA: FloatArray;
  /** [H, Dn+Dv]: this token's up-projected keys (nope part) and values ('expanded' only). */
  kvB: FloatArray;
  /** [H, R]: absorbed queries ('absorbed' only). */
  qAbsorbed: FloatArray;
  /** [R]: one head's attention-weighted latent ('absorbed' only). */
  latentOut: FloatArray;
  /** [H, Dv] */
  attnOut: FloatArray;
  projected: FloatArray;
  scores: FloatArray;
  ffn: FeedForwardScratch;
  /**
   * Per layer. 'expanded': [maxSeqLen, H, Dn+P] keys and [maxSeqLen, H, Dv] values.
   * 'absorbed': [maxSeqLen, R + P*ropeHeads] latent cache entries (second array unused, empty).
   */
  keyCache: FloatArray[];
  valueCache: FloatArray[];
}

export function createMlaState(
  weights: MlaWeights,
  config: MlaConfig,
  options: MlaForwardOptions = {},
): MlaState {
  assertMlaWeightsMatch(weights, config);
  const precision = options.precision ?? 'f64';
  const form = options.form ?? 'expanded';
  const maxSeqLen = options.maxSeqLen ?? config.seqLen;
  if (!Number.isInteger(maxSeqLen) || maxSeqLen <= 0)
    throw new RangeError(`maxSeqLen must be a positive integer, got ${maxSeqLen}`);
  const { nHeads: H, kvLoraRank: R, qkNopeHeadDim: Dn, qkRopeHeadDim: P, vHeadDim: Dv } = config;
  const entry = mlaCacheValuesPerToken(config);
  return {
    config,
    weights,
    precision,
    form,
    maxSeqLen,
    x: allocate(precision, config.dim),
    normed: allocate(precision, config.dim),
    qLatent: config.qLoraRank === null ? null : allocate(precision, config.qLoraRank),
    q: allocate(precision, H * (Dn + P)),
    kvA: allocate(precision, entry),
    kvB: allocate(precision, form === 'expanded' ? H * (Dn + Dv) : 0),
    qAbsorbed: allocate(precision, form === 'absorbed' ? H * R : 0),
    latentOut: allocate(precision, form === 'absorbed' ? R : 0),
    attnOut: allocate(precision, H * Dv),
    projected: allocate(precision, config.dim),
    scores: allocate(precision, maxSeqLen),
    ffn: createFeedForwardScratch(precision, config.dim, config.hiddenDim),
    keyCache: Array.from({ length: config.nLayers }, () =>
      allocate(precision, maxSeqLen * (form === 'expanded' ? H * (Dn + P) : entry)),
    ),
    valueCache: Array.from({ length: config.nLayers }, () =>
      allocate(precision, form === 'expanded' ? maxSeqLen * H * Dv : 0),
    ),
  };
}

/** Runs one token at `pos` (earlier positions already cached); returns fresh logits [vocabSize]. */
export function forwardMlaToken(state: MlaState, token: number, pos: number): FloatArray {
  const { config, weights } = state;
  assertIndex('token', token, config.vocabSize);
  assertIndex('pos', pos, state.maxSeqLen);
  const {
    dim,
    nHeads: H,
    kvLoraRank: R,
    qkNopeHeadDim: Dn,
    qkRopeHeadDim: P,
    vHeadDim: Dv,
    ropeHeads,
  } = config;
  const headsPerRopeKey = H / ropeHeads;
  const sharedAngles = mlaRopeAngles(config, pos);
  const x = state.x;

  for (let i = 0; i < dim; i++) x[i] = weights.tokenEmbedding[token * dim + i]!;

  for (let l = 0; l < config.nLayers; l++) {
    const layer = weights.layers[l]!;
    const angles =
      layer.ropeInvFreq === undefined || layer.ropeInvFreq === null
        ? sharedAngles
        : mlaRopeAngles(config, pos, layer.ropeInvFreq);
    rmsNorm(state.normed, x, layer.rmsAtt, config.normEps, dim);

    // Query: [q_nope (Dn) | q_rope (P)] per head, RoPE on the rope part.
    if (state.qLatent === null) {
      matVec(state.q, layer.qProj!, state.normed, H * (Dn + P), dim);
    } else {
      const rank = state.qLatent.length;
      matVec(state.qLatent, layer.qAProj!, state.normed, rank, dim);
      if (layer.qALayernorm !== null) {
        rmsNorm(state.qLatent, state.qLatent, layer.qALayernorm, config.normEps, rank);
      }
      matVec(state.q, layer.qBProj!, state.qLatent, H * (Dn + P), rank);
    }
    for (let h = 0; h < H; h++) {
      const ropeHead = Math.floor(h / headsPerRopeKey);
      applyRope(state.q, h * (Dn + P) + Dn, angles[ropeHead]!, config.ropeStyle);
    }

    // Latent and rope keys of this token: c = (optionally normed) rows 0..R-1, then roped keys.
    matVec(state.kvA, layer.kvAProjWithMqa, state.normed, R + P * ropeHeads, dim);
    if (layer.kvALayernorm !== null) rmsNorm(state.kvA, state.kvA, layer.kvALayernorm, config.normEps, R);
    for (let r = 0; r < ropeHeads; r++) applyRope(state.kvA, R + r * P, angles[r]!, config.ropeStyle);

    if (state.form === 'expanded') {
      attendExpanded(state, l, pos, headsPerRopeKey);
    } else {
      attendAbsorbed(state, l, pos, headsPerRopeKey);
    }

    matVec(state.projected, layer.oProj, state.attnOut, dim, H * Dv);
    for (let i = 0; i < dim; i++) x[i] = x[i]! + state.projected[i]!;
    feedForwardResidual(x, layer, state.ffn, dim, config.hiddenDim, config.normEps);
  }

  rmsNorm(state.normed, x, weights.rmsFinal, config.normEps, dim);
  const logits = allocate(state.precision, config.vocabSize);
  matVec(logits, weights.classifier, state.normed, config.vocabSize, dim);
  return logits;
}

/**
 * cos/sin of every rope pair at `pos`, one set per rope head: from config.ropeInvFreq when the model
 * carries a frequency table, else the standard theta^(-2p/P).
 */
export function mlaRopeAngles(
  config: MlaConfig,
  pos: number,
  table: Float64Array | null | undefined = config.ropeInvFreq,
): RopeAngles[] {
  const { qkRopeHeadDim: P, ropeHeads } = config;
  if (table === undefined || table === null) {
    const shared = ropeAngles(pos, P, config.ropeTheta);
    return Array.from({ length: ropeHeads }, () => shared);
  }
  const pairs = P / 2;
  const perHead = table.length !== pairs;
  return Array.from({ length: ropeHeads }, (_, r) => {
    const cos = new Float64Array(pairs);
    const sin = new Float64Array(pairs);
    for (let p = 0; p < pairs; p++) {
      const angle = pos * table[(perHead ? r * pairs : 0) + p]!;
      cos[p] = Math.cos(angle);
      sin[p] = Math.sin(angle);
    }
    return { cos, sin };
  });
}

/** Non-absorbed attention: materialise full per-head keys and values for this token, cache them, attend. */
function attendExpanded(state: MlaState, layerIndex: number, pos: number, headsPerRopeKey: number): void {
  const { config } = state;
  const layer = state.weights.layers[layerIndex]!;
  const { nHeads: H, kvLoraRank: R, qkNopeHeadDim: Dn, qkRopeHeadDim: P, vHeadDim: Dv } = config;
  const keyWidth = Dn + P;
  const keyCache = state.keyCache[layerIndex]!;
  const valueCache = state.valueCache[layerIndex]!;

  matVec(state.kvB, layer.kvBProj, state.kvA, H * (Dn + Dv), R);
  for (let h = 0; h < H; h++) {
    const keyBase = (pos * H + h) * keyWidth;
    const kvBBase = h * (Dn + Dv);
    for (let d = 0; d < Dn; d++) keyCache[keyBase + d] = state.kvB[kvBBase + d]!;
    const ropeBase = R + Math.floor(h / headsPerRopeKey) * P;
    for (let d = 0; d < P; d++) keyCache[keyBase + Dn + d] = state.kvA[ropeBase + d]!;
    const valueBase = (pos * H + h) * Dv;
    for (let d = 0; d < Dv; d++) valueCache[valueBase + d] = state.kvB[kvBBase + Dn + d]!;
  }

  for (let h = 0; h < H; h++) {
    const qBase = h * keyWidth;
    for (let t = 0; t <= pos; t++) {
      const keyBase = (t * H + h) * keyWidth;
      let dot = 0;
      for (let d = 0; d < keyWidth; d++) dot += state.q[qBase + d]! * keyCache[keyBase + d]!;
      state.scores[t] = dot * config.softmaxScale;
    }
    softmaxInPlace(state.scores, pos + 1);
    for (let d = 0; d < Dv; d++) {
      let sum = 0;
      for (let t = 0; t <= pos; t++) sum += state.scores[t]! * valueCache[(t * H + h) * Dv + d]!;
      state.attnOut[h * Dv + d] = sum;
    }
  }
}

/** Absorbed attention over the latent cache [c | k_rope], as the native mla_decode computes it. */
function attendAbsorbed(state: MlaState, layerIndex: number, pos: number, headsPerRopeKey: number): void {
  const { config } = state;
  const layer = state.weights.layers[layerIndex]!;
  const { nHeads: H, kvLoraRank: R, qkNopeHeadDim: Dn, qkRopeHeadDim: P, vHeadDim: Dv } = config;
  const entry = state.kvA.length;
  const cache = state.keyCache[layerIndex]!;
  cache.set(state.kvA, pos * entry);

  for (let h = 0; h < H; h++) {
    // q_latent_h[c] = sum_d W_UK,h[d, c] q_nope_h[d]; W_UK,h is rows h*(Dn+Dv) .. +Dn of kv_b.
    const ukBase = h * (Dn + Dv) * R;
    const qLatent = state.qAbsorbed;
    const qLatentBase = h * R;
    for (let c = 0; c < R; c++) {
      let sum = 0;
      for (let d = 0; d < Dn; d++) sum += layer.kvBProj[ukBase + d * R + c]! * state.q[h * (Dn + P) + d]!;
      qLatent[qLatentBase + c] = sum;
    }
    const qRopeBase = h * (Dn + P) + Dn;
    const ropeOffset = R + Math.floor(h / headsPerRopeKey) * P;
    for (let t = 0; t <= pos; t++) {
      const base = t * entry;
      let dot = 0;
      for (let c = 0; c < R; c++) dot += qLatent[qLatentBase + c]! * cache[base + c]!;
      for (let d = 0; d < P; d++) dot += state.q[qRopeBase + d]! * cache[base + ropeOffset + d]!;
      state.scores[t] = dot * config.softmaxScale;
    }
    softmaxInPlace(state.scores, pos + 1);
    for (let c = 0; c < R; c++) {
      let sum = 0;
      for (let t = 0; t <= pos; t++) sum += state.scores[t]! * cache[t * entry + c]!;
      state.latentOut[c] = sum;
    }
    // o_h = W_UV,h latentOut; W_UV,h is rows h*(Dn+Dv)+Dn .. +Dv of kv_b.
    const uvStart = (h * (Dn + Dv) + Dn) * R;
    const wUv = layer.kvBProj.subarray(uvStart, uvStart + Dv * R);
    matVec(state.attnOut, wUv, state.latentOut, Dv, R, undefined, 0, h * Dv);
  }
}

/** Logits after every token of `tokens` (entry i predicts token i+1), from a fresh cache. */
export function forwardMlaSequence(
  weights: MlaWeights,
  config: MlaConfig,
  tokens: readonly number[],
  options: MlaForwardOptions = {},
): FloatArray[] {
  const maxSeqLen = options.maxSeqLen ?? Math.max(1, Math.min(tokens.length, config.seqLen));
  const state = createMlaState(weights, config, { ...options, maxSeqLen });
  return tokens.map((token, pos) => forwardMlaToken(state, token, pos));
}
