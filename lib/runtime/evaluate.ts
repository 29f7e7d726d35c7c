/**
 * Evaluation through the runtimes: windowed perplexity over a token stream, and against a
 * reference model the mean KL(P_ref || P_model) and top-1 agreement of next-token distributions,
 * on the same windows. Built on lib/model/evaluate.ts (float64 accumulation).
 */
import { compareDistributions, type PerplexityResult, perplexity } from '../model/evaluate.js';
import type { CausalLanguageModel } from './model.js';

/** Logits after every token of `tokens`, run from an empty sequence in one forward call. */
export function sequenceLogits(model: CausalLanguageModel, tokens: readonly number[]): Float32Array[] {
  const seq = model.createSequence();
  try {
    return model.forward([{ seqId: seq, tokens }], { allLogits: true })[0]!;
  } finally {
    model.freeSequence(seq);
  }
}

export interface EvaluateOptions {
  /** Tokens per window; default the model's maxSeqLen. */
  windowSize?: number;
  /** Default windowSize (non-overlapping windows, first token of each is context only). */
  stride?: number;
  reference?: CausalLanguageModel;
}

export interface ModelReport {
  kind: 'gqa' | 'mla';
  cacheDtype: string;
  kvBytesPerToken: number;
  perplexity: PerplexityResult;
}

export interface EvaluationReport {
  model: ModelReport;
  reference?: ModelReport & {
    /** Mean over scored positions of KL(P_reference || P_model), nats. */
    meanKl: number;
    maxKl: number;
    top1Agreement: number;
    positions: number;
  };
}

export async function evaluateModel(
  model: CausalLanguageModel,
  tokens: readonly number[],
  options: EvaluateOptions = {},
): Promise<EvaluationReport> {
  const limit = Math.min(model.maxSeqLen, options.reference?.maxSeqLen ?? model.maxSeqLen);
  const windowSize = options.windowSize ?? limit;
  if (windowSize > limit) {
    throw new RangeError(`windowSize ${windowSize} is longer than the models' context (${limit})`);
  }
  const windows = { windowSize, stride: options.stride ?? windowSize };
  const reference = options.reference;
  let klSum = 0;
  let klMax = 0;
  let agree = 0;
  let positions = 0;
  const referenceWindows: Float32Array[][] = [];
  const modelPerplexity = await perplexity(
    tokens,
    (window) => {
      const logits = sequenceLogits(model, window);
      if (reference !== undefined) {
        const refLogits = sequenceLogits(reference, window);
        referenceWindows.push(refLogits);
        // Compare the rows that predict a token of this window (the last row predicts past it).
        const n = window.length - 1;
        if (n > 0) {
          const c = compareDistributions(refLogits.slice(0, n), logits.slice(0, n));
          klSum += c.meanKl * c.positions;
          klMax = Math.max(klMax, c.maxKl);
          agree += c.top1Agreement * c.positions;
          positions += c.positions;
        }
      }
      return logits;
    },
    windows,
  );
  const report: EvaluationReport = {
    model: {
      kind: model.kind,
      cacheDtype: model.cacheDtype,
      kvBytesPerToken: model.kvBytesPerToken,
      perplexity: modelPerplexity,
    },
  };
  if (reference !== undefined) {
    // The same windows in the same order: reuse the reference logits computed above.
    let next = 0;
    const refPerplexity = await perplexity(tokens, () => referenceWindows[next++]!, windows);
    report.reference = {
      kind: reference.kind,
      cacheDtype: reference.cacheDtype,
      kvBytesPerToken: reference.kvBytesPerToken,
      perplexity: refPerplexity,
      meanKl: klSum / positions,
      maxKl: klMax,
      top1Agreement: agree / positions,
      positions,
    };
  }
  return report;
}
