/**
 * Float64 references of the two kernels, written from the math in DESIGN.md, independent of
 * the native code (only the byte layout of latentkv.h is shared).
 */
import type { CacheDtype } from '../../lib/dtypes.js';
import { type RowLayout, readRow } from './cache-codec.js';

export interface DecodeInputs {
  batch: number;
  qLen: number;
  numHeads: number;
  R: number;
  P: number;
  ropeHeads: number;
  blockSize: number;
  dtype: CacheDtype;
  layout: RowLayout;
  pages: Uint8Array;
  blockTable: Int32Array;
  maxBlocksPerSeq: number;
  seqLens: Int32Array;
  qLatent: Float32Array;
  qRope: Float32Array;
  softmaxScale: number;
}

/** The decoded rows (latent and rope parts) of sequence b's cached tokens, in order. */
export function sequenceRows(x: DecodeInputs, b: number): ReturnType<typeof readRow>[] {
  const rows = [];
  for (let j = 0; j < (x.seqLens[b] as number); j++) {
    const page = x.blockTable[b * x.maxBlocksPerSeq + Math.floor(j / x.blockSize)] as number;
    const offset = (page * x.blockSize + (j % x.blockSize)) * x.layout.rowBytes;
    rows.push(readRow(x.pages, offset, x.layout, x.dtype, x.R, x.P * x.ropeHeads));
  }
  return rows;
}

export function referenceDecode(x: DecodeInputs): { out: Float64Array; lse: Float64Array } {
  const { batch, qLen, numHeads: H, R, P, ropeHeads } = x;
  const out = new Float64Array(batch * qLen * H * R);
  const lse = new Float64Array(batch * H * qLen);
  for (let b = 0; b < batch; b++) {
    const len = x.seqLens[b] as number;
    const rows = sequenceRows(x, b);
    for (let s = 0; s < qLen; s++) {
      const visible = Math.max(0, len - qLen + 1 + s);
      for (let h = 0; h < H; h++) {
        const qi = (b * qLen + s) * H + h;
        const g = Math.floor(h / (H / ropeHeads));
        const scores = new Float64Array(visible);
        for (let j = 0; j < visible; j++) {
          const row = rows[j]!;
          let dot = 0;
          for (let r = 0; r < R; r++) dot += (x.qLatent[qi * R + r] as number) * (row.latent[r] as number);
          for (let i = 0; i < P; i++)
            dot += (x.qRope[qi * P + i] as number) * (row.rope[g * P + i] as number);
          scores[j] = dot * x.softmaxScale;
        }
        const li = (b * H + h) * qLen + s;
        if (visible === 0) {
          lse[li] = Number.NEGATIVE_INFINITY;
          continue;
        }
        const max = Math.max(...scores);
        let sum = 0;
        for (let j = 0; j < visible; j++) {
          const w = Math.exp((scores[j] as number) - max);
          sum += w;
          const lat = rows[j]!.latent;
          for (let r = 0; r < R; r++) out[qi * R + r] = (out[qi * R + r] as number) + w * (lat[r] as number);
        }
        for (let r = 0; r < R; r++) out[qi * R + r] = (out[qi * R + r] as number) / sum;
        lse[li] = max + Math.log(sum);
      }
    }
  }
  return { out, lse };
}

export interface RopeRef {
  style: 'interleaved' | 'half-split';
  invFreq: Float64Array;
}

export function ropeInvFreq(theta: number, P: number): Float64Array {
  return Float64Array.from({ length: P / 2 }, (_, i) => Math.fround(theta ** ((-2 * i) / P)));
}

/** [latent (R) ; rope keys (P * ropeHeads)] of one token, in float64 before cache rounding. */
export function referenceProject(
  x: ArrayLike<number>,
  weight: ArrayLike<number>,
  E: number,
  R: number,
  P: number,
  ropeHeads: number,
  normWeight: ArrayLike<number> | undefined,
  eps: number,
  rope: RopeRef,
  position: number,
): Float64Array {
  const rows = R + P * ropeHeads;
  const y = new Float64Array(rows);
  for (let o = 0; o < rows; o++) {
    let dot = 0;
    for (let e = 0; e < E; e++) dot += (weight[o * E + e] as number) * (x[e] as number);
    y[o] = dot;
  }
  if (normWeight) {
    let ss = 0;
    for (let r = 0; r < R; r++) ss += (y[r] as number) ** 2;
    const inv = 1 / Math.sqrt(ss / R + eps);
    for (let r = 0; r < R; r++) y[r] = (y[r] as number) * inv * (normWeight[r] as number);
  }
  for (let k = 0; k < ropeHeads; k++) {
    const base = R + k * P;
    for (let i = 0; i < P / 2; i++) {
      const angle = position * (rope.invFreq[i] as number);
      const [a, b] =
        rope.style === 'interleaved' ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + P / 2];
      const xa = y[a] as number;
      const xb = y[b] as number;
      y[a] = xa * Math.cos(angle) - xb * Math.sin(angle);
      y[b] = xa * Math.sin(angle) + xb * Math.cos(angle);
    }
  }
  return y;
}
