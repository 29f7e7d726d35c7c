/**
 * Generation through a runtime: prefill the prompt in one forward call, then one cached decode
 * step per new token, choosing each with lib/model/sampling (greedy, temperature, top-k, top-p,
 * seeded). Tokens stream through a callback as they are chosen; timings come back with the text.
 */
import { InvalidArgumentError } from '../errors.js';
import { createSampler } from '../model/sampling.js';
import type { CausalLanguageModel } from './model.js';

export interface GenerateOptions {
  /** Most new tokens; default 256, and never past the model's maxSeqLen. */
  maxTokens?: number;
  /** 0 (default) is greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Generation stops after choosing one of these (it is not passed to onToken nor returned). */
  stopTokens?: readonly number[];
  /** Called with each new token as soon as it is chosen; return false to stop. */
  onToken?: (token: number, index: number) => unknown;
}

export interface GenerateResult {
  /** The new tokens (prompt excluded, stop token excluded). */
  tokens: number[];
  promptTokens: number;
  /** Why generation ended. */
  stopReason: 'stop-token' | 'max-tokens' | 'context-full' | 'callback';
  prefillSeconds: number;
  /** Time of the decode steps (every forward after the prefill). */
  decodeSeconds: number;
  /** Decode steps per second (NaN when there were none). */
  decodeTokensPerSecond: number;
  /** Prompt tokens per second of the prefill. */
  prefillTokensPerSecond: number;
}

function seconds(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** Generates a continuation of `prompt` (token ids, BOS included if the model wants one). */
export function generate(
  model: CausalLanguageModel,
  prompt: readonly number[],
  options: GenerateOptions = {},
): GenerateResult {
  if (prompt.length === 0) throw new InvalidArgumentError('generate needs at least one prompt token');
  const maxTokens = options.maxTokens ?? 256;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) {
    throw new InvalidArgumentError(`maxTokens must be an integer >= 0, got ${maxTokens}`);
  }
  const sampler = createSampler({
    temperature: options.temperature ?? 0,
    topK: options.topK ?? 0,
    topP: options.topP ?? 1,
    seed: options.seed ?? 0,
  });
  const stop = new Set(options.stopTokens ?? []);
  const seq = model.createSequence();
  const tokens: number[] = [];
  let stopReason: GenerateResult['stopReason'] = 'max-tokens';
  let decodeSeconds = 0;
  let prefillSeconds = 0;
  let steps = 0;
  try {
    const prefillStart = process.hrtime.bigint();
    let logits = model.forward([{ seqId: seq, tokens: prompt }])[0]![0]!;
    prefillSeconds = seconds(prefillStart);
    const decodeStart = process.hrtime.bigint();
    while (true) {
      if (tokens.length >= maxTokens) break;
      const next = sampler(logits);
      if (stop.has(next)) {
        stopReason = 'stop-token';
        break;
      }
      tokens.push(next);
      if (options.onToken?.(next, tokens.length - 1) === false) {
        stopReason = 'callback';
        break;
      }
      if (tokens.length >= maxTokens) break;
      if (model.sequenceLength(seq) >= model.maxSeqLen) {
        stopReason = 'context-full';
        break;
      }
      logits = model.forward([{ seqId: seq, tokens: [next] }])[0]![0]!;
      steps++;
    }
    decodeSeconds = seconds(decodeStart);
  } finally {
    model.freeSequence(seq);
  }
  return {
    tokens,
    promptTokens: prompt.length,
    stopReason,
    prefillSeconds,
    decodeSeconds,
    decodeTokensPerSecond: steps > 0 ? steps / decodeSeconds : Number.NaN,
    prefillTokensPerSecond: prompt.length / prefillSeconds,
  };
}

/**
 * Greedy or sampled generation for several prompts at once: prompts are prefilled (those of equal
 * length in one kernel call), then every live sequence advances one token per batched forward.
 * Each sequence gets its own sampler seeded with seed + index.
 */
export function generateBatch(
  model: CausalLanguageModel,
  prompts: readonly (readonly number[])[],
  options: Omit<GenerateOptions, 'onToken'> & {
    onToken?: (sequence: number, token: number, index: number) => void;
  } = {},
): number[][] {
  const maxTokens = options.maxTokens ?? 256;
  const seed = options.seed ?? 0;
  const samplers = prompts.map((_, i) =>
    createSampler({
      temperature: options.temperature ?? 0,
      topK: options.topK ?? 0,
      topP: options.topP ?? 1,
      seed: seed + i,
    }),
  );
  const stop = new Set(options.stopTokens ?? []);
  const seqs = prompts.map(() => model.createSequence());
  const outputs: number[][] = prompts.map(() => []);
  try {
    let logits = model
      .forward(prompts.map((tokens, i) => ({ seqId: seqs[i]!, tokens })))
      .map((rows) => rows[0]!);
    let live = prompts.map((_, i) => i);
    while (live.length > 0) {
      const next: number[] = [];
      const stillLive: number[] = [];
      live.forEach((i, k) => {
        const token = samplers[i]!(logits[k]!);
        if (stop.has(token)) return;
        outputs[i]!.push(token);
        options.onToken?.(i, token, outputs[i]!.length - 1);
        if (outputs[i]!.length >= maxTokens || model.sequenceLength(seqs[i]!) >= model.maxSeqLen) return;
        stillLive.push(i);
        next.push(token);
      });
      live = stillLive;
      if (live.length === 0) break;
      logits = model
        .forward(live.map((i, k) => ({ seqId: seqs[i]!, tokens: [next[k]!] })))
        .map((rows) => rows[0]!);
    }
  } finally {
    for (const s of seqs) model.freeSequence(s);
  }
  return outputs;
}
