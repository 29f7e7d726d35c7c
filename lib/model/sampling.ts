/**
 * Next-token choice from logits: greedy, temperature, top-k and top-p (nucleus), driven by a seeded
 * RNG so that a given seed always produces the same text. Also the softmax helpers the evaluation
 * code shares. All arithmetic is in float64 whatever the logits' type.
 */

export type Logits = ArrayLike<number>;

/** A deterministic uniform RNG in [0, 1): mulberry32, 32-bit state, good enough for sampling. */
export function createRng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Index of the largest logit; the first one on ties (as llama2.c's argmax). */
export function argmax(logits: Logits): number {
  if (logits.length === 0) throw new RangeError('argmax of an empty array');
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
  return best;
}

/** Probabilities softmax(logits / temperature) in float64. */
export function softmax(logits: Logits, temperature = 1): Float64Array {
  const out = new Float64Array(logits.length);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    const e = Math.exp((logits[i]! - max) / temperature);
    out[i] = e;
    sum += e;
  }
  for (let i = 0; i < out.length; i++) out[i] = out[i]! / sum;
  return out;
}

/** log softmax(logits) in float64, computed as x - max - log(sum exp(x - max)). */
export function logSoftmax(logits: Logits): Float64Array {
  const out = new Float64Array(logits.length);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  const logSum = max + Math.log(sum);
  for (let i = 0; i < logits.length; i++) out[i] = logits[i]! - logSum;
  return out;
}

export interface SamplingOptions {
  /** 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep only the k most likely tokens (0 or undefined: no limit). */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (1: no limit). */
  topP?: number;
  /** RNG for the draw; required unless sampling is greedy. See createRng. */
  rng?: () => number;
}

function validate(options: SamplingOptions): void {
  const { temperature = 1, topK = 0, topP = 1 } = options;
  if (!(Number.isFinite(temperature) && temperature >= 0))
    throw new RangeError(`temperature must be a finite number >= 0, got ${temperature}`);
  if (!(Number.isInteger(topK) && topK >= 0))
    throw new RangeError(`topK must be an integer >= 0, got ${topK}`);
  if (!(topP > 0 && topP <= 1)) throw new RangeError(`topP must be in (0, 1], got ${topP}`);
}

/** Picks the next token. Greedy when temperature is 0; otherwise a seeded draw after top-k/top-p. */
export function sampleToken(logits: Logits, options: SamplingOptions = {}): number {
  validate(options);
  const { temperature = 1, topK = 0, topP = 1, rng } = options;
  if (temperature === 0) return argmax(logits);
  if (rng === undefined)
    throw new TypeError('sampleToken needs options.rng when temperature > 0 (use createRng(seed))');

  const probs = softmax(logits, temperature);
  let candidates = Array.from(probs.keys());
  if (topK > 0 || topP < 1) {
    // Most likely first; ties keep the lower id first so the order (and the draw) is deterministic.
    candidates.sort((a, b) => probs[b]! - probs[a]! || a - b);
    if (topK > 0 && topK < candidates.length) candidates = candidates.slice(0, topK);
    if (topP < 1) {
      let cumulative = 0;
      let keep = 0;
      while (keep < candidates.length) {
        cumulative += probs[candidates[keep]!]!;
        keep++;
        if (cumulative >= topP) break;
      }
      candidates = candidates.slice(0, keep);
    }
  }

  let total = 0;
  for (const id of candidates) total += probs[id]!;
  const target = rng() * total;
  let cumulative = 0;
  for (const id of candidates) {
    cumulative += probs[id]!;
    if (target < cumulative) return id;
  }
  return candidates[candidates.length - 1]!; // rounding left target just above the last sum
}

/** A sampler with its options and RNG bound, for generate loops. */
export function createSampler(
  options: Omit<SamplingOptions, 'rng'> & { seed?: number } = {},
): (logits: Logits) => number {
  const { seed = 0, ...rest } = options;
  const sampling: SamplingOptions = { ...rest, rng: createRng(seed) };
  validate(sampling);
  return (logits) => sampleToken(logits, sampling);
}
