/**
 * Quality measures for a model and for a converted model against its original:
 * perplexity over token ids (windowed), mean KL(P_ref || P_model) of next-token distributions,
 * and top-1 agreement. Everything is accumulated in float64.
 */
import { argmax, type Logits, logSoftmax } from './sampling.js';

/** Logits after every token of a window (entry i predicts token i+1); sync or async. */
export type SequenceLogitsFn = (tokens: readonly number[]) => readonly Logits[] | Promise<readonly Logits[]>;

export interface PerplexityResult {
  perplexity: number;
  /** Mean negative log-likelihood in nats per predicted token. */
  meanNll: number;
  /** How many tokens were predicted (scored). */
  tokenCount: number;
}

function perplexityFrom(totalNll: number, count: number): PerplexityResult {
  if (count === 0) throw new RangeError('perplexity needs at least two tokens (one to predict)');
  const meanNll = totalNll / count;
  return { perplexity: Math.exp(meanNll), meanNll, tokenCount: count };
}

function nll(logits: Logits, target: number): number {
  if (!Number.isInteger(target) || target < 0 || target >= logits.length) {
    throw new RangeError(`target token ${target} is outside the vocabulary of ${logits.length}`);
  }
  return -logSoftmax(logits)[target]!;
}

/**
 * Perplexity of `tokens` given precomputed logits: logits[i] predicts tokens[i+1], so
 * logits.length must be at least tokens.length - 1.
 */
export function perplexityFromLogits(tokens: readonly number[], logits: readonly Logits[]): PerplexityResult {
  if (logits.length < tokens.length - 1) {
    throw new RangeError(
      `need ${tokens.length - 1} logit rows for ${tokens.length} tokens, got ${logits.length}`,
    );
  }
  let total = 0;
  for (let i = 0; i + 1 < tokens.length; i++) total += nll(logits[i]!, tokens[i + 1]!);
  return perplexityFrom(total, tokens.length - 1);
}

export interface WindowOptions {
  /** Tokens per window (the model's context, at most its seqLen). */
  windowSize: number;
  /**
   * How far each window starts after the previous one. Default windowSize: non-overlapping windows,
   * each run from scratch, where a window's first token is context only and is not scored
   * (TransMLA's and Hugging Face's evaluation: windows of W tokens score W - 1 each). A smaller
   * stride gives tokens more context and scores every token after the first exactly once.
   */
  stride?: number;
}

/**
 * Windowed perplexity: the token stream is cut into windows, each window is run from an empty cache
 * through `logitsFor`, and each token is scored at most once, by the first window that predicts it.
 */
export async function perplexity(
  tokens: readonly number[],
  logitsFor: SequenceLogitsFn,
  options: WindowOptions,
): Promise<PerplexityResult> {
  const { windowSize, stride = windowSize } = options;
  if (!(Number.isInteger(windowSize) && windowSize >= 2))
    throw new RangeError(`windowSize must be an integer >= 2, got ${windowSize}`);
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= windowSize)) {
    throw new RangeError(`stride must be an integer in [1, windowSize], got ${stride}`);
  }
  let total = 0;
  let count = 0;
  let scoredUpTo = 0; // tokens[0..scoredUpTo] have been predicted (token 0 never is)
  for (let begin = 0; scoredUpTo < tokens.length - 1; begin += stride) {
    const end = Math.min(begin + windowSize, tokens.length);
    const window = tokens.slice(begin, end);
    const logits = await logitsFor(window);
    if (logits.length < window.length - 1) {
      throw new RangeError(
        `logitsFor returned ${logits.length} rows for a window of ${window.length} tokens`,
      );
    }
    // Target position t (absolute) is predicted by window row t - 1 - begin.
    for (let t = Math.max(scoredUpTo + 1, begin + 1); t < end; t++) {
      total += nll(logits[t - 1 - begin]!, tokens[t]!);
      count++;
    }
    scoredUpTo = end - 1;
  }
  return perplexityFrom(total, count);
}

/** KL(P || Q) in nats for one position, from logits. */
export function klDivergence(referenceLogits: Logits, modelLogits: Logits): number {
  if (referenceLogits.length !== modelLogits.length) {
    throw new RangeError(`vocabulary sizes differ: ${referenceLogits.length} vs ${modelLogits.length}`);
  }
  const logP = logSoftmax(referenceLogits);
  const logQ = logSoftmax(modelLogits);
  let kl = 0;
  for (let i = 0; i < logP.length; i++) {
    const p = Math.exp(logP[i]!);
    if (p > 0) kl += p * (logP[i]! - logQ[i]!);
  }
  return Math.max(0, kl); // tiny negative values are rounding
}

export interface DistributionComparison {
  /** Mean over positions of KL(P_ref || P_model), nats. */
  meanKl: number;
  maxKl: number;
  /** Fraction of positions where both models' most likely token is the same. */
  top1Agreement: number;
  positions: number;
}

/** Compares two models' next-token distributions position by position. */
export function compareDistributions(
  referenceLogits: readonly Logits[],
  modelLogits: readonly Logits[],
): DistributionComparison {
  if (referenceLogits.length !== modelLogits.length) {
    throw new RangeError(`position counts differ: ${referenceLogits.length} vs ${modelLogits.length}`);
  }
  if (referenceLogits.length === 0) throw new RangeError('no positions to compare');
  let sumKl = 0;
  let maxKl = 0;
  let agree = 0;
  referenceLogits.forEach((ref, i) => {
    const model = modelLogits[i]!;
    const kl = klDivergence(ref, model);
    sumKl += kl;
    maxKl = Math.max(maxKl, kl);
    if (argmax(ref) === argmax(model)) agree++;
  });
  const positions = referenceLogits.length;
  return { meanKl: sumKl / positions, maxKl, top1Agreement: agree / positions, positions };
}

export function meanKlDivergence(referenceLogits: readonly Logits[], modelLogits: readonly Logits[]): number {
  return compareDistributions(referenceLogits, modelLogits).meanKl;
}

export function top1Agreement(referenceLogits: readonly Logits[], modelLogits: readonly Logits[]): number {
  return compareDistributions(referenceLogits, modelLogits).top1Agreement;
}
