import { afterAll, describe, expect, it } from 'vitest';
import type { CacheDtype } from '../../lib/dtypes.js';
import {
  createBackend,
  InvalidArgumentError,
  type MlaDecodeLayerArgs,
  type MlaLayerWeights,
  mlaDecodeLayer,
  mlaDecodeLayerSync,
} from '../../lib/index.js';
import { backendsPerIsa } from '../helpers/backends.js';
import { relativeError } from '../helpers/compare.js';
import { makeDecodeCase } from '../helpers/decode-cases.js';
import { rng } from '../helpers/random.js';
import { bf16ToF32, f32ToBf16 } from '../reference/dtype-codec.js';
import { type LayerRefWeights, referenceDecodeLayer } from '../reference/mla-layer-reference.js';
import { ropeInvFreq } from '../reference/mla-reference.js';

const backends = backendsPerIsa();
afterAll(() => {
  for (const b of backends) b.backend.dispose();
});

interface LayerShape {
  name: string;
  qLen: number;
  E: number;
  H: number;
  qLoraRank: number;
  Dn: number;
  Dv: number;
  R: number;
  P: number;
  ropeHeads: number;
  blockSize: number;
  kvNorm: boolean;
  style: 'interleaved' | 'half-split';
  seqLens: number[];
}

const shapes: LayerShape[] = [
  {
    name: 'full q, Dn>0, Sq=1',
    qLen: 1,
    E: 48,
    H: 5,
    qLoraRank: 0,
    Dn: 16,
    Dv: 12,
    R: 32,
    P: 8,
    ropeHeads: 1,
    blockSize: 8,
    kvNorm: true,
    style: 'interleaved',
    seqLens: [1, 21, 9],
  },
  {
    name: 'low rank q, Sq=2, no kv norm',
    qLen: 2,
    E: 40,
    H: 3,
    qLoraRank: 24,
    Dn: 8,
    Dv: 8,
    R: 24,
    P: 6,
    ropeHeads: 1,
    blockSize: 5,
    kvNorm: false,
    style: 'half-split',
    seqLens: [2, 17],
  },
  {
    name: 'Dn=0 (TransMLA-like), rope heads 3',
    qLen: 1,
    E: 36,
    H: 3,
    qLoraRank: 0,
    Dn: 0,
    Dv: 8,
    R: 16,
    P: 4,
    ropeHeads: 3,
    blockSize: 4,
    kvNorm: false,
    style: 'interleaved',
    seqLens: [7, 3],
  },
  {
    name: 'low rank q, rope heads 7, Sq=2',
    qLen: 2,
    E: 32,
    H: 7,
    qLoraRank: 12,
    Dn: 6,
    Dv: 5,
    R: 20,
    P: 4,
    ropeHeads: 7,
    blockSize: 3,
    kvNorm: true,
    style: 'half-split',
    seqLens: [10],
  },
];

function weightsFor(
  s: LayerShape,
  seed: number,
  dtype: 'f32' | 'bf16',
): { weights: MlaLayerWeights; ref: LayerRefWeights } {
  const r = rng(seed);
  const mat = (rows: number, cols: number) => {
    const f = Float32Array.from({ length: rows * cols }, () => r.normal() / Math.sqrt(cols));
    if (dtype === 'f32') return { stored: f, value: f };
    const bits = Uint16Array.from(f, (v) => f32ToBf16(v));
    return { stored: bits, value: Float64Array.from(bits, (h) => bf16ToF32(h)) };
  };
  const norm = (n: number) => Float32Array.from({ length: n }, () => 1 + 0.1 * r.normal());
  const qRows = s.H * (s.Dn + s.P);
  const weights: MlaLayerWeights = { dtype } as MlaLayerWeights;
  const ref = {} as LayerRefWeights;
  if (s.qLoraRank === 0) {
    const q = mat(qRows, s.E);
    weights.qProj = q.stored;
    ref.qProj = q.value;
  } else {
    const a = mat(s.qLoraRank, s.E);
    const b = mat(qRows, s.qLoraRank);
    const n = norm(s.qLoraRank);
    Object.assign(weights, { qAProj: a.stored, qBProj: b.stored, qALayernorm: n });
    Object.assign(ref, { qAProj: a.value, qBProj: b.value, qALayernorm: n });
  }
  const kvA = mat(s.R + s.P * s.ropeHeads, s.E);
  const kvB = mat(s.H * (s.Dn + s.Dv), s.R);
  const o = mat(s.E, s.H * s.Dv);
  weights.kvAProjWithMqa = kvA.stored;
  weights.kvBProj = kvB.stored;
  weights.oProj = o.stored;
  Object.assign(ref, { kvAProjWithMqa: kvA.value, kvBProj: kvB.value, oProj: o.value });
  if (s.kvNorm) {
    const n = norm(s.R);
    weights.kvALayernorm = n;
    ref.kvALayernorm = n;
  }
  return { weights, ref };
}

function layerCase(s: LayerShape, dtype: CacheDtype, weightDtype: 'f32' | 'bf16', seed: number) {
  const d = makeDecodeCase(
    {
      qLen: s.qLen,
      numHeads: s.H,
      R: s.R,
      P: s.P,
      ropeHeads: s.ropeHeads,
      blockSize: s.blockSize,
      dtype,
      seqLens: s.seqLens,
    },
    seed,
  );
  const r = rng(seed + 1000);
  const batch = s.seqLens.length;
  const T = batch * s.qLen;
  const hidden = Float32Array.from({ length: T * s.E }, () => r.normal());
  const positions = Int32Array.from({ length: T }, (_, t) => {
    const b = Math.floor(t / s.qLen);
    return (s.seqLens[b] as number) - s.qLen + (t % s.qLen) + 3;
  });
  const { weights, ref } = weightsFor(s, seed + 2000, weightDtype);
  const softmaxScale = 1 / Math.sqrt(s.Dn + s.P);
  const args: MlaDecodeLayerArgs = {
    cache: d.view,
    config: {
      hiddenSize: s.E,
      numHeads: s.H,
      qLoraRank: s.qLoraRank,
      qkNopeHeadDim: s.Dn,
      vHeadDim: s.Dv,
      rope: { style: s.style, theta: 10000 },
    },
    weights,
    hidden,
    qLen: s.qLen,
    positions,
    softmaxScale,
  };
  const want = () =>
    referenceDecodeLayer({
      batch,
      qLen: s.qLen,
      E: s.E,
      H: s.H,
      qLoraRank: s.qLoraRank,
      Dn: s.Dn,
      Dv: s.Dv,
      R: s.R,
      P: s.P,
      ropeHeads: s.ropeHeads,
      eps: 1e-6,
      rope: { style: s.style, invFreq: ropeInvFreq(10000, s.P) },
      softmaxScale,
      weights: ref,
      hidden,
      positions,
      dtype,
      layout: d.layout,
      pages: d.view.pages,
      blockSize: s.blockSize,
      blockTable: d.view.blockTable,
      maxBlocksPerSeq: d.view.maxBlocksPerSeq,
      seqLens: d.view.seqLens,
    });
  return { args, want, decode: d };
}

const tolerance: Partial<Record<CacheDtype, number>> = { f32: 1e-5, bf16: 1e-2 };

describe.each(backends)('mla_decode_layer on $isa', ({ isa, backend }) => {
  for (const dtype of ['f32', 'bf16'] as const) {
    for (const weightDtype of ['f32', 'bf16'] as const) {
      it.each(shapes)(
        `matches the float64 layer reference: ${dtype} cache, ${weightDtype} weights, $name`,
        async (s) => {
          const c = layerCase(s, dtype, weightDtype, 17 + s.H + s.qLen);
          const before = c.args.hidden.slice();
          const { out, pages } = c.want();
          const got = await mlaDecodeLayer({ ...c.args, backend });
          expect(c.args.hidden).toEqual(before);
          const e = relativeError(got.out, out);
          expect(e, `${isa} ${dtype} ${weightDtype} ${s.name}`).toBeLessThan(tolerance[dtype] as number);
          // The cache rows of the new tokens match the reference's; every other byte is unchanged
          // (the NaN poison of unused rows included).
          const rb = c.decode.layout.rowBytes;
          const gotPages = c.args.cache.pages;
          for (let row = 0; row < gotPages.length / rb; row++) {
            const a = gotPages.subarray(row * rb, (row + 1) * rb);
            const b = pages.subarray(row * rb, (row + 1) * rb);
            if (dtype === 'f32') {
              const fa = new Float32Array(a.slice().buffer);
              const fb = new Float32Array(b.slice().buffer);
              const same = a.every((v, i) => v === b[i]);
              if (!same) expect(relativeError(fa, fb), `${isa} row ${row}`).toBeLessThan(1e-5);
            } else {
              // bf16 rounding may flip the last bit where the reference sits on a tie.
              for (let i = 0; i < a.length; i += 2) {
                if (a[i] === b[i] && a[i + 1] === b[i + 1]) continue;
                const ga = bf16ToF32(a[i]! | (a[i + 1]! << 8));
                const gb = bf16ToF32(b[i]! | (b[i + 1]! << 8));
                if (ga !== gb)
                  expect(Math.abs(ga - gb), `${isa} row ${row}`).toBeLessThanOrEqual(Math.abs(gb) * 1e-2);
              }
            }
          }
        },
      );
    }
  }

  it('sync and async agree, and out may be hidden itself', async () => {
    const s = shapes[1] as LayerShape;
    const a = layerCase(s, 'f32', 'f32', 5);
    const b = layerCase(s, 'f32', 'f32', 5);
    const x = await mlaDecodeLayer({ ...a.args, backend });
    const y = mlaDecodeLayerSync({ ...b.args, backend });
    expect(y.out).toEqual(x.out);
    expect(b.args.cache.pages).toEqual(a.args.cache.pages);
    const c = layerCase(s, 'f32', 'f32', 5);
    const inPlace = mlaDecodeLayerSync({ ...c.args, out: c.args.hidden, backend });
    expect(inPlace.out).toBe(c.args.hidden);
    expect(inPlace.out).toEqual(x.out);
  });
});

describe('mla_decode_layer rejects bad input, writing nothing', () => {
  const backend = createBackend({ threads: 2 });
  afterAll(() => backend.dispose());
  const s = shapes[0] as LayerShape;

  const cases: [string, (a: MlaDecodeLayerArgs) => MlaDecodeLayerArgs, RegExp][] = [
    [
      'missing qProj',
      (a) => ({ ...a, weights: { ...a.weights, qProj: undefined } }),
      /weights\.qProj: expected a Float32Array/,
    ],
    [
      'short oProj',
      (a) => ({ ...a, weights: { ...a.weights, oProj: new Float32Array(3) } }),
      /weights\.oProj: expected 2880 elements/,
    ],
    [
      'bf16 weights in a Float32Array',
      (a) => ({ ...a, weights: { ...a.weights, dtype: 'bf16' } }),
      /weights\.qProj: expected a Uint16Array/,
    ],
    [
      'f16 weights',
      (a) => ({ ...a, weights: { ...a.weights, dtype: 'f16' as 'bf16' } }),
      /weights\.dtype: expected one of f32, bf16, got "f16"/,
    ],
    [
      'q_a_proj with qLoraRank 0',
      (a) => ({ ...a, weights: { ...a.weights, qAProj: new Float32Array(1) } }),
      /config\.qLoraRank/,
    ],
    [
      'qLoraRank without q_a_proj',
      (a) => ({ ...a, config: { ...a.config, qLoraRank: 4 } }),
      /weights\.qProj: given/,
    ],
    [
      'short kvALayernorm',
      (a) => ({ ...a, weights: { ...a.weights, kvALayernorm: new Float32Array(5) } }),
      /weights\.kvALayernorm: expected 32 elements/,
    ],
    [
      'NaN softmaxScale',
      (a) => ({ ...a, softmaxScale: Number.NaN }),
      /softmaxScale: expected a finite number, got NaN/,
    ],
    [
      'negative position',
      (a) => ({ ...a, positions: Int32Array.from([0, -2, 1]) }),
      /positions\[1\]: expected a position >= 0, got -2/,
    ],
    ['short positions', (a) => ({ ...a, positions: new Int32Array(2) }), /positions: expected 3 elements/],
    ['hidden length', (a) => ({ ...a, hidden: new Float32Array(10) }), /hidden: expected 144 elements/],
    [
      'seqLens shorter than qLen',
      (a) => ({ ...a, qLen: 2 }),
      /cache\.seqLens\[0\]: expected at least qLen 2/,
    ],
    [
      'slot mapping mismatch',
      (a) => ({ ...a, slotMapping: Int32Array.from([0, 1, 2]) }),
      /slotMapping\[0\]: expected slot/,
    ],
    [
      'numHeads not a multiple of ropeHeads',
      (a) => ({ ...a, cache: { ...a.cache, ropeHeads: 2 } }),
      /cache\.pages: expected|ropeHeads/,
    ],
    [
      'no query part',
      (a) => ({ ...a, config: { ...a.config, qkNopeHeadDim: 0 }, cache: { ...a.cache, ropeDim: 0 } }),
      /cache\.pages: expected|query has no part/,
    ],
    [
      'rope style',
      (a) => ({ ...a, config: { ...a.config, rope: { style: 'neox' as 'interleaved' } } }),
      /config\.rope\.style: expected one of interleaved, half-split/,
    ],
    [
      'vHeadDim 0',
      (a) => ({ ...a, config: { ...a.config, vHeadDim: 0 } }),
      /config\.vHeadDim: expected an integer >= 1, got 0/,
    ],
  ];

  it.each(cases)('%s', async (_name, mutate, message) => {
    const c = layerCase(s, 'f32', 'f32', 9);
    const pagesBefore = c.args.cache.pages.slice();
    const out = new Float32Array(c.args.hidden.length).fill(7);
    const bad = mutate({ ...c.args, out, backend });
    expect(() => mlaDecodeLayerSync(bad)).toThrow(InvalidArgumentError);
    expect(() => mlaDecodeLayerSync(bad)).toThrow(message);
    await expect(mlaDecodeLayer(bad)).rejects.toThrow(InvalidArgumentError);
    expect(c.args.cache.pages).toEqual(pagesBefore);
    expect(out.every((v) => v === 7)).toBe(true);
  });

  it('a correct slot mapping is accepted', () => {
    const c = layerCase(s, 'f32', 'f32', 9);
    const v = c.args.cache;
    const slots = Array.from({ length: 3 }, (_, b) => {
      const token = (v.seqLens[b] as number) - 1;
      return (
        (v.blockTable[b * v.maxBlocksPerSeq + Math.floor(token / v.blockSize)] as number) * v.blockSize +
        (token % v.blockSize)
      );
    });
    expect(() =>
      mlaDecodeLayerSync({ ...c.args, slotMapping: Int32Array.from(slots), backend }),
    ).not.toThrow();
  });

  it('the native contract check runs too (fold_absorption is reserved)', () => {
    const c = layerCase(s, 'f32', 'f32', 9);
    const pagesBefore = c.args.cache.pages.slice();
    let captured: Parameters<typeof backend._decodeLayerSync>[0] | undefined;
    const spy = {
      _decodeLayerSync: (p: Parameters<typeof backend._decodeLayerSync>[0]) => {
        captured = p;
      },
    };
    mlaDecodeLayerSync({ ...c.args, backend: spy as unknown as typeof backend });
    expect(captured).toBeDefined();
    expect(() => backend._decodeLayerSync({ ...captured!, foldAbsorption: 1 })).toThrow(
      /fold_absorption must be 0/,
    );
    expect(() => backend._decodeLayerSync({ ...captured!, wO: new Float32Array(4) })).toThrow(
      /wO holds 16 bytes/,
    );
    expect(c.args.cache.pages).toEqual(pagesBefore);
  });

  it('a disposed backend is an error', () => {
    const b = createBackend({ threads: 1 });
    b.dispose();
    const c = layerCase(s, 'f32', 'f32', 9);
    expect(() => mlaDecodeLayerSync({ ...c.args, backend: b })).toThrow(/disposed/);
  });
});
