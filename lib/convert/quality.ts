/**
 * Quality of a converted model against its original on held-out tokens: perplexity of both, mean
 * KL(P_original || P_converted) of the next-token distributions and top-1 agreement. Windows of at
 * most the model's context run from an empty cache, as evaluate.ts's perplexity does. By default
 * the logits come from the kernel-based runtimes (GqaModel / MlaModel, float32, native attention);
 * `engine: 'reference'` uses the TypeScript reference forwards instead.
 */
import { compareDistributions, perplexityFromLogits } from '../model/evaluate.js';
import type { Precision } from '../model/forward-ops.js';
import { forwardSequence } from '../model/llama-forward.js';
import type { LlamaCheckpoint, LlamaConfig } from '../model/llama-weights.js';
import { forwardMlaSequence } from '../model/mla-forward.js';
import { type MlaCheckpoint, type MlaConfig, mlaCacheValuesPerToken } from '../model/mla-weights.js';
import { sequenceLogits } from '../runtime/evaluate.js';
import { GqaModel } from '../runtime/gqa-model.js';
import { MlaModel } from '../runtime/mla-model.js';
import type { CausalLanguageModel } from '../runtime/model.js';
import { throwIfAborted } from './progress.js';

export type Logits = ArrayLike<number>;

/** Cuts a token stream into windows of at most `windowSize` tokens (each scored from its 2nd token). */
export function windows(tokens: readonly number[], windowSize: number): number[][] {
  const out: number[][] = [];
  for (let i = 0; i + 1 < tokens.length; i += windowSize) out.push(tokens.slice(i, i + windowSize));
  return out;
}

export interface ReferenceRun {
  sequences: number[][];
  logits: Logits[][];
  perplexity: number;
}

export interface EvaluateOptions {
  /** 'runtime' (default): the kernel-based runtimes; 'reference': the TypeScript forwards. */
  engine?: 'runtime' | 'reference';
  /** Reference engine only. Default 'f32' (llama2.c's precision, about twice as fast as 'f64'). */
  precision?: Precision;
  signal?: AbortSignal;
}

function pplOf(sequences: number[][], logits: Logits[][]): number {
  let nll = 0;
  let count = 0;
  sequences.forEach((seq, i) => {
    const r = perplexityFromLogits(seq, logits[i]!);
    nll += r.meanNll * r.tokenCount;
    count += r.tokenCount;
  });
  return Math.exp(nll / count);
}

/** Logits of every sequence through a runtime, which is disposed afterwards. */
function runtimeLogits(
  model: CausalLanguageModel,
  sequences: readonly (readonly number[])[],
  signal?: AbortSignal,
): Float32Array[][] {
  try {
    return sequences.map((seq) => {
      throwIfAborted(signal);
      return sequenceLogits(model, seq);
    });
  } finally {
    model.dispose();
  }
}

/** Runs the original model once; reuse the result for every converted model. */
export function runReference(
  original: LlamaCheckpoint,
  sequences: number[][],
  options: EvaluateOptions = {},
): ReferenceRun {
  const longest = Math.max(1, ...sequences.map((s) => s.length));
  const logits =
    (options.engine ?? 'runtime') === 'runtime'
      ? runtimeLogits(new GqaModel(original, { maxSeqLen: longest }), sequences, options.signal)
      : sequences.map((seq) => {
          throwIfAborted(options.signal);
          return forwardSequence(original.weights, original.config, seq, {
            precision: options.precision ?? 'f32',
          });
        });
  return { sequences, logits, perplexity: pplOf(sequences, logits) };
}

export interface QualityResult {
  perplexity: number;
  originalPerplexity: number;
  meanKl: number;
  top1Agreement: number;
  positions: number;
}

export function evaluateConverted(
  reference: ReferenceRun,
  converted: MlaCheckpoint,
  options: EvaluateOptions = {},
): QualityResult {
  const longest = Math.max(1, ...reference.sequences.map((s) => s.length));
  const logits =
    (options.engine ?? 'runtime') === 'runtime'
      ? runtimeLogits(new MlaModel(converted, { maxSeqLen: longest }), reference.sequences, options.signal)
      : reference.sequences.map((seq) => {
          throwIfAborted(options.signal);
          return forwardMlaSequence(converted.weights, converted.config, seq, {
            precision: options.precision ?? 'f32',
            form: 'absorbed',
          });
        });
  // Positions that predict a token (the last row of each window predicts nothing inside it).
  const refRows = reference.logits.flatMap((rows, i) => rows.slice(0, reference.sequences[i]!.length - 1));
  const modelRows = logits.flatMap((rows, i) => rows.slice(0, reference.sequences[i]!.length - 1));
  const cmp = compareDistributions(refRows, modelRows);
  return {
    perplexity: pplOf(reference.sequences, logits),
    originalPerplexity: reference.perplexity,
    meanKl: cmp.meanKl,
    top1Agreement: cmp.top1Agreement,
    positions: cmp.positions,
  };
}

export interface KvBytesOptions {
  /** Bytes per cached value: 4 (f32), 2 (bf16/f16, default), 1 (int8/fp8). */
  bytesPerValue?: number;
}

/** KV-cache bytes per token over all layers, for an MLA config or an original Llama config. */
export function kvBytesPerToken(config: MlaConfig | LlamaConfig, options: KvBytesOptions = {}): number {
  const bytes = options.bytesPerValue ?? 2;
  const values =
    'kvLoraRank' in config ? mlaCacheValuesPerToken(config) : 2 * config.nKvHeads * config.headDim;
  return values * config.nLayers * bytes;
}
