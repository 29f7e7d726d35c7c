/**
 * MtlaCache: a LatentCache whose rows are MTLA chunks of `stride` tokens. It keeps, per
 * sequence, how many tokens were merged (the chunk state: chunk = tokens / stride, position in
 * chunk = tokens % stride), allocates a row whenever a token opens a chunk, and gives mlaDecode
 * views whose lengths are chunk counts.
 */
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import { LatentCache, type LatentCacheOptions } from '../mla/latent-cache.js';
import type { PagedCacheView } from '../mla/paged-cache.js';
import { intInRange, objectArg } from '../validate.js';
import {
  type MtlaAppendArgs,
  type MtlaAppendResult,
  type MtlaHyperWeights,
  type MtlaLatentNorm,
  mtlaAppend,
  mtlaAppendSync,
} from './merge-append.js';

export interface MtlaCacheOptions extends LatentCacheOptions {
  /** s >= 1, tokens per cache row. */
  stride: number;
}

export interface MtlaCacheAppendArgs {
  /** [numTokens, kvLoraRank] pre-LayerNorm latents of the sequence's next tokens. */
  latent: Float32Array;
  /** [numTokens, ropeDim * ropeHeads] roped keys; omit when ropeDim is 0. */
  kRope?: Float32Array;
  hyper: MtlaHyperWeights;
  norm?: MtlaLatentNorm;
  mergeWeight?: boolean | Float32Array;
}

export class MtlaCache {
  readonly stride: number;
  readonly latent: LatentCache;
  readonly #tokens = new Map<number, number>();

  constructor(options: MtlaCacheOptions) {
    const o = objectArg('MtlaCache options', options);
    this.stride = intInRange('stride', o.stride, 1);
    this.latent = new LatentCache(options);
    if (this.latent.kvLoraRank % 2 !== 0) {
      this.latent.dispose();
      throw invalidArgument(
        'kvLoraRank',
        'an even integer (the MTLA chunk PE is sin/cos pairs)',
        options.kvLoraRank,
      );
    }
  }

  createSequence(): number {
    const id = this.latent.createSequence();
    this.#tokens.set(id, 0);
    return id;
  }

  freeSequence(seqId: number): void {
    this.latent.freeSequence(seqId);
    this.#tokens.delete(seqId);
  }

  /** Tokens merged into the sequence so far. */
  tokens(seqId: number): number {
    const n = this.#tokens.get(seqId);
    if (n === undefined) throw new InvalidArgumentError(`sequence ${seqId} does not exist in this MtlaCache`);
    return n;
  }

  /** Cache rows of the sequence: ceil(tokens / stride). */
  chunks(seqId: number): number {
    return this.latent.length(seqId);
  }

  /** Cache bytes per token once chunks are full: rowBytes / stride. */
  get bytesPerToken(): number {
    return this.latent.rowBytes / this.stride;
  }

  /** The cache as mlaDecode reads it (lengths are chunk counts). */
  view(seqIds: readonly number[]): PagedCacheView {
    return this.latent.view(seqIds);
  }

  /** Merges the sequence's next tokens, off the event loop. */
  async append(seqId: number, args: MtlaCacheAppendArgs): Promise<MtlaAppendResult> {
    const p = this.#prepare(seqId, args);
    try {
      const r = await mtlaAppend(p.args);
      this.#tokens.set(seqId, p.tokensAfter);
      return r;
    } catch (e) {
      this.latent.truncate(seqId, p.chunksBefore);
      throw e;
    }
  }

  appendSync(seqId: number, args: MtlaCacheAppendArgs): MtlaAppendResult {
    const p = this.#prepare(seqId, args);
    try {
      const r = mtlaAppendSync(p.args);
      this.#tokens.set(seqId, p.tokensAfter);
      return r;
    } catch (e) {
      this.latent.truncate(seqId, p.chunksBefore);
      throw e;
    }
  }

  dispose(): void {
    this.latent.dispose();
    this.#tokens.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #prepare(
    seqId: number,
    args: MtlaCacheAppendArgs,
  ): { args: MtlaAppendArgs; chunksBefore: number; tokensAfter: number } {
    const a = objectArg('append args', args);
    const n0 = this.tokens(seqId);
    const R = this.latent.kvLoraRank;
    if (!(a.latent instanceof Float32Array) || a.latent.length % R !== 0) {
      throw invalidArgument('latent', `a Float32Array [numTokens, kvLoraRank ${R}]`, a.latent);
    }
    const T = a.latent.length / R;
    const s = this.stride;
    const chunksBefore = this.latent.length(seqId);
    const chunksAfter = Math.ceil((n0 + T) / s);
    // Allocate the new chunk rows first (throws without changing anything when the pool is full).
    const fresh = this.latent.allocateSlots(seqId, chunksAfter - chunksBefore);
    const table = this.latent.blockTable(seqId);
    const bs = this.latent.blockSize;
    const slotOf = (chunk: number): bigint =>
      BigInt((table[Math.floor(chunk / bs)] as number) * bs + (chunk % bs));
    const tokenIndex = new Int32Array(T);
    const slotMapping = new BigInt64Array(T);
    for (let t = 0; t < T; t++) {
      const n = n0 + t;
      tokenIndex[t] = n;
      const chunk = Math.floor(n / s);
      slotMapping[t] = chunk >= chunksBefore ? (fresh[chunk - chunksBefore] as bigint) : slotOf(chunk);
    }
    return {
      args: {
        cache: this.latent,
        stride: s,
        latent: a.latent,
        kRope: args.kRope,
        hyper: args.hyper,
        norm: args.norm,
        tokenIndex,
        slotMapping,
        mergeWeight: args.mergeWeight,
      },
      chunksBefore,
      tokensAfter: n0 + T,
    };
  }
}
