/**
 * The dense parts of a transformer step in TypeScript (the attention core runs in the native
 * kernels): matrix products over a batch of rows, RMSNorm per row, SwiGLU. Float32Array storage,
 * float64 accumulation. Loops block 4 weight rows at a time and run every input row against them,
 * so one weight block stays in L1 while a prompt of many tokens streams past it.
 */

/**
 * out[i, r] = sum_c w[r, c] * x[i, c] (+ bias[r]) for i < n, r < rows: `n` rows of x [n, cols]
 * times w^T, with w row-major [rows, cols] (PyTorch nn.Linear, llama2.c).
 *
 * Eight weight rows per pass with eight accumulators, walking the rows by one running offset
 * (V8 keeps that in a register; eight separate row offsets spill): about twice the speed of four.
 */
export function linear(
  out: Float32Array,
  x: Float32Array,
  w: Float32Array,
  n: number,
  rows: number,
  cols: number,
  bias?: Float32Array | null,
): void {
  const rows8 = rows - (rows % 8);
  let r = 0;
  for (; r < rows8; r += 8) {
    const w0 = r * cols;
    for (let i = 0; i < n; i++) {
      const xo = i * cols;
      let s0 = 0;
      let s1 = 0;
      let s2 = 0;
      let s3 = 0;
      let s4 = 0;
      let s5 = 0;
      let s6 = 0;
      let s7 = 0;
      for (let c = 0; c < cols; c++) {
        const xv = x[xo + c]!;
        let o = w0 + c;
        s0 += w[o]! * xv;
        o += cols;
        s1 += w[o]! * xv;
        o += cols;
        s2 += w[o]! * xv;
        o += cols;
        s3 += w[o]! * xv;
        o += cols;
        s4 += w[o]! * xv;
        o += cols;
        s5 += w[o]! * xv;
        o += cols;
        s6 += w[o]! * xv;
        o += cols;
        s7 += w[o]! * xv;
      }
      const oo = i * rows + r;
      out[oo] = s0;
      out[oo + 1] = s1;
      out[oo + 2] = s2;
      out[oo + 3] = s3;
      out[oo + 4] = s4;
      out[oo + 5] = s5;
      out[oo + 6] = s6;
      out[oo + 7] = s7;
    }
  }
  for (; r < rows; r++) {
    const w0 = r * cols;
    for (let i = 0; i < n; i++) {
      const xo = i * cols;
      let s0 = 0;
      for (let c = 0; c < cols; c++) s0 += w[w0 + c]! * x[xo + c]!;
      out[i * rows + r] = s0;
    }
  }
  if (bias) {
    for (let i = 0; i < n; i++)
      for (let k = 0; k < rows; k++) out[i * rows + k] = out[i * rows + k]! + bias[k]!;
  }
}

/** out[i] = x[i] / sqrt(mean(x[i]^2) + eps) * gain for each of the n rows of width `width`. */
export function rmsNormRows(
  out: Float32Array,
  x: Float32Array,
  gain: Float32Array,
  eps: number,
  n: number,
  width: number,
): void {
  for (let i = 0; i < n; i++) {
    const o = i * width;
    let sum = 0;
    for (let c = 0; c < width; c++) sum += x[o + c]! * x[o + c]!;
    const inv = 1 / Math.sqrt(sum / width + eps);
    for (let c = 0; c < width; c++) out[o + c] = x[o + c]! * inv * gain[c]!;
  }
}

/** x += y elementwise. */
export function addInPlace(x: Float32Array, y: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = x[i]! + y[i]!;
}

export interface FeedForward {
  rmsFfn: Float32Array;
  w1: Float32Array;
  w2: Float32Array;
  w3: Float32Array;
}

/** x += w2 (silu(w1 n) * (w3 n)), n = RMSNorm(x): the residual SwiGLU block over n rows. */
export function feedForwardRows(
  x: Float32Array,
  layer: FeedForward,
  n: number,
  dim: number,
  hiddenDim: number,
  eps: number,
): void {
  const normed = new Float32Array(n * dim);
  const gate = new Float32Array(n * hiddenDim);
  const up = new Float32Array(n * hiddenDim);
  const down = new Float32Array(n * dim);
  rmsNormRows(normed, x, layer.rmsFfn, eps, n, dim);
  linear(gate, normed, layer.w1, n, hiddenDim, dim);
  linear(up, normed, layer.w3, n, hiddenDim, dim);
  for (let i = 0; i < gate.length; i++) {
    const g = gate[i]!;
    gate[i] = (g / (1 + Math.exp(-g))) * up[i]!;
  }
  linear(down, gate, layer.w2, n, dim, hiddenDim);
  addInPlace(x, down);
}
