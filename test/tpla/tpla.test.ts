import { afterAll, describe, expect, it } from 'vitest';
import { createBackend } from '../../lib/backend.js';
import { InvalidArgumentError, UnsupportedError } from '../../lib/errors.js';
import { mlaDecodeSync } from '../../lib/mla/decode.js';
import { LatentCache } from '../../lib/mla/latent-cache.js';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from '../../lib/model/mla-weights.js';
import {
  collectLatentMoments,
  TplaShardedCache,
  tplaDecode,
  tplaDecodeSync,
  tplaForwardSequence,
  tplaReparameterize,
  valueUpProjection,
} from '../../lib/tpla/index.js';
import { relativeError } from '../helpers/compare.js';
import { rng } from '../helpers/random.js';
import { expectedLayout, readRow } from '../reference/cache-codec.js';

function randomCheckpoint(seed: number, R = 8): MlaCheckpoint {
  const r = rng(seed);
  const m = (n: number, s: number) => Float32Array.from({ length: n }, () => r.normal() * s);
  const config: MlaConfig = {
    dim: 16,
    hiddenDim: 24,
    nLayers: 2,
    nHeads: 2,
    vocabSize: 11,
    seqLen: 16,
    normEps: 1e-5,
    qLoraRank: null,
    kvLoraRank: R,
    qkNopeHeadDim: 4,
    qkRopeHeadDim: 4,
    vHeadDim: 4,
    ropeHeads: 1,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    softmaxScale: 1 / Math.sqrt(8),
  };
  const E = 16;
  const layers: MlaLayerWeights[] = Array.from({ length: 2 }, () => {
    // An anisotropic latent, so PCA and Hadamard give different bases.
    const kvA = m((R + 4) * E, 1 / Math.sqrt(E));
    for (let k = 0; k < R; k++) for (let e = 0; e < E; e++) kvA[k * E + e]! *= 1 + k;
    return {
      rmsAtt: Float32Array.from({ length: E }, () => 1 + 0.1 * r.normal()),
      qProj: m(2 * 8 * E, 1 / Math.sqrt(E)),
      qAProj: null,
      qALayernorm: null,
      qBProj: null,
      kvAProjWithMqa: kvA,
      kvALayernorm: Float32Array.from({ length: R }, () => 1 + 0.3 * r.normal()),
      kvBProj: m(2 * 8 * R, 1 / Math.sqrt(R)),
      oProj: m(E * 8, 1 / Math.sqrt(8)),
      rmsFfn: Float32Array.from({ length: E }, () => 1 + 0.1 * r.normal()),
      w1: m(24 * E, 1 / Math.sqrt(E)),
      w2: m(E * 24, 1 / Math.sqrt(24)),
      w3: m(24 * E, 1 / Math.sqrt(E)),
    };
  });
  return {
    config,
    weights: {
      tokenEmbedding: m(11 * E, 1),
      layers,
      rmsFinal: Float32Array.from({ length: E }, () => 1 + 0.1 * r.normal()),
      classifier: m(11 * E, 1 / Math.sqrt(E)),
    },
  };
}

const seqs = [
  [1, 4, 7, 2, 9, 3, 3, 5, 10, 0],
  [2, 6, 6, 1, 8, 4],
];

describe('TPLA reparameterisation', () => {
  const ckpt = randomCheckpoint(11);
  const moments = collectLatentMoments(ckpt, seqs);
  it.each(['pca', 'hadamard'] as const)(
    '%s: without slicing the logits equal the original (float64 MLA forward)',
    (transform) => {
      for (const G of [1, 2, 4]) {
        const { checkpoint, plan } = tplaReparameterize(ckpt, { shards: G, transform, moments });
        expect(checkpoint.weights.layers[0]!.kvALayernorm!.every((g) => g === 1)).toBe(true);
        const want = forwardMlaSequence(ckpt.weights, ckpt.config, seqs[0]!);
        const got = forwardMlaSequence(checkpoint.weights, checkpoint.config, seqs[0]!);
        // Float32 storage of the folded weights is the only difference.
        expect(
          relativeError(
            got.flatMap((x) => Array.from(x)),
            want.flatMap((x) => Array.from(x)),
          ),
        ).toBeLessThan(2e-6);
        // G = 1 TPLA is MLA: alpha = 1, one softmax.
        if (G === 1) {
          expect(plan.alpha[0]![0]).toBeCloseTo(1, 12);
          const tpla = tplaForwardSequence(checkpoint, plan, seqs[0]!, { mode: 'tpla' });
          expect(
            relativeError(
              tpla.flatMap((x) => Array.from(x)),
              want.flatMap((x) => Array.from(x)),
            ),
          ).toBeLessThan(2e-6);
        }
        // sum_i 1 / alpha_i = 1: the shards' energy shares add up.
        for (const a of plan.alpha) expect(Array.from(a).reduce((s, v) => s + 1 / v, 0)).toBeCloseTo(1, 10);
      }
    },
  );

  it('PCA puts the high-energy half on shard 0 (alpha_0 < alpha_1); Hadamard balances it (alpha near G)', () => {
    const pca = tplaReparameterize(ckpt, { shards: 2, transform: 'pca', moments }).plan.alpha[0]!;
    expect(pca[0]!).toBeLessThan(pca[1]!);
    const had = tplaReparameterize(ckpt, { shards: 2, transform: 'hadamard', moments }).plan.alpha[0]!;
    expect(Math.abs(had[0]! - 2)).toBeLessThan(Math.abs(pca[0]! - 2));
  });

  it('rejects shard counts that do not divide R and Hadamard on a non power of two', () => {
    expect(() => tplaReparameterize(ckpt, { shards: 3, transform: 'pca', moments })).toThrow(/divisor/);
    const odd = randomCheckpoint(3, 6);
    expect(() => tplaReparameterize(odd, { shards: 2, transform: 'hadamard' })).toThrow(/power of two/);
  });
});

/** Float64 per-shard TPLA attention over the given rows: [H * Dv] output for one query. */
function referenceTpla(
  rows: { latent: Float64Array; rope: Float64Array }[][],
  qLatent: Float32Array,
  qRope: Float32Array,
  scales: number[],
  wUv: Float32Array,
  H: number,
  Dv: number,
  W: number,
  scale: number,
): Float64Array {
  const G = rows.length;
  const R = G * W;
  const P = qRope.length / H;
  const out = new Float64Array(H * Dv);
  for (let i = 0; i < G; i++) {
    for (let h = 0; h < H; h++) {
      const sc = rows[i]!.map((row) => {
        let s = 0;
        for (let c = 0; c < W; c++) s += scales[i]! * qLatent[h * R + i * W + c]! * row.latent[c]!;
        for (let d = 0; d < P; d++) s += qRope[h * P + d]! * row.rope[d]!;
        return s * scale;
      });
      const max = Math.max(...sc);
      const e = sc.map((v) => Math.exp(v - max));
      const sum = e.reduce((a, b) => a + b, 0);
      const lat = new Float64Array(W);
      rows[i]!.forEach((row, t) => {
        for (let c = 0; c < W; c++) lat[c] = lat[c]! + (e[t]! / sum) * row.latent[c]!;
      });
      for (let d = 0; d < Dv; d++) {
        let s = 0;
        for (let c = 0; c < W; c++) s += wUv[(h * Dv + d) * R + i * W + c]! * lat[c]!;
        out[h * Dv + d] = out[h * Dv + d]! + s;
      }
    }
  }
  return out;
}

describe('TPLA sharded decode on the kernels', () => {
  const backends = [createBackend({ threads: 1 }), createBackend({ threads: 1 })];
  afterAll(() => {
    for (const b of backends) b.dispose();
  });
  const E = 12;
  const R = 16;
  const P = 4;
  const H = 3;
  const Dn = 4;
  const Dv = 5;
  const T = 9;
  const r = rng(5);
  const m = (n: number, s: number) => Float32Array.from({ length: n }, () => r.normal() * s);
  const layer = {
    kvAProjWithMqa: m((R + P) * E, 1 / Math.sqrt(E)),
    kvALayernorm: new Float32Array(R).fill(1),
    kvBProj: m(H * (Dn + Dv) * R, 1 / Math.sqrt(R)),
  } as unknown as MlaLayerWeights;
  const hidden = m(T * E, 1);
  const rope = { style: 'interleaved' as const, theta: 10000 };
  const wUv = valueUpProjection(layer.kvBProj, H, Dn, Dv, R);
  const qLatent = m(H * R, 1);
  const qRope = m(H * P, 1);
  const scale = 0.4;

  it.each([2, 4, 8])(
    'G = %i: local-norm append and per-shard softmax match the float64 reference; async == sync',
    async (G) => {
      const alpha = Array.from({ length: G }, (_, i) => (G * (1 + 0.1 * i)) / (1 + 0.1 * ((G - 1) / 2)));
      const cache = new TplaShardedCache({
        kvLoraRank: R,
        ropeDim: P,
        shards: G,
        dtype: 'f32',
        blockSize: 4,
        numBlocks: 4,
      });
      const seq = cache.createSequence();
      cache.appendSync(seq, { hidden, hiddenSize: E, layer, alpha, rope });
      expect(cache.length(seq)).toBe(T);
      const W = R / G;
      const layout = expectedLayout('f32', W, P);
      const rows = cache.shards.map((shard) => {
        const table = shard.blockTable(0);
        return Array.from({ length: T }, (_, t) =>
          readRow(
            shard.pages,
            ((table[Math.floor(t / 4)] as number) * 4 + (t % 4)) * layout.rowBytes,
            layout,
            'f32',
            W,
            P,
          ),
        );
      });
      // Shard rows: c_i / (sqrt(alpha_i / G) RMS_local(c_i)).
      for (let t = 0; t < T; t++) {
        for (let i = 0; i < G; i++) {
          const c = new Float64Array(W);
          for (let k = 0; k < W; k++) {
            let s = 0;
            for (let e = 0; e < E; e++) s += layer.kvAProjWithMqa[(i * W + k) * E + e]! * hidden[t * E + e]!;
            c[k] = s;
          }
          const ss = c.reduce((a, v) => a + v * v, 0);
          const denom = Math.sqrt(((alpha[i]! / G) * ss) / W + 1e-6);
          expect(
            relativeError(
              rows[i]![t]!.latent,
              c.map((v) => v / denom),
            ),
          ).toBeLessThan(2e-6);
        }
      }
      const args = {
        shards: cache.views([seq]),
        numHeads: H,
        qLatent,
        qRope,
        softmaxScale: scale,
        scoreScales: alpha,
        wUv,
        vHeadDim: Dv,
      };
      const sync = tplaDecodeSync(args);
      const want = referenceTpla(rows, qLatent, qRope, alpha, wUv, H, Dv, W, scale);
      expect(relativeError(sync.out, want)).toBeLessThan(1e-5);
      expect(sync.partials).toHaveLength(G);
      const sum = new Float64Array(H * Dv);
      for (const p of sync.partials) {
        p.forEach((v, k) => {
          sum[k] = sum[k]! + v;
        });
      }
      expect(relativeError(sync.out, sum)).toBeLessThan(1e-6);
      const shardBackends = Array.from({ length: G }, (_, i) => backends[i % 2]!);
      const asyncResult = await tplaDecode({ ...args, backends: shardBackends });
      expect(Array.from(asyncResult.out)).toEqual(Array.from(sync.out));
      cache.dispose();
    },
  );

  it('PD separation: exact prefill into a full-width cache, shards are its slices, G = 1 equals plain MLA', () => {
    const full = new LatentCache({ kvLoraRank: R, ropeDim: P, dtype: 'bf16', blockSize: 4, numBlocks: 4 });
    const fs = full.createSequence();
    full.appendSync(fs, {
      hidden,
      hiddenSize: E,
      weight: layer.kvAProjWithMqa,
      normWeight: layer.kvALayernorm!,
      rope,
    });
    for (const G of [1, 2, 4]) {
      const cache = new TplaShardedCache({
        kvLoraRank: R,
        ropeDim: P,
        shards: G,
        dtype: 'bf16',
        blockSize: 2,
        numBlocks: 8,
      });
      const seq = cache.createSequence();
      cache.importFromFull(seq, full, fs);
      const W = R / G;
      const fl = expectedLayout('bf16', R, P);
      const sl = expectedLayout('bf16', W, P);
      const ft = full.blockTable(fs);
      const fullRows = Array.from({ length: T }, (_, t) =>
        readRow(
          full.pages,
          ((ft[Math.floor(t / 4)] as number) * 4 + (t % 4)) * fl.rowBytes,
          fl,
          'bf16',
          R,
          P,
        ),
      );
      const rows = cache.shards.map((shard) => {
        const table = shard.blockTable(0);
        return Array.from({ length: T }, (_, t) =>
          readRow(
            shard.pages,
            ((table[Math.floor(t / 2)] as number) * 2 + (t % 2)) * sl.rowBytes,
            sl,
            'bf16',
            W,
            P,
          ),
        );
      });
      for (let i = 0; i < G; i++) {
        for (let t = 0; t < T; t++) {
          expect(Array.from(rows[i]![t]!.latent)).toEqual(
            Array.from(fullRows[t]!.latent.subarray(i * W, (i + 1) * W)),
          );
          expect(Array.from(rows[i]![t]!.rope)).toEqual(Array.from(fullRows[t]!.rope));
        }
      }
      const got = tplaDecodeSync({
        shards: cache.views([seq]),
        numHeads: H,
        qLatent,
        qRope,
        softmaxScale: scale,
        wUv,
        vHeadDim: Dv,
      });
      if (G === 1) {
        const lat = mlaDecodeSync({
          cache: full.view([fs]),
          numHeads: H,
          qLatent,
          qRope,
          softmaxScale: scale,
        }).out;
        const want = new Float64Array(H * Dv);
        for (let h = 0; h < H; h++)
          for (let d = 0; d < Dv; d++)
            for (let c = 0; c < R; c++) want[h * Dv + d]! += wUv[(h * Dv + d) * R + c]! * lat[h * R + c]!;
        expect(relativeError(got.out, want)).toBeLessThan(1e-5);
      } else {
        const want = referenceTpla(rows, qLatent, qRope, new Array(G).fill(1), wUv, H, Dv, W, scale);
        // bf16 cache: the kernels may take bf16 dot products (DESIGN.md: 1e-2 for bf16 inputs).
        expect(relativeError(got.out, want)).toBeLessThan(1e-2);
      }
      cache.dispose();
    }
    full.dispose();
  });

  it('bad input gets typed errors', async () => {
    const cache = new TplaShardedCache({
      kvLoraRank: R,
      ropeDim: P,
      shards: 2,
      dtype: 'f32',
      blockSize: 4,
      numBlocks: 4,
    });
    const seq = cache.createSequence();
    cache.appendSync(seq, { hidden, hiddenSize: E, layer, alpha: [2, 2], rope });
    const good = {
      shards: cache.views([seq]),
      numHeads: H,
      qLatent,
      qRope,
      softmaxScale: scale,
      wUv,
      vHeadDim: Dv,
    };
    expect(() => tplaDecodeSync(good)).not.toThrow();
    const other = new LatentCache({ kvLoraRank: 4, ropeDim: P, dtype: 'f32', blockSize: 4, numBlocks: 4 });
    const os = other.createSequence();
    other.allocateSlots(os, T);
    const bad: [string, Record<string, unknown>][] = [
      ['no shards', { ...good, shards: [] }],
      ['mixed widths', { ...good, shards: [good.shards[0], other.view([os])] }],
      ['short qLatent', { ...good, qLatent: qLatent.subarray(1) }],
      ['short wUv', { ...good, wUv: wUv.subarray(1) }],
      ['scoreScales count', { ...good, scoreScales: [1] }],
      ['scoreScales NaN', { ...good, scoreScales: [1, Number.NaN] }],
      ['backends count', { ...good, backends: [backends[0]] }],
      ['infinite scale', { ...good, softmaxScale: Number.POSITIVE_INFINITY }],
      ['short qRope', { ...good, qRope: qRope.subarray(1) }],
    ];
    for (const [name, args] of bad) {
      expect(() => tplaDecodeSync(args as never), name).toThrow(InvalidArgumentError);
      await expect(tplaDecode(args as never), name).rejects.toBeInstanceOf(InvalidArgumentError);
    }
    // Shards holding different tokens.
    cache.shards[1]!.truncate(0, T - 1);
    expect(() => tplaDecodeSync({ ...good, shards: cache.views([seq]) })).toThrow(/same tokens/);
    expect(() => new TplaShardedCache({ kvLoraRank: R, ropeDim: P, shards: 3 })).toThrow(
      InvalidArgumentError,
    );
    expect(() => cache.appendSync(seq, { hidden, hiddenSize: E, layer, alpha: [2], rope })).toThrow(
      InvalidArgumentError,
    );
    const q8 = new LatentCache({ kvLoraRank: R, ropeDim: P, dtype: 'int8', blockSize: 4, numBlocks: 4 });
    const c8 = new TplaShardedCache({
      kvLoraRank: R,
      ropeDim: P,
      shards: 2,
      dtype: 'int8',
      blockSize: 4,
      numBlocks: 4,
    });
    expect(() => c8.importFromFull(c8.createSequence(), q8, q8.createSequence())).toThrow(UnsupportedError);
    cache.dispose();
    other.dispose();
    q8.dispose();
    c8.dispose();
  });
});
