import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCommand } from '../../lib/cli/convert-command.js';
import { type CalibrationStats, sampleSequences } from '../../lib/convert/calibration.js';
import { convertToMla } from '../../lib/convert/convert.js';
import { readMlaCheckpoint, writeMlaCheckpoint } from '../../lib/convert/export.js';
import { ConversionAbortedError } from '../../lib/convert/progress.js';
import { kvBytesPerToken } from '../../lib/convert/quality.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import { maxAbsDiff, missingFileMessage, STORIES260K_PATH, sampleTokenIds } from '../model/fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

describe('DeepSeek-layout export, API progress/abort and the convert command', () => {
  let model: LlamaCheckpoint;
  let stats: CalibrationStats;
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'latentkv-convert-'));
    if (missing !== null) return;
    model = await loadLlama2cCheckpoint(STORIES260K_PATH);
    stats = sampleSequences(model, { count: 4, length: 64, seed: 1 }).stats;
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes safetensors + config.json that read back to the same model', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    for (const [name, options] of [
      ['transmla', { kvBudget: 0.5, qLoraRank: 16 }],
      ['mha2mla', { method: 'mha2mla' as const, kvBudget: 0.5 }],
      ['rotation', { kvBudget: 0.5, allocation: 'rotation' as const }],
    ] as const) {
      const mla = await convertToMla(model, { ...options, calibration: { stats } });
      const out = join(dir, name);
      await writeMlaCheckpoint(out, mla, { extra: { report: mla.report } });
      const config = JSON.parse(await readFile(join(out, 'config.json'), 'utf8'));
      expect(config).toMatchObject({
        model_type: 'deepseek_v3',
        kv_lora_rank: mla.config.kvLoraRank,
        qk_rope_head_dim: mla.config.qkRopeHeadDim,
        qk_latent_layernorm: false,
        rope_interleave: true,
      });
      expect(config.latentkv.rope_heads).toBe(mla.config.ropeHeads);
      const back = await readMlaCheckpoint(out);
      const tokens = sampleTokenIds(12, model.config.vocabSize, 2);
      const a = forwardMlaSequence(mla.weights, mla.config, tokens);
      const b = forwardMlaSequence(back.weights, back.config, tokens);
      expect(Math.max(...a.map((row, i) => maxAbsDiff(row, b[i]!)))).toBe(0);
      expect((await readdir(dir)).filter((f) => f.includes('partial'))).toEqual([]);
    }
  });

  it('reports progress per layer and step, and an AbortSignal stops the conversion', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const events: string[] = [];
    await convertToMla(model, {
      kvBudget: 0.5,
      calibration: { stats },
      onProgress: (e) => events.push(`${e.stage}:${e.layer ?? ''}:${e.step ?? ''}`),
    });
    expect(events).toContain('layer:0:rorope');
    expect(events).toContain('layer:4:latent');
    expect(events).toContain('layer:4:query');
    const controller = new AbortController();
    const promise = convertToMla(model, {
      kvBudget: 0.5,
      calibration: { stats },
      signal: controller.signal,
      onProgress: (e) => {
        if (e.layer === 1) controller.abort();
      },
    });
    await expect(promise).rejects.toBeInstanceOf(ConversionAbortedError);
  });

  it('kvBytesPerToken counts the cache of the original and of the converted model', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const mla = await convertToMla(model, { kvBudget: 0.3125, calibration: { stats } });
    expect(kvBytesPerToken(model.config)).toBe(5 * 64 * 2);
    expect(kvBytesPerToken(mla.config)).toBe(5 * 20 * 2);
    expect(kvBytesPerToken(mla.config, { bytesPerValue: 4 })).toBe(5 * 20 * 4);
  });

  it('latentkv convert writes the folder; an aborted run leaves nothing', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const out = join(dir, 'cli-out');
    const code = await convertCommand([
      STORIES260K_PATH,
      out,
      '--kv-budget',
      '0.5',
      '--calib-samples',
      '2',
      '--calib-length',
      '64',
    ]);
    expect(code).toBe(0);
    expect(existsSync(join(out, 'model.safetensors'))).toBe(true);
    expect(existsSync(join(out, 'config.json'))).toBe(true);
    const aborted = join(dir, 'cli-aborted');
    const controller = new AbortController();
    controller.abort();
    const abortedCode = await convertCommand(
      [STORIES260K_PATH, aborted, '--calib-samples', '2', '--calib-length', '64'],
      controller.signal,
    );
    expect(abortedCode).toBe(130);
    expect(existsSync(aborted)).toBe(false);
    expect((await readdir(dir)).filter((f) => f.includes('partial'))).toEqual([]);
    const auto = join(dir, 'cli-auto');
    const autoCode = await convertCommand([
      STORIES260K_PATH,
      auto,
      '--kv-budget',
      '0.5',
      '--auto-shape',
      '--calib-samples',
      '4',
      '--calib-length',
      '64',
    ]);
    expect(autoCode).toBe(0);
    const autoConfig = JSON.parse(await readFile(join(auto, 'config.json'), 'utf8'));
    expect(autoConfig.kv_lora_rank + autoConfig.qk_rope_head_dim).toBe(32);
    await expect(convertCommand([STORIES260K_PATH, out, '--method', 'nope'])).rejects.toThrow(
      /transmla, mha2mla/,
    );
  });
});
