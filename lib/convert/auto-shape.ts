/**
 * Automatic (d_R, ff, r) search for a fixed KV budget, on calibration data only: the calibration
 * sequences are split into a fitting part and a held-out part; every candidate shape that fits the
 * budget is converted with statistics of the fitting part and scored by the mean KL(original ||
 * converted) on the held-out calibration sequences (kernel-based runtimes). The evaluation text of
 * a quality measurement is never touched. The caller then converts with the winning shape (with the
 * statistics of all calibration sequences).
 */
import type { LlamaCheckpoint } from '../model/llama-weights.js';
import { calibrate } from './calibration.js';
import { budgetValues, type ConvertOptions, convertToMla, originalCacheValues } from './convert.js';
import { type ProgressCallback, throwIfAborted } from './progress.js';
import { evaluateConverted, runReference } from './quality.js';
import type { RopeAllocation } from './rope-split.js';

export interface ShapeCandidate {
  allocation: RopeAllocation;
  ropeDim: number;
  freqfold: number;
  kvLoraRank: number;
}

export interface ScoredCandidate extends ShapeCandidate {
  /** Mean KL on the held-out calibration sequences (Infinity where the conversion failed). */
  meanKl: number;
}

export interface ShapeSearchOptions {
  kvBudget: number;
  /** Allocations to search; default ['rotation'] (per-pair frequency table). */
  allocations?: RopeAllocation[];
  /** Share of the calibration sequences held out for scoring; default 0.25 (at least one). */
  heldOutFraction?: number;
  /** Other conversion options (decomposition, bkv, ...) applied to every candidate. */
  base?: ConvertOptions;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
}

export interface ShapeSearchResult {
  best: ScoredCandidate;
  candidates: ScoredCandidate[];
  fitTokens: number;
  heldOutTokens: number;
}

/** Candidate shapes that fit the budget exactly (cache values = r + d_R). */
export function shapeCandidates(
  config: LlamaCheckpoint['config'],
  kvBudget: number,
  allocations: RopeAllocation[] = ['rotation'],
): ShapeCandidate[] {
  const { headDim: hd, nKvHeads: g } = config;
  const total = budgetValues(config, kvBudget);
  const maxNope = originalCacheValues(config);
  const out: ShapeCandidate[] = [];
  const seen = new Set<string>();
  const push = (c: ShapeCandidate): void => {
    const key = `${c.allocation}:${c.ropeDim}:${c.freqfold}`;
    if (c.kvLoraRank < 1 || c.kvLoraRank > maxNope - c.ropeDim || seen.has(key)) return;
    seen.add(key);
    out.push(c);
  };
  for (const allocation of allocations) {
    if (allocation === 'uniform') {
      // DeepSeek layout: d_R a fraction hd/8 .. g*hd of the head, every FreqFold dividing hd/2
      // that keeps a whole number of components per group.
      const dRs = [hd / 8, hd / 4, hd / 2, hd, 2 * hd, 4 * hd].filter(
        (d) => Number.isInteger(d) && d % 2 === 0 && d <= g * hd && d < total,
      );
      for (const dR of dRs) {
        for (let ff = 1; ff <= hd / 2; ff++) {
          if ((hd / 2) % ff !== 0) continue;
          const kept = (dR * ff) / hd;
          if (!Number.isInteger(kept) || kept < 1 || kept > g * ff) continue;
          push({ allocation, ropeDim: dR, freqfold: ff, kvLoraRank: total - dR });
        }
      }
    } else {
      // Frequency table: any even d_R; fractions of the budget from 1/8 to 3/4, ff = 1 (exact RoRoPE).
      for (const share of [0.125, 0.25, 0.375, 0.5, 0.625, 0.75]) {
        const dR = Math.max(2, 2 * Math.round((share * total) / 2));
        if (dR > g * hd) continue;
        push({ allocation, ropeDim: dR, freqfold: 1, kvLoraRank: total - dR });
      }
    }
  }
  return out;
}

export async function searchShape(
  model: LlamaCheckpoint,
  calibrationSequences: readonly (readonly number[])[],
  options: ShapeSearchOptions,
): Promise<ShapeSearchResult> {
  const n = calibrationSequences.length;
  if (n < 2) throw new RangeError('the shape search needs at least 2 calibration sequences');
  const held = Math.min(n - 1, Math.max(1, Math.round(n * (options.heldOutFraction ?? 0.25))));
  const fit = calibrationSequences.slice(0, n - held);
  const heldOut = calibrationSequences.slice(n - held).map((s) => [...s]);
  const stats = calibrate(model, fit, options.signal ? { signal: options.signal } : {});
  const reference = runReference(model, heldOut);
  const candidates = shapeCandidates(model.config, options.kvBudget, options.allocations);
  const scored: ScoredCandidate[] = [];
  for (const [i, c] of candidates.entries()) {
    throwIfAborted(options.signal);
    options.onProgress?.({
      stage: 'search',
      fraction: i / candidates.length,
      message: `shape search ${i + 1}/${candidates.length}: ${c.allocation} R=${c.kvLoraRank} dR=${c.ropeDim} ff=${c.freqfold}`,
    });
    let meanKl = Number.POSITIVE_INFINITY;
    try {
      const mla = await convertToMla(model, {
        ...options.base,
        method: 'transmla',
        allocation: c.allocation,
        ropeDim: c.ropeDim,
        freqfold: c.freqfold,
        kvLoraRank: c.kvLoraRank,
        calibration: { stats },
        ...(options.signal ? { signal: options.signal } : {}),
      });
      meanKl = evaluateConverted(reference, mla).meanKl;
    } catch (error) {
      if ((error as Error).name === 'ConversionAbortedError') throw error;
    }
    scored.push({ ...c, meanKl });
  }
  const best = scored.reduce((a, b) => (b.meanKl < a.meanKl ? b : a));
  if (!Number.isFinite(best.meanKl)) throw new RangeError('no candidate shape could be converted');
  return {
    best,
    candidates: scored,
    fitTokens: stats.tokenCount,
    heldOutTokens: heldOut.reduce((s, q) => s + q.length, 0),
  };
}
