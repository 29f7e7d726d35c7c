import { describe, expect, it } from 'vitest';
import { searchShape, shapeCandidates } from '../../lib/convert/auto-shape.js';
import { sampleSequences } from '../../lib/convert/calibration.js';
import { budgetValues } from '../../lib/convert/convert.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { missingFileMessage, STORIES260K_PATH } from '../model/fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

describe('automatic (d_R, ff, r) search', () => {
  it('candidates fill the budget exactly and are valid for their allocation', () => {
    const config = {
      dim: 288,
      hiddenDim: 768,
      nLayers: 6,
      nHeads: 6,
      nKvHeads: 6,
      vocabSize: 32000,
      seqLen: 256,
      headDim: 48,
      ropeTheta: 10000,
      ropeStyle: 'interleaved',
      normEps: 1e-5,
    } as const;
    const list = shapeCandidates(config, 0.3125, ['rotation', 'uniform']);
    expect(list.some((c) => c.allocation === 'uniform')).toBe(true);
    expect(list.some((c) => c.allocation === 'rotation')).toBe(true);
    for (const c of list) {
      expect(c.kvLoraRank + c.ropeDim).toBe(budgetValues(config, 0.3125));
      if (c.allocation === 'uniform') expect(Number.isInteger((c.ropeDim * c.freqfold) / 48)).toBe(true);
    }
  });

  it('scores candidates on held-out calibration sequences and returns the lowest KL', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const model = await loadLlama2cCheckpoint(STORIES260K_PATH);
    const { sequences } = sampleSequences(model, { count: 4, length: 64, seed: 1 });
    const result = await searchShape(model, sequences, { kvBudget: 0.5 });
    expect(result.heldOutTokens).toBe(64);
    expect(result.candidates.length).toBeGreaterThan(1);
    expect(result.best.meanKl).toBe(Math.min(...result.candidates.map((c) => c.meanKl)));
  });
});
