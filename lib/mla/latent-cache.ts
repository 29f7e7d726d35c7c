/**
 * LatentCache: a paged latent KV cache for one layer. Sequences get pages from a free list
 * as they grow and give them back when freed; `view()` builds the block table the decode
 * kernel reads, and `append()` projects hidden states straight into the sequence's next slots.
 */

import { PageAllocator } from '../cache/page-allocator.js';
import { CACHE_DTYPES, type CacheDtype } from '../dtypes.js';
import { DisposedError, InvalidArgumentError, invalidArgument } from '../errors.js';
import { intInRange, objectArg, oneOf } from '../validate.js';
import { type CachePages, cacheRowLayout, type PagedCacheView } from './paged-cache.js';
import { type ProjectAppendArgs, projectAppend, projectAppendSync } from './project-append.js';

export interface LatentCacheOptions {
  kvLoraRank: number;
  ropeDim: number;
  /** Rope keys per token; default 1. */
  ropeHeads?: number;
  /** Default 'bf16'. */
  dtype?: CacheDtype;
  /** Tokens per page; default 64. */
  blockSize?: number;
  /** Pages allocated up front; default 16. */
  numBlocks?: number;
  /** The pool grows (doubling) up to this many pages; default numBlocks (no growth). */
  maxBlocks?: number;
}

export type CacheAppendArgs = Omit<ProjectAppendArgs, 'cache' | 'positions' | 'slotMapping'> & {
  /** Positions for RoPE; default the sequence's next positions. */
  positions?: Int32Array;
};

export class LatentCache implements CachePages {
  readonly dtype: CacheDtype;
  readonly blockSize: number;
  readonly kvLoraRank: number;
  readonly ropeDim: number;
  readonly ropeHeads: number;
  readonly rowBytes: number;
  readonly maxBlocks: number;
  #pages: Uint8Array;
  readonly #alloc: PageAllocator;
  #busy = 0;
  #disposed = false;

  constructor(options: LatentCacheOptions) {
    const o = objectArg('LatentCache options', options);
    this.kvLoraRank = intInRange('kvLoraRank', o.kvLoraRank, 1);
    this.ropeDim = intInRange('ropeDim', o.ropeDim, 0);
    if (this.ropeDim % 2 !== 0) throw invalidArgument('ropeDim', 'an even integer', this.ropeDim);
    this.ropeHeads = o.ropeHeads === undefined ? 1 : intInRange('ropeHeads', o.ropeHeads, 1);
    this.dtype = o.dtype === undefined ? 'bf16' : oneOf('dtype', o.dtype, CACHE_DTYPES);
    this.blockSize = o.blockSize === undefined ? 64 : intInRange('blockSize', o.blockSize, 1, 256);
    const numBlocks = o.numBlocks === undefined ? 16 : intInRange('numBlocks', o.numBlocks, 1);
    this.maxBlocks = o.maxBlocks === undefined ? numBlocks : intInRange('maxBlocks', o.maxBlocks, numBlocks);
    this.rowBytes = cacheRowLayout(this.dtype, this.kvLoraRank, this.ropeDim, this.ropeHeads).rowBytes;
    this.#pages = new Uint8Array(numBlocks * this.blockSize * this.rowBytes);
    this.#alloc = new PageAllocator(this.blockSize, numBlocks, this.maxBlocks, (n) => {
      const pages = new Uint8Array(n * this.blockSize * this.rowBytes);
      pages.set(this.#pages);
      this.#pages = pages;
    });
  }

  /** The page storage; replaced when the pool grows, so take it (or a view) after appending. */
  get pages(): Uint8Array {
    this.#live();
    return this.#pages;
  }

  get numBlocks(): number {
    return this.#alloc.numBlocks;
  }

  get freeBlocks(): number {
    return this.#alloc.freeBlocks;
  }

  /** Bytes one cached token takes in this cache. */
  get bytesPerToken(): number {
    return this.rowBytes;
  }

  createSequence(): number {
    this.#mutable();
    return this.#alloc.create();
  }

  /** Returns the sequence's pages to the pool. */
  freeSequence(seqId: number): void {
    this.#mutable();
    this.#alloc.free(seqId);
  }

  length(seqId: number): number {
    this.#live();
    return this.#alloc.get(seqId).length;
  }

  /** The sequence's page ids in order (a copy). */
  blockTable(seqId: number): Int32Array {
    this.#live();
    return Int32Array.from(this.#alloc.get(seqId).blocks);
  }

  /**
   * Extends a sequence by `count` tokens and returns their slots (page * blockSize + offset),
   * for runtimes that write the cache themselves. Allocates pages (growing the pool up to
   * maxBlocks) or throws without changing anything when there are not enough.
   */
  allocateSlots(seqId: number, count: number): BigInt64Array {
    this.#mutable();
    return this.#alloc.allocate(seqId, count);
  }

  /** Shortens a sequence to newLength tokens, freeing pages no longer used. */
  truncate(seqId: number, newLength: number): void {
    this.#mutable();
    this.#alloc.truncate(seqId, newLength);
  }

  /** The cache as the decode kernel reads it, for these sequences in this order (a snapshot). */
  view(seqIds: readonly number[]): PagedCacheView {
    this.#live();
    return {
      dtype: this.dtype,
      blockSize: this.blockSize,
      numBlocks: this.numBlocks,
      kvLoraRank: this.kvLoraRank,
      ropeDim: this.ropeDim,
      ropeHeads: this.ropeHeads,
      pages: this.#pages,
      ...this.#alloc.table(seqIds),
    };
  }

  /** Projects hidden states [T, E] into the next T slots of the sequence, off the event loop. */
  async append(seqId: number, args: CacheAppendArgs): Promise<void> {
    const full = this.#prepareAppend(seqId, args);
    this.#busy++;
    try {
      await projectAppend(full.args);
    } catch (e) {
      this.#busy--;
      this.truncate(seqId, full.previousLength);
      throw e;
    }
    this.#busy--;
  }

  appendSync(seqId: number, args: CacheAppendArgs): void {
    const full = this.#prepareAppend(seqId, args);
    try {
      projectAppendSync(full.args);
    } catch (e) {
      this.truncate(seqId, full.previousLength);
      throw e;
    }
  }

  dispose(): void {
    if (this.#busy > 0)
      throw new InvalidArgumentError('cannot dispose a LatentCache while an append is running');
    this.#disposed = true;
    this.#pages = new Uint8Array(0);
    this.#alloc.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #prepareAppend(seqId: number, args: CacheAppendArgs): { args: ProjectAppendArgs; previousLength: number } {
    this.#mutable();
    const a = objectArg('append args', args);
    const previousLength = this.#alloc.get(seqId).length;
    const hiddenSize = intInRange('hiddenSize', a.hiddenSize, 1);
    if (!(a.hidden instanceof Float32Array) || a.hidden.length % hiddenSize !== 0) {
      throw invalidArgument('hidden', `a Float32Array [numTokens, hiddenSize ${hiddenSize}]`, a.hidden);
    }
    const count = a.hidden.length / hiddenSize;
    const positions =
      (a.positions as Int32Array | undefined) ??
      Int32Array.from({ length: count }, (_, t) => previousLength + t);
    const slotMapping = this.#alloc.allocate(seqId, count);
    const full: ProjectAppendArgs = { ...(args as ProjectAppendArgs), cache: this, positions, slotMapping };
    return { args: full, previousLength };
  }

  #live(): void {
    if (this.#disposed) throw new DisposedError('this LatentCache');
  }

  #mutable(): void {
    this.#live();
    if (this.#busy > 0) {
      throw new InvalidArgumentError(
        'LatentCache: an async append is still running on this cache; await it first',
      );
    }
  }
}
