/**
 * GqaModel: a Llama-family checkpoint (llama2.c, Hugging Face Llama/Qwen2/Mistral/SmolLM) run with
 * one paged GqaCache per layer and the native gqa_decode kernel. Projections, RoPE and the MLP run
 * in TypeScript; a prompt is prefilled by appending all its keys and values and calling gqa_decode
 * with qLen = T (causal inside the window), a decode step is the same with T = 1, and several
 * sequences adding the same number of tokens share one kernel call. A sliding window (Mistral)
 * is honoured by refusing contexts longer than it, within which it changes nothing.
 */

import { getBackend } from '../backend.js';
import { InvalidArgumentError } from '../errors.js';
import { GQA_CACHE_DTYPES, GqaCache, type GqaCacheDtype } from '../gqa/gqa-cache.js';
import { gqaDecodeSync } from '../gqa/gqa-decode.js';
import type { RopeConfig } from '../mla/rope.js';
import { assertLlamaWeightsMatch, type LlamaCheckpoint, type LlamaConfig } from '../model/llama-weights.js';
import { oneOf } from '../validate.js';
import { LayerCaches } from './layer-caches.js';
import { linear } from './linear.js';
import { type AttentionBatch, poolBlocks, type RuntimeOptions, TransformerRuntime } from './model.js';
import { RopeRotator } from './rope.js';

export interface GqaModelOptions extends RuntimeOptions {
  /** K/V cache dtype; default 'f32'. */
  cacheDtype?: GqaCacheDtype;
}

export class GqaModel extends TransformerRuntime {
  readonly kind = 'gqa' as const;
  readonly cacheDtype: GqaCacheDtype;
  readonly kvBytesPerToken: number;
  readonly config: LlamaConfig;
  readonly #checkpoint: LlamaCheckpoint;
  protected readonly layerCaches: LayerCaches<GqaCache>;
  readonly #rope: RopeRotator;
  readonly #backend;

  constructor(checkpoint: LlamaCheckpoint, options: GqaModelOptions = {}) {
    const { config, weights } = checkpoint;
    assertLlamaWeightsMatch(weights, config);
    super(config, weights, options);
    if (config.slidingWindow !== undefined && this.maxSeqLen > config.slidingWindow) {
      // gqa_decode attends to every cached token; with a window it would be exact only up to it.
      throw new InvalidArgumentError(
        `maxSeqLen ${this.maxSeqLen} exceeds the model's sliding window of ${config.slidingWindow} tokens; the gqa kernel has no attention window, so contexts longer than the window are not supported (use maxSeqLen <= ${config.slidingWindow})`,
      );
    }
    this.config = config;
    this.#checkpoint = checkpoint;
    this.cacheDtype =
      options.cacheDtype === undefined ? 'f32' : oneOf('cacheDtype', options.cacheDtype, GQA_CACHE_DTYPES);
    this.#backend = options.backend ?? getBackend();
    const pool = poolBlocks(options, this.maxSeqLen);
    this.layerCaches = new LayerCaches(
      Array.from(
        { length: config.nLayers },
        () =>
          new GqaCache({
            numKvHeads: config.nKvHeads,
            headDim: config.headDim,
            dtype: this.cacheDtype,
            ...pool,
          }),
      ),
    );
    this.kvBytesPerToken = this.layerCaches.bytesPerToken;
    const rope: RopeConfig = { style: config.ropeStyle, theta: config.ropeTheta };
    if (options.ropeScaling !== undefined) rope.scaling = options.ropeScaling;
    this.#rope = new RopeRotator(config.headDim, rope);
  }

  protected attention(l: number, normed: Float32Array, batch: AttentionBatch): Float32Array {
    const { dim, nHeads, nKvHeads, headDim } = this.config;
    const layer = this.#checkpoint.weights.layers[l]!;
    const { rows, tokensPerSeq } = batch;
    const qDim = nHeads * headDim;
    const kvDim = nKvHeads * headDim;
    const q = new Float32Array(rows * qDim);
    const k = new Float32Array(rows * kvDim);
    const v = new Float32Array(rows * kvDim);
    linear(q, normed, layer.wq, rows, qDim, dim, layer.bq);
    linear(k, normed, layer.wk, rows, kvDim, dim, layer.bk);
    linear(v, normed, layer.wv, rows, kvDim, dim, layer.bv);
    for (let row = 0; row < rows; row++) {
      const position = batch.positions[row]!;
      this.#rope.rotate(q, row * qDim, nHeads, headDim, position);
      this.#rope.rotate(k, row * kvDim, nKvHeads, headDim, position);
    }
    const cache = this.layerCaches.caches[l]!;
    const ids = this.layerCaches.idsInLayer(l, batch.seqIds);
    ids.forEach((id, b) => {
      const from = b * tokensPerSeq * kvDim;
      const to = from + tokensPerSeq * kvDim;
      cache.append(id, k.subarray(from, to), v.subarray(from, to), this.#backend);
    });
    const { out } = gqaDecodeSync({
      cache: cache.view(ids),
      numHeads: nHeads,
      qLen: tokensPerSeq,
      q,
      softmaxScale: 1 / Math.sqrt(headDim),
      backend: this.#backend,
    });
    const projected = new Float32Array(rows * dim);
    linear(projected, out, layer.wo, rows, dim, qDim);
    return projected;
  }
}
