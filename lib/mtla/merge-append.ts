/**
 * mtla_merge_append: MTLA's temporal compression of the latent cache (research/mla-methods.md
 * section 5). Each token's LayerNorm'ed latent c_hat is weighted by the hyper-network scalar
 * w = sigmoid(fc_c(pe_chunk) . fc_p(c_hat)) and either opens a new cache row (every `stride`
 * tokens) or is added into the open one; the row's rope key is replaced by the newest token's.
 * The merged cache is an ordinary latent cache with fewer rows: mlaDecode reads it as is.
 */
import { DTYPE_CODE } from '../dtypes.js';
import { fromNativeError, InvalidArgumentError, invalidArgument } from '../errors.js';
import { type CachePages, checkPages } from '../mla/paged-cache.js';
import type { NativeMtlaBinding, NativeMtlaMergeAppendParams } from '../native/binding-types.js';
import { loadCpuBinding } from '../native/load-binding.js';
import { finiteNumber, intInRange, objectArg, typedArray } from '../validate.js';

/** The hyper-network of one MTLA layer (MTLA.py `HyperNetwork`: two Linear(R -> D), with bias). */
export interface MtlaHyperWeights {
  /** fc_c weight [hyperDim, kvLoraRank], applied to the chunk's sinusoidal position embedding. */
  fcC: Float32Array;
  /** fc_c bias [hyperDim]; omit for zero. */
  fcCBias?: Float32Array;
  /** fc_p weight [hyperDim, kvLoraRank], applied to the normalised latent. */
  fcP: Float32Array;
  /** fc_p bias [hyperDim]; omit for zero. */
  fcPBias?: Float32Array;
  /** D, rows of fc_c and fc_p (kvLoraRank / 4 in MTLA); default fcC.length / kvLoraRank. */
  hyperDim?: number;
}

/** The latent LayerNorm (MTLA's kv_norm is an affine LayerNorm, not DeepSeek's RMSNorm). */
export interface MtlaLatentNorm {
  weight: Float32Array;
  /** Omit for zero. */
  bias?: Float32Array;
  /** Default 1e-5 (PyTorch's LayerNorm default). */
  eps?: number;
}

export interface MtlaAppendArgs {
  /** The cache pages (a LatentCache or any CachePages); rows are chunks, not tokens. */
  cache: CachePages;
  /** s >= 1: tokens merged into one cache row. */
  stride: number;
  /** [numTokens, kvLoraRank] latents before the LayerNorm (kv_a rows 0..R-1 of each token). */
  latent: Float32Array;
  /** [numTokens, ropeDim * ropeHeads] rope keys with RoPE applied; omit when ropeDim is 0. */
  kRope?: Float32Array;
  hyper: MtlaHyperWeights;
  /** The latent LayerNorm; omit when `latent` is already normalised. */
  norm?: MtlaLatentNorm;
  /** [numTokens] 0-based index of each token in its sequence (chunk = index / stride). */
  tokenIndex: Int32Array;
  /** [numTokens] slot of the token's chunk row (page * blockSize + offset); -1 skips a token. */
  slotMapping: BigInt64Array | Int32Array;
  /** true to return the merge weights w [numTokens], or a buffer to fill. */
  mergeWeight?: boolean | Float32Array;
}

export interface MtlaAppendResult {
  mergeWeight: Float32Array | undefined;
}

function mtlaBinding(): NativeMtlaBinding {
  return loadCpuBinding().binding as unknown as NativeMtlaBinding;
}

function prepare(args: MtlaAppendArgs): { params: NativeMtlaMergeAppendParams; result: MtlaAppendResult } {
  const a = objectArg('mtlaAppend args', args);
  const cache = checkPages('cache', a.cache);
  const R = cache.kvLoraRank;
  if (R < 2 || R % 2 !== 0) {
    throw new InvalidArgumentError(
      `cache.kvLoraRank: MTLA needs an even latent width >= 2 (the chunk PE is sin/cos pairs), got ${R}`,
    );
  }
  const stride = intInRange('stride', a.stride, 1);
  if (!(a.latent instanceof Float32Array))
    throw invalidArgument('latent', 'a Float32Array [numTokens, kvLoraRank]', a.latent);
  if (a.latent.length % R !== 0) {
    throw new InvalidArgumentError(`latent: length ${a.latent.length} is not a multiple of kvLoraRank ${R}`);
  }
  const T = a.latent.length / R;
  const ropeWidth = cache.ropeDim * cache.ropeHeads;
  let kRope: Float32Array | undefined;
  if (ropeWidth > 0) {
    kRope = typedArray(
      'kRope',
      a.kRope,
      Float32Array,
      T * ropeWidth,
      `[numTokens ${T}, ropeDim * ropeHeads ${ropeWidth}]`,
    );
  } else if (a.kRope !== undefined && (a.kRope as Float32Array).length !== 0) {
    throw invalidArgument('kRope', 'nothing (the cache has ropeDim 0)', a.kRope);
  }
  const hyper = objectArg('hyper', a.hyper);
  if (!(hyper.fcC instanceof Float32Array))
    throw invalidArgument('hyper.fcC', 'a Float32Array [hyperDim, kvLoraRank]', hyper.fcC);
  const hyperDim =
    hyper.hyperDim === undefined ? hyper.fcC.length / R : intInRange('hyper.hyperDim', hyper.hyperDim, 1);
  if (!Number.isInteger(hyperDim) || hyperDim < 1) {
    throw new InvalidArgumentError(
      `hyper.fcC: length ${hyper.fcC.length} is not a positive multiple of kvLoraRank ${R}`,
    );
  }
  const wShape = `[hyperDim ${hyperDim}, kvLoraRank ${R}]`;
  const wFcC = typedArray('hyper.fcC', hyper.fcC, Float32Array, hyperDim * R, wShape);
  const wFcP = typedArray('hyper.fcP', hyper.fcP, Float32Array, hyperDim * R, wShape);
  const bFcC =
    hyper.fcCBias === undefined
      ? undefined
      : typedArray('hyper.fcCBias', hyper.fcCBias, Float32Array, hyperDim, `[hyperDim ${hyperDim}]`);
  const bFcP =
    hyper.fcPBias === undefined
      ? undefined
      : typedArray('hyper.fcPBias', hyper.fcPBias, Float32Array, hyperDim, `[hyperDim ${hyperDim}]`);
  let normWeight: Float32Array | undefined;
  let normBias: Float32Array | undefined;
  let normEps = 1e-5;
  if (a.norm !== undefined) {
    const n = objectArg('norm', a.norm);
    normWeight = typedArray('norm.weight', n.weight, Float32Array, R, `[kvLoraRank ${R}]`);
    if (n.bias !== undefined)
      normBias = typedArray('norm.bias', n.bias, Float32Array, R, `[kvLoraRank ${R}]`);
    if (n.eps !== undefined) normEps = finiteNumber('norm.eps', n.eps);
    if (normEps < 0) throw invalidArgument('norm.eps', 'a number >= 0', normEps);
  }
  const tokenIndex = typedArray('tokenIndex', a.tokenIndex, Int32Array, T, `[numTokens ${T}]`);
  let slotMapping: BigInt64Array;
  if (a.slotMapping instanceof BigInt64Array) {
    slotMapping = typedArray('slotMapping', a.slotMapping, BigInt64Array, T, `[numTokens ${T}]`);
  } else if (a.slotMapping instanceof Int32Array) {
    const s32 = typedArray('slotMapping', a.slotMapping, Int32Array, T, `[numTokens ${T}]`);
    slotMapping = BigInt64Array.from(s32, (v) => BigInt(v));
  } else {
    throw invalidArgument('slotMapping', 'a BigInt64Array or Int32Array [numTokens]', a.slotMapping);
  }
  const slots = BigInt(cache.numBlocks * cache.blockSize);
  // slot -> [chunk, last token index], mirroring the native check with friendlier messages.
  const seen = new Map<bigint, [number, number]>();
  for (let t = 0; t < T; t++) {
    const n = tokenIndex[t] as number;
    if (n < 0) throw invalidArgument(`tokenIndex[${t}]`, 'an index >= 0', n);
    const s = slotMapping[t] as bigint;
    if (s < 0n) continue;
    if (s >= slots) throw invalidArgument(`slotMapping[${t}]`, `a slot in 0..${slots - 1n} or -1 to skip`, s);
    const chunk = Math.floor(n / stride);
    const prev = seen.get(s);
    if (prev !== undefined && (prev[0] !== chunk || n <= prev[1])) {
      throw new InvalidArgumentError(
        `slotMapping[${t}]: slot ${s} already holds chunk ${prev[0]} (up to token ${prev[1]}) in this call; token ${n} of chunk ${chunk} cannot merge into it`,
      );
    }
    seen.set(s, [chunk, n]);
  }
  let mergeWeight: Float32Array | undefined;
  if (a.mergeWeight instanceof Float32Array)
    mergeWeight = typedArray('mergeWeight', a.mergeWeight, Float32Array, T, `[numTokens ${T}]`);
  else if (a.mergeWeight === true) mergeWeight = new Float32Array(T);
  else if (a.mergeWeight !== undefined && a.mergeWeight !== false)
    throw invalidArgument('mergeWeight', 'a boolean or a Float32Array', a.mergeWeight);
  const inputs: [string, ArrayBufferView | undefined][] = [
    ['latent', a.latent],
    ['kRope', kRope],
    ['hyper.fcC', wFcC],
    ['hyper.fcP', wFcP],
    ['norm.weight', normWeight],
  ];
  for (const [name, buf] of inputs) {
    if (buf && (buf.buffer === cache.pages.buffer || (mergeWeight && buf.buffer === mergeWeight.buffer))) {
      throw new InvalidArgumentError(`${name} must not share memory with the cache pages or mergeWeight`);
    }
  }
  const params: NativeMtlaMergeAppendParams = {
    numTokens: T,
    kvLoraRank: R,
    ropeDim: cache.ropeDim,
    ropeHeads: cache.ropeHeads,
    hyperDim,
    stride,
    blockSize: cache.blockSize,
    numBlocks: cache.numBlocks,
    cacheDtype: DTYPE_CODE[cache.dtype],
    normEps,
    latent: a.latent,
    kRope,
    normWeight,
    normBias,
    wFcC,
    bFcC,
    wFcP,
    bFcP,
    tokenIndex,
    slotMapping,
    cache: cache.pages,
    mergeWeight,
  };
  return { params, result: { mergeWeight } };
}

/** Merges T tokens into their chunk rows off the event loop. InvalidArgumentError before any write. */
export async function mtlaAppend(args: MtlaAppendArgs): Promise<MtlaAppendResult> {
  const { params, result } = prepare(args);
  try {
    await mtlaBinding().mtlaMergeAppendAsync(params);
  } catch (e) {
    throw fromNativeError(e);
  }
  return result;
}

/** The same on the calling thread. */
export function mtlaAppendSync(args: MtlaAppendArgs): MtlaAppendResult {
  const { params, result } = prepare(args);
  try {
    mtlaBinding().mtlaMergeAppend(params);
  } catch (e) {
    throw fromNativeError(e);
  }
  return result;
}
