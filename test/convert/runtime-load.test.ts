/**
 * A folder written by writeMlaCheckpoint loads through resolveModel and runs in the kernel-based
 * MlaModel with the same logits as the TypeScript reference forward: the DeepSeek layout, a
 * per-layer frequency table (rotation allocation) and per-rope-head tables (MHA2MLA S_2-norm, which
 * the runtime finishes itself because the native table rope takes one table per call).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CalibrationStats, sampleSequences } from '../../lib/convert/calibration.js';
import { type ConvertOptions, convertToMla } from '../../lib/convert/convert.js';
import { writeMlaCheckpoint } from '../../lib/convert/export.js';
import { evaluateConverted, runReference } from '../../lib/convert/quality.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import { evaluateModel, sequenceLogits } from '../../lib/runtime/evaluate.js';
import { createRuntime, resolveModel } from '../../lib/runtime/load-model.js';
import { maxAbsDiff, missingFileMessage, STORIES260K_PATH, sampleTokenIds } from '../model/fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

describe('converted folders in the kernel-based runtime', () => {
  let model: LlamaCheckpoint;
  let stats: CalibrationStats;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latentkv-runtime-load-'));
    if (missing !== null) return;
    model = await loadLlama2cCheckpoint(STORIES260K_PATH);
    stats = sampleSequences(model, { count: 4, length: 64, seed: 1 }).stats;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  for (const [name, options, tables] of [
    ['deepseek', { kvBudget: 0.3125 }, 'none'],
    ['rotation', { kvBudget: 0.5, allocation: 'rotation' }, 'layer'],
    ['mha2mla-2norm', { method: 'mha2mla', kvBudget: 0.5, partialRope: '2-norm' }, 'head'],
  ] as [string, ConvertOptions, 'none' | 'layer' | 'head'][]) {
    it(`resolveModel + MlaModel match the TS forward: ${name}`, async (ctx) => {
      ctx.skip(missing !== null, missing ?? '');
      const mla = await convertToMla(model, { ...options, calibration: { stats } });
      const out = join(dir, name);
      await writeMlaCheckpoint(out, mla);
      const resolved = await resolveModel(out);
      expect(resolved.loaded.kind).toBe('mla');
      const table = mla.weights.layers[0]!.ropeInvFreq;
      if (tables === 'none') expect(table ?? null).toBeNull();
      else {
        const pairs = mla.config.qkRopeHeadDim / 2;
        expect(table?.length).toBe(tables === 'head' ? pairs * mla.config.ropeHeads : pairs);
      }
      const runtime = createRuntime(resolved.loaded);
      const tokens = sampleTokenIds(48, model.config.vocabSize, 3);
      const expected = forwardMlaSequence(mla.weights, mla.config, tokens, { form: 'absorbed' });
      const got = sequenceLogits(runtime, tokens);
      const scale = Math.max(...expected.map((row) => Math.max(...Array.from(row, Math.abs))));
      expect(Math.max(...got.map((row, i) => maxAbsDiff(row, expected[i]!)))).toBeLessThan(2e-4 * scale);
      runtime.dispose();
    });
  }

  it('evaluateModel on the runtimes gives the TS evaluation numbers', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const mla = await convertToMla(model, { kvBudget: 0.5, allocation: 'rotation', calibration: { stats } });
    const seqs = sampleSequences(model, { count: 2, length: 64, seed: 2 }).sequences;
    const ts = evaluateConverted(runReference(model, seqs), mla);
    let klSum = 0;
    let positions = 0;
    const reference = createRuntime({ kind: 'gqa', checkpoint: model });
    const runtime = createRuntime({ kind: 'mla', checkpoint: mla });
    for (const seq of seqs) {
      const r = await evaluateModel(runtime, seq, { reference });
      klSum += r.reference!.meanKl * r.reference!.positions;
      positions += r.reference!.positions;
    }
    expect(positions).toBe(ts.positions);
    expect(Math.abs(klSum / positions - ts.meanKl)).toBeLessThan(1e-3 * ts.meanKl + 1e-4);
  });
});
