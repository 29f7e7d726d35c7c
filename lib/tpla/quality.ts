/**
 * TPLA quality on a converted MLA model: perplexity and KL(P_MLA || P_TPLA) of next-token
 * distributions for G shards and a transform, in float64 (lib/tpla/forward.ts), with every
 * position decoded by TPLA ('tpla') or with the first `prefill` positions prefilled exactly
 * (PD separation). A program, not a test (the numbers are in docs/tpla-mtla.md).
 */
import type { MlaCheckpoint } from '../model/mla-weights.js';
import { logSoftmax } from '../model/sampling.js';
import { tplaForwardSequence } from './forward.js';
import { collectLatentMoments, type TplaTransform, tplaReparameterize } from './reparam.js';

export interface TplaQualityRow {
  label: string;
  shards: number;
  transform: TplaTransform | 'none';
  prefill: number;
  /** Perplexity over the scored positions (from `scoreFrom`). */
  perplexity: number;
  /** Mean KL(P_MLA || P_TPLA) in nats over the same positions. */
  meanKl: number;
  top1: number;
}

function metrics(
  seqs: number[][],
  ref: Float64Array[][],
  got: Float64Array[][],
  from: number,
): { ppl: number; kl: number; top1: number } {
  let nll = 0;
  let kl = 0;
  let agree = 0;
  let n = 0;
  seqs.forEach((seq, s) => {
    for (let i = from; i + 1 < seq.length; i++) {
      const lp = logSoftmax(got[s]![i]!);
      const lr = logSoftmax(ref[s]![i]!);
      nll -= lp[seq[i + 1]!]!;
      let k = 0;
      let am = 0;
      let ar = 0;
      for (let v = 0; v < lp.length; v++) {
        k += Math.exp(lr[v]!) * (lr[v]! - lp[v]!);
        if (lp[v]! > lp[am]!) am = v;
        if (lr[v]! > lr[ar]!) ar = v;
      }
      kl += k;
      if (am === ar) agree++;
      n++;
    }
  });
  return { ppl: Math.exp(nll / n), kl: kl / n, top1: agree / n };
}

export function tplaQuality(
  mla: MlaCheckpoint,
  calibration: number[][],
  evaluation: number[][],
  options: {
    shards?: number[];
    transforms?: TplaTransform[];
    prefill?: number;
    onRow?: (r: TplaQualityRow) => void;
  } = {},
): TplaQualityRow[] {
  const prefill = options.prefill ?? Math.floor((evaluation[0]?.length ?? 2) / 2);
  const moments = collectLatentMoments(mla, calibration);
  const ref = evaluation.map((seq) => tplaForwardSequence(mla, null, seq, { mode: 'exact' }));
  const rows: TplaQualityRow[] = [];
  const push = (r: TplaQualityRow) => {
    rows.push(r);
    options.onRow?.(r);
  };
  for (const from of [0, prefill]) {
    const m = metrics(evaluation, ref, ref, from);
    push({
      label: `MLA (scored from ${from})`,
      shards: 1,
      transform: 'none',
      prefill: 0,
      perplexity: m.ppl,
      meanKl: 0,
      top1: 1,
    });
  }
  for (const transform of options.transforms ?? ['pca', 'hadamard']) {
    for (const G of options.shards ?? [2, 4]) {
      const { checkpoint, plan } = tplaReparameterize(mla, { shards: G, transform, moments });
      for (const pf of [0, prefill]) {
        const got = evaluation.map((seq) =>
          tplaForwardSequence(checkpoint, plan, seq, { mode: 'tpla', prefill: pf }),
        );
        for (const from of pf === 0 ? [0, prefill] : [prefill]) {
          const m = metrics(evaluation, ref, got, from);
          push({
            label: `TPLA G=${G} ${transform}${pf > 0 ? ` PD-sep (prefill ${pf})` : ''} (scored from ${from})`,
            shards: G,
            transform,
            prefill: pf,
            perplexity: m.ppl,
            meanKl: m.kl,
            top1: m.top1,
          });
        }
      }
    }
  }
  return rows;
}
