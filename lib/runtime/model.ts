/**
 * What the GQA and MLA runtimes share: sequences with a paged cache per layer, a batched forward
 * over groups of sequences that add the same number of tokens, the embedding, the SwiGLU blocks and
 * the classifier. Subclasses supply the attention block, which runs through the native kernels.
 */

import type { Backend } from '../backend.js';
import { DisposedError, InvalidArgumentError } from '../errors.js';
import type { RopeScaling } from '../mla/rope.js';
import type { LayerCaches, SequenceCache } from './layer-caches.js';
import { type FeedForward, feedForwardRows, linear, rmsNormRows } from './linear.js';

/** New tokens for one sequence in one forward call. */
export interface ForwardRequest {
  seqId: number;
  tokens: readonly number[] | Int32Array;
}

export interface ForwardOptions {
  /** true: logits after every new token; default false: after the last new token only. */
  allLogits?: boolean;
}

export interface RuntimeOptions {
  /** Tokens per cache page; default 16. */
  blockSize?: number;
  /** Longest sequence (positions 0..maxSeqLen-1); default the model's seqLen. */
  maxSeqLen?: number;
  /** Sequences the cache pool is sized for before it has to grow; default 4. */
  expectedSequences?: number;
  /** Most sequences the pool may grow to; default 256. */
  maxSequences?: number;
  /** RoPE scaling (llama3, YaRN, linear, table), when the model uses one. */
  ropeScaling?: RopeScaling;
  backend?: Backend;
}

/** The runtime interface both model kinds implement; generation and evaluation use only this. */
export interface CausalLanguageModel {
  readonly kind: 'gqa' | 'mla';
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  /** KV-cache bytes one token takes, summed over layers. */
  readonly kvBytesPerToken: number;
  /** The cache dtype, for reports. */
  readonly cacheDtype: string;
  createSequence(): number;
  freeSequence(seqId: number): void;
  /** Tokens cached for the sequence. */
  sequenceLength(seqId: number): number;
  /** Drops the sequence's tokens from `length` on (to re-run or to roll back a draft). */
  truncate(seqId: number, length: number): void;
  /**
   * Runs the new tokens of every request (each sequence at most once per call) and returns, per
   * request, the logits [vocabSize] after its last token, or after each of its tokens with
   * allLogits. Requests with the same token count run as one batch through the kernels.
   */
  forward(requests: readonly ForwardRequest[], options?: ForwardOptions): Float32Array[][];
  dispose(): void;
}

/** Shapes every runtime needs from its checkpoint. */
export interface BaseShapes {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  vocabSize: number;
  seqLen: number;
  normEps: number;
}

export interface BaseWeights {
  tokenEmbedding: Float32Array;
  layers: readonly (FeedForward & { rmsAtt: Float32Array })[];
  rmsFinal: Float32Array;
  classifier: Float32Array;
}

/** One batch group as the attention block sees it. */
export interface AttentionBatch {
  /** Model sequence ids, in row order. */
  seqIds: number[];
  /** New tokens per sequence (the kernels' qLen). */
  tokensPerSeq: number;
  /** Rows = seqIds.length * tokensPerSeq, sequence major. */
  rows: number;
  /** [rows] position of each row. */
  positions: Int32Array;
}

export abstract class TransformerRuntime implements CausalLanguageModel {
  abstract readonly kind: 'gqa' | 'mla';
  abstract readonly cacheDtype: string;
  abstract readonly kvBytesPerToken: number;
  readonly vocabSize: number;
  readonly maxSeqLen: number;
  protected readonly shapes: BaseShapes;
  protected readonly base: BaseWeights;
  readonly #lengths = new Map<number, number>();
  #nextId = 0;
  #disposed = false;

  protected constructor(shapes: BaseShapes, base: BaseWeights, options: RuntimeOptions) {
    this.shapes = shapes;
    this.base = base;
    this.vocabSize = shapes.vocabSize;
    const maxSeqLen = options.maxSeqLen ?? shapes.seqLen;
    if (!Number.isInteger(maxSeqLen) || maxSeqLen < 1) {
      throw new InvalidArgumentError(`maxSeqLen must be a positive integer, got ${maxSeqLen}`);
    }
    this.maxSeqLen = maxSeqLen;
  }

  /** The per-layer caches; set by the subclass constructor. */
  protected abstract readonly layerCaches: LayerCaches<SequenceCache>;
  /** Adds the attention output projection of layer `l` for the normed rows to x. */
  protected abstract attention(l: number, normed: Float32Array, batch: AttentionBatch): Float32Array;

  createSequence(): number {
    this.#live();
    const id = this.#nextId++;
    this.layerCaches.create(id);
    this.#lengths.set(id, 0);
    return id;
  }

  freeSequence(seqId: number): void {
    this.#live();
    this.#length(seqId);
    this.layerCaches.free(seqId);
    this.#lengths.delete(seqId);
  }

  sequenceLength(seqId: number): number {
    this.#live();
    return this.#length(seqId);
  }

  truncate(seqId: number, length: number): void {
    this.#live();
    const current = this.#length(seqId);
    if (!Number.isInteger(length) || length < 0 || length > current) {
      throw new InvalidArgumentError(`truncate: length must be an integer in [0, ${current}], got ${length}`);
    }
    this.layerCaches.truncate(seqId, length);
    this.#lengths.set(seqId, length);
  }

  forward(requests: readonly ForwardRequest[], options: ForwardOptions = {}): Float32Array[][] {
    this.#live();
    if (!Array.isArray(requests) || requests.length === 0) {
      throw new InvalidArgumentError('forward needs at least one request { seqId, tokens }');
    }
    const seen = new Set<number>();
    for (const [i, r] of requests.entries()) {
      const length = this.#length(r.seqId);
      if (seen.has(r.seqId)) {
        throw new InvalidArgumentError(
          `requests[${i}]: sequence ${r.seqId} appears twice in one forward call`,
        );
      }
      seen.add(r.seqId);
      if (r.tokens.length === 0) throw new InvalidArgumentError(`requests[${i}]: no tokens`);
      if (length + r.tokens.length > this.maxSeqLen) {
        throw new InvalidArgumentError(
          `requests[${i}]: sequence ${r.seqId} would hold ${length + r.tokens.length} tokens, more than maxSeqLen ${this.maxSeqLen}`,
        );
      }
      for (const token of r.tokens) {
        if (!Number.isInteger(token) || token < 0 || token >= this.vocabSize) {
          throw new InvalidArgumentError(
            `requests[${i}]: token ${token} is outside the vocabulary [0, ${this.vocabSize})`,
          );
        }
      }
    }
    const results: Float32Array[][] = new Array(requests.length);
    const groups = new Map<number, number[]>();
    requests.forEach((r, i) => {
      const group = groups.get(r.tokens.length);
      if (group) group.push(i);
      else groups.set(r.tokens.length, [i]);
    });
    for (const [tokensPerSeq, indices] of groups) {
      const logits = this.#forwardGroup(
        indices.map((i) => requests[i]!),
        tokensPerSeq,
        options.allLogits === true,
      );
      indices.forEach((requestIndex, k) => {
        results[requestIndex] = logits[k]!;
      });
    }
    return results;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.layerCaches.dispose();
    this.#lengths.clear();
  }

  [Symbol.dispose](): void {
    this.dispose();
  }

  #forwardGroup(requests: ForwardRequest[], tokensPerSeq: number, allLogits: boolean): Float32Array[][] {
    const { dim, hiddenDim, nLayers, normEps, vocabSize } = this.shapes;
    const batch = requests.length;
    const rows = batch * tokensPerSeq;
    const positions = new Int32Array(rows);
    const x = new Float32Array(rows * dim);
    requests.forEach((r, b) => {
      const start = this.#length(r.seqId);
      for (let t = 0; t < tokensPerSeq; t++) {
        const row = b * tokensPerSeq + t;
        positions[row] = start + t;
        const token = r.tokens[t]!;
        x.set(this.base.tokenEmbedding.subarray(token * dim, (token + 1) * dim), row * dim);
      }
    });
    const attentionBatch: AttentionBatch = {
      seqIds: requests.map((r) => r.seqId),
      tokensPerSeq,
      rows,
      positions,
    };
    const normed = new Float32Array(rows * dim);
    try {
      for (let l = 0; l < nLayers; l++) {
        const layer = this.base.layers[l]!;
        rmsNormRows(normed, x, layer.rmsAtt, normEps, rows, dim);
        const projected = this.attention(l, normed, attentionBatch);
        for (let i = 0; i < x.length; i++) x[i] = x[i]! + projected[i]!;
        feedForwardRows(x, layer, rows, dim, hiddenDim, normEps);
      }
    } catch (error) {
      // Layers before the failure appended already: put every cache back as it was.
      for (const r of requests) this.layerCaches.truncate(r.seqId, this.#length(r.seqId));
      throw error;
    }
    for (const r of requests) this.#lengths.set(r.seqId, this.#length(r.seqId) + tokensPerSeq);

    // Classifier on the rows whose logits are wanted.
    const wanted = allLogits ? rows : batch;
    const finalRows = new Float32Array(wanted * dim);
    for (let k = 0; k < wanted; k++) {
      const row = allLogits ? k : k * tokensPerSeq + tokensPerSeq - 1;
      finalRows.set(x.subarray(row * dim, (row + 1) * dim), k * dim);
    }
    rmsNormRows(finalRows, finalRows, this.base.rmsFinal, normEps, wanted, dim);
    const logits = new Float32Array(wanted * vocabSize);
    linear(logits, finalRows, this.base.classifier, wanted, vocabSize, dim);
    const perRow = (k: number): Float32Array => logits.subarray(k * vocabSize, (k + 1) * vocabSize);
    return requests.map((_, b) =>
      allLogits ? Array.from({ length: tokensPerSeq }, (_, t) => perRow(b * tokensPerSeq + t)) : [perRow(b)],
    );
  }

  #length(seqId: number): number {
    const length = this.#lengths.get(seqId);
    if (length === undefined) {
      throw new InvalidArgumentError(
        `seqId ${seqId} is not a live sequence of this model (createSequence())`,
      );
    }
    return length;
  }

  #live(): void {
    if (this.#disposed) throw new DisposedError('this model runtime');
  }
}

/** Default cache pool sizes: pages for `expected` full sequences, growth up to `max`. */
export function poolBlocks(
  options: RuntimeOptions,
  maxSeqLen: number,
): {
  blockSize: number;
  numBlocks: number;
  maxBlocks: number;
} {
  const blockSize = options.blockSize ?? 16;
  const perSeq = Math.ceil(maxSeqLen / blockSize);
  const expected = options.expectedSequences ?? 4;
  const max = Math.max(expected, options.maxSequences ?? 256);
  return { blockSize, numBlocks: perSeq * expected, maxBlocks: perSeq * max };
}
