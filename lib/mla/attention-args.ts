/**
 * Argument checks that mlaDecode and mlaPrefill share: the cache view and batch, the rope
 * query, the optional lse output, and that no output aliases an input.
 */
import { DTYPE_CODE } from '../dtypes.js';
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import type { NativeAttentionFields } from '../native/binding-types.js';
import { objectArg, typedArray } from '../validate.js';
import { type CacheRowLayout, checkView, type PagedCacheView } from './paged-cache.js';

/** The cache view (its seqLens give the batch), checked against numHeads. */
export function attentionCache(
  cacheValue: unknown,
  numHeads: number,
): {
  cache: PagedCacheView & CacheRowLayout;
  batch: number;
} {
  const cacheArg = objectArg('cache', cacheValue);
  if (!(cacheArg.seqLens instanceof Int32Array))
    throw invalidArgument('cache.seqLens', 'an Int32Array', cacheArg.seqLens);
  const batch = cacheArg.seqLens.length;
  if (batch < 1) throw invalidArgument('cache.seqLens', 'at least one sequence', 'an empty array');
  const cache = checkView('cache', cacheArg, batch);
  if (numHeads % cache.ropeHeads !== 0) {
    throw new InvalidArgumentError(
      `numHeads (${numHeads}) must be a multiple of cache.ropeHeads (${cache.ropeHeads})`,
    );
  }
  return { cache, batch };
}

/** qRope [rows, P], required when the cache has rope dims and absent (or empty) when not. */
export function ropeQuery(value: unknown, rows: number, P: number, shape: string): Float32Array | undefined {
  if (P > 0) return typedArray('qRope', value, Float32Array, rows * P, `${shape}, ropeDim ${P}]`);
  if (value !== undefined && (value as Float32Array).length !== 0) {
    throw invalidArgument('qRope', 'nothing (the cache has ropeDim 0)', value);
  }
  return undefined;
}

/** lse: true allocates [rows], a Float32Array is filled, false or undefined skips it. */
export function lseOutput(value: unknown, rows: number): Float32Array | undefined {
  if (value instanceof Float32Array)
    return typedArray('lse', value, Float32Array, rows, '[batch, numHeads, qLen]');
  if (value === true) return new Float32Array(rows);
  if (value !== undefined && value !== false)
    throw invalidArgument('lse', 'a boolean or a Float32Array', value);
  return undefined;
}

/** Throws when an input shares memory with out or lse (the outputs would overwrite it). */
export function checkNoAlias(
  inputs: [string, ArrayBufferView | undefined][],
  out: Float32Array,
  lse: Float32Array | undefined,
): void {
  for (const [name, buf] of inputs) {
    if (buf && (buf.buffer === out.buffer || (lse && buf.buffer === lse.buffer))) {
      throw new InvalidArgumentError(
        `${name} must not share memory with out or lse (outputs would overwrite inputs)`,
      );
    }
  }
}

/** The native params fields both kernels fill the same way from the shape and the cache view. */
export function nativeAttentionFields(
  cache: PagedCacheView & CacheRowLayout,
  batch: number,
  qLen: number,
  numHeads: number,
  softmaxScale: number,
): NativeAttentionFields {
  return {
    batch,
    qLen,
    numHeads,
    kvLoraRank: cache.kvLoraRank,
    ropeDim: cache.ropeDim,
    ropeHeads: cache.ropeHeads,
    blockSize: cache.blockSize,
    numBlocks: cache.numBlocks,
    maxBlocksPerSeq: cache.maxBlocksPerSeq,
    cacheDtype: DTYPE_CODE[cache.dtype],
    softmaxScale,
    cache: cache.pages,
    blockTable: cache.blockTable,
    seqLens: cache.seqLens,
  };
}
