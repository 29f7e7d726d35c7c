/**
 * Float64 forward of an MLA model (the same math as lib/model/mla-forward.ts's absorbed form) with
 * a TPLA attention mode, for reparameterisation, calibration and quality measurement:
 *
 * - 'exact': absorbed MLA over the full latent (what prefill does, and the reference).
 * - 'tpla' : the latent split into G shards (research/mla-methods.md 4.1): shard i scores with
 *   scale * (mu_i q'_{h,i} . c'_{j,i} + q_pe,h . k_pe,j), its own softmax, its own latent output,
 *   its W_UV slice; the head output is the sum over shards.
 *
 * One cache per layer [maxSeqLen, R + P*ropeHeads] holds what the devices would hold between
 * them: rows written by 'exact' steps are globally normalised (prefill, PD separation), rows
 * written by 'tpla' steps are normalised per shard with the alpha scales ('local', no
 * communication) or globally ('global', one all-reduced scalar per token).
 */
import {
  applyRope,
  createFeedForwardScratch,
  feedForwardResidual,
  matVec,
  rmsNorm,
} from '../model/forward-ops.js';
import { mlaRopeAngles } from '../model/mla-forward.js';
import { assertMlaWeightsMatch, type MlaCheckpoint } from '../model/mla-weights.js';

export interface TplaShardPlan {
  /** G, shards of the latent (divides R). */
  shards: number;
  /** Per layer, per shard: alpha_i = E||c||^2 / E||(cU)_i||^2 (mu_i = alpha_i scales the shard's scores). */
  alpha: Float64Array[];
}

export type TplaStepMode = 'exact' | 'tpla';
export type TplaNormMode = 'local' | 'global';

export interface TplaForwardState {
  readonly checkpoint: MlaCheckpoint;
  readonly plan: TplaShardPlan | null;
  readonly normMode: TplaNormMode;
  readonly cache: Float64Array[];
  readonly maxSeqLen: number;
  /** When set, receives each layer's pre-norm latent (R values) at every step. */
  onLatent?: (layer: number, latent: Float64Array) => void;
}

export function createTplaForwardState(
  checkpoint: MlaCheckpoint,
  plan: TplaShardPlan | null,
  maxSeqLen: number,
  normMode: TplaNormMode = 'local',
): TplaForwardState {
  assertMlaWeightsMatch(checkpoint.weights, checkpoint.config);
  const { kvLoraRank: R, qkRopeHeadDim: P, ropeHeads, nLayers } = checkpoint.config;
  if (plan !== null && R % plan.shards !== 0) {
    throw new RangeError(`TPLA shards (${plan.shards}) must divide kvLoraRank (${R})`);
  }
  return {
    checkpoint,
    plan,
    normMode,
    maxSeqLen,
    cache: Array.from({ length: nLayers }, () => new Float64Array(maxSeqLen * (R + P * ropeHeads))),
  };
}

/** One token at `pos` in the given mode; returns logits [vocab]. */
export function tplaForwardToken(
  state: TplaForwardState,
  token: number,
  pos: number,
  mode: TplaStepMode,
): Float64Array {
  const { config, weights } = state.checkpoint;
  if (mode === 'tpla' && state.plan === null) throw new RangeError("mode 'tpla' needs a shard plan");
  const {
    dim,
    nHeads: H,
    kvLoraRank: R,
    qkNopeHeadDim: Dn,
    qkRopeHeadDim: P,
    vHeadDim: Dv,
    ropeHeads,
  } = config;
  const entry = R + P * ropeHeads;
  const perRope = H / ropeHeads;
  const x = new Float64Array(dim);
  for (let i = 0; i < dim; i++) x[i] = weights.tokenEmbedding[token * dim + i]!;
  const normed = new Float64Array(dim);
  const q = new Float64Array(H * (Dn + P));
  const kvA = new Float64Array(entry);
  const attn = new Float64Array(H * Dv);
  const proj = new Float64Array(dim);
  const ffn = createFeedForwardScratch('f64', dim, config.hiddenDim);
  const shared = mlaRopeAngles(config, pos);
  const G = mode === 'tpla' ? state.plan!.shards : 1;
  const W = R / G;
  const scores = new Float64Array(pos + 1);
  const qLat = new Float64Array(R);
  const lat = new Float64Array(W);
  for (let l = 0; l < config.nLayers; l++) {
    const layer = weights.layers[l]!;
    const angles =
      layer.ropeInvFreq === undefined || layer.ropeInvFreq === null
        ? shared
        : mlaRopeAngles(config, pos, layer.ropeInvFreq);
    rmsNorm(normed, x, layer.rmsAtt, config.normEps, dim);
    if (config.qLoraRank === null) {
      matVec(q, layer.qProj!, normed, H * (Dn + P), dim);
    } else {
      const ql = new Float64Array(config.qLoraRank);
      matVec(ql, layer.qAProj!, normed, config.qLoraRank, dim);
      if (layer.qALayernorm !== null) rmsNorm(ql, ql, layer.qALayernorm, config.normEps, config.qLoraRank);
      matVec(q, layer.qBProj!, ql, H * (Dn + P), config.qLoraRank);
    }
    for (let h = 0; h < H; h++)
      applyRope(q, h * (Dn + P) + Dn, angles[Math.floor(h / perRope)]!, config.ropeStyle);
    matVec(kvA, layer.kvAProjWithMqa, normed, entry, dim);
    state.onLatent?.(l, kvA.slice(0, R));
    if (layer.kvALayernorm !== null) {
      if (mode === 'exact' || state.normMode === 'global') {
        rmsNorm(kvA, kvA, layer.kvALayernorm, config.normEps, R);
      } else {
        // Local RMS per shard, corrected by sqrt(alpha_i / G) so it estimates the global RMS.
        const alpha = state.plan!.alpha[l]!;
        for (let i = 0; i < G; i++) {
          let ss = 0;
          for (let k = i * W; k < (i + 1) * W; k++) ss += kvA[k]! * kvA[k]!;
          const rmsGlobal = Math.sqrt(((alpha[i]! / G) * ss) / W + config.normEps);
          for (let k = i * W; k < (i + 1) * W; k++) kvA[k] = (kvA[k]! / rmsGlobal) * layer.kvALayernorm[k]!;
        }
      }
    }
    for (let r = 0; r < ropeHeads; r++) applyRope(kvA, R + r * P, angles[r]!, config.ropeStyle);
    const cache = state.cache[l]!;
    cache.set(kvA, pos * entry);
    const alpha = mode === 'tpla' ? state.plan!.alpha[l]! : null;
    attn.fill(0);
    for (let h = 0; h < H; h++) {
      const uk = h * (Dn + Dv) * R;
      for (let c = 0; c < R; c++) {
        let s = 0;
        for (let d = 0; d < Dn; d++) s += layer.kvBProj[uk + d * R + c]! * q[h * (Dn + P) + d]!;
        qLat[c] = s;
      }
      const qr = h * (Dn + P) + Dn;
      const ro = R + Math.floor(h / perRope) * P;
      for (let i = 0; i < G; i++) {
        const mu = alpha === null ? 1 : alpha[i]!;
        let max = Number.NEGATIVE_INFINITY;
        for (let t = 0; t <= pos; t++) {
          const b = t * entry;
          let dl = 0;
          for (let c = i * W; c < (i + 1) * W; c++) dl += qLat[c]! * cache[b + c]!;
          let dr = 0;
          for (let d = 0; d < P; d++) dr += q[qr + d]! * cache[b + ro + d]!;
          scores[t] = (mu * dl + dr) * config.softmaxScale;
          if (scores[t]! > max) max = scores[t]!;
        }
        let sum = 0;
        for (let t = 0; t <= pos; t++) {
          scores[t] = Math.exp(scores[t]! - max);
          sum += scores[t]!;
        }
        lat.fill(0);
        for (let t = 0; t <= pos; t++) {
          const p = scores[t]! / sum;
          const b = t * entry + i * W;
          for (let c = 0; c < W; c++) lat[c] = lat[c]! + p * cache[b + c]!;
        }
        const uv = (h * (Dn + Dv) + Dn) * R;
        for (let d = 0; d < Dv; d++) {
          let s = 0;
          const row = uv + d * R + i * W;
          for (let c = 0; c < W; c++) s += layer.kvBProj[row + c]! * lat[c]!;
          attn[h * Dv + d] = attn[h * Dv + d]! + s;
        }
      }
    }
    matVec(proj, layer.oProj, attn, dim, H * Dv);
    for (let i = 0; i < dim; i++) x[i] = x[i]! + proj[i]!;
    feedForwardResidual(x, layer, ffn, dim, config.hiddenDim, config.normEps);
  }
  rmsNorm(normed, x, weights.rmsFinal, config.normEps, dim);
  const logits = new Float64Array(config.vocabSize);
  matVec(logits, weights.classifier, normed, config.vocabSize, dim);
  return logits;
}

/**
 * Logits after every token of a window: the first `prefill` tokens through the exact path (PD
 * separation: prefill is exact MLA), the rest in `mode`.
 */
export function tplaForwardSequence(
  checkpoint: MlaCheckpoint,
  plan: TplaShardPlan | null,
  tokens: readonly number[],
  options: { mode?: TplaStepMode; prefill?: number; normMode?: TplaNormMode } = {},
): Float64Array[] {
  const state = createTplaForwardState(checkpoint, plan, Math.max(1, tokens.length), options.normMode);
  const prefill = options.prefill ?? 0;
  const mode = options.mode ?? (plan === null ? 'exact' : 'tpla');
  return tokens.map((t, pos) => tplaForwardToken(state, t, pos, pos < prefill ? 'exact' : mode));
}
