/**
 * In-memory form of a Llama-family model (llama2.c, and the Hugging Face loaders later): the
 * configuration and one Float32Array per tensor per layer. Matrices are row-major (out, in), the
 * layout of both llama2.c and PyTorch `nn.Linear`, so `y[r] = sum_c W[r * in + c] * x[c]`.
 */

/**
 * Which dimensions RoPE rotates together. llama2.c (and DeepSeek) pair adjacent dims (2i, 2i+1);
 * Hugging Face Llama/Qwen pair dim i with i + headDim/2. Frequency of pair i is theta^(-2i/headDim)
 * in both.
 */
export type RopeStyle = 'interleaved' | 'half-split';

export interface LlamaConfig {
  /** Model width E. */
  dim: number;
  /** SwiGLU inner width. */
  hiddenDim: number;
  nLayers: number;
  /** Query heads H. */
  nHeads: number;
  /** Key/value heads g (g = H is MHA, g < H is GQA). */
  nKvHeads: number;
  vocabSize: number;
  /** Longest context the model was trained for; also the KV cache length of the reference forward. */
  seqLen: number;
  headDim: number;
  ropeTheta: number;
  ropeStyle: RopeStyle;
  normEps: number;
  /**
   * Sliding-window attention (Mistral's sliding_window): a token attends to itself and the
   * window - 1 tokens before it. The kernels have no window, so runtimes refuse contexts longer
   * than the window (where it would matter); loaders cap seqLen at it.
   */
  slidingWindow?: number;
}

export interface LlamaLayerWeights {
  /** [dim] RMSNorm gain before attention. */
  rmsAtt: Float32Array;
  /** [nHeads*headDim, dim] */
  wq: Float32Array;
  /** [nKvHeads*headDim, dim] */
  wk: Float32Array;
  /** [nKvHeads*headDim, dim] */
  wv: Float32Array;
  /** [dim, nHeads*headDim] */
  wo: Float32Array;
  /** Optional q/k/v biases (Qwen2); absent for llama2.c. */
  bq?: Float32Array;
  bk?: Float32Array;
  bv?: Float32Array;
  /** [dim] RMSNorm gain before the feed-forward block. */
  rmsFfn: Float32Array;
  /** [hiddenDim, dim] gate projection (silu side). */
  w1: Float32Array;
  /** [dim, hiddenDim] down projection. */
  w2: Float32Array;
  /** [hiddenDim, dim] up projection. */
  w3: Float32Array;
}

export interface LlamaWeights {
  /** [vocabSize, dim] */
  tokenEmbedding: Float32Array;
  layers: LlamaLayerWeights[];
  /** [dim] */
  rmsFinal: Float32Array;
  /** [vocabSize, dim]; the same array as tokenEmbedding when the classifier is shared (tied). */
  classifier: Float32Array;
}

export interface LlamaCheckpoint {
  config: LlamaConfig;
  weights: LlamaWeights;
}

/** Expected element count of every tensor, for loaders and for consistency checks. */
export function llamaTensorSizes(config: LlamaConfig): {
  tokenEmbedding: number;
  rmsAtt: number;
  wq: number;
  wk: number;
  wv: number;
  wo: number;
  rmsFfn: number;
  w1: number;
  w2: number;
  w3: number;
  rmsFinal: number;
  classifier: number;
} {
  const qDim = config.nHeads * config.headDim;
  const kvDim = config.nKvHeads * config.headDim;
  return {
    tokenEmbedding: config.vocabSize * config.dim,
    rmsAtt: config.dim,
    wq: qDim * config.dim,
    wk: kvDim * config.dim,
    wv: kvDim * config.dim,
    wo: config.dim * qDim,
    rmsFfn: config.dim,
    w1: config.hiddenDim * config.dim,
    w2: config.dim * config.hiddenDim,
    w3: config.hiddenDim * config.dim,
    rmsFinal: config.dim,
    classifier: config.vocabSize * config.dim,
  };
}

/**
 * Throws (naming the tensor) when a weight set does not fit its config. The forwards call this so
 * that a wrong shape is an error at creation, never a silent read of `undefined` mid-forward.
 */
export function assertLlamaWeightsMatch(weights: LlamaWeights, config: LlamaConfig): void {
  if (config.nHeads % config.nKvHeads !== 0) {
    throw new RangeError(`nHeads (${config.nHeads}) must be a multiple of nKvHeads (${config.nKvHeads})`);
  }
  if (config.headDim % 2 !== 0) throw new RangeError(`headDim (${config.headDim}) must be even for RoPE`);
  if (weights.layers.length !== config.nLayers) {
    throw new RangeError(`weights have ${weights.layers.length} layers, config says ${config.nLayers}`);
  }
  const sizes = llamaTensorSizes(config);
  const check = (name: string, array: Float32Array | undefined, expected: number): void => {
    if (array === undefined || array.length !== expected) {
      throw new RangeError(`tensor ${name} has ${array?.length ?? 'no'} elements, expected ${expected}`);
    }
  };
  check('tokenEmbedding', weights.tokenEmbedding, sizes.tokenEmbedding);
  check('rmsFinal', weights.rmsFinal, sizes.rmsFinal);
  check('classifier', weights.classifier, sizes.classifier);
  weights.layers.forEach((layer, i) => {
    check(`layers.${i}.rmsAtt`, layer.rmsAtt, sizes.rmsAtt);
    check(`layers.${i}.wq`, layer.wq, sizes.wq);
    check(`layers.${i}.wk`, layer.wk, sizes.wk);
    check(`layers.${i}.wv`, layer.wv, sizes.wv);
    check(`layers.${i}.wo`, layer.wo, sizes.wo);
    check(`layers.${i}.rmsFfn`, layer.rmsFfn, sizes.rmsFfn);
    check(`layers.${i}.w1`, layer.w1, sizes.w1);
    check(`layers.${i}.w2`, layer.w2, sizes.w2);
    check(`layers.${i}.w3`, layer.w3, sizes.w3);
    if (layer.bq !== undefined) check(`layers.${i}.bq`, layer.bq, config.nHeads * config.headDim);
    if (layer.bk !== undefined) check(`layers.${i}.bk`, layer.bk, config.nKvHeads * config.headDim);
    if (layer.bv !== undefined) check(`layers.${i}.bv`, layer.bv, config.nKvHeads * config.headDim);
  });
}
