/**
 * Paths of the real model files the model tests use. Files from ../shared stay there (never copied
 * into the repository); a test that needs an absent one skips with a message saying which.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LlamaCheckpoint, LlamaWeights } from '../../lib/model/llama-weights.js';

/** Absolute path of a file under the shared folder: $LATENTKV_SHARED_DIR, else ../shared beside the checkout. */
export function sharedPath(relative: string): string {
  const dir = process.env.LATENTKV_SHARED_DIR;
  if (dir) return path.join(dir, relative);
  return fileURLToPath(new URL(`../../../shared/${relative}`, import.meta.url));
}

export const STORIES260K_PATH = sharedPath('models/stories260K.bin');
export const STORIES260K_SHA256 = '9414d5a285453a7eab631713d171753232c978f6f97654211469aff8be93c8d6';
export const TINYSTORIES_SAMPLE_PATH = sharedPath('data/tinystories_sample.txt');

/** Returns a message to skip with when `path` is absent, else null. */
export function missingFileMessage(path: string): string | null {
  if (existsSync(path)) return null;
  const message = `skipped: ${path} is absent (tests read it from ../shared beside the checkout)`;
  console.warn(message);
  return message;
}

/** Largest |a[i] - b[i]| over two equally long arrays. */
export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new RangeError(`lengths differ: ${a.length} vs ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

/** A deterministic token sequence for models without their tokenizer (ids in [3, vocab)). */
export function sampleTokenIds(count: number, vocabSize: number, seed = 7): number[] {
  const tokens = [1];
  let state = seed;
  while (tokens.length < count) {
    state = (state * 1103515245 + 12345) % 2147483648;
    tokens.push(3 + (state % (vocabSize - 3)));
  }
  return tokens;
}

/** Rewrites an interleaved-RoPE checkpoint as the same model with half-split RoPE (HF layout). */
export function toHalfSplit(checkpoint: LlamaCheckpoint): LlamaCheckpoint {
  const { config, weights } = checkpoint;
  const hd = config.headDim;
  const permute = (matrix: Float32Array, heads: number): Float32Array => {
    const out = new Float32Array(matrix.length);
    const cols = config.dim;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        // half-split dims (i, i + hd/2) rotate together, as interleaved dims (2i, 2i+1) did
        out.set(matrix.subarray((h * hd + 2 * i) * cols, (h * hd + 2 * i + 1) * cols), (h * hd + i) * cols);
        out.set(
          matrix.subarray((h * hd + 2 * i + 1) * cols, (h * hd + 2 * i + 2) * cols),
          (h * hd + i + hd / 2) * cols,
        );
      }
    }
    return out;
  };
  const layers = weights.layers.map((layer) => ({
    ...layer,
    wq: permute(layer.wq, config.nHeads),
    wk: permute(layer.wk, config.nKvHeads),
  }));
  const halfSplitWeights: LlamaWeights = { ...weights, layers };
  return { config: { ...config, ropeStyle: 'half-split' }, weights: halfSplitWeights };
}
