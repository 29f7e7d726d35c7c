import { beforeAll, describe, expect, it } from 'vitest';
import {
  compareDistributions,
  klDivergence,
  meanKlDivergence,
  perplexity,
  perplexityFromLogits,
  top1Agreement,
} from '../../lib/model/evaluate.js';
import { forwardSequence } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { logSoftmax } from '../../lib/model/sampling.js';
import { missingFileMessage, STORIES260K_PATH, sampleTokenIds } from './fixtures.js';

describe('perplexity', () => {
  it('is the vocabulary size for uniform predictions', () => {
    const tokens = [0, 3, 1, 2, 3];
    const uniform = tokens.map(() => new Float64Array(4));
    const result = perplexityFromLogits(tokens, uniform);
    expect(result.perplexity).toBeCloseTo(4, 12);
    expect(result.tokenCount).toBe(4);
  });

  it('is 1 for certain, correct predictions', () => {
    const tokens = [0, 1, 2];
    const logits = [Float64Array.from([0, 100, 0]), Float64Array.from([0, 0, 100])];
    expect(perplexityFromLogits(tokens, logits).perplexity).toBeCloseTo(1, 12);
  });

  it('scores each token at most once with non-overlapping and overlapping windows', async () => {
    const tokens = Array.from({ length: 23 }, (_, i) => (i * 7) % 5);
    const windows: number[][] = [];
    // A fake "model" whose prediction depends only on the current token, so windowing cannot
    // change any prediction, only which tokens get scored.
    const logitsFor = (window: readonly number[]): Float64Array[] => {
      windows.push([...window]);
      return window.map((t) =>
        Float64Array.from({ length: 5 }, (_, v) => (v === (t + 2) % 5 ? 2 : 0) + v * 0.1),
      );
    };
    const full = perplexityFromLogits(tokens, logitsFor(tokens));
    const chunked = await perplexity(tokens, logitsFor, { windowSize: 8 });
    expect(chunked.tokenCount).toBe(20); // tokens 8 and 16 start a window: context only
    const fullLogits = logitsFor(tokens);
    const scored = tokens.map((_, t) => t).filter((t) => t > 0 && t !== 8 && t !== 16);
    const expectedNll =
      scored.reduce((sum, t) => sum - logSoftmax(fullLogits[t - 1]!)[tokens[t]!]!, 0) / scored.length;
    expect(chunked.meanNll).toBeCloseTo(expectedNll, 12);
    expect(windows.slice(1, 4).map((w) => w.length)).toEqual([8, 8, 7]);
    const sliding = await perplexity(tokens, async (w) => logitsFor(w), { windowSize: 8, stride: 4 });
    expect(sliding.tokenCount).toBe(22);
    expect(sliding.meanNll).toBeCloseTo(full.meanNll, 12);
  });

  it('rejects bad windows and too few tokens', async () => {
    await expect(perplexity([1, 2, 3], () => [], { windowSize: 1 })).rejects.toThrow(/windowSize/);
    await expect(perplexity([1, 2, 3], () => [], { windowSize: 4, stride: 5 })).rejects.toThrow(/stride/);
    expect(() => perplexityFromLogits([1], [])).toThrow(/at least two tokens/);
  });
});

describe('KL divergence and top-1 agreement', () => {
  it('KL is zero for identical distributions, shift-invariant, and positive otherwise', () => {
    const a = Float64Array.from([1, 2, 3]);
    expect(klDivergence(a, a)).toBe(0);
    expect(
      klDivergence(
        a,
        a.map((x) => x + 10),
      ),
    ).toBeLessThan(1e-12);
    // KL([0.5, 0.5] || [0.25, 0.75]) = 0.5 ln 2 + 0.5 ln(2/3)
    const kl = klDivergence([0, 0], [Math.log(0.25), Math.log(0.75)]);
    expect(kl).toBeCloseTo(0.5 * Math.log(2) + 0.5 * Math.log(2 / 3), 12);
  });

  it('summarises positions', () => {
    const ref = [Float64Array.from([3, 0, 0]), Float64Array.from([0, 3, 0])];
    const model = [Float64Array.from([3, 0, 0]), Float64Array.from([0, 0, 3])];
    const summary = compareDistributions(ref, model);
    expect(summary.positions).toBe(2);
    expect(summary.top1Agreement).toBe(0.5);
    expect(summary.meanKl).toBeCloseTo(summary.maxKl / 2, 12);
    expect(meanKlDivergence(ref, model)).toBe(summary.meanKl);
    expect(top1Agreement(ref, ref)).toBe(1);
  });
});

describe('evaluation on stories260K', () => {
  const missing = missingFileMessage(STORIES260K_PATH);
  let model: LlamaCheckpoint;
  beforeAll(async () => {
    if (missing === null) model = await loadLlama2cCheckpoint(STORIES260K_PATH);
  });

  it('windowed perplexity equals the single-pass one when one window covers the text', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(30, model.config.vocabSize);
    const logitsFor = (window: readonly number[]) => forwardSequence(model.weights, model.config, window);
    const single = perplexityFromLogits(tokens, logitsFor(tokens));
    const windowed = await perplexity(tokens, logitsFor, { windowSize: 64 });
    expect(windowed.perplexity).toBe(single.perplexity);
    // Shorter windows lose context, so the numbers differ but stay finite and positive.
    const short = await perplexity(tokens, logitsFor, { windowSize: 8 });
    expect(short.tokenCount).toBe(26); // windows start at 0, 8, 16, 24; starts are not scored
    expect(short.perplexity).toBeGreaterThan(1);
    expect(short.perplexity).not.toBe(single.perplexity);
  });

  it('f32 against f64: tiny KL, full top-1 agreement', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(24, model.config.vocabSize, 5);
    const ref = forwardSequence(model.weights, model.config, tokens, { precision: 'f64' });
    const f32 = forwardSequence(model.weights, model.config, tokens, { precision: 'f32' });
    const summary = compareDistributions(ref, f32);
    expect(summary.meanKl).toBeLessThan(1e-9);
    expect(summary.top1Agreement).toBe(1);
  });
});
