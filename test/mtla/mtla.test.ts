import { describe, expect, it } from 'vitest';
import type { CacheDtype } from '../../lib/dtypes.js';
import { InvalidArgumentError } from '../../lib/errors.js';
import { LatentCache } from '../../lib/mla/latent-cache.js';
import {
  MtlaCache,
  MtlaDecoder,
  type MtlaLayerConfig,
  type MtlaLayerWeights,
  mtlaAppend,
  mtlaAppendSync,
  mtlaMaskAllows,
  mtlaTrainingForward,
} from '../../lib/mtla/index.js';
import { relativeError } from '../helpers/compare.js';
import { rng } from '../helpers/random.js';
import { expectedLayout, readRow } from '../reference/cache-codec.js';

const base: Omit<MtlaLayerConfig, 'stride'> = {
  hiddenSize: 24,
  numHeads: 3,
  kvLoraRank: 16,
  qkNopeHeadDim: 8,
  qkRopeHeadDim: 4,
  vHeadDim: 8,
};
const D = 4;

function makeWeights(seed: number, c = base): MtlaLayerWeights {
  const r = rng(seed);
  const m = (n: number, s: number) => Float32Array.from({ length: n }, () => r.normal() * s);
  const { hiddenSize: E, numHeads: H, kvLoraRank: R, qkNopeHeadDim: Dn, qkRopeHeadDim: P, vHeadDim: Dv } = c;
  return {
    wq: m(H * (Dn + P) * E, 1 / Math.sqrt(E)),
    wkvA: m((R + P) * E, 1 / Math.sqrt(E)),
    kvNormWeight: Float32Array.from({ length: R }, () => 1 + 0.2 * r.normal()),
    kvNormBias: m(R, 0.1),
    wkvB: m(H * (Dn + Dv) * R, 1 / Math.sqrt(R)),
    wo: m(E * H * Dv, 1 / Math.sqrt(H * Dv)),
    fcC: m(D * R, 0.5),
    fcCBias: m(D, 0.2),
    fcP: m(D * R, 0.5),
    fcPBias: m(D, 0.2),
  };
}

function hiddenStates(T: number, seed: number): Float32Array {
  const r = rng(seed);
  return Float32Array.from({ length: T * base.hiddenSize }, () => r.normal());
}

describe('MTLA: training form with the stride-aware mask == token-by-token decode', () => {
  const cases: { s: number; T: number; dtype: CacheDtype; tol: number }[] = [];
  for (const s of [1, 2, 3, 4]) {
    for (const T of [7, 10]) cases.push({ s, T, dtype: 'f32', tol: 2e-5 });
  }
  cases.push({ s: 3, T: 8, dtype: 'bf16', tol: 3e-2 });
  it.each(cases)('s = $s, T = $T, $dtype cache', ({ s, T, dtype, tol }) => {
    const config = { ...base, stride: s };
    const weights = makeWeights(100 + s);
    const hidden = hiddenStates(T, 7 * s + T);
    const train = mtlaTrainingForward(config, weights, hidden);
    const cache = new MtlaCache({ kvLoraRank: 16, ropeDim: 4, dtype, blockSize: 2, numBlocks: 8, stride: s });
    const dec = new MtlaDecoder(config, weights, cache);
    const E = base.hiddenSize;
    const got = new Float64Array(T * E);
    for (let t = 0; t < T; t++) got.set(dec.step(hidden.subarray(t * E, (t + 1) * E)), t * E);
    expect(relativeError(got, train.out)).toBeLessThan(tol);
    // The cache holds ceil(T / s) rows: completed chunks' full merges, then the partial one.
    const seq = dec.sequenceId;
    expect(cache.chunks(seq)).toBe(Math.ceil(T / s));
    expect(cache.tokens(seq)).toBe(T);
    const layout = expectedLayout(dtype, 16, 4);
    const table = cache.latent.blockTable(seq);
    for (let j = 0; j < Math.ceil(T / s); j++) {
      const last = Math.min(T - 1, (j + 1) * s - 1);
      const slot = (table[Math.floor(j / 2)] as number) * 2 + (j % 2);
      const row = readRow(cache.latent.pages, slot * layout.rowBytes, layout, dtype, 16, 4);
      expect(relativeError(row.latent, train.merged.subarray(last * 16, (last + 1) * 16))).toBeLessThan(tol);
      expect(relativeError(row.rope, train.kPe.subarray(last * 4, (last + 1) * 4))).toBeLessThan(tol);
    }
    cache.dispose();
  });

  it('s = 1 attends to every token (the official code tests T % s != 1, which is never false for s = 1)', () => {
    for (let m = 0; m < 6; m++) for (let n = 0; n < 6; n++) expect(mtlaMaskAllows(m, n, 1)).toBe(n <= m);
    // s = 2, query 4 sees rows 1, 3 (completed chunks) and itself.
    expect([0, 1, 2, 3, 4, 5].filter((n) => mtlaMaskAllows(4, n, 2))).toEqual([1, 3, 4]);
  });

  it('a whole prompt merged in one async call equals token-by-token merges (same bytes), and the weights match', async () => {
    const s = 3;
    const T = 8;
    const config = { ...base, stride: s };
    const weights = makeWeights(9);
    const hidden = hiddenStates(T, 5);
    const train = mtlaTrainingForward(config, weights, hidden);
    const r = rng(3);
    const latent = Float32Array.from({ length: T * 16 }, () => r.normal());
    const kRope = Float32Array.from({ length: T * 4 }, () => r.normal());
    const hyper = { fcC: weights.fcC, fcCBias: weights.fcCBias, fcP: weights.fcP, fcPBias: weights.fcPBias };
    const norm = { weight: weights.kvNormWeight, bias: weights.kvNormBias };
    const a = new MtlaCache({
      kvLoraRank: 16,
      ropeDim: 4,
      dtype: 'f32',
      blockSize: 4,
      numBlocks: 4,
      stride: s,
    });
    const b = new MtlaCache({
      kvLoraRank: 16,
      ropeDim: 4,
      dtype: 'f32',
      blockSize: 4,
      numBlocks: 4,
      stride: s,
    });
    const sa = a.createSequence();
    const sb = b.createSequence();
    const wa = await a.append(sa, { latent, kRope, hyper, norm, mergeWeight: true });
    const wb = new Float32Array(T);
    for (let t = 0; t < T; t++) {
      const one = b.appendSync(sb, {
        latent: latent.subarray(t * 16, (t + 1) * 16),
        kRope: kRope.subarray(t * 4, (t + 1) * 4),
        hyper,
        norm,
        mergeWeight: true,
      });
      wb[t] = one.mergeWeight![0] as number;
    }
    expect(a.chunks(sa)).toBe(3);
    expect(Buffer.from(a.latent.pages).equals(Buffer.from(b.latent.pages))).toBe(true);
    expect(Array.from(wa.mergeWeight!)).toEqual(Array.from(wb));
    // Weights of the training form, from the layer's own latents.
    const c2 = new MtlaCache({
      kvLoraRank: 16,
      ropeDim: 4,
      dtype: 'f32',
      blockSize: 4,
      numBlocks: 4,
      stride: s,
    });
    const dec = new MtlaDecoder(config, weights, c2);
    const E = base.hiddenSize;
    for (let t = 0; t < T; t++) dec.step(hidden.subarray(t * E, (t + 1) * E));
    a.dispose();
    b.dispose();
    c2.dispose();
    expect(train.weights.every((w) => w > 0 && w < 1)).toBe(true);
  });
});

describe('mtlaAppend bad input', () => {
  const R = 16;
  const P = 4;
  const good = () => {
    const cache = new LatentCache({ kvLoraRank: R, ropeDim: P, dtype: 'f32', blockSize: 4, numBlocks: 2 });
    const pages = cache.pages;
    pages.fill(7);
    return {
      cache,
      stride: 2,
      latent: new Float32Array(3 * R).fill(0.5),
      kRope: new Float32Array(3 * P),
      hyper: { fcC: new Float32Array(4 * R), fcP: new Float32Array(4 * R) },
      tokenIndex: Int32Array.from([0, 1, 2]),
      slotMapping: BigInt64Array.from([0n, 0n, 1n]),
    };
  };

  it('accepts the good arguments', () => {
    const g = good();
    const r = mtlaAppendSync({ ...g, mergeWeight: true });
    expect(Array.from(r.mergeWeight!)).toEqual([0.5, 0.5, 0.5]);
    expect(readRow(g.cache.pages, 0, expectedLayout('f32', R, P), 'f32', R, P).latent[0]).toBeCloseTo(0.5, 6);
  });

  const bad: [string, (g: ReturnType<typeof good>) => Record<string, unknown>, RegExp][] = [
    ['stride 0', (g) => ({ ...g, stride: 0 }), /stride/],
    ['latent not a multiple of R', (g) => ({ ...g, latent: new Float32Array(R + 1) }), /latent/],
    ['latent as Float64Array', (g) => ({ ...g, latent: new Float64Array(3 * R) }), /latent/],
    ['missing kRope', (g) => ({ ...g, kRope: undefined }), /kRope/],
    ['short fcP', (g) => ({ ...g, hyper: { fcC: g.hyper.fcC, fcP: new Float32Array(3 * R) } }), /fcP/],
    [
      'fcC not a multiple of R',
      (g) => ({ ...g, hyper: { fcC: new Float32Array(R + 2), fcP: g.hyper.fcP } }),
      /fcC/,
    ],
    ['negative token index', (g) => ({ ...g, tokenIndex: Int32Array.from([0, -1, 2]) }), /tokenIndex/],
    ['slot out of range', (g) => ({ ...g, slotMapping: BigInt64Array.from([0n, 0n, 8n]) }), /slotMapping/],
    ['two chunks in one slot', (g) => ({ ...g, slotMapping: BigInt64Array.from([0n, 0n, 0n]) }), /chunk/],
    ['merge out of order', (g) => ({ ...g, tokenIndex: Int32Array.from([1, 0, 2]) }), /chunk|token/],
    ['short tokenIndex', (g) => ({ ...g, tokenIndex: Int32Array.from([0, 1]) }), /tokenIndex/],
    ['bad norm eps', (g) => ({ ...g, norm: { weight: new Float32Array(R), eps: Number.NaN } }), /eps/],
    ['short norm weight', (g) => ({ ...g, norm: { weight: new Float32Array(R - 1) } }), /norm.weight/],
    [
      'latent aliasing the cache',
      (g) => ({ ...g, latent: new Float32Array(g.cache.pages.buffer, 0, 3 * R) }),
      /share memory/,
    ],
  ];
  it.each(bad)('%s: typed error, cache untouched', async (_name, make, message) => {
    const g = good();
    const before = Uint8Array.from(g.cache.pages);
    const args = make(g) as unknown as Parameters<typeof mtlaAppendSync>[0];
    expect(() => mtlaAppendSync(args)).toThrow(InvalidArgumentError);
    expect(() => mtlaAppendSync(args)).toThrow(message);
    await expect(mtlaAppend(args)).rejects.toBeInstanceOf(InvalidArgumentError);
    expect(Buffer.from(g.cache.pages).equals(Buffer.from(before))).toBe(true);
  });

  it('an odd latent width is refused by MtlaCache and mtlaAppend', () => {
    expect(() => new MtlaCache({ kvLoraRank: 15, ropeDim: 4, stride: 2 })).toThrow(InvalidArgumentError);
    const cache = new LatentCache({ kvLoraRank: 15, ropeDim: 0, dtype: 'f32', blockSize: 4, numBlocks: 1 });
    expect(() =>
      mtlaAppendSync({
        cache,
        stride: 2,
        latent: new Float32Array(15),
        hyper: { fcC: new Float32Array(15), fcP: new Float32Array(15) },
        tokenIndex: Int32Array.from([0]),
        slotMapping: BigInt64Array.from([0n]),
      }),
    ).toThrow(/even/);
  });

  it('a failed MtlaCache append leaves the sequence as it was', () => {
    const cache = new MtlaCache({
      kvLoraRank: R,
      ropeDim: P,
      dtype: 'f32',
      blockSize: 2,
      numBlocks: 1,
      stride: 2,
    });
    const seq = cache.createSequence();
    const hyper = { fcC: new Float32Array(4 * R), fcP: new Float32Array(4 * R) };
    cache.appendSync(seq, { latent: new Float32Array(R), kRope: new Float32Array(P), hyper });
    expect(() =>
      cache.appendSync(seq, { latent: new Float32Array(R), kRope: new Float32Array(P - 1), hyper }),
    ).toThrow(InvalidArgumentError);
    expect(cache.tokens(seq)).toBe(1);
    expect(cache.chunks(seq)).toBe(1);
    // 5 more tokens need 3 more rows; the pool has 2 rows in all: refused, nothing changes.
    expect(() =>
      cache.appendSync(seq, { latent: new Float32Array(5 * R), kRope: new Float32Array(5 * P), hyper }),
    ).toThrow();
    expect(cache.tokens(seq)).toBe(1);
    expect(cache.chunks(seq)).toBe(1);
    cache.dispose();
  });
});
