/**
 * The kernel-driven runtimes against the float64 reference forwards on stories260K (GQA: 8 query
 * heads, 4 KV heads, head dim 8): logits, prefill vs token by token, batches, and the exact
 * KV-head merge run through the MLA kernels.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { forwardSequence } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { mergeKvHeadsToMla } from '../../lib/model/merge-kv-heads.js';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import { GqaModel } from '../../lib/runtime/gqa-model.js';
import { MlaModel } from '../../lib/runtime/mla-model.js';
import type { CausalLanguageModel } from '../../lib/runtime/model.js';
import {
  missingFileMessage,
  STORIES260K_PATH,
  sampleTokenIds,
  toHalfSplit,
  worstRelativeError,
} from './fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);

/** Logits after every token, from a fresh sequence, prompt-style (one forward call). */
function prefillLogits(model: CausalLanguageModel, tokens: number[]): Float32Array[] {
  const seq = model.createSequence();
  const logits = model.forward([{ seqId: seq, tokens }], { allLogits: true })[0]!;
  model.freeSequence(seq);
  return logits;
}

/** Logits after every token, one decode step per token. */
function stepLogits(model: CausalLanguageModel, tokens: number[]): Float32Array[] {
  const seq = model.createSequence();
  const logits = tokens.map((token) => model.forward([{ seqId: seq, tokens: [token] }])[0]![0]!.slice());
  model.freeSequence(seq);
  return logits;
}

describe('model runtimes on stories260K', () => {
  let model: LlamaCheckpoint;
  beforeAll(async () => {
    if (missing === null) model = await loadLlama2cCheckpoint(STORIES260K_PATH);
  });

  it('GQA runtime logits equal the float64 reference forward (f32 cache)', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(40, model.config.vocabSize);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const gqa = new GqaModel(model);
    const prefill = prefillLogits(gqa, tokens);
    const steps = stepLogits(gqa, tokens);
    const errPrefill = worstRelativeError(prefill, reference);
    const errSteps = worstRelativeError(steps, reference);
    console.log(
      `stories260K GQA runtime vs f64 reference: prefill rel ${errPrefill.toExponential(2)}, decode rel ${errSteps.toExponential(2)}`,
    );
    expect(errPrefill).toBeLessThan(1e-4);
    expect(errSteps).toBeLessThan(1e-4);
    expect(worstRelativeError(prefill, steps)).toBeLessThan(1e-5);
    gqa.dispose();
  });

  it('MLA runtime on the exact KV-head merge reproduces the original logits', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const tokens = sampleTokenIds(40, model.config.vocabSize, 3);
    const reference = forwardSequence(model.weights, model.config, tokens);
    const merged = mergeKvHeadsToMla(model);
    const mla = new MlaModel(merged);
    expect(mla.kvBytesPerToken).toBe(new GqaModel(model).kvBytesPerToken);
    const prefill = prefillLogits(mla, tokens);
    const steps = stepLogits(mla, tokens);
    const absorbed = forwardMlaSequence(merged.weights, merged.config, tokens, { form: 'absorbed' });
    const expanded = forwardMlaSequence(merged.weights, merged.config, tokens, { form: 'expanded' });
    const errs = {
      original: worstRelativeError(prefill, reference),
      decode: worstRelativeError(steps, reference),
      absorbed: worstRelativeError(prefill, absorbed),
      expanded: worstRelativeError(prefill, expanded),
    };
    console.log(`stories260K merged MLA runtime rel errors: ${JSON.stringify(errs)}`);
    for (const e of Object.values(errs)) expect(e).toBeLessThan(1e-4);
    mla.dispose();
  });

  it('half-split RoPE (HF layout) through both runtimes', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const halfSplit = toHalfSplit(model);
    const tokens = sampleTokenIds(24, model.config.vocabSize, 5);
    const reference = forwardSequence(model.weights, model.config, tokens);
    expect(worstRelativeError(prefillLogits(new GqaModel(halfSplit), tokens), reference)).toBeLessThan(1e-4);
    expect(
      worstRelativeError(prefillLogits(new MlaModel(mergeKvHeadsToMla(halfSplit)), tokens), reference),
    ).toBeLessThan(1e-4);
  });

  it('a batch of sequences gives each sequence its single-sequence logits', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const prompts = [sampleTokenIds(7, 512, 1), sampleTokenIds(7, 512, 2), sampleTokenIds(12, 512, 3)];
    const continuations = [
      [5, 6, 7],
      [8, 9, 10],
      [11, 12, 13],
    ];
    for (const runtime of [
      new GqaModel(model),
      new MlaModel(mergeKvHeadsToMla(model), { cacheDtype: 'f32' }),
    ]) {
      // Single sequences.
      const single = prompts.map((prompt, i) => {
        const seq = runtime.createSequence();
        const rows = [runtime.forward([{ seqId: seq, tokens: prompt }])[0]![0]!.slice()];
        for (const t of continuations[i]!)
          rows.push(runtime.forward([{ seqId: seq, tokens: [t] }])[0]![0]!.slice());
        runtime.freeSequence(seq);
        return rows;
      });
      // All three together: prompts of two lengths in one call, then batched decode steps (B = 3).
      const seqs = prompts.map(() => runtime.createSequence());
      const batched: Float32Array[][] = prompts.map(() => []);
      runtime.forward(prompts.map((tokens, i) => ({ seqId: seqs[i]!, tokens }))).forEach((rows, i) => {
        batched[i]!.push(rows[0]!);
      });
      for (let step = 0; step < 3; step++) {
        runtime
          .forward(seqs.map((seqId, i) => ({ seqId, tokens: [continuations[i]![step]!] })))
          .forEach((rows, i) => {
            batched[i]!.push(rows[0]!);
          });
      }
      single.forEach((rows, i) => {
        expect(worstRelativeError(batched[i]!, rows)).toBeLessThan(1e-5);
      });
      expect(runtime.sequenceLength(seqs[2]!)).toBe(15);
      runtime.dispose();
    }
  });

  it('rejects bad requests without changing the caches', (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const gqa = new GqaModel(model, { maxSeqLen: 8 });
    const seq = gqa.createSequence();
    gqa.forward([{ seqId: seq, tokens: [1, 2, 3] }]);
    expect(() => gqa.forward([{ seqId: seq, tokens: [1, 2, 3, 4, 5, 6] }])).toThrow(/maxSeqLen 8/);
    expect(() => gqa.forward([{ seqId: seq, tokens: [512] }])).toThrow(/outside the vocabulary/);
    expect(() => gqa.forward([{ seqId: 99, tokens: [1] }])).toThrow(/not a live sequence/);
    expect(() =>
      gqa.forward([
        { seqId: seq, tokens: [1] },
        { seqId: seq, tokens: [2] },
      ]),
    ).toThrow(/twice/);
    expect(gqa.sequenceLength(seq)).toBe(3);
    gqa.dispose();
    expect(() => gqa.createSequence()).toThrow(/disposed/);
  });
});
