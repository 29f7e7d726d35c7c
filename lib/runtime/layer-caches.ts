/**
 * One cache per layer (GqaCache or LatentCache) and, per runtime sequence, its id in each of
 * them: the bookkeeping both model runtimes share.
 */

export interface SequenceCache {
  readonly bytesPerToken: number;
  createSequence(): number;
  freeSequence(seqId: number): void;
  length(seqId: number): number;
  truncate(seqId: number, newLength: number): void;
  dispose(): void;
}

export class LayerCaches<C extends SequenceCache> {
  readonly caches: readonly C[];
  readonly #ids = new Map<number, number[]>();

  constructor(caches: C[]) {
    this.caches = caches;
  }

  /** KV-cache bytes of one token summed over layers. */
  get bytesPerToken(): number {
    return this.caches.reduce((sum, c) => sum + c.bytesPerToken, 0);
  }

  create(seqId: number): void {
    this.#ids.set(
      seqId,
      this.caches.map((c) => c.createSequence()),
    );
  }

  free(seqId: number): void {
    const ids = this.#ids.get(seqId)!;
    this.caches.forEach((c, l) => {
      c.freeSequence(ids[l]!);
    });
    this.#ids.delete(seqId);
  }

  /** Cuts every layer's copy of the sequence back to `length` tokens. */
  truncate(seqId: number, length: number): void {
    const ids = this.#ids.get(seqId)!;
    this.caches.forEach((c, l) => {
      if (c.length(ids[l]!) > length) c.truncate(ids[l]!, length);
    });
  }

  /** The ids of these runtime sequences in layer l's cache. */
  idsInLayer(l: number, seqIds: readonly number[]): number[] {
    return seqIds.map((s) => this.#ids.get(s)![l]!);
  }

  dispose(): void {
    for (const c of this.caches) c.dispose();
    this.#ids.clear();
  }
}
