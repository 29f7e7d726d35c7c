/**
 * The exact GQA -> MLA rewrite (TransMLA step 1, research/mla-methods.md 2.3) written in the DeepSeek
 * layout that the latentkv MLA kernels run, so that the converted model's logits equal the
 * original's to float precision. It compresses nothing (the cache holds 2*g*headDim values per
 * token, as before); it is the first proof that the MLA path computes the same function.
 *
 * Why this layout. In the absorbed form the kernel scores q_latent . c_j + q_rope . k_rope_j and
 * outputs sum_j p_j c_j. A GQA key is rotated on all of its dims by RoPE, and RoPE does not commute
 * with the up-projection W_UK, so keys cannot live in the latent c. They go into the rope keys
 * instead, one per KV head (ropeHeads = g, the MHA2MLA form), and only values go into the latent:
 *
 *   qkNopeHeadDim Dn = 0, qkRopeHeadDim P = headDim, vHeadDim Dv = headDim,
 *   kvLoraRank R = g*headDim, ropeHeads = g, no kv_a_layernorm, softmaxScale = 1/sqrt(headDim)
 *   q_proj             [H*P, E]      = wq (per head all rows are rope rows)
 *   kv_a_proj_with_mqa [R + g*P, E]  = [wv ; wk]: latent = all g value heads, then g rope keys
 *   kv_b_proj          [H*Dv, R]     per head h only Dv value rows: the selector
 *                                    W_UV,h = [0 .. I_headDim (block of h's KV group) .. 0]
 *   o_proj             = wo;  norms, FFN, embedding, classifier shared unchanged.
 *
 * Query head h reads rope key floor(h / (H/g)), which is exactly its GQA group. Half-split (HF)
 * models have their q/k rows permuted per head into the interleaved order DeepSeek's RoPE uses;
 * q.k is unchanged because both sides get the same permutation.
 */
import type { LlamaCheckpoint } from './llama-weights.js';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from './mla-weights.js';

/**
 * Row permutation that turns a half-split RoPE head into an interleaved one: interleaved dims
 * (2i, 2i+1) take half-split dims (i, i + headDim/2), the pair with the same frequency.
 */
function halfSplitToInterleavedRows(headDim: number): Int32Array {
  const order = new Int32Array(headDim);
  for (let i = 0; i < headDim / 2; i++) {
    order[2 * i] = i;
    order[2 * i + 1] = i + headDim / 2;
  }
  return order;
}

/** Copies `heads` blocks of headDim rows of width `cols`, permuting rows inside each head. */
function permuteHeadRows(
  matrix: Float32Array,
  heads: number,
  headDim: number,
  cols: number,
  order: Int32Array | null,
): Float32Array {
  if (order === null) return matrix.slice();
  const out = new Float32Array(matrix.length);
  for (let h = 0; h < heads; h++) {
    for (let d = 0; d < headDim; d++) {
      const from = (h * headDim + order[d]!) * cols;
      out.set(matrix.subarray(from, from + cols), (h * headDim + d) * cols);
    }
  }
  return out;
}

export function mergeKvHeadsToMla(checkpoint: LlamaCheckpoint): MlaCheckpoint {
  const { config, weights } = checkpoint;
  const { dim: E, nHeads: H, nKvHeads: g, headDim } = config;
  const groupSize = H / g;
  const R = g * headDim;
  const order = config.ropeStyle === 'half-split' ? halfSplitToInterleavedRows(headDim) : null;

  const mlaConfig: MlaConfig = {
    dim: E,
    hiddenDim: config.hiddenDim,
    nLayers: config.nLayers,
    nHeads: H,
    vocabSize: config.vocabSize,
    seqLen: config.seqLen,
    normEps: config.normEps,
    qLoraRank: null,
    kvLoraRank: R,
    qkNopeHeadDim: 0,
    qkRopeHeadDim: headDim,
    vHeadDim: headDim,
    ropeHeads: g,
    ropeTheta: config.ropeTheta,
    ropeStyle: 'interleaved',
    softmaxScale: 1 / Math.sqrt(headDim),
  };

  // The value selector is the same for every layer; each layer gets its own copy so that later
  // conversion steps may change one layer without touching the others.
  const valueSelector = new Float32Array(H * headDim * R);
  for (let h = 0; h < H; h++) {
    const group = Math.floor(h / groupSize);
    for (let d = 0; d < headDim; d++) valueSelector[(h * headDim + d) * R + group * headDim + d] = 1;
  }

  const layers: MlaLayerWeights[] = weights.layers.map((layer, l) => {
    if (layer.bq !== undefined || layer.bk !== undefined || layer.bv !== undefined) {
      throw new Error(
        `layer ${l} has q/k/v biases; the DeepSeek MLA layout written here has no attention biases`,
      );
    }
    const kvA = new Float32Array((R + g * headDim) * E);
    kvA.set(layer.wv, 0);
    kvA.set(permuteHeadRows(layer.wk, g, headDim, E, order), R * E);
    return {
      rmsAtt: layer.rmsAtt,
      qProj: permuteHeadRows(layer.wq, H, headDim, E, order),
      qAProj: null,
      qALayernorm: null,
      qBProj: null,
      kvAProjWithMqa: kvA,
      kvALayernorm: null,
      kvBProj: valueSelector.slice(),
      oProj: layer.wo,
      rmsFfn: layer.rmsFfn,
      w1: layer.w1,
      w2: layer.w2,
      w3: layer.w3,
    };
  });

  return {
    config: mlaConfig,
    weights: {
      tokenEmbedding: weights.tokenEmbedding,
      layers,
      rmsFinal: weights.rmsFinal,
      classifier: weights.classifier,
    },
  };
}
