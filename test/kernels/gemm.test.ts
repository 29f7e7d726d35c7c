/**
 * lkv_gemm (Backend._gemmSync, used by lib/runtime/linear.ts): C = A W^T (+ bias) (+ C) against a
 * float64 reference, on every ISA this machine runs, for both the row-product path (small M) and
 * the packed AVX-512 path (M >= 8), odd shapes that exercise every edge, and bf16 weights.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { InvalidArgumentError } from '../../lib/index.js';
import { linear, linearTs, setLinearBackend } from '../../lib/runtime/linear.js';
import { backendsPerIsa } from '../helpers/backends.js';
import { rng } from '../helpers/random.js';
import { bf16ToF32, f32ToBf16 } from '../reference/dtype-codec.js';

const backends = backendsPerIsa();
afterAll(() => {
  setLinearBackend(undefined);
  for (const b of backends) b.backend.dispose();
});

function reference(
  a: Float32Array,
  w: ArrayLike<number>,
  M: number,
  N: number,
  K: number,
  bias?: Float32Array,
  c0?: Float32Array,
): { want: Float64Array; scale: Float64Array } {
  const want = new Float64Array(M * N);
  const scale = new Float64Array(M * N); // sum |a w|: the rounding error bound's scale
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let s = (bias?.[n] ?? 0) + (c0?.[m * N + n] ?? 0);
      let abs = Math.abs(bias?.[n] ?? 0) + Math.abs(c0?.[m * N + n] ?? 0);
      for (let k = 0; k < K; k++) {
        const p = a[m * K + k]! * w[n * K + k]!;
        s += p;
        abs += Math.abs(p);
      }
      want[m * N + n] = s;
      scale[m * N + n] = abs;
    }
  }
  return { want, scale };
}

function expectClose(got: Float32Array, want: Float64Array, scale: Float64Array, K: number) {
  // f32 accumulation: error <= ~K eps sum|a w|; allow a generous constant, far below any bug.
  const tol = 4 * (K + 4) * 2 ** -24;
  let worst = 0;
  for (let i = 0; i < want.length; i++) {
    worst = Math.max(worst, Math.abs(got[i]! - want[i]!) / (scale[i]! + 1e-30));
  }
  expect(worst).toBeLessThan(tol);
}

const SHAPES: [number, number, number][] = [
  [1, 1, 1],
  [1, 37, 19],
  [3, 50, 33],
  [7, 13, 300],
  [8, 6, 16],
  [9, 49, 17],
  [33, 97, 257],
  [70, 53, 513],
  [64, 48, 256],
];

describe.each(backends)('gemm ($isa)', ({ backend }) => {
  for (const [M, N, K] of SHAPES) {
    for (const dtype of ['f32', 'bf16'] as const) {
      it(`M=${M} N=${N} K=${K} ${dtype}, bias and accumulate`, () => {
        const r = rng(M * 1000 + N * 10 + K);
        const a = Float32Array.from({ length: M * K }, () => r.normal());
        const wf = Float32Array.from({ length: N * K }, () => r.normal());
        const wb = Uint16Array.from(wf, (x) => f32ToBf16(x));
        const wv = dtype === 'bf16' ? Float64Array.from(wb, (h) => bf16ToF32(h)) : wf;
        const bias = Float32Array.from({ length: N }, () => r.normal());
        const w = dtype === 'bf16' ? wb : wf;
        const weightDtype = dtype === 'bf16' ? 2 : 0;

        const c = new Float32Array(M * N).fill(Number.NaN);
        backend._gemmSync({ m: M, n: N, k: K, weightDtype, accumulate: 0, a, w, bias: undefined, c });
        const plain = reference(a, wv, M, N, K);
        expectClose(c, plain.want, plain.scale, K);

        const c0 = Float32Array.from({ length: M * N }, () => r.normal());
        const cb = Float32Array.from(c0);
        backend._gemmSync({ m: M, n: N, k: K, weightDtype, accumulate: 1, a, w, bias, c: cb });
        const both = reference(a, wv, M, N, K, bias, c0);
        expectClose(cb, both.want, both.scale, K);

        const cbias = new Float32Array(M * N);
        backend._gemmSync({ m: M, n: N, k: K, weightDtype, accumulate: 0, a, w, bias, c: cbias });
        const withBias = reference(a, wv, M, N, K, bias);
        expectClose(cbias, withBias.want, withBias.scale, K);
      });
    }
  }

  it('M = 0 writes nothing', () => {
    const c = new Float32Array(0);
    backend._gemmSync({
      m: 0,
      n: 4,
      k: 4,
      weightDtype: 0,
      accumulate: 0,
      a: new Float32Array(0),
      w: new Float32Array(16),
      bias: undefined,
      c,
    });
  });

  it('rejects bad input with typed errors', () => {
    const ok = {
      m: 2,
      n: 3,
      k: 4,
      weightDtype: 0,
      accumulate: 0,
      a: new Float32Array(8),
      w: new Float32Array(12),
      bias: undefined,
      c: new Float32Array(6),
    };
    backend._gemmSync(ok);
    expect(() => backend._gemmSync({ ...ok, n: 0 })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, k: 0 })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, m: -1 })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, weightDtype: 1 })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, accumulate: 2 })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, a: new Float32Array(7) })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, w: new Float32Array(11) })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, c: new Float32Array(5) })).toThrow(InvalidArgumentError);
    expect(() => backend._gemmSync({ ...ok, bias: new Float32Array(2) })).toThrow(InvalidArgumentError);
  });

  it('linear() on this backend matches the TypeScript loops', () => {
    setLinearBackend(backend);
    try {
      const r = rng(7);
      const [n, rows, cols] = [19, 70, 300];
      const x = Float32Array.from({ length: n * cols }, () => r.normal());
      const w = Float32Array.from({ length: rows * cols }, () => r.normal());
      const bias = Float32Array.from({ length: rows }, () => r.normal());
      const got = new Float32Array(n * rows);
      const want = new Float32Array(n * rows);
      linear(got, x, w, n, rows, cols, bias);
      linearTs(want, x, w, n, rows, cols, bias);
      const ref = reference(x, w, n, rows, cols, bias);
      expectClose(got, ref.want, ref.scale, cols);
      expectClose(want, ref.want, ref.scale, cols);
    } finally {
      setLinearBackend(undefined);
    }
  });
});
