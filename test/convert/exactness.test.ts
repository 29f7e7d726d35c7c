/**
 * Exactness of every step that is exact in theory (issue 5 item 4), on the real stories260K (GQA,
 * 8 query heads, 4 KV heads, head dim 8), with calibration sampled from the model itself.
 * Converted weights are stored as float32, so "exact" means: equal to the original up to float32
 * rounding of the weights (about 1e-6 relative), far below any conversion loss (>= 1e-2).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { type CalibrationStats, sampleSequences } from '../../lib/convert/calibration.js';
import { type ConvertOptions, convertToMla } from '../../lib/convert/convert.js';
import { forwardSequence } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import type { MlaCheckpoint } from '../../lib/model/mla-weights.js';
import {
  maxAbsDiff,
  missingFileMessage,
  STORIES260K_PATH,
  sampleTokenIds,
  toHalfSplit,
} from '../model/fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

function worstDiff(a: ArrayLike<number>[], b: ArrayLike<number>[]): number {
  return Math.max(...a.map((row, i) => maxAbsDiff(row, b[i]!)));
}

describe('exact conversion steps on stories260K', () => {
  let model: LlamaCheckpoint;
  let stats: CalibrationStats;
  let tokens: number[];
  let reference: Float64Array[];
  const convert = (options: ConvertOptions, m: LlamaCheckpoint = model) =>
    convertToMla(m, { calibration: { stats }, ...options });
  const logits = (mla: MlaCheckpoint, form: 'expanded' | 'absorbed' = 'expanded') =>
    forwardMlaSequence(mla.weights, mla.config, tokens, { form }) as Float64Array[];

  beforeAll(async () => {
    if (missing !== null) return;
    model = await loadLlama2cCheckpoint(STORIES260K_PATH);
    stats = sampleSequences(model, { count: 4, length: 64, seed: 1 }).stats;
    tokens = sampleTokenIds(40, model.config.vocabSize, 5);
    reference = forwardSequence(model.weights, model.config, tokens) as Float64Array[];
  });

  it('KV-head merge + RoRoPE with ff = 1 keeping RoPE on every dim reproduces the original', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const g = model.config.nKvHeads;
    const hd = model.config.headDim;
    const mla = await convert({
      ropeDim: g * hd, // every rotated component keeps RoPE
      freqfold: 1,
      frequencies: 'weighted', // ff = 1: each component keeps its own frequency exactly
      kvLoraRank: g * hd, // only the values are left for the latent: full rank
    });
    expect(mla.config).toMatchObject({ ropeHeads: 1, qkRopeHeadDim: 32, qkNopeHeadDim: 8, kvLoraRank: 32 });
    const scale = Math.max(...reference.map((row) => Math.max(...Array.from(row, Math.abs))));
    expect(worstDiff(reference, logits(mla))).toBeLessThan(2e-5 * scale);
    expect(worstDiff(reference, logits(mla, 'absorbed'))).toBeLessThan(2e-5 * scale);
  });

  it('the same holds for a half-split (Hugging Face) copy of the model', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const mla = await convert(
      { ropeDim: 32, freqfold: 1, frequencies: 'weighted', kvLoraRank: 32 },
      toHalfSplit(model),
    );
    const scale = Math.max(...reference.map((row) => Math.max(...Array.from(row, Math.abs))));
    expect(worstDiff(reference, logits(mla))).toBeLessThan(2e-5 * scale);
  });

  it('rotating the real and imaginary halves differently changes the scores (the test has teeth)', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const mla = await convert({ ropeDim: 32, freqfold: 1, frequencies: 'weighted', kvLoraRank: 32 });
    // Pairs 0 and 1 come from the same frequency group (ff = 1, 4 components per group). Swap
    // their imaginary rows only, in the keys and in every head's queries: an orthogonal change
    // applied to the imaginary halves and not to the real ones.
    const { dim: E } = model.config;
    const R = mla.config.kvLoraRank;
    const P = mla.config.qkRopeHeadDim;
    const Dn = mla.config.qkNopeHeadDim;
    const swapRows = (m: Float32Array, a: number, b: number): void => {
      const tmp = m.slice(a * E, (a + 1) * E);
      m.copyWithin(a * E, b * E, (b + 1) * E);
      m.set(tmp, b * E);
    };
    const broken: MlaCheckpoint = {
      config: mla.config,
      weights: {
        ...mla.weights,
        layers: mla.weights.layers.map((layer) => {
          const kvA = layer.kvAProjWithMqa.slice();
          swapRows(kvA, R + 1, R + 3);
          const q = layer.qProj!.slice();
          for (let h = 0; h < mla.config.nHeads; h++)
            swapRows(q, h * (Dn + P) + Dn + 1, h * (Dn + P) + Dn + 3);
          return { ...layer, kvAProjWithMqa: kvA, qProj: q };
        }),
      },
    };
    const out = logits(broken);
    // Position 0 attends only to itself at angle 0: no rotation, the swap is invisible there...
    expect(maxAbsDiff(reference[0]!, out[0]!)).toBeLessThan(1e-4);
    // ...but at later positions the cross terms no longer match.
    expect(worstDiff(reference.slice(1), out.slice(1))).toBeGreaterThan(1e-2);
    // Swapping both halves alike is an orthogonal change of the same kind as RoRoPE: invisible.
    const same: MlaCheckpoint = {
      config: mla.config,
      weights: {
        ...mla.weights,
        layers: broken.weights.layers.map((layer) => {
          const kvA = layer.kvAProjWithMqa.slice();
          swapRows(kvA, R, R + 2);
          const q = layer.qProj!.slice();
          for (let h = 0; h < mla.config.nHeads; h++) swapRows(q, h * (Dn + P) + Dn, h * (Dn + P) + Dn + 2);
          return { ...layer, kvAProjWithMqa: kvA, qProj: q };
        }),
      },
    };
    const scale = Math.max(...reference.map((row) => Math.max(...Array.from(row, Math.abs))));
    expect(worstDiff(reference, logits(same))).toBeLessThan(2e-5 * scale);
  });

  it('BKV scaling before truncation and the joint PCA at full rank change nothing', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    // Partial RoPE (8 of 32 rotated dims keep RoPE), latent at full rank 2*g*hd - d_R = 56.
    const base = { ropeDim: 8, freqfold: 2, kvLoraRank: 56 };
    const withBkv = logits(await convert({ ...base, bkv: true }));
    const withoutBkv = logits(await convert({ ...base, bkv: false }));
    const weightSvd = logits(await convert({ ...base, decomposition: 'svd-joint' }));
    const attention = logits(await convert({ ...base, decomposition: 'attention' }));
    const scale = Math.max(...withBkv.map((row) => Math.max(...Array.from(row, Math.abs))));
    expect(worstDiff(withBkv, withoutBkv)).toBeLessThan(2e-5 * scale);
    expect(worstDiff(withBkv, weightSvd)).toBeLessThan(2e-5 * scale);
    expect(worstDiff(withBkv, attention)).toBeLessThan(1e-4 * scale);
    // The partial-RoPE model itself is lossy (teeth for the comparisons above)...
    expect(worstDiff(withBkv, reference)).toBeGreaterThan(1e-2);
    // ...and below full rank BKV does change which directions the latent keeps.
    const low = { ropeDim: 8, freqfold: 2, kvLoraRank: 16 };
    expect(
      worstDiff(logits(await convert({ ...low, bkv: true })), logits(await convert({ ...low, bkv: false }))),
    ).toBeGreaterThan(1e-3);
  });

  it('MHA2MLA with every pair kept and a full-rank latent reproduces the original', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const mla = await convert({ method: 'mha2mla', ropeDim: 8, kvLoraRank: 32, partialRope: 'high' });
    expect(mla.config).toMatchObject({ ropeHeads: 4, qkRopeHeadDim: 8, qkNopeHeadDim: 0 });
    const scale = Math.max(...reference.map((row) => Math.max(...Array.from(row, Math.abs))));
    expect(worstDiff(reference, logits(mla))).toBeLessThan(2e-5 * scale);
  });

  for (const [name, options] of [
    ['TransMLA (DeepSeek layout, low-rank q)', { kvBudget: 0.3125, qLoraRank: 24 }],
    ['TransMLA (energy allocation, frequency table)', { kvBudget: 0.3125, allocation: 'energy' }],
    [
      'MHA2MLA S_2-norm (per-head frequency tables)',
      { method: 'mha2mla', kvBudget: 0.5, partialRope: '2-norm' },
    ],
    [
      'MHA2MLA S_uniform SVD_split',
      { method: 'mha2mla', kvBudget: 0.5, partialRope: 'uniform', decomposition: 'svd-split' },
    ],
  ] as [string, ConvertOptions][]) {
    it(`absorbed decode equals the non-absorbed form: ${name}`, async (ctx) => {
      ctx.skip(missing !== null, missing ?? '');
      const mla = await convert(options);
      const expanded = logits(mla);
      const absorbed = logits(mla, 'absorbed');
      expect(worstDiff(expanded, absorbed)).toBeLessThan(1e-9);
      expect(worstDiff(expanded, reference)).toBeGreaterThan(1e-3); // lossy: the forms differ from the original
    });
  }
});
