/**
 * Float64 reference of mla_prefill, written from the contract in latentkv.h (the non-absorbed
 * form: K_nope = W_UK c and V = W_UV c per head, then causal softmax attention), independent of
 * the native code except for the byte layout of the cache rows.
 */

import { type DecodeInputs, sequenceRows } from './mla-reference.js';

export interface PrefillInputs extends DecodeInputs {
  Dn: number;
  Dv: number;
  qNope: Float32Array;
  /** kv_b_proj [H (Dn + Dv), R] as float64 values (bf16 weights already widened). */
  kvB: Float64Array;
}

export function referencePrefill(x: PrefillInputs): { out: Float64Array; lse: Float64Array } {
  const { batch, qLen: T, numHeads: H, R, P, ropeHeads, Dn, Dv } = x;
  const out = new Float64Array(batch * T * H * Dv);
  const lse = new Float64Array(batch * H * T);
  for (let b = 0; b < batch; b++) {
    const len = x.seqLens[b] as number;
    const rows = sequenceRows(x, b);
    for (let h = 0; h < H; h++) {
      const g = Math.floor(h / (H / ropeHeads));
      const kNope: Float64Array[] = [];
      const value: Float64Array[] = [];
      for (const row of rows) {
        const k = new Float64Array(Dn);
        const v = new Float64Array(Dv);
        for (let d = 0; d < Dn + Dv; d++) {
          let dot = 0;
          const w = (h * (Dn + Dv) + d) * R;
          for (let r = 0; r < R; r++) dot += (x.kvB[w + r] as number) * (row.latent[r] as number);
          if (d < Dn) k[d] = dot;
          else v[d - Dn] = dot;
        }
        kNope.push(k);
        value.push(v);
      }
      for (let t = 0; t < T; t++) {
        const visible = Math.max(0, len - T + 1 + t);
        const qi = (b * T + t) * H + h;
        const li = (b * H + h) * T + t;
        if (visible === 0) {
          lse[li] = Number.NEGATIVE_INFINITY;
          continue;
        }
        const scores = new Float64Array(visible);
        for (let j = 0; j < visible; j++) {
          let dot = 0;
          for (let d = 0; d < Dn; d++) dot += (x.qNope[qi * Dn + d] as number) * (kNope[j]![d] as number);
          for (let i = 0; i < P; i++)
            dot += (x.qRope[qi * P + i] as number) * (rows[j]!.rope[g * P + i] as number);
          scores[j] = dot * x.softmaxScale;
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          const w = Math.exp((scores[j] as number) - max);
          sum += w;
          for (let d = 0; d < Dv; d++)
            out[qi * Dv + d] = (out[qi * Dv + d] as number) + w * (value[j]![d] as number);
        }
        for (let d = 0; d < Dv; d++) out[qi * Dv + d] = (out[qi * Dv + d] as number) / sum;
        lse[li] = max + Math.log(sum);
      }
    }
  }
  return { out, lse };
}
