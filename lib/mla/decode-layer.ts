/**
 * mla_decode_layer: one fused, weight-absorbed decode step of one MLA attention layer, from the
 * layer's DeepSeek-layout weights. For B sequences x qLen new tokens it projects the queries
 * (q_proj, or q_a_proj -> q_a_layernorm -> q_b_proj), applies RoPE, absorbs W_UK per head,
 * appends the new tokens' [c ; kRope] to the paged cache (kv_a_proj_with_mqa, kv_a_layernorm),
 * runs the attention core, applies W_UV per head and o_proj. Output [B, qLen, hiddenSize].
 */
import { type Backend, getBackend } from '../backend.js';
import { DTYPE_CODE } from '../dtypes.js';
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import type { NativeDecodeLayerParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, oneOf, typedArray } from '../validate.js';
import { checkView, type PagedCacheView } from './paged-cache.js';
import { type RopeConfig, toNativeRope } from './rope.js';

export const LAYER_WEIGHT_DTYPES = ['f32', 'bf16'] as const;
export type LayerWeightDtype = (typeof LAYER_WEIGHT_DTYPES)[number];

/** HF DeepSeek names, (out, in) row-major; Float32Array for 'f32', bf16 bits in a Uint16Array for 'bf16'. */
export interface MlaLayerWeights {
  /** Storage of every matrix below; default 'f32'. Norm weights are always Float32Array. */
  dtype?: LayerWeightDtype;
  /** q_proj [numHeads (qkNopeHeadDim + ropeDim), hiddenSize], when qLoraRank is 0. */
  qProj?: Float32Array | Uint16Array;
  /** q_a_proj [qLoraRank, hiddenSize], when qLoraRank > 0. */
  qAProj?: Float32Array | Uint16Array;
  /** q_a_layernorm [qLoraRank]; omit for no norm. */
  qALayernorm?: Float32Array;
  /** q_b_proj [numHeads (qkNopeHeadDim + ropeDim), qLoraRank]. */
  qBProj?: Float32Array | Uint16Array;
  /** kv_a_proj_with_mqa [kvLoraRank + ropeDim * ropeHeads, hiddenSize]. */
  kvAProjWithMqa: Float32Array | Uint16Array;
  /** kv_a_layernorm [kvLoraRank]; omit when the layer has none (e.g. TransMLA). */
  kvALayernorm?: Float32Array;
  /** kv_b_proj [numHeads (qkNopeHeadDim + vHeadDim), kvLoraRank]: per head Dn key rows, then Dv value rows. */
  kvBProj: Float32Array | Uint16Array;
  /** o_proj [hiddenSize, numHeads vHeadDim]. */
  oProj: Float32Array | Uint16Array;
}

/** The layer's dimensions (kvLoraRank, ropeDim and ropeHeads come from the cache). */
export interface MlaLayerConfig {
  hiddenSize: number;
  numHeads: number;
  /** 0 or omitted: a plain q_proj. */
  qLoraRank?: number;
  /** Dn, may be 0. */
  qkNopeHeadDim: number;
  /** Dv >= 1. */
  vHeadDim: number;
  /** RMSNorm epsilon of q_a_layernorm and kv_a_layernorm; default 1e-6. */
  normEps?: number;
  rope: RopeConfig;
}

export interface MlaDecodeLayerArgs {
  /** Paged cache, block table and lengths; seqLens[b] counts the qLen new tokens too. */
  cache: PagedCacheView;
  config: MlaLayerConfig;
  weights: MlaLayerWeights;
  /** [batch, qLen, hiddenSize], already normed by the layer's input_layernorm. */
  hidden: Float32Array;
  /** New tokens per sequence; default 1. */
  qLen?: number;
  /** [batch, qLen] RoPE positions of the new tokens. */
  positions: Int32Array;
  /**
   * Optional [batch, qLen] cache slots, checked against the slots block table and lengths give
   * (token seqLens[b] - qLen + s of sequence b); the kernel writes exactly those rows.
   */
  slotMapping?: BigInt64Array | Int32Array;
  /** Required: DeepSeek uses mscale^2 / sqrt(qkNopeHeadDim + ropeDim). */
  softmaxScale: number;
  /** Output [batch, qLen, hiddenSize] to reuse (may be `hidden` itself); allocated when omitted. */
  out?: Float32Array;
  backend?: Backend;
}

export interface MlaDecodeLayerResult {
  out: Float32Array;
}

function weightArg(
  name: string,
  v: unknown,
  dtype: LayerWeightDtype,
  length: number,
  shape: string,
): Float32Array | Uint16Array {
  return dtype === 'f32'
    ? typedArray(name, v, Float32Array, length, shape)
    : typedArray(name, v, Uint16Array, length, `${shape} of bf16 bits`);
}

function prepare(args: MlaDecodeLayerArgs): {
  backend: Backend;
  params: NativeDecodeLayerParams;
  result: MlaDecodeLayerResult;
} {
  const a = objectArg('mlaDecodeLayer args', args);
  const c = objectArg('config', a.config);
  const w = objectArg('weights', a.weights);
  const hiddenSize = intInRange('config.hiddenSize', c.hiddenSize, 1);
  const numHeads = intInRange('config.numHeads', c.numHeads, 1);
  const qLoraRank = c.qLoraRank === undefined ? 0 : intInRange('config.qLoraRank', c.qLoraRank, 0);
  const Dn = intInRange('config.qkNopeHeadDim', c.qkNopeHeadDim, 0);
  const Dv = intInRange('config.vHeadDim', c.vHeadDim, 1);
  const normEps = c.normEps === undefined ? 1e-6 : finiteNumber('config.normEps', c.normEps);
  if (normEps < 0) throw invalidArgument('config.normEps', 'a number >= 0', normEps);
  const qLen = a.qLen === undefined ? 1 : intInRange('qLen', a.qLen, 1);
  const softmaxScale = finiteNumber('softmaxScale', a.softmaxScale);

  const cacheArg = objectArg('cache', a.cache);
  if (!(cacheArg.seqLens instanceof Int32Array))
    throw invalidArgument('cache.seqLens', 'an Int32Array', cacheArg.seqLens);
  const batch = cacheArg.seqLens.length;
  if (batch < 1) throw invalidArgument('cache.seqLens', 'at least one sequence', 'an empty array');
  const cache = checkView('cache', cacheArg, batch);
  const R = cache.kvLoraRank;
  const P = cache.ropeDim;
  if (numHeads % cache.ropeHeads !== 0) {
    throw new InvalidArgumentError(
      `config.numHeads (${numHeads}) must be a multiple of cache.ropeHeads (${cache.ropeHeads})`,
    );
  }
  if (Dn + P < 1) {
    throw new InvalidArgumentError(
      'config.qkNopeHeadDim + cache.ropeDim: expected at least 1 (the query has no part), got 0',
    );
  }
  const rope = toNativeRope('config.rope', c.rope, P);
  for (let b = 0; b < batch; b++) {
    const len = cache.seqLens[b] as number;
    if (len < qLen) {
      throw invalidArgument(
        `cache.seqLens[${b}]`,
        `at least qLen ${qLen} (lengths count the new tokens)`,
        len,
      );
    }
  }

  const T = batch * qLen;
  const tokens = `[batch ${batch}, qLen ${qLen}`;
  const hidden = typedArray(
    'hidden',
    a.hidden,
    Float32Array,
    T * hiddenSize,
    `${tokens}, hiddenSize ${hiddenSize}]`,
  );
  const positions = typedArray('positions', a.positions, Int32Array, T, `${tokens}]`);
  for (let t = 0; t < T; t++) {
    if ((positions[t] as number) < 0)
      throw invalidArgument(`positions[${t}]`, 'a position >= 0', positions[t]);
  }

  // The slot of each new token, through the block table.
  const slotOf = (b: number, s: number): number => {
    const token = (cache.seqLens[b] as number) - qLen + s;
    const page = cache.blockTable[b * cache.maxBlocksPerSeq + Math.floor(token / cache.blockSize)] as number;
    return page * cache.blockSize + (token % cache.blockSize);
  };
  const seen = new Map<number, number>();
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < qLen; s++) {
      const slot = slotOf(b, s);
      const other = seen.get(slot);
      if (other !== undefined) {
        throw new InvalidArgumentError(
          `cache.blockTable: new tokens ${other} and ${b * qLen + s} map to the same cache slot ${slot} (sequences share a page)`,
        );
      }
      seen.set(slot, b * qLen + s);
    }
  }
  let slotMapping: BigInt64Array | undefined;
  if (a.slotMapping !== undefined) {
    if (a.slotMapping instanceof BigInt64Array) {
      slotMapping = typedArray('slotMapping', a.slotMapping, BigInt64Array, T, `${tokens}]`);
    } else if (a.slotMapping instanceof Int32Array) {
      const s32 = typedArray('slotMapping', a.slotMapping, Int32Array, T, `${tokens}]`);
      slotMapping = BigInt64Array.from(s32, (v) => BigInt(v));
    } else {
      throw invalidArgument('slotMapping', `a BigInt64Array or Int32Array ${tokens}]`, a.slotMapping);
    }
    for (let b = 0; b < batch; b++) {
      for (let s = 0; s < qLen; s++) {
        const t = b * qLen + s;
        const want = slotOf(b, s);
        if (slotMapping[t] !== BigInt(want)) {
          throw invalidArgument(
            `slotMapping[${t}]`,
            `slot ${want} (token ${(cache.seqLens[b] as number) - qLen + s} of sequence ${b} through cache.blockTable)`,
            slotMapping[t],
          );
        }
      }
    }
  }

  const dtype = w.dtype === undefined ? 'f32' : oneOf('weights.dtype', w.dtype, LAYER_WEIGHT_DTYPES);
  const qRows = numHeads * (Dn + P);
  const qShape = `numHeads ${numHeads} x (qkNopeHeadDim ${Dn} + ropeDim ${P}) = ${qRows}`;
  let wQ: Float32Array | Uint16Array | undefined;
  let wQA: Float32Array | Uint16Array | undefined;
  let wQB: Float32Array | Uint16Array | undefined;
  let qANormWeight: Float32Array | undefined;
  if (qLoraRank === 0) {
    if (w.qAProj !== undefined || w.qBProj !== undefined || w.qALayernorm !== undefined) {
      throw new InvalidArgumentError(
        'weights.qAProj/qBProj/qALayernorm: given, but config.qLoraRank is 0 (a plain q_proj); set config.qLoraRank',
      );
    }
    wQ = weightArg(
      'weights.qProj',
      w.qProj,
      dtype,
      qRows * hiddenSize,
      `[${qShape}, hiddenSize ${hiddenSize}]`,
    );
  } else {
    if (w.qProj !== undefined) {
      throw new InvalidArgumentError(
        `weights.qProj: given, but config.qLoraRank is ${qLoraRank} (q_a_proj/q_b_proj are used)`,
      );
    }
    wQA = weightArg(
      'weights.qAProj',
      w.qAProj,
      dtype,
      qLoraRank * hiddenSize,
      `[qLoraRank ${qLoraRank}, hiddenSize ${hiddenSize}]`,
    );
    wQB = weightArg(
      'weights.qBProj',
      w.qBProj,
      dtype,
      qRows * qLoraRank,
      `[${qShape}, qLoraRank ${qLoraRank}]`,
    );
    if (w.qALayernorm !== undefined) {
      qANormWeight = typedArray(
        'weights.qALayernorm',
        w.qALayernorm,
        Float32Array,
        qLoraRank,
        `[qLoraRank ${qLoraRank}]`,
      );
    }
  }
  const kvARows = R + P * cache.ropeHeads;
  const wKvA = weightArg(
    'weights.kvAProjWithMqa',
    w.kvAProjWithMqa,
    dtype,
    kvARows * hiddenSize,
    `[kvLoraRank ${R} + ropeDim ${P} x ropeHeads ${cache.ropeHeads} = ${kvARows}, hiddenSize ${hiddenSize}]`,
  );
  let kvANormWeight: Float32Array | undefined;
  if (w.kvALayernorm !== undefined) {
    kvANormWeight = typedArray('weights.kvALayernorm', w.kvALayernorm, Float32Array, R, `[kvLoraRank ${R}]`);
  }
  const kvBRows = numHeads * (Dn + Dv);
  const wKvB = weightArg(
    'weights.kvBProj',
    w.kvBProj,
    dtype,
    kvBRows * R,
    `[numHeads ${numHeads} x (qkNopeHeadDim ${Dn} + vHeadDim ${Dv}) = ${kvBRows}, kvLoraRank ${R}]`,
  );
  const wO = weightArg(
    'weights.oProj',
    w.oProj,
    dtype,
    hiddenSize * numHeads * Dv,
    `[hiddenSize ${hiddenSize}, numHeads ${numHeads} x vHeadDim ${Dv}]`,
  );
  const out =
    a.out === undefined
      ? new Float32Array(T * hiddenSize)
      : typedArray('out', a.out, Float32Array, T * hiddenSize, `${tokens}, hiddenSize ${hiddenSize}]`);

  const backend = (a.backend as Backend | undefined) ?? getBackend();
  const params: NativeDecodeLayerParams = {
    batch,
    qLen,
    hiddenSize,
    numHeads,
    qLoraRank,
    qkNopeHeadDim: Dn,
    vHeadDim: Dv,
    kvLoraRank: R,
    ropeDim: P,
    ropeHeads: cache.ropeHeads,
    blockSize: cache.blockSize,
    numBlocks: cache.numBlocks,
    maxBlocksPerSeq: cache.maxBlocksPerSeq,
    cacheDtype: DTYPE_CODE[cache.dtype],
    weightDtype: DTYPE_CODE[dtype],
    softmaxScale,
    normEps,
    foldAbsorption: 0,
    rope,
    hidden,
    wQ,
    wQA,
    qANormWeight,
    wQB,
    wKvA,
    kvANormWeight,
    wKvB,
    wO,
    positions,
    slotMapping,
    cache: cache.pages,
    blockTable: cache.blockTable,
    seqLens: cache.seqLens,
    out,
  };
  return { backend, params, result: { out } };
}

/**
 * Runs the layer step off the event loop. Rejects with InvalidArgumentError (naming the field,
 * what was expected and what was given) before anything is written.
 */
export async function mlaDecodeLayer(args: MlaDecodeLayerArgs): Promise<MlaDecodeLayerResult> {
  const { backend, params, result } = prepare(args);
  await backend._decodeLayer(params);
  return result;
}

/** The same on the calling thread. */
export function mlaDecodeLayerSync(args: MlaDecodeLayerArgs): MlaDecodeLayerResult {
  const { backend, params, result } = prepare(args);
  backend._decodeLayerSync(params);
  return result;
}
