import { afterAll, describe, expect, it } from 'vitest';
import type { CacheDtype } from '../../lib/dtypes.js';
import {
  InvalidArgumentError,
  type MlaPrefillArgs,
  mlaDecode,
  mlaPrefill,
  mlaPrefillSync,
  PREFILL_FORMS,
} from '../../lib/index.js';
import { backendsPerIsa } from '../helpers/backends.js';
import { relativeError } from '../helpers/compare.js';
import { type DecodeCase, type DecodeShape, describeShape, makeDecodeCase } from '../helpers/decode-cases.js';
import { rng } from '../helpers/random.js';
import { bf16ToF32, f32ToBf16 } from '../reference/dtype-codec.js';
import { referencePrefill } from '../reference/mla-prefill-reference.js';

interface PrefillCase {
  base: DecodeCase;
  Dn: number;
  Dv: number;
  qNope: Float32Array;
  kvBProj: Float32Array | Uint16Array;
  kvB: Float64Array;
}

function makePrefillCase(
  shape: DecodeShape,
  Dn: number,
  Dv: number,
  bf16: boolean,
  seed: number,
): PrefillCase {
  const base = makeDecodeCase(shape, seed);
  const r = rng(seed + 1000);
  const rows = shape.seqLens.length * shape.qLen * shape.numHeads;
  const qNope = Float32Array.from({ length: rows * Dn }, () => r.normal());
  const n = shape.numHeads * (Dn + Dv) * shape.R;
  const scale = 1 / Math.sqrt(shape.R);
  const f32 = Float32Array.from({ length: n }, () => r.normal() * scale);
  const kvBProj = bf16 ? Uint16Array.from(f32, (v) => f32ToBf16(v)) : f32;
  const kvB = Float64Array.from(bf16 ? Array.from(kvBProj, (h) => bf16ToF32(h)) : f32);
  return { base, Dn, Dv, qNope, kvBProj, kvB };
}

/** mlaPrefill's arguments for a case (extra fields override). */
function argsOf(c: PrefillCase, extra: Partial<MlaPrefillArgs> = {}): MlaPrefillArgs {
  const s = c.base.shape;
  return {
    cache: c.base.view,
    numHeads: s.numHeads,
    qLen: s.qLen,
    qkNopeHeadDim: c.Dn,
    vHeadDim: c.Dv,
    qNope: c.qNope,
    qRope: s.P > 0 ? c.base.qRope : undefined,
    kvBProj: c.kvBProj,
    softmaxScale: c.base.softmaxScale,
    ...extra,
  };
}

function want(c: PrefillCase) {
  return referencePrefill({ ...c.base.inputs, Dn: c.Dn, Dv: c.Dv, qNope: c.qNope, kvB: c.kvB });
}

interface Grid {
  shape: DecodeShape;
  Dn: number;
  Dv: number;
  bf16: boolean;
}

function grid(dtype: CacheDtype): Grid[] {
  return [
    // A prompt chunk after a prefix, and T longer than a sequence (early queries see nothing).
    {
      shape: { qLen: 9, numHeads: 4, R: 64, P: 16, ropeHeads: 1, blockSize: 16, dtype, seqLens: [77] },
      Dn: 32,
      Dv: 24,
      bf16: false,
    },
    {
      shape: { qLen: 5, numHeads: 6, R: 40, P: 8, ropeHeads: 2, blockSize: 7, dtype, seqLens: [0, 3, 40] },
      Dn: 16,
      Dv: 16,
      bf16: true,
    },
    {
      shape: { qLen: 20, numHeads: 3, R: 33, P: 0, ropeHeads: 1, blockSize: 1, dtype, seqLens: [60] },
      Dn: 9,
      Dv: 17,
      bf16: false,
    },
  ];
}

const backends = backendsPerIsa();
afterAll(() => {
  for (const b of backends) b.backend.dispose();
});

describe.each(backends)('mla_prefill on $isa', ({ isa, backend }) => {
  it.each(['f32', 'bf16', 'int8', 'fp8_e4m3'] as CacheDtype[])(
    'matches the float64 non-absorbed reference with a %s cache, in every form',
    async (dtype) => {
      let seed = 41;
      for (const g of grid(dtype)) {
        const c = makePrefillCase(g.shape, g.Dn, g.Dv, g.bf16, seed++);
        const ref = want(c);
        const qBefore = c.qNope.slice();
        for (const form of PREFILL_FORMS) {
          const got = await mlaPrefill(argsOf(c, { lse: true, form, backend }));
          const what = `${isa} ${form} ${describeShape(g.shape)} Dn=${g.Dn} Dv=${g.Dv} w=${g.bf16 ? 'bf16' : 'f32'}`;
          // Non-absorbed: f32 arithmetic on exactly decoded rows. Absorbed: mlaDecode's precision.
          const tol = form === 'nonAbsorbed' ? 1e-4 : dtype === 'f32' ? 1e-5 : 1e-2;
          expect(relativeError(got.out, ref.out), what).toBeLessThan(tol);
          expect(relativeError(got.lse!, ref.lse), what).toBeLessThan(tol);
        }
        expect(c.qNope).toEqual(qBefore);
      }
    },
  );

  it('equals the absorbed form: mlaDecode on W_UK^T qNope, then W_UV', async () => {
    const shape: DecodeShape = {
      qLen: 6,
      numHeads: 4,
      R: 48,
      P: 8,
      ropeHeads: 1,
      blockSize: 8,
      dtype: 'bf16',
      seqLens: [30, 6],
    };
    const { Dn, Dv } = { Dn: 16, Dv: 12 };
    const c = makePrefillCase(shape, Dn, Dv, false, 7);
    const { R, numHeads: H } = shape;
    const rows = shape.seqLens.length * shape.qLen * H;
    const qLatent = new Float32Array(rows * R);
    for (let qi = 0; qi < rows; qi++) {
      const h = qi % H;
      for (let r = 0; r < R; r++) {
        let acc = 0;
        for (let k = 0; k < Dn; k++)
          acc += (c.qNope[qi * Dn + k] as number) * (c.kvB[(h * (Dn + Dv) + k) * R + r] as number);
        qLatent[qi * R + r] = acc;
      }
    }
    const latent = await mlaDecode({
      cache: c.base.view,
      numHeads: H,
      qLen: shape.qLen,
      qLatent,
      qRope: c.base.qRope,
      softmaxScale: c.base.softmaxScale,
      backend,
    });
    const absorbed = new Float64Array(rows * Dv);
    for (let qi = 0; qi < rows; qi++) {
      const h = qi % H;
      for (let v = 0; v < Dv; v++) {
        let acc = 0;
        for (let r = 0; r < R; r++)
          acc += (c.kvB[(h * (Dn + Dv) + Dn + v) * R + r] as number) * (latent.out[qi * R + r] as number);
        absorbed[qi * Dv + v] = acc;
      }
    }
    const got = mlaPrefillSync(argsOf(c, { backend }));
    // mlaDecode's bf16 dot products round q to bf16 on the SIMD ISAs: the 1e-2 of its contract.
    expect(relativeError(got.out, absorbed)).toBeLessThan(1e-2);
  });

  it('sync and async give identical bits, and out can be reused', async () => {
    const g = grid('f32')[0]!;
    const c = makePrefillCase(g.shape, g.Dn, g.Dv, g.bf16, 5);
    const args = argsOf(c, { backend });
    const a = await mlaPrefill(args);
    const out = new Float32Array(a.out.length).fill(Number.NaN);
    const b = mlaPrefillSync({ ...args, out });
    expect(b.out).toBe(out);
    expect(Buffer.from(b.out.buffer).equals(Buffer.from(a.out.buffer))).toBe(true);
  });
});

describe('mla_prefill input checks', () => {
  const g = grid('f32')[0]!;
  const c = makePrefillCase(g.shape, g.Dn, g.Dv, false, 3);
  const good = argsOf(c);

  it('accepts the good arguments', () => {
    expect(() => mlaPrefillSync(good)).not.toThrow();
  });

  it.each([
    ['a short qNope', { qNope: new Float32Array(3) }, /qNope/],
    ['a kvBProj of the wrong length', { kvBProj: new Float32Array(10) }, /kvBProj/],
    ['kvBProj as Float64Array', { kvBProj: new Float64Array(10) }, /kvBProj/],
    ['a missing softmaxScale', { softmaxScale: undefined }, /softmaxScale/],
    ['qLen 0', { qLen: 0 }, /qLen/],
    ['vHeadDim 0', { vHeadDim: 0 }, /vHeadDim/],
    ['numHeads 0', { numHeads: 0 }, /numHeads/],
    ['an unknown form', { form: 'fastest' }, /form/],
  ])('rejects %s with a typed error before native work', async (_name, patch, message) => {
    const args = { ...good, ...patch } as Parameters<typeof mlaPrefillSync>[0];
    expect(() => mlaPrefillSync(args)).toThrow(InvalidArgumentError);
    expect(() => mlaPrefillSync(args)).toThrow(message);
    await expect(mlaPrefill(args)).rejects.toThrow(InvalidArgumentError);
  });

  it('rejects an output that shares memory with an input', () => {
    expect(() => mlaPrefillSync({ ...good, out: c.qNope.subarray(0, 0) as Float32Array })).toThrow(
      InvalidArgumentError,
    );
  });

  it('rejects a sequence longer than its pages (native contract check), writing nothing', () => {
    const out = new Float32Array(g.shape.qLen * g.shape.numHeads * g.Dv).fill(5);
    const seqLens = Int32Array.from([10_000]);
    expect(() => mlaPrefillSync({ ...good, cache: { ...c.base.view, seqLens }, out })).toThrow(
      InvalidArgumentError,
    );
    expect(out.every((v) => v === 5)).toBe(true);
  });
});
