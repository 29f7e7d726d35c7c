/**
 * LatentCache: a paged latent KV cache for one layer. Sequences get pages from a free list
 * as they grow and give them back when freed; `view()` builds the block table the decode
 * kernel reads, and `append()` projects hidden states straight into the sequence's next slots.
 */
import { CACHE_DTYPES, type CacheDtype } from '../dtypes.js';
import { DisposedError, InvalidArgumentError, invalidArgument, LatentkvError } from '../errors.js';
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
  #numBlocks: number;
  #free: number[] = [];
  #sequences = new Map<number, { blocks: number[]; length: number }>();
  #nextId = 0;
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
    this.#numBlocks = o.numBlocks === undefined ? 16 : intInRange('numBlocks', o.numBlocks, 1);
    this.maxBlocks =
      o.maxBlocks === undefined ? this.#numBlocks : intInRange('maxBlocks', o.maxBlocks, this.#numBlocks);
    this.rowBytes = cacheRowLayout(this.dtype, this.kvLoraRank, this.ropeDim, this.ropeHeads).rowBytes;
    this.#pages = new Uint8Array(this.#numBlocks * this.blockSize * this.rowBytes);
    for (let i = this.#numBlocks - 1; i >= 0; i--) this.#free.push(i);
  }

  /** The page storage; replaced when the pool grows, so take it (or a view) after appending. */
  get pages(): Uint8Array {
    this.#live();
    return this.#pages;
  }

  get numBlocks(): number {
    return this.#numBlocks;
  }

  get freeBlocks(): number {
    return this.#free.length + (this.maxBlocks - this.#numBlocks);
  }

  /** Bytes one cached token takes in this cache. */
  get bytesPerToken(): number {
    return this.rowBytes;
  }

  createSequence(): number {
    this.#mutable();
    const id = this.#nextId++;
    this.#sequences.set(id, { blocks: [], length: 0 });
    return id;
  }

  /** Returns the sequence's pages to the pool. */
  freeSequence(seqId: number): void {
    this.#mutable();
    const seq = this.#seq(seqId);
    for (let i = seq.blocks.length - 1; i >= 0; i--) this.#free.push(seq.blocks[i] as number);
    this.#sequences.delete(seqId);
  }

  length(seqId: number): number {
    this.#live();
    return this.#seq(seqId).length;
  }

  /** The sequence's page ids in order (a copy). */
  blockTable(seqId: number): Int32Array {
    this.#live();
    return Int32Array.from(this.#seq(seqId).blocks);
  }

  /**
   * Extends a sequence by `count` tokens and returns their slots (page * blockSize + offset),
   * for runtimes that write the cache themselves. Allocates pages (growing the pool up to
   * maxBlocks) or throws without changing anything when there are not enough.
   */
  allocateSlots(seqId: number, count: number): BigInt64Array {
    this.#mutable();
    const seq = this.#seq(seqId);
    intInRange('count', count, 0);
    const needed = Math.ceil((seq.length + count) / this.blockSize) - seq.blocks.length;
    if (needed > this.#free.length) this.#grow(needed - this.#free.length);
    for (let i = 0; i < needed; i++) seq.blocks.push(this.#free.pop() as number);
    const slots = new BigInt64Array(count);
    for (let t = 0; t < count; t++) {
      const pos = seq.length + t;
      slots[t] = BigInt(
        (seq.blocks[Math.floor(pos / this.blockSize)] as number) * this.blockSize + (pos % this.blockSize),
      );
    }
    seq.length += count;
    return slots;
  }

  /** Drops the last `count` tokens of a sequence (freeing pages no longer used). */
  truncate(seqId: number, newLength: number): void {
    this.#mutable();
    const seq = this.#seq(seqId);
    intInRange('newLength', newLength, 0, seq.length);
    seq.length = newLength;
    const keep = Math.ceil(newLength / this.blockSize);
    while (seq.blocks.length > keep) this.#free.push(seq.blocks.pop() as number);
  }

  /** The cache as the decode kernel reads it, for these sequences in this order (a snapshot). */
  view(seqIds: readonly number[]): PagedCacheView {
    this.#live();
    if (!Array.isArray(seqIds) || seqIds.length === 0)
      throw invalidArgument('seqIds', 'a non-empty array of sequence ids', seqIds);
    const seqs = seqIds.map((id) => this.#seq(id));
    const maxBlocksPerSeq = Math.max(1, ...seqs.map((s) => s.blocks.length));
    const blockTable = new Int32Array(seqs.length * maxBlocksPerSeq).fill(-1);
    for (const [b, s] of seqs.entries()) blockTable.set(s.blocks, b * maxBlocksPerSeq);
    return {
      dtype: this.dtype,
      blockSize: this.blockSize,
      numBlocks: this.#numBlocks,
      kvLoraRank: this.kvLoraRank,
      ropeDim: this.ropeDim,
      ropeHeads: this.ropeHeads,
      pages: this.#pages,
      blockTable,
      maxBlocksPerSeq,
      seqLens: Int32Array.from(seqs, (s) => s.length),
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
      throw new LatentkvError(
        'ERR_LATENTKV_INVALID_ARGUMENT',
        'cannot dispose a LatentCache while an append is running',
      );
    this.#disposed = true;
    this.#pages = new Uint8Array(0);
    this.#sequences.clear();
    this.#free = [];
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #prepareAppend(seqId: number, args: CacheAppendArgs): { args: ProjectAppendArgs; previousLength: number } {
    this.#mutable();
    const a = objectArg('append args', args);
    const seq = this.#seq(seqId);
    const hiddenSize = intInRange('hiddenSize', a.hiddenSize, 1);
    if (!(a.hidden instanceof Float32Array) || a.hidden.length % hiddenSize !== 0) {
      throw invalidArgument('hidden', `a Float32Array [numTokens, hiddenSize ${hiddenSize}]`, a.hidden);
    }
    const count = a.hidden.length / hiddenSize;
    const previousLength = seq.length;
    let positions = a.positions as Int32Array | undefined;
    if (positions === undefined) positions = Int32Array.from({ length: count }, (_, t) => previousLength + t);
    const slotMapping = this.allocateSlots(seqId, count);
    const full: ProjectAppendArgs = { ...(args as ProjectAppendArgs), cache: this, positions, slotMapping };
    return { args: full, previousLength };
  }

  #grow(extra: number): void {
    const target = Math.min(this.maxBlocks, Math.max(this.#numBlocks * 2, this.#numBlocks + extra));
    if (target - this.#numBlocks < extra) {
      throw new InvalidArgumentError(
        `LatentCache is full: ${extra} more pages needed, ${this.maxBlocks - this.#numBlocks} left below maxBlocks ${this.maxBlocks}; free sequences or raise maxBlocks`,
      );
    }
    const pages = new Uint8Array(target * this.blockSize * this.rowBytes);
    pages.set(this.#pages);
    for (let i = target - 1; i >= this.#numBlocks; i--) this.#free.push(i);
    this.#pages = pages;
    this.#numBlocks = target;
  }

  #seq(seqId: number): { blocks: number[]; length: number } {
    const s = this.#sequences.get(seqId);
    if (!s) throw invalidArgument('seqId', 'the id of a live sequence (createSequence())', seqId);
    return s;
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
