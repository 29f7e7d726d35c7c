/**
 * MlaModel on small random MLA checkpoints that exercise what the exact merge does not: Dn > 0
 * (absorption of W_UK), low-rank q with q_a_layernorm, kv_a_layernorm, one shared rope key
 * (DeepSeek) and several (MHA2MLA), compared with the float64 reference forward in both forms.
 */
import { describe, expect, it } from 'vitest';
import { forwardMlaSequence } from '../../lib/model/mla-forward.js';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from '../../lib/model/mla-weights.js';
import { sequenceLogits } from '../../lib/runtime/evaluate.js';
import { MlaModel } from '../../lib/runtime/mla-model.js';
import { worstRelativeError } from './fixtures.js';

function randomMla(overrides: Partial<MlaConfig>, seed = 1): MlaCheckpoint {
  let s = seed;
  const rand = (n: number, scale: number): Float32Array =>
    Float32Array.from({ length: n }, () => {
      s = (s * 1103515245 + 12345) % 2147483648;
      return (s / 2147483648 - 0.5) * 2 * scale;
    });
  const ones = (n: number): Float32Array =>
    Float32Array.from({ length: n }, () => 1 + (rand(1, 0.2)[0] ?? 0));
  const config: MlaConfig = {
    dim: 48,
    hiddenDim: 96,
    nLayers: 2,
    nHeads: 6,
    vocabSize: 64,
    seqLen: 40,
    normEps: 1e-5,
    qLoraRank: null,
    kvLoraRank: 24,
    qkNopeHeadDim: 8,
    qkRopeHeadDim: 6,
    vHeadDim: 10,
    ropeHeads: 1,
    ropeTheta: 10000,
    ropeStyle: 'interleaved',
    softmaxScale: 1 / Math.sqrt(14),
    ...overrides,
  };
  const {
    dim,
    hiddenDim,
    nHeads: H,
    kvLoraRank: R,
    qkNopeHeadDim: Dn,
    qkRopeHeadDim: P,
    vHeadDim: Dv,
  } = config;
  const w = 1 / Math.sqrt(dim);
  const layers: MlaLayerWeights[] = Array.from({ length: config.nLayers }, () => ({
    rmsAtt: ones(dim),
    qProj: config.qLoraRank === null ? rand(H * (Dn + P) * dim, w) : null,
    qAProj: config.qLoraRank === null ? null : rand(config.qLoraRank * dim, w),
    qALayernorm: config.qLoraRank === null ? null : ones(config.qLoraRank),
    qBProj:
      config.qLoraRank === null
        ? null
        : rand(H * (Dn + P) * config.qLoraRank, 1 / Math.sqrt(config.qLoraRank)),
    kvAProjWithMqa: rand((R + P * config.ropeHeads) * dim, w),
    kvALayernorm: ones(R),
    kvBProj: rand(H * (Dn + Dv) * R, 1 / Math.sqrt(R)),
    oProj: rand(dim * H * Dv, 1 / Math.sqrt(H * Dv)),
    rmsFfn: ones(dim),
    w1: rand(hiddenDim * dim, w),
    w2: rand(dim * hiddenDim, 1 / Math.sqrt(hiddenDim)),
    w3: rand(hiddenDim * dim, w),
  }));
  return {
    config,
    weights: {
      tokenEmbedding: rand(config.vocabSize * dim, 1),
      layers,
      rmsFinal: ones(dim),
      classifier: rand(config.vocabSize * dim, w),
    },
  };
}

const tokens = Array.from({ length: 33 }, (_, i) => (i * 37 + 5) % 64);

describe('MlaModel on synthetic DeepSeek-layout checkpoints', () => {
  const cases: [string, Partial<MlaConfig>][] = [
    ['full q, Dn > 0, one rope key, latent norm', {}],
    ['low-rank q (q_a_layernorm)', { qLoraRank: 20 }],
    ['MHA2MLA: three rope keys (ropeHeads 3)', { ropeHeads: 3 }],
    ['Dn = 0 with a latent norm', { qkNopeHeadDim: 0, softmaxScale: 1 / Math.sqrt(6) }],
  ];
  for (const [name, overrides] of cases) {
    it(`${name}: equals the float64 reference, absorbed and expanded`, () => {
      const checkpoint = randomMla(overrides);
      const runtime = new MlaModel(checkpoint, { blockSize: 4 });
      const got = sequenceLogits(runtime, tokens);
      // Token by token as well (decode path, several pages of 4 tokens).
      const seq = runtime.createSequence();
      const steps = tokens.map((t) => runtime.forward([{ seqId: seq, tokens: [t] }])[0]![0]!.slice());
      for (const form of ['absorbed', 'expanded'] as const) {
        const reference = forwardMlaSequence(checkpoint.weights, checkpoint.config, tokens, { form });
        expect(worstRelativeError(got, reference)).toBeLessThan(1e-4);
        expect(worstRelativeError(steps, reference)).toBeLessThan(1e-4);
      }
      runtime.dispose();
    });
  }

  it('explicit rope frequencies (shared, per rope head, per layer) and no q_a_layernorm', () => {
    const pairs = 3;
    const shared = Float64Array.from({ length: pairs }, (_, i) => 0.9 / (i + 1));
    const perHead = Float64Array.from({ length: 3 * pairs }, (_, i) => 1.3 / (i + 1.5));
    const variants: MlaCheckpoint[] = [];
    variants.push(randomMla({ ropeInvFreq: shared }));
    variants.push(randomMla({ ropeHeads: 3, ropeInvFreq: perHead }));
    const perLayer = randomMla({ ropeHeads: 3, qLoraRank: 20 }, 5);
    perLayer.weights.layers[0]!.ropeInvFreq = shared;
    perLayer.weights.layers[1]!.ropeInvFreq = perHead;
    perLayer.weights.layers[1]!.qALayernorm = null;
    variants.push(perLayer);
    for (const checkpoint of variants) {
      const runtime = new MlaModel(checkpoint, { blockSize: 8 });
      const got = sequenceLogits(runtime, tokens);
      const seq = runtime.createSequence();
      const steps = tokens.map((t) => runtime.forward([{ seqId: seq, tokens: [t] }])[0]![0]!.slice());
      const reference = forwardMlaSequence(checkpoint.weights, checkpoint.config, tokens, {
        form: 'expanded',
      });
      expect(worstRelativeError(got, reference)).toBeLessThan(1e-4);
      expect(worstRelativeError(steps, reference)).toBeLessThan(1e-4);
    }
  });

  it('reports the cache bytes of its latent rows, summed over layers', () => {
    const checkpoint = randomMla({ ropeHeads: 3 });
    const f32 = new MlaModel(checkpoint);
    expect(f32.kvBytesPerToken).toBe(2 * (24 + 3 * 6) * 4);
    const bf16 = new MlaModel(checkpoint, { cacheDtype: 'bf16' });
    expect(bf16.kvBytesPerToken).toBe(2 * (24 + 3 * 6) * 2);
    const got = sequenceLogits(bf16, tokens);
    const reference = forwardMlaSequence(checkpoint.weights, checkpoint.config, tokens);
    expect(worstRelativeError(got, reference)).toBeLessThan(2e-2);
  });
});
