/**
 * RoPE for the parts of a step that the runtime rotates in TypeScript (GQA queries and keys, MLA
 * rope queries). The frequencies follow the same formulas as the native mla_project_append (none,
 * linear, llama3, YaRN, explicit table; each inverse frequency rounded to float, the angle in
 * double), so a query rotated here and a key rotated by the kernel meet at the same angles.
 */
import type { RopeConfig } from '../mla/rope.js';

/** Inverse frequency of every rotation pair [ropeDim / 2]. */
export function ropeInvFreq(ropeDim: number, rope: RopeConfig): Float32Array {
  const half = ropeDim / 2;
  const out = new Float32Array(half);
  const scaling = rope.scaling;
  if (scaling?.type === 'table') {
    if (scaling.invFreq.length !== half) {
      throw new RangeError(`rope.scaling.invFreq has ${scaling.invFreq.length} entries, expected ${half}`);
    }
    out.set(scaling.invFreq);
    return out;
  }
  const base = rope.theta ?? 10000;
  let low = 0;
  let high = 0;
  if (scaling?.type === 'yarn') {
    const correction = (rotations: number): number =>
      (ropeDim * Math.log(scaling.originalMaxPosition / (rotations * 2 * Math.PI))) / (2 * Math.log(base));
    low = Math.max(Math.floor(correction(scaling.betaFast ?? 32)), 0);
    high = Math.min(Math.ceil(correction(scaling.betaSlow ?? 1)), ropeDim - 1);
    if (low === high) high += 0.001;
  }
  for (let i = 0; i < half; i++) {
    const f = base ** ((-2 * i) / ropeDim);
    let v = f;
    if (scaling?.type === 'linear') {
      v = f / scaling.factor;
    } else if (scaling?.type === 'llama3') {
      const lowWavelen = scaling.originalMaxPosition / scaling.lowFreqFactor;
      const highWavelen = scaling.originalMaxPosition / scaling.highFreqFactor;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen > lowWavelen) {
        v = f / scaling.factor;
      } else if (wavelen >= highWavelen) {
        const smooth =
          (scaling.originalMaxPosition / wavelen - scaling.lowFreqFactor) /
          (scaling.highFreqFactor - scaling.lowFreqFactor);
        v = ((1 - smooth) * f) / scaling.factor + smooth * f;
      }
    } else if (scaling?.type === 'yarn') {
      const ramp = Math.min(Math.max((i - low) / (high - low), 0), 1);
      v = (f / scaling.factor) * ramp + f * (1 - ramp);
    }
    out[i] = v;
  }
  return out;
}

/** The scale YaRN applies to cos and sin (1 unless the config sets attentionFactor). */
export function ropeAttentionFactor(rope: RopeConfig): number {
  const s = rope.scaling;
  return s?.type === 'yarn' && s.attentionFactor !== undefined && s.attentionFactor !== 0
    ? Math.fround(s.attentionFactor)
    : 1;
}

/** Rotates heads of one token in place: every `stride`-spaced head of width 2*invFreq.length. */
export class RopeRotator {
  readonly invFreq: Float32Array;
  readonly interleaved: boolean;
  readonly attentionFactor: number;
  readonly #cos: Float64Array;
  readonly #sin: Float64Array;

  constructor(ropeDim: number, rope: RopeConfig) {
    if (ropeDim % 2 !== 0) throw new RangeError(`rope dimension ${ropeDim} must be even`);
    this.invFreq = ropeInvFreq(ropeDim, rope);
    this.interleaved = rope.style === 'interleaved';
    this.attentionFactor = ropeAttentionFactor(rope);
    this.#cos = new Float64Array(ropeDim / 2);
    this.#sin = new Float64Array(ropeDim / 2);
  }

  /**
   * Rotates `heads` vectors at offsets base, base + stride, ... of `x`, all at `position`.
   */
  rotate(x: Float32Array, base: number, heads: number, stride: number, position: number): void {
    const half = this.invFreq.length;
    const cos = this.#cos;
    const sin = this.#sin;
    for (let i = 0; i < half; i++) {
      const angle = position * this.invFreq[i]!;
      cos[i] = Math.cos(angle) * this.attentionFactor;
      sin[i] = Math.sin(angle) * this.attentionFactor;
    }
    for (let h = 0; h < heads; h++) {
      const o = base + h * stride;
      for (let i = 0; i < half; i++) {
        const a = this.interleaved ? o + 2 * i : o + i;
        const b = this.interleaved ? a + 1 : a + half;
        const x0 = x[a]!;
        const x1 = x[b]!;
        x[a] = x0 * cos[i]! - x1 * sin[i]!;
        x[b] = x0 * sin[i]! + x1 * cos[i]!;
      }
    }
  }
}
