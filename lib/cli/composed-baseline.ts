/**
 * The simplest correct absorbed-MLA decode a JavaScript user would write: per head a matrix
 * product for the scores, a softmax, a matrix product for the output, over an f32 copy of the
 * cache. The bench reports the kernels' speed-up over it.
 */
export function composedDecode(
  latent: Float32Array, // [L, R]
  rope: Float32Array, // [L, P]
  qLatent: Float32Array, // [H, R]
  qRope: Float32Array, // [H, P]
  H: number,
  R: number,
  P: number,
  scale: number,
  out: Float32Array, // [H, R]
): void {
  const L = latent.length / R;
  const scores = new Float32Array(L);
  for (let h = 0; h < H; h++) {
    let max = Number.NEGATIVE_INFINITY;
    for (let j = 0; j < L; j++) {
      let s = 0;
      for (let r = 0; r < R; r++) s += (qLatent[h * R + r] as number) * (latent[j * R + r] as number);
      for (let i = 0; i < P; i++) s += (qRope[h * P + i] as number) * (rope[j * P + i] as number);
      s *= scale;
      scores[j] = s;
      if (s > max) max = s;
    }
    let sum = 0;
    for (let j = 0; j < L; j++) {
      const w = Math.exp((scores[j] as number) - max);
      scores[j] = w;
      sum += w;
    }
    out.fill(0, h * R, (h + 1) * R);
    for (let j = 0; j < L; j++) {
      const w = (scores[j] as number) / sum;
      for (let r = 0; r < R; r++)
        out[h * R + r] = (out[h * R + r] as number) + w * (latent[j * R + r] as number);
    }
  }
}
