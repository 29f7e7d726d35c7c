/**
 * MlaModel: an MLA checkpoint in the DeepSeek-V2/V3 layout (lib/model/mla-weights.ts) run with one
 * paged LatentCache per layer through the native kernels. In the absorbed form:
 *
 *   q = q_proj x (or q_b_proj RMSNorm(q_a_proj x)), per head [q_nope (Dn) | q_rope (P)]
 *   q_latent_h = W_UK,h^T q_nope_h          (W_UK,h: the Dn key rows of head h in kv_b_proj)
 *   q_rope_h   = RoPE(q_rope_h)             (same frequencies as the cache's rope keys)
 *   cache.append: mla_project_append does kv_a_proj_with_mqa + kv_a_layernorm + RoPE + write
 *   o_latent   = mla_decode(q_latent, q_rope) (qLen = T for a prompt, causal inside the window;
 *                prompts may take mla_prefill's non-absorbed form instead, same result)
 *   o_h        = W_UV,h o_latent_h          (W_UV,h: the Dv value rows of head h)
 *   x         += o_proj [o_1 .. o_H]
 *
 * With one rope frequency set per layer the whole step is mla_decode_layer (native). Otherwise
 * (per-rope-head frequency tables) the rows are finished here and the attention, W_UK and W_UV
 * included, is mla_prefill in whichever form it estimates cheaper.
 */

import { type Backend, getBackend } from '../backend.js';
import { CACHE_DTYPES, type CacheDtype } from '../dtypes.js';
import { mlaDecodeSync } from '../mla/decode.js';
import { type MlaLayerWeights, mlaDecodeLayerSync } from '../mla/decode-layer.js';
import { LatentCache } from '../mla/latent-cache.js';
import { mlaPrefillSync } from '../mla/prefill.js';
import type { RopeConfig } from '../mla/rope.js';
import { assertMlaWeightsMatch, type MlaCheckpoint, type MlaConfig } from '../model/mla-weights.js';
import { oneOf } from '../validate.js';
import { LayerCaches } from './layer-caches.js';
import { linear, rmsNormRows } from './linear.js';
import { type AttentionBatch, poolBlocks, type RuntimeOptions, TransformerRuntime } from './model.js';
import { RopeRotator } from './rope.js';

export interface MlaModelOptions extends RuntimeOptions {
  /** Latent cache dtype; default 'f32'. */
  cacheDtype?: CacheDtype;
}

/** How one layer's rope keys and rope queries are rotated. */
interface LayerRope {
  /** The RoPE mla_project_append applies to the rope keys. */
  native: RopeConfig;
  /** One rotator per rope head (all the same object unless the layer has per-head frequencies). */
  rotators: RopeRotator[];
  /**
   * Set when the layer has one frequency table per rope head, which the kernel (one table per
   * call) cannot apply: the runtime then projects, norms and rotates [c ; k_rope] itself and hands
   * the finished rows to mla_project_append with an identity weight and zero frequencies.
   */
  identity: Float32Array | null;
}

export class MlaModel extends TransformerRuntime {
  readonly kind = 'mla' as const;
  readonly cacheDtype: CacheDtype;
  readonly kvBytesPerToken: number;
  readonly config: MlaConfig;
  /** The RoPE the rope keys and rope queries get (style, theta and scaling). */
  readonly rope: RopeConfig;
  readonly #checkpoint: MlaCheckpoint;
  protected readonly layerCaches: LayerCaches<LatentCache>;
  /** Per layer, per head: W_UV,h [Dv, R], a view of kv_b_proj (the Dn = 0 attention path). */
  readonly #wUv: Float32Array[][];
  readonly #layerRopes: LayerRope[];
  readonly #backend: Backend;

  constructor(checkpoint: MlaCheckpoint, options: MlaModelOptions = {}) {
    const { config, weights } = checkpoint;
    assertMlaWeightsMatch(weights, config);
    super(config, weights, options);
    this.config = config;
    this.#checkpoint = checkpoint;
    this.cacheDtype =
      options.cacheDtype === undefined ? 'f32' : oneOf('cacheDtype', options.cacheDtype, CACHE_DTYPES);
    this.#backend = options.backend ?? getBackend();
    const { kvLoraRank: R, qkRopeHeadDim: P, qkNopeHeadDim: Dn, vHeadDim: Dv, nHeads: H } = config;
    const pool = poolBlocks(options, this.maxSeqLen);
    this.layerCaches = new LayerCaches(
      Array.from(
        { length: config.nLayers },
        () =>
          new LatentCache({
            kvLoraRank: R,
            ropeDim: P,
            ropeHeads: config.ropeHeads,
            dtype: this.cacheDtype,
            ...pool,
          }),
      ),
    );
    this.kvBytesPerToken = this.layerCaches.bytesPerToken;
    this.rope = { style: config.ropeStyle, theta: config.ropeTheta };
    if (options.ropeScaling !== undefined) this.rope.scaling = options.ropeScaling;
    this.#layerRopes = weights.layers.map((layer) =>
      this.#layerRope(layer.ropeInvFreq ?? config.ropeInvFreq),
    );
    this.#wUv = weights.layers.map((layer) =>
      Array.from({ length: H }, (_, h) => {
        const valueRows = (h * (Dn + Dv) + Dn) * R;
        return layer.kvBProj.subarray(valueRows, valueRows + Dv * R);
      }),
    );
  }

  #layerRope(table: Float64Array | null | undefined): LayerRope {
    const { qkRopeHeadDim: P, ropeHeads, kvLoraRank: R } = this.config;
    const pairs = P / 2;
    if (table === undefined || table === null) {
      const rotator = new RopeRotator(P, this.rope);
      return {
        native: this.rope,
        rotators: Array.from({ length: ropeHeads }, () => rotator),
        identity: null,
      };
    }
    const tableRope = (invFreq: Float32Array): RopeConfig => ({
      style: this.rope.style,
      scaling: { type: 'table', invFreq },
    });
    if (table.length === pairs) {
      const native = tableRope(Float32Array.from(table));
      const rotator = new RopeRotator(P, native);
      return { native, rotators: Array.from({ length: ropeHeads }, () => rotator), identity: null };
    }
    const rotators = Array.from(
      { length: ropeHeads },
      (_, r) => new RopeRotator(P, tableRope(Float32Array.from(table.subarray(r * pairs, (r + 1) * pairs)))),
    );
    const width = R + P * ropeHeads;
    const identity = new Float32Array(width * width);
    for (let i = 0; i < width; i++) identity[i * width + i] = 1;
    return { native: tableRope(new Float32Array(pairs)), rotators, identity };
  }

  protected attention(l: number, normed: Float32Array, batch: AttentionBatch): Float32Array {
    const config = this.config;
    const {
      dim,
      nHeads: H,
      kvLoraRank: R,
      qkNopeHeadDim: Dn,
      qkRopeHeadDim: P,
      vHeadDim: Dv,
      normEps,
    } = config;
    const layer = this.#checkpoint.weights.layers[l]!;
    const rope = this.#layerRopes[l]!;
    // One rope frequency set per layer: the whole step runs in the fused native kernel.
    if (rope.identity === null) return this.#fusedAttention(l, normed, batch, rope.native);
    const { rows, tokensPerSeq } = batch;
    const qWidth = Dn + P;

    // Queries.
    const q = new Float32Array(rows * H * qWidth);
    if (config.qLoraRank === null) {
      linear(q, normed, layer.qProj!, rows, H * qWidth, dim);
    } else {
      const rank = config.qLoraRank;
      const qA = new Float32Array(rows * rank);
      linear(qA, normed, layer.qAProj!, rows, rank, dim);
      if (layer.qALayernorm !== null) rmsNormRows(qA, qA, layer.qALayernorm, normEps, rows, rank);
      linear(q, qA, layer.qBProj!, rows, H * qWidth, rank);
    }
    const qNope = new Float32Array(rows * H * Dn);
    const qRope = new Float32Array(rows * H * P);
    for (let row = 0; row < rows; row++) {
      for (let h = 0; h < H; h++) {
        const qBase = (row * H + h) * qWidth;
        qNope.set(q.subarray(qBase, qBase + Dn), (row * H + h) * Dn);
        qRope.set(q.subarray(qBase + Dn, qBase + qWidth), (row * H + h) * P);
      }
      if (P > 0) {
        const headsPerKey = H / config.ropeHeads;
        rope.rotators.forEach((rotator, r) => {
          rotator.rotate(qRope, (row * H + r * headsPerKey) * P, headsPerKey, P, batch.positions[row]!);
        });
      }
    }

    // Latent and rope keys of the new tokens, straight into the cache.
    const cache = this.layerCaches.caches[l]!;
    const ids = this.layerCaches.idsInLayer(l, batch.seqIds);
    let hidden = normed;
    let hiddenSize = dim;
    if (rope.identity !== null) {
      // Per-rope-head frequencies: finish the rows here (see LayerRope.identity).
      const width = R + P * config.ropeHeads;
      const kvA = new Float32Array(rows * width);
      linear(kvA, normed, layer.kvAProjWithMqa, rows, width, dim);
      for (let row = 0; row < rows; row++) {
        if (layer.kvALayernorm !== null) {
          const c = kvA.subarray(row * width, row * width + R);
          rmsNormRows(c, c, layer.kvALayernorm, normEps, 1, R);
        }
        rope.rotators.forEach((rotator, r) => {
          rotator.rotate(kvA, row * width + R + r * P, 1, P, batch.positions[row]!);
        });
      }
      hidden = kvA;
      hiddenSize = width;
    }
    ids.forEach((id, b) => {
      const args: Parameters<LatentCache['appendSync']>[1] = {
        hidden: hidden.subarray(b * tokensPerSeq * hiddenSize, (b + 1) * tokensPerSeq * hiddenSize),
        hiddenSize,
        weight: rope.identity ?? layer.kvAProjWithMqa,
        normEps,
        rope: rope.native,
        backend: this.#backend,
      };
      if (layer.kvALayernorm !== null && rope.identity === null) args.normWeight = layer.kvALayernorm;
      cache.appendSync(id, args);
    });

    // The attention, W_UK and W_UV included: mla_prefill (its cheaper form for this step). With
    // Dn = 0 (rope-only keys, some MHA2MLA conversions) the latent query is zero, so only the rope
    // part scores: mla_decode on it, then W_UV per head.
    let heads: Float32Array;
    if (Dn > 0) {
      heads = mlaPrefillSync({
        cache: cache.view(ids),
        numHeads: H,
        qLen: tokensPerSeq,
        qkNopeHeadDim: Dn,
        vHeadDim: Dv,
        qNope,
        ...(P > 0 ? { qRope } : {}),
        kvBProj: layer.kvBProj,
        softmaxScale: config.softmaxScale,
        backend: this.#backend,
      }).out;
    } else {
      const { out } = mlaDecodeSync({
        cache: cache.view(ids),
        numHeads: H,
        qLen: tokensPerSeq,
        qLatent: new Float32Array(rows * H * R),
        ...(P > 0 ? { qRope } : {}),
        softmaxScale: config.softmaxScale,
        backend: this.#backend,
      });
      heads = new Float32Array(rows * H * Dv);
      for (let row = 0; row < rows; row++) {
        for (let h = 0; h < H; h++) {
          const wUv = this.#wUv[l]![h]!;
          const o = (row * H + h) * R;
          const dst = (row * H + h) * Dv;
          for (let d = 0; d < Dv; d++) {
            const w = d * R;
            let sum = 0;
            for (let c = 0; c < R; c++) sum += wUv[w + c]! * out[o + c]!;
            heads[dst + d] = sum;
          }
        }
      }
    }
    const projected = new Float32Array(rows * dim);
    linear(projected, heads, layer.oProj, rows, dim, H * Dv);
    return projected;
  }

  /**
   * The attention of layer l through mla_decode_layer: q projection, W_UK absorption, RoPE, the
   * new tokens' cache rows, the attention core, W_UV and o_proj in one native call (the per-head
   * absorption and W_UV loops would otherwise run in TypeScript). The new tokens' slots are
   * reserved first; if the kernel throws, the sequences are cut back to their old lengths.
   */
  #fusedAttention(l: number, normed: Float32Array, batch: AttentionBatch, rope: RopeConfig): Float32Array {
    const config = this.config;
    const layer = this.#checkpoint.weights.layers[l]!;
    const cache = this.layerCaches.caches[l]!;
    const ids = this.layerCaches.idsInLayer(l, batch.seqIds);
    const previous = ids.map((id) => cache.length(id));
    const weights: MlaLayerWeights = {
      kvAProjWithMqa: layer.kvAProjWithMqa,
      kvBProj: layer.kvBProj,
      oProj: layer.oProj,
    };
    if (config.qLoraRank === null) weights.qProj = layer.qProj!;
    else {
      weights.qAProj = layer.qAProj!;
      weights.qBProj = layer.qBProj!;
      if (layer.qALayernorm !== null) weights.qALayernorm = layer.qALayernorm;
    }
    if (layer.kvALayernorm !== null) weights.kvALayernorm = layer.kvALayernorm;
    try {
      for (const id of ids) cache.allocateSlots(id, batch.tokensPerSeq);
      return mlaDecodeLayerSync({
        cache: cache.view(ids),
        config: {
          hiddenSize: config.dim,
          numHeads: config.nHeads,
          qLoraRank: config.qLoraRank ?? 0,
          qkNopeHeadDim: config.qkNopeHeadDim,
          vHeadDim: config.vHeadDim,
          normEps: config.normEps,
          rope,
        },
        weights,
        hidden: normed,
        qLen: batch.tokensPerSeq,
        positions: batch.positions,
        softmaxScale: config.softmaxScale,
        backend: this.#backend,
      }).out;
    } catch (e) {
      ids.forEach((id, b) => {
        if (cache.length(id) > previous[b]!) cache.truncate(id, previous[b]!);
      });
      throw e;
    }
  }
}
