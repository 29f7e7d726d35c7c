/**
 * GqaCache: the paged K/V cache of an unconverted (GQA/MHA) attention layer, per token
 * [2, numKvHeads, headDim] (K then V) in f32, f16 or bf16. The baseline that MLA conversion
 * is measured against.
 */
import { type Backend, getBackend } from '../backend.js';
import { PageAllocator } from '../cache/page-allocator.js';
import { DTYPE_CODE } from '../dtypes.js';
import { DisposedError, invalidArgument } from '../errors.js';
import { intInRange, objectArg, oneOf, typedArray } from '../validate.js';

export const GQA_CACHE_DTYPES = ['f32', 'f16', 'bf16'] as const;
export type GqaCacheDtype = (typeof GQA_CACHE_DTYPES)[number];

export interface GqaCacheOptions {
  numKvHeads: number;
  headDim: number;
  /** Default 'f32'. */
  dtype?: GqaCacheDtype;
  blockSize?: number;
  numBlocks?: number;
  maxBlocks?: number;
}

export interface GqaCacheView {
  dtype: GqaCacheDtype;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  numBlocks: number;
  pages: Uint8Array;
  blockTable: Int32Array;
  maxBlocksPerSeq: number;
  seqLens: Int32Array;
}

export class GqaCache {
  readonly dtype: GqaCacheDtype;
  readonly numKvHeads: number;
  readonly headDim: number;
  readonly blockSize: number;
  /** Bytes of K and V of one token. */
  readonly bytesPerToken: number;
  #pages: Uint8Array;
  readonly #alloc: PageAllocator;
  #disposed = false;

  constructor(options: GqaCacheOptions) {
    const o = objectArg('GqaCache options', options);
    this.numKvHeads = intInRange('numKvHeads', o.numKvHeads, 1);
    this.headDim = intInRange('headDim', o.headDim, 1);
    this.dtype = o.dtype === undefined ? 'f32' : oneOf('dtype', o.dtype, GQA_CACHE_DTYPES);
    this.blockSize = o.blockSize === undefined ? 64 : intInRange('blockSize', o.blockSize, 1, 256);
    const numBlocks = o.numBlocks === undefined ? 16 : intInRange('numBlocks', o.numBlocks, 1);
    const maxBlocks = o.maxBlocks === undefined ? numBlocks : intInRange('maxBlocks', o.maxBlocks, numBlocks);
    this.bytesPerToken = 2 * this.numKvHeads * this.headDim * (this.dtype === 'f32' ? 4 : 2);
    this.#pages = new Uint8Array(numBlocks * this.blockSize * this.bytesPerToken);
    this.#alloc = new PageAllocator(this.blockSize, numBlocks, maxBlocks, (n) => {
      const pages = new Uint8Array(n * this.blockSize * this.bytesPerToken);
      pages.set(this.#pages);
      this.#pages = pages;
    });
  }

  createSequence(): number {
    this.#live();
    return this.#alloc.create();
  }

  freeSequence(seqId: number): void {
    this.#live();
    this.#alloc.free(seqId);
  }

  length(seqId: number): number {
    this.#live();
    return this.#alloc.get(seqId).length;
  }

  truncate(seqId: number, newLength: number): void {
    this.#live();
    this.#alloc.truncate(seqId, newLength);
  }

  /** Appends K (RoPE applied) and V, each [T, numKvHeads, headDim], to the sequence. */
  append(seqId: number, k: Float32Array, v: Float32Array, backend: Backend = getBackend()): void {
    this.#live();
    const width = this.numKvHeads * this.headDim;
    if (!(k instanceof Float32Array) || k.length % width !== 0) {
      throw invalidArgument(
        'k',
        `a Float32Array [numTokens, numKvHeads ${this.numKvHeads}, headDim ${this.headDim}]`,
        k,
      );
    }
    const numTokens = k.length / width;
    typedArray('v', v, Float32Array, k.length, '[numTokens, numKvHeads, headDim] like k');
    const previous = this.#alloc.get(seqId).length;
    const slotMapping = this.#alloc.allocate(seqId, numTokens);
    try {
      backend._gqaAppendSync({
        numTokens,
        numKvHeads: this.numKvHeads,
        headDim: this.headDim,
        blockSize: this.blockSize,
        numBlocks: this.#alloc.numBlocks,
        cacheDtype: DTYPE_CODE[this.dtype],
        k,
        v,
        slotMapping,
        cache: this.#pages,
      });
    } catch (e) {
      this.#alloc.truncate(seqId, previous);
      throw e;
    }
  }

  view(seqIds: readonly number[]): GqaCacheView {
    this.#live();
    return {
      dtype: this.dtype,
      numKvHeads: this.numKvHeads,
      headDim: this.headDim,
      blockSize: this.blockSize,
      numBlocks: this.#alloc.numBlocks,
      pages: this.#pages,
      ...this.#alloc.table(seqIds),
    };
  }

  dispose(): void {
    this.#disposed = true;
    this.#pages = new Uint8Array(0);
    this.#alloc.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #live(): void {
    if (this.#disposed) throw new DisposedError('this GqaCache');
  }
}
