/**
 * The dense parts of a transformer step (the attention core runs in the native kernels): matrix
 * products over a batch of rows, RMSNorm per row, SwiGLU. Float32Array storage. `linear` runs on
 * the native CPU gemm (lkv_gemm: threaded, AVX-512/AVX2, f32 accumulation) when one is available
 * and the product is big enough to pay for the call; otherwise on the TypeScript loops below
 * (float64 accumulation), which stay as the fallback and the reference.
 */
import { type Backend, createBackend, getBackend } from '../backend.js';

/** Products with fewer multiply-adds than this stay in TypeScript (the native call costs ~µs). */
const NATIVE_MIN_MACS = 16384;

let gemmBackend: Backend | null | undefined;
let ownGemmBackend: Backend | undefined;

/**
 * Which backend `linear` runs its products on: a CPU Backend, null for the TypeScript loops, or
 * undefined (the default) to pick lazily: the default backend when it is the CPU, otherwise a
 * CPU backend of its own; LATENTKV_TS_LINEAR=1 forces the TypeScript loops. For tests and tools.
 */
export function setLinearBackend(backend: Backend | null | undefined): void {
  gemmBackend = backend;
}

function linearBackend(): Backend | null {
  if (gemmBackend === undefined || gemmBackend?.disposed) {
    gemmBackend = null;
    if (process.env.LATENTKV_TS_LINEAR !== '1') {
      try {
        const b = getBackend();
        if (b.info().backend === 'cpu') {
          gemmBackend = b;
        } else {
          if (!ownGemmBackend || ownGemmBackend.disposed) ownGemmBackend = createBackend({ backend: 'cpu' });
          gemmBackend = ownGemmBackend;
        }
      } catch {
        gemmBackend = null;
      }
    }
  }
  return gemmBackend;
}

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
  if (n * rows * cols >= NATIVE_MIN_MACS) {
    const backend = linearBackend();
    if (backend) {
      backend._gemmSync({
        m: n,
        n: rows,
        k: cols,
        weightDtype: 0,
        accumulate: 0,
        a: x,
        w,
        bias: bias ?? undefined,
        c: out,
      });
      return;
    }
  }
  linearTs(out, x, w, n, rows, cols, bias);
}

/** `linear` in TypeScript, float64 accumulation: the fallback and the reference. */
export function linearTs(
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
