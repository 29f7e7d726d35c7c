import { beforeAll, describe, expect, it } from 'vitest';
import { createLlamaState, forwardSequence, forwardToken } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint, LlamaWeights } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { argmax } from '../../lib/model/sampling.js';
import { STORIES260K_PATH, maxAbsDiff, missingFileMessage, sampleTokenIds } from './fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

/** Rewrites an interleaved-RoPE checkpoint as the same model with half-split RoPE (HF layout). */
function toHalfSplit(checkpoint: LlamaCheckpoint): LlamaCheckpoint {
  const { config, weights } = checkpoint;
  const hd = config.headDim;
  const permute = (matrix: Float32Array, heads: number): Float32Array => {
    const out = new Float32Array(matrix.length);
    const cols = config.dim;
    for (let h = 0; h < heads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        // half-split dims (i, i + hd/2) rotate together, as interleaved dims (2i, 2i+1) did
        out.set(matrix.subarray((h * hd + 2 * i) * cols, (h * hd + 2 * i + 1) * cols), (h * hd + i) * cols);
        out.set(matrix.subarray((h * hd + 2 * i + 1) * cols, (h * hd + 2 * i + 2) * cols), (h * hd + i + hd / 2) * cols);
      }
    }
    return out;
  };
  const layers = weights.layers.map((layer) => ({ ...layer, wq: permute(layer.wq, config.nHeads), wk: permute(layer.wk, config.nKvHeads) }));
  const halfSplitWeights: LlamaWeights = { ...weights, layers };
  return { config: { ...config, ropeStyle: 'half-split' }, weights: halfSplitWeights };
}

describe('reference Llama forward on stories260K', () => {
  let model: LlamaCheckpoint;
  beforeAll(async () => {
    if (missing === null) model = await loadLlama2cCheckpoint(STORIES260K_PATH);
  });

  it('f32 and f64 agree closely and pick the same top token', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(40, model.config.vocabSize);
    const f64 = forwardSequence(model.weights, model.config, tokens, { precision: 'f64' });
    const f32 = forwardSequence(model.weights, model.config, tokens, { precision: 'f32' });
    expect(f64[0]).toBeInstanceOf(Float64Array);
    expect(f32[0]).toBeInstanceOf(Float32Array);
    let worst = 0;
    f64.forEach((row, i) => {
      worst = Math.max(worst, maxAbsDiff(row, f32[i]!));
      expect(argmax(f32[i]!)).toBe(argmax(row));
    });
    expect(worst).toBeLessThan(1e-4);
    expect(worst).toBeGreaterThan(0); // f32 really rounds
  });

  it('is deterministic and position-dependent', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(10, model.config.vocabSize);
    const a = forwardSequence(model.weights, model.config, tokens);
    const b = forwardSequence(model.weights, model.config, tokens);
    a.forEach((row, i) => expect(maxAbsDiff(row, b[i]!)).toBe(0));
    // The same token at another position (with other context) gives other logits.
    expect(maxAbsDiff(a[3]!, forwardSequence(model.weights, model.config, [tokens[3]!])[0]!)).toBeGreaterThan(1e-3);
  });

  it('a trained model predicts its own greedy continuation confidently', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    // Greedy decoding from BOS: a real trained model (not random weights) is confident about the
    // next token most of the time, and never produces non-finite logits.
    const state = createLlamaState(model.weights, model.config, { maxSeqLen: 64 });
    let token = 1;
    let confident = 0;
    for (let pos = 0; pos < 48; pos++) {
      const logits = forwardToken(state, token, pos);
      expect(logits.every(Number.isFinite)).toBe(true);
      token = argmax(logits);
      const sorted = Array.from(logits).sort((x, y) => y - x);
      if (sorted[0]! - sorted[1]! > 1) confident++;
    }
    expect(confident).toBeGreaterThan(24);
  });

  it('half-split RoPE with permuted q/k rows computes the same function', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(20, model.config.vocabSize);
    const halfSplit = toHalfSplit(model);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const permuted = forwardSequence(halfSplit.weights, halfSplit.config, tokens);
    reference.forEach((row, i) => expect(maxAbsDiff(row, permuted[i]!)).toBeLessThan(1e-9));
    // ...while the unpermuted weights under half-split RoPE are a different model.
    const wrong = forwardSequence(model.weights, { ...model.config, ropeStyle: 'half-split' }, tokens);
    expect(maxAbsDiff(reference[19]!, wrong[19]!)).toBeGreaterThan(1e-3);
  });

  it('rejects out-of-range tokens and positions', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const state = createLlamaState(model.weights, model.config, { maxSeqLen: 4 });
    expect(() => forwardToken(state, 512, 0)).toThrow(RangeError);
    expect(() => forwardToken(state, 1.5, 0)).toThrow(/token must be an integer/);
    expect(() => forwardToken(state, 1, 4)).toThrow(/pos must be an integer in \[0, 4\)/);
    expect(() => createLlamaState(model.weights, { ...model.config, nLayers: 4 })).toThrow(/5 layers, config says 4/);
  });
});

export { toHalfSplit };
