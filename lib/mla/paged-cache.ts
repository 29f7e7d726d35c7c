/**
 * The paged latent cache as the kernels see it: pages [numBlocks, blockSize, row] plus, for
 * decoding, a block table and lengths per sequence. LatentCache builds these; runtimes with
 * their own allocator can build them directly.
 */
import { CACHE_DTYPES, type CacheDtype, DTYPE_CODE } from '../dtypes.js';
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import { loadCpuBinding } from '../native/load-binding.js';
import { intInRange, objectArg, oneOf } from '../validate.js';

export interface CacheGeometry {
  dtype: CacheDtype;
  /** Tokens per page, 1..256. */
  blockSize: number;
  /** Pages in `pages`. */
  numBlocks: number;
  /** R, the latent width. */
  kvLoraRank: number;
  /** P, the rope key width (even, may be 0). */
  ropeDim: number;
  /** Rope keys per token: 1 (DeepSeek/TransMLA) or one per KV head (MHA2MLA). */
  ropeHeads: number;
}

export interface CachePages extends CacheGeometry {
  /** numBlocks * blockSize * rowBytes bytes; see cacheRowLayout(). */
  pages: Uint8Array;
}

export interface PagedCacheView extends CachePages {
  /** [batch, maxBlocksPerSeq] page ids; entries past a sequence's length are never read. */
  blockTable: Int32Array;
  maxBlocksPerSeq: number;
  /** [batch] cached tokens per sequence (including the tokens being decoded). */
  seqLens: Int32Array;
}

export interface CacheRowLayout {
  rowBytes: number;
  scaleOffset: number;
  ropeOffset: number;
}

/** Byte layout of one token row (native/include/latentkv.h documents it). */
export function cacheRowLayout(
  dtype: CacheDtype,
  kvLoraRank: number,
  ropeDim: number,
  ropeHeads: number,
): CacheRowLayout {
  return loadCpuBinding().binding.cacheLayout(DTYPE_CODE[dtype], kvLoraRank, ropeDim, ropeHeads);
}

export function checkGeometry(name: string, value: unknown): CacheGeometry & CacheRowLayout {
  const g = objectArg(name, value);
  const dtype = oneOf(`${name}.dtype`, g.dtype, CACHE_DTYPES);
  const blockSize = intInRange(`${name}.blockSize`, g.blockSize, 1, 256);
  const numBlocks = intInRange(`${name}.numBlocks`, g.numBlocks, 1);
  const kvLoraRank = intInRange(`${name}.kvLoraRank`, g.kvLoraRank, 1);
  const ropeDim = intInRange(`${name}.ropeDim`, g.ropeDim, 0);
  if (ropeDim % 2 !== 0) throw invalidArgument(`${name}.ropeDim`, 'an even integer', ropeDim);
  const ropeHeads = intInRange(`${name}.ropeHeads`, g.ropeHeads, 1);
  return {
    dtype,
    blockSize,
    numBlocks,
    kvLoraRank,
    ropeDim,
    ropeHeads,
    ...cacheRowLayout(dtype, kvLoraRank, ropeDim, ropeHeads),
  };
}

export function checkPages(name: string, value: unknown): CachePages & CacheRowLayout {
  const g = checkGeometry(name, value);
  const pages = (value as { pages?: unknown }).pages;
  if (!(pages instanceof Uint8Array)) throw invalidArgument(`${name}.pages`, 'a Uint8Array', pages);
  const bytes = g.numBlocks * g.blockSize * g.rowBytes;
  if (pages.byteLength !== bytes) {
    throw new InvalidArgumentError(
      `${name}.pages: expected ${bytes} bytes (numBlocks ${g.numBlocks} x blockSize ${g.blockSize} x row ${g.rowBytes} B), got ${pages.byteLength}`,
    );
  }
  return { ...g, pages };
}

export function checkView(name: string, value: unknown, batch: number): PagedCacheView & CacheRowLayout {
  const c = checkPages(name, value);
  const v = value as { blockTable?: unknown; maxBlocksPerSeq?: unknown; seqLens?: unknown };
  const maxBlocksPerSeq = intInRange(`${name}.maxBlocksPerSeq`, v.maxBlocksPerSeq, 1);
  if (!(v.blockTable instanceof Int32Array) || v.blockTable.length !== batch * maxBlocksPerSeq) {
    throw invalidArgument(
      `${name}.blockTable`,
      `an Int32Array of ${batch * maxBlocksPerSeq} ids [batch, maxBlocksPerSeq]`,
      v.blockTable,
    );
  }
  if (!(v.seqLens instanceof Int32Array) || v.seqLens.length !== batch) {
    throw invalidArgument(`${name}.seqLens`, `an Int32Array of ${batch} lengths`, v.seqLens);
  }
  const capacity = maxBlocksPerSeq * c.blockSize;
  for (let b = 0; b < batch; b++) {
    const len = v.seqLens[b] as number;
    if (len < 0 || len > capacity) {
      throw new InvalidArgumentError(
        `${name}.seqLens[${b}]: expected 0..${capacity} (maxBlocksPerSeq x blockSize), got ${len}: the sequence is longer than its blocks`,
      );
    }
    const used = Math.ceil(len / c.blockSize);
    for (let i = 0; i < used; i++) {
      const id = v.blockTable[b * maxBlocksPerSeq + i] as number;
      if (id < 0 || id >= c.numBlocks) {
        throw new InvalidArgumentError(
          `${name}.blockTable[${b}][${i}]: expected a page id in 0..${c.numBlocks - 1}, got ${id} (sequence ${b} has ${len} tokens and uses this entry)`,
        );
      }
    }
  }
  return { ...c, blockTable: v.blockTable, maxBlocksPerSeq, seqLens: v.seqLens };
}
