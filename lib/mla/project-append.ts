/**
 * mla_project_append: hidden states -> [c ; kRope] = W_kv_a x, optional RMSNorm of c, RoPE on
 * kRope, quantized into the cache slots of a slot mapping. The weight is read once per call.
 */
import { type Backend, getBackend } from '../backend.js';
import { DTYPE_CODE, WEIGHT_DTYPES, type WeightDtype } from '../dtypes.js';
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import type { NativeProjectAppendParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, oneOf, typedArray } from '../validate.js';
import { type CachePages, checkPages } from './paged-cache.js';
import { type RopeConfig, toNativeRope } from './rope.js';

export interface ProjectAppendArgs {
  cache: CachePages;
  /** [numTokens, hiddenSize] */
  hidden: Float32Array;
  hiddenSize: number;
  /** kv_a_proj_with_mqa, [kvLoraRank + ropeDim * ropeHeads, hiddenSize] row-major. */
  weight: Float32Array | Uint16Array;
  /** 'f32' for a Float32Array; 'f16' or 'bf16' bits in a Uint16Array. */
  weightDtype?: WeightDtype;
  /** kv_a_layernorm weight [kvLoraRank]; omit for no latent norm. */
  normWeight?: Float32Array;
  normEps?: number;
  rope: RopeConfig;
  /** [numTokens] positions for RoPE. */
  positions: Int32Array;
  /** [numTokens] cache slots (page * blockSize + offset); -1 skips a token. */
  slotMapping: BigInt64Array | Int32Array;
  backend?: Backend;
}

function prepare(args: ProjectAppendArgs): { backend: Backend; params: NativeProjectAppendParams } {
  const a = objectArg('projectAppend args', args);
  const cache = checkPages('cache', a.cache);
  const hiddenSize = intInRange('hiddenSize', a.hiddenSize, 1);
  if (!(a.hidden instanceof Float32Array))
    throw invalidArgument('hidden', 'a Float32Array [numTokens, hiddenSize]', a.hidden);
  if (a.hidden.length % hiddenSize !== 0) {
    throw new InvalidArgumentError(
      `hidden: length ${a.hidden.length} is not a multiple of hiddenSize ${hiddenSize}`,
    );
  }
  const numTokens = a.hidden.length / hiddenSize;
  const weightDtype =
    a.weightDtype === undefined ? 'f32' : oneOf('weightDtype', a.weightDtype, WEIGHT_DTYPES);
  const rows = cache.kvLoraRank + cache.ropeDim * cache.ropeHeads;
  const wShape = `[kvLoraRank + ropeDim * ropeHeads = ${rows}, hiddenSize ${hiddenSize}]`;
  const weight =
    weightDtype === 'f32'
      ? typedArray('weight', a.weight, Float32Array, rows * hiddenSize, wShape)
      : typedArray('weight', a.weight, Uint16Array, rows * hiddenSize, `${wShape} of ${weightDtype} bits`);
  let normWeight: Float32Array | undefined;
  if (a.normWeight !== undefined) {
    normWeight = typedArray(
      'normWeight',
      a.normWeight,
      Float32Array,
      cache.kvLoraRank,
      `[kvLoraRank ${cache.kvLoraRank}]`,
    );
  }
  const normEps = a.normEps === undefined ? 1e-6 : finiteNumber('normEps', a.normEps);
  if (normEps < 0) throw invalidArgument('normEps', 'a number >= 0', normEps);
  const rope = toNativeRope('rope', a.rope, cache.ropeDim);
  const positions = typedArray('positions', a.positions, Int32Array, numTokens, `[numTokens ${numTokens}]`);
  for (let t = 0; t < numTokens; t++) {
    if ((positions[t] as number) < 0)
      throw invalidArgument(`positions[${t}]`, 'a position >= 0', positions[t]);
  }
  let slotMapping: BigInt64Array;
  if (a.slotMapping instanceof BigInt64Array) {
    slotMapping = typedArray(
      'slotMapping',
      a.slotMapping,
      BigInt64Array,
      numTokens,
      `[numTokens ${numTokens}]`,
    );
  } else if (a.slotMapping instanceof Int32Array) {
    const s32 = typedArray('slotMapping', a.slotMapping, Int32Array, numTokens, `[numTokens ${numTokens}]`);
    slotMapping = BigInt64Array.from(s32, (v) => BigInt(v));
  } else {
    throw invalidArgument('slotMapping', 'a BigInt64Array or Int32Array [numTokens]', a.slotMapping);
  }
  const slots = cache.numBlocks * cache.blockSize;
  const seen = new Set<bigint>();
  for (let t = 0; t < numTokens; t++) {
    const s = slotMapping[t] as bigint;
    if (s >= BigInt(slots))
      throw invalidArgument(`slotMapping[${t}]`, `a slot in 0..${slots - 1} or -1 to skip`, s);
    if (s >= 0n) {
      if (seen.has(s))
        throw new InvalidArgumentError(`slotMapping[${t}]: slot ${s} is written twice in one call`);
      seen.add(s);
    }
  }
  const backend = (a.backend as Backend | undefined) ?? getBackend();
  const params: NativeProjectAppendParams = {
    numTokens,
    hiddenSize,
    kvLoraRank: cache.kvLoraRank,
    ropeDim: cache.ropeDim,
    ropeHeads: cache.ropeHeads,
    blockSize: cache.blockSize,
    numBlocks: cache.numBlocks,
    cacheDtype: DTYPE_CODE[cache.dtype],
    weightDtype: DTYPE_CODE[weightDtype],
    normEps,
    rope,
    hidden: a.hidden,
    weight,
    normWeight,
    positions,
    slotMapping,
    cache: cache.pages,
  };
  return { backend, params };
}

/** Projects and appends off the event loop. */
export async function projectAppend(args: ProjectAppendArgs): Promise<void> {
  const { backend, params } = prepare(args);
  await backend._projectAppend(params);
}

/** The same on the calling thread. */
export function projectAppendSync(args: ProjectAppendArgs): void {
  const { backend, params } = prepare(args);
  backend._projectAppendSync(params);
}
