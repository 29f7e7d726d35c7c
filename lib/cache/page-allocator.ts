/**
 * Page bookkeeping shared by the paged caches: sequences own lists of page ids taken from a
 * free list; the pool can grow (the owner reallocates its storage when told to).
 */
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import { intInRange } from '../validate.js';

interface Sequence {
  blocks: number[];
  length: number;
}

export class PageAllocator {
  readonly blockSize: number;
  readonly maxBlocks: number;
  #numBlocks: number;
  #free: number[] = [];
  #sequences = new Map<number, Sequence>();
  #nextId = 0;
  readonly #onGrow: (numBlocks: number) => void;

  /** onGrow(newNumBlocks) must enlarge the owner's storage, keeping existing pages. */
  constructor(blockSize: number, numBlocks: number, maxBlocks: number, onGrow: (numBlocks: number) => void) {
    this.blockSize = blockSize;
    this.#numBlocks = numBlocks;
    this.maxBlocks = maxBlocks;
    this.#onGrow = onGrow;
    for (let i = numBlocks - 1; i >= 0; i--) this.#free.push(i);
  }

  get numBlocks(): number {
    return this.#numBlocks;
  }

  get freeBlocks(): number {
    return this.#free.length + (this.maxBlocks - this.#numBlocks);
  }

  create(): number {
    const id = this.#nextId++;
    this.#sequences.set(id, { blocks: [], length: 0 });
    return id;
  }

  free(seqId: number): void {
    const seq = this.get(seqId);
    for (let i = seq.blocks.length - 1; i >= 0; i--) this.#free.push(seq.blocks[i] as number);
    this.#sequences.delete(seqId);
  }

  clear(): void {
    this.#sequences.clear();
    this.#free = [];
  }

  get(seqId: number): Sequence {
    const s = this.#sequences.get(seqId);
    if (!s) throw invalidArgument('seqId', 'the id of a live sequence (createSequence())', seqId);
    return s;
  }

  /** Extends a sequence by count tokens; returns their slots. Changes nothing when it throws. */
  allocate(seqId: number, count: number): BigInt64Array {
    const seq = this.get(seqId);
    intInRange('count', count, 0);
    const needed = Math.ceil((seq.length + count) / this.blockSize) - seq.blocks.length;
    if (needed > this.#free.length) this.#grow(needed - this.#free.length);
    for (let i = 0; i < needed; i++) seq.blocks.push(this.#free.pop() as number);
    const slots = new BigInt64Array(count);
    for (let t = 0; t < count; t++) {
      const pos = seq.length + t;
      const page = seq.blocks[Math.floor(pos / this.blockSize)] as number;
      slots[t] = BigInt(page * this.blockSize + (pos % this.blockSize));
    }
    seq.length += count;
    return slots;
  }

  truncate(seqId: number, newLength: number): void {
    const seq = this.get(seqId);
    intInRange('newLength', newLength, 0, seq.length);
    seq.length = newLength;
    const keep = Math.ceil(newLength / this.blockSize);
    while (seq.blocks.length > keep) this.#free.push(seq.blocks.pop() as number);
  }

  /** Block table [batch, maxBlocksPerSeq] (-1 past each sequence) and lengths for these sequences. */
  table(seqIds: readonly number[]): { blockTable: Int32Array; maxBlocksPerSeq: number; seqLens: Int32Array } {
    if (!Array.isArray(seqIds) || seqIds.length === 0) {
      throw invalidArgument('seqIds', 'a non-empty array of sequence ids', seqIds);
    }
    const seqs = seqIds.map((id) => this.get(id));
    const maxBlocksPerSeq = Math.max(1, ...seqs.map((s) => s.blocks.length));
    const blockTable = new Int32Array(seqs.length * maxBlocksPerSeq).fill(-1);
    for (const [b, s] of seqs.entries()) blockTable.set(s.blocks, b * maxBlocksPerSeq);
    return { blockTable, maxBlocksPerSeq, seqLens: Int32Array.from(seqs, (s) => s.length) };
  }

  #grow(extra: number): void {
    const target = Math.min(this.maxBlocks, Math.max(this.#numBlocks * 2, this.#numBlocks + extra));
    if (target - this.#numBlocks < extra) {
      throw new InvalidArgumentError(
        `cache is full: ${extra} more pages needed, ${this.maxBlocks - this.#numBlocks} left below maxBlocks ${this.maxBlocks}; free sequences or raise maxBlocks`,
      );
    }
    this.#onGrow(target);
    for (let i = target - 1; i >= this.#numBlocks; i--) this.#free.push(i);
    this.#numBlocks = target;
  }
}
