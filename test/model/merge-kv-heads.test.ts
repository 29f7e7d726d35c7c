import { beforeAll, describe, expect, it } from 'vitest';
import { forwardSequence } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { mergeKvHeadsToMla } from '../../lib/model/merge-kv-heads.js';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import { mlaCacheValuesPerToken } from '../../lib/model/mla-weights.js';
import { maxAbsDiff, missingFileMessage, STORIES260K_PATH, sampleTokenIds, toHalfSplit } from './fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

describe('exact KV-head merge (TransMLA 2.3) on stories260K', () => {
  let model: LlamaCheckpoint;
  beforeAll(async () => {
    if (missing === null) model = await loadLlama2cCheckpoint(STORIES260K_PATH);
  });

  it('writes the DeepSeek layout with one rope key per KV head', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const { config, weights } = mergeKvHeadsToMla(model);
    expect(config).toMatchObject({
      nHeads: 8,
      kvLoraRank: 32, // 4 KV heads x head dim 8: the values
      qkNopeHeadDim: 0,
      qkRopeHeadDim: 8,
      vHeadDim: 8,
      ropeHeads: 4,
      qLoraRank: null,
      ropeStyle: 'interleaved',
      softmaxScale: 1 / Math.sqrt(8),
    });
    expect(mlaCacheValuesPerToken(config)).toBe(64); // same as GQA's 2 * 4 * 8: exact, no compression
    const layer = weights.layers[0]!;
    expect(layer.qProj).toHaveLength(8 * 8 * 64);
    expect(layer.kvAProjWithMqa).toHaveLength((32 + 4 * 8) * 64);
    expect(layer.kvALayernorm).toBeNull();
    expect(layer.kvBProj).toHaveLength(8 * 8 * 32);
    // Head 3 belongs to KV group 1: its value row 2 selects latent column 1*8 + 2.
    const row = layer.kvBProj.subarray((3 * 8 + 2) * 32, (3 * 8 + 3) * 32);
    expect(
      Array.from(row)
        .map((v, c) => (v === 1 ? c : -1))
        .filter((c) => c >= 0),
    ).toEqual([10]);
    expect(row.reduce((s, v) => s + v, 0)).toBe(1);
  });

  it('reproduces the original logits in the expanded (non-absorbed) MLA form', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(24, model.config.vocabSize);
    const mla = mergeKvHeadsToMla(model);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const merged = forwardMlaSequence(mla.weights, mla.config, tokens, { form: 'expanded' });
    const worst = Math.max(...reference.map((row, i) => maxAbsDiff(row, merged[i]!)));
    expect(worst).toBeLessThan(1e-9);
  });

  it('reproduces the original logits in the absorbed form the kernels use', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(24, model.config.vocabSize, 11);
    const mla = mergeKvHeadsToMla(model);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const absorbed = forwardMlaSequence(mla.weights, mla.config, tokens, { form: 'absorbed' });
    const worst = Math.max(...reference.map((row, i) => maxAbsDiff(row, absorbed[i]!)));
    expect(worst).toBeLessThan(1e-9);
  });

  it('merges a half-split (Hugging Face RoPE) model exactly too', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(16, model.config.vocabSize, 3);
    const halfSplit = toHalfSplit(model);
    const mla = mergeKvHeadsToMla(halfSplit);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const merged = forwardMlaSequence(mla.weights, mla.config, tokens, { form: 'absorbed' });
    const worst = Math.max(...reference.map((row, i) => maxAbsDiff(row, merged[i]!)));
    expect(worst).toBeLessThan(1e-9);
  });

  it('a wrong selector is caught: the check has teeth', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(12, model.config.vocabSize);
    const mla = mergeKvHeadsToMla(model);
    // Point head 0 at KV group 1's values instead of group 0's.
    const kvB = mla.weights.layers[2]!.kvBProj;
    for (let d = 0; d < 8; d++) {
      kvB[d * 32 + d] = 0;
      kvB[d * 32 + 8 + d] = 1;
    }
    const reference = forwardSequence(model.weights, model.config, tokens);
    const broken = forwardMlaSequence(mla.weights, mla.config, tokens);
    expect(maxAbsDiff(reference[11]!, broken[11]!)).toBeGreaterThan(1e-4);
  });
});
