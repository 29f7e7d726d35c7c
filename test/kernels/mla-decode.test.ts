import { afterAll, describe, expect, it } from 'vitest';
import type { CacheDtype } from '../../lib/dtypes.js';
import { cacheRowLayout, mlaDecode, mlaDecodeSync } from '../../lib/index.js';
import { backendsPerIsa } from '../helpers/backends.js';
import { relativeError } from '../helpers/compare.js';
import { type DecodeShape, describeShape, makeDecodeCase } from '../helpers/decode-cases.js';
import { expectedLayout } from '../reference/cache-codec.js';
import { referenceDecode } from '../reference/mla-reference.js';

const DTYPES: CacheDtype[] = ['f32', 'f16', 'bf16', 'int8', 'fp8_e4m3'];
const tolerance = (d: CacheDtype) => (d === 'f32' ? 1e-5 : 1e-2);

function grid(dtype: CacheDtype): DecodeShape[] {
  return [
    { qLen: 1, numHeads: 16, R: 64, P: 16, ropeHeads: 1, blockSize: 16, dtype, seqLens: [77] },
    { qLen: 1, numHeads: 7, R: 40, P: 8, ropeHeads: 1, blockSize: 64, dtype, seqLens: [0, 130, 5] },
    { qLen: 3, numHeads: 5, R: 33, P: 6, ropeHeads: 1, blockSize: 7, dtype, seqLens: [2, 50] },
    { qLen: 2, numHeads: 8, R: 24, P: 4, ropeHeads: 4, blockSize: 1, dtype, seqLens: [9, 17] },
    { qLen: 1, numHeads: 3, R: 17, P: 0, ropeHeads: 1, blockSize: 5, dtype, seqLens: [11, 0] },
    { qLen: 1, numHeads: 128, R: 32, P: 8, ropeHeads: 1, blockSize: 128, dtype, seqLens: [200] },
  ];
}

const backends = backendsPerIsa();
afterAll(() => {
  for (const b of backends) b.backend.dispose();
});

describe('cache row layout', () => {
  it.each(DTYPES)('%s matches the documented layout', (dtype) => {
    for (const [R, P, rh] of [
      [512, 64, 1],
      [33, 6, 1],
      [17, 4, 4],
      [8, 0, 1],
    ] as const) {
      expect(cacheRowLayout(dtype, R, P, rh)).toEqual(expectedLayout(dtype, R, P * rh));
    }
  });
});

describe.each(backends)('mla_decode on $isa', ({ isa, backend }) => {
  it('selected the ISA asked for', () => {
    expect(backend.info().cpuIsa).toBe(isa);
  });

  it.each(DTYPES)('matches the float64 reference with a %s cache', async (dtype) => {
    let seed = 11;
    for (const shape of grid(dtype)) {
      const c = makeDecodeCase(shape, seed++);
      const want = referenceDecode(c.inputs);
      const qBefore = c.qLatent.slice();
      const pagesBefore = c.view.pages.slice();
      const got = await mlaDecode({
        cache: c.view,
        numHeads: shape.numHeads,
        qLen: shape.qLen,
        qLatent: c.qLatent,
        qRope: shape.P > 0 ? c.qRope : undefined,
        softmaxScale: c.softmaxScale,
        lse: true,
        backend,
      });
      const what = `${isa} ${describeShape(shape)}`;
      expect(relativeError(got.out, want.out), what).toBeLessThan(tolerance(dtype));
      expect(relativeError(got.lse!, want.lse), what).toBeLessThan(tolerance(dtype));
      // Inputs are read-only to the kernel.
      expect(c.qLatent).toEqual(qBefore);
      expect(c.view.pages).toEqual(pagesBefore);
    }
  });

  it('sync and async give identical bits, and out can be reused', async () => {
    const shape: DecodeShape = {
      qLen: 1,
      numHeads: 16,
      R: 64,
      P: 16,
      ropeHeads: 1,
      blockSize: 16,
      dtype: 'bf16',
      seqLens: [100, 3],
    };
    const c = makeDecodeCase(shape, 5);
    const args = {
      cache: c.view,
      numHeads: 16,
      qLatent: c.qLatent,
      qRope: c.qRope,
      softmaxScale: c.softmaxScale,
      backend,
    };
    const a = await mlaDecode(args);
    const out = new Float32Array(a.out.length).fill(Number.NaN);
    const b = mlaDecodeSync({ ...args, out });
    expect(b.out).toBe(out);
    expect(Array.from(b.out)).toEqual(Array.from(a.out));
  });

  it('a query that sees no token gets zeros and lse = -inf', () => {
    const shape: DecodeShape = {
      qLen: 3,
      numHeads: 2,
      R: 8,
      P: 2,
      ropeHeads: 1,
      blockSize: 4,
      dtype: 'f32',
      seqLens: [0, 1],
    };
    const c = makeDecodeCase(shape, 9);
    const { out, lse } = mlaDecodeSync({
      cache: c.view,
      numHeads: 2,
      qLen: 3,
      qLatent: c.qLatent,
      qRope: c.qRope,
      softmaxScale: 0.5,
      lse: true,
      backend,
    });
    expect(Array.from(out.subarray(0, 3 * 2 * 8)).every((v) => v === 0)).toBe(true);
    expect(lse![0]).toBe(Number.NEGATIVE_INFINITY);
    // Sequence 1 (length 1): queries 0 and 1 see nothing, query 2 sees token 0.
    expect(lse![(1 * 2 + 0) * 3 + 1]).toBe(Number.NEGATIVE_INFINITY);
    expect(Number.isFinite(lse![(1 * 2 + 0) * 3 + 2])).toBe(true);
  });
});
