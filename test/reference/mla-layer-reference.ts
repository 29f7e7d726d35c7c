/**
 * Float64 reference of the whole absorbed MLA decode layer (DESIGN.md, Kernel 3), written from
 * the DeepSeek math in research/mla-methods.md section 1 and independent of the native code:
 * q projection (full or low rank with q_a_layernorm), RoPE, the new tokens' [c ; kRope] written
 * into a copy of the cache (with the cache's own rounding, as the kernel must), W_UK absorption,
 * the attention core (referenceDecode), W_UV per head and o_proj.
 */
import type { CacheDtype } from '../../lib/dtypes.js';
import { type RowLayout, writeRow } from './cache-codec.js';
import { type RopeRef, referenceDecode, referenceProject } from './mla-reference.js';

export interface LayerRefWeights {
  /** Effective values (bf16 weights already decoded). */
  qProj?: ArrayLike<number>;
  qAProj?: ArrayLike<number>;
  qALayernorm?: ArrayLike<number>;
  qBProj?: ArrayLike<number>;
  kvAProjWithMqa: ArrayLike<number>;
  kvALayernorm?: ArrayLike<number>;
  kvBProj: ArrayLike<number>;
  oProj: ArrayLike<number>;
}

export interface LayerRefInputs {
  batch: number;
  qLen: number;
  E: number;
  H: number;
  qLoraRank: number;
  Dn: number;
  Dv: number;
  R: number;
  P: number;
  ropeHeads: number;
  eps: number;
  rope: RopeRef;
  softmaxScale: number;
  weights: LayerRefWeights;
  hidden: ArrayLike<number>;
  positions: ArrayLike<number>;
  dtype: CacheDtype;
  layout: RowLayout;
  /** The cache before the call; not modified (a copy is written). */
  pages: Uint8Array;
  blockSize: number;
  blockTable: Int32Array;
  maxBlocksPerSeq: number;
  seqLens: Int32Array;
}

function matvec(
  w: ArrayLike<number>,
  row0: number,
  rows: number,
  cols: number,
  x: ArrayLike<number>,
  xOff = 0,
): Float64Array {
  const y = new Float64Array(rows);
  for (let o = 0; o < rows; o++) {
    let dot = 0;
    const base = (row0 + o) * cols;
    for (let e = 0; e < cols; e++) dot += (w[base + e] as number) * (x[xOff + e] as number);
    y[o] = dot;
  }
  return y;
}

function rmsNorm(x: Float64Array, weight: ArrayLike<number>, eps: number): void {
  let ss = 0;
  for (const v of x) ss += v * v;
  const inv = 1 / Math.sqrt(ss / x.length + eps);
  for (let i = 0; i < x.length; i++) x[i] = (x[i] as number) * inv * (weight[i] as number);
}

function rotate(x: Float64Array, base: number, P: number, position: number, rope: RopeRef): void {
  for (let i = 0; i < P / 2; i++) {
    const angle = position * (rope.invFreq[i] as number);
    const [a, b] =
      rope.style === 'interleaved' ? [base + 2 * i, base + 2 * i + 1] : [base + i, base + i + P / 2];
    const xa = x[a] as number;
    const xb = x[b] as number;
    x[a] = xa * Math.cos(angle) - xb * Math.sin(angle);
    x[b] = xa * Math.sin(angle) + xb * Math.cos(angle);
  }
}

export function referenceDecodeLayer(x: LayerRefInputs): { out: Float64Array; pages: Uint8Array } {
  const { batch, qLen, E, H, Dn, Dv, R, P, weights: w } = x;
  const T = batch * qLen;
  const qk = Dn + P;
  const pages = x.pages.slice();
  const qLatent = new Float64Array(T * H * R);
  const qRope = new Float64Array(T * H * P);
  for (let b = 0; b < batch; b++) {
    for (let s = 0; s < qLen; s++) {
      const t = b * qLen + s;
      const pos = x.positions[t] as number;
      const hid = Array.from({ length: E }, (_, e) => x.hidden[t * E + e] as number);
      // Query.
      let q: Float64Array;
      if (x.qLoraRank === 0) {
        q = matvec(w.qProj!, 0, H * qk, E, hid);
      } else {
        const cq = matvec(w.qAProj!, 0, x.qLoraRank, E, hid);
        if (w.qALayernorm) rmsNorm(cq, w.qALayernorm, x.eps);
        q = matvec(w.qBProj!, 0, H * qk, x.qLoraRank, cq);
      }
      for (let h = 0; h < H; h++) {
        rotate(q, h * qk + Dn, P, pos, x.rope);
        for (let i = 0; i < P; i++) qRope[(t * H + h) * P + i] = q[h * qk + Dn + i] as number;
        for (let r = 0; r < R; r++) {
          let dot = 0;
          for (let d = 0; d < Dn; d++)
            dot += (w.kvBProj[(h * (Dn + Dv) + d) * R + r] as number) * (q[h * qk + d] as number);
          qLatent[(t * H + h) * R + r] = dot;
        }
      }
      // The new token's cache row, at logical index seqLens[b] - qLen + s.
      const kv = referenceProject(
        hid,
        w.kvAProjWithMqa,
        E,
        R,
        P,
        x.ropeHeads,
        w.kvALayernorm,
        x.eps,
        x.rope,
        pos,
      );
      const token = (x.seqLens[b] as number) - qLen + s;
      const page = x.blockTable[b * x.maxBlocksPerSeq + Math.floor(token / x.blockSize)] as number;
      const slot = page * x.blockSize + (token % x.blockSize);
      writeRow(pages, slot * x.layout.rowBytes, x.layout, x.dtype, kv.subarray(0, R), kv.subarray(R));
    }
  }
  const { out: lat } = referenceDecode({
    batch,
    qLen,
    numHeads: H,
    R,
    P,
    ropeHeads: x.ropeHeads,
    blockSize: x.blockSize,
    dtype: x.dtype,
    layout: x.layout,
    pages,
    blockTable: x.blockTable,
    maxBlocksPerSeq: x.maxBlocksPerSeq,
    seqLens: x.seqLens,
    // Float64 queries: the reference only indexes them.
    qLatent: qLatent as unknown as Float32Array,
    qRope: qRope as unknown as Float32Array,
    softmaxScale: x.softmaxScale,
  });
  const out = new Float64Array(T * E);
  for (let t = 0; t < T; t++) {
    const o = new Float64Array(H * Dv);
    for (let h = 0; h < H; h++) {
      const oh = matvec(w.kvBProj, h * (Dn + Dv) + Dn, Dv, R, lat, (t * H + h) * R);
      o.set(oh, h * Dv);
    }
    out.set(matvec(w.oProj, 0, E, H * Dv, o), t * E);
  }
  return { out, pages };
}
