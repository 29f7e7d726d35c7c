import { describe, expect, it } from 'vitest';
import {
  argmax,
  createRng,
  createSampler,
  logSoftmax,
  sampleToken,
  softmax,
} from '../../lib/model/sampling.js';

const logits = Float32Array.from([1.0, 3.0, 2.5, -1.0, 0.0, 2.9]);

describe('seeded RNG', () => {
  it('is deterministic per seed and uniform-looking in [0, 1)', () => {
    const a = createRng(42);
    const b = createRng(42);
    const c = createRng(43);
    const seqA = Array.from({ length: 1000 }, () => a());
    const seqB = Array.from({ length: 1000 }, () => b());
    const seqC = Array.from({ length: 1000 }, () => c());
    expect(seqA).toEqual(seqB);
    expect(seqA).not.toEqual(seqC);
    expect(seqA.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = seqA.reduce((s, x) => s + x, 0) / seqA.length;
    expect(Math.abs(mean - 0.5)).toBeLessThan(0.05);
  });
});

describe('softmax helpers', () => {
  it('softmax sums to one and logSoftmax is its log', () => {
    const p = softmax(logits);
    expect(p.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 14);
    const lp = logSoftmax(logits);
    p.forEach((x, i) => {
      expect(Math.log(x)).toBeCloseTo(lp[i]!, 12);
    });
  });

  it('is stable for huge logits', () => {
    const p = softmax([1000, 1001, 999]);
    expect(p.every(Number.isFinite)).toBe(true);
    expect(argmax(p)).toBe(1);
    expect(logSoftmax([1e30, 0])[1]).toBe(-1e30);
  });

  it('argmax takes the first of equal maxima', () => {
    expect(argmax([0, 5, 5, 1])).toBe(1);
  });
});

describe('sampleToken', () => {
  it('is greedy at temperature 0', () => {
    expect(sampleToken(logits, { temperature: 0 })).toBe(1);
  });

  it('the same seed gives the same tokens, another seed other tokens', () => {
    const draw = (seed: number): number[] => {
      const sample = createSampler({ temperature: 1, seed });
      return Array.from({ length: 50 }, () => sample(logits));
    };
    expect(draw(7)).toEqual(draw(7));
    expect(draw(7)).not.toEqual(draw(8));
  });

  it('top-k 1 and a tiny top-p are greedy', () => {
    const rng = createRng(1);
    for (let i = 0; i < 20; i++) {
      expect(sampleToken(logits, { temperature: 1.5, topK: 1, rng })).toBe(1);
      expect(sampleToken(logits, { temperature: 1.5, topP: 1e-6, rng })).toBe(1);
    }
  });

  it('top-k and top-p only ever return kept tokens', () => {
    const rng = createRng(3);
    const topK = new Set(Array.from({ length: 500 }, () => sampleToken(logits, { topK: 3, rng })));
    expect([...topK].sort()).toEqual([1, 2, 5]);
    // probabilities: 1 -> 0.33, 5 -> 0.30, 2 -> 0.20, ...: top-p 0.6 keeps {1, 5}
    const topP = new Set(Array.from({ length: 500 }, () => sampleToken(logits, { topP: 0.6, rng })));
    expect([...topP].sort()).toEqual([1, 5]);
  });

  it('draws with the softmax frequencies', () => {
    const rng = createRng(2024);
    const counts = new Array<number>(logits.length).fill(0);
    const n = 20000;
    for (let i = 0; i < n; i++) counts[sampleToken(logits, { rng })]!++;
    const p = softmax(logits);
    counts.forEach((c, i) => {
      expect(Math.abs(c / n - p[i]!)).toBeLessThan(0.015);
    });
  });

  it('rejects bad options', () => {
    expect(() => sampleToken(logits, { temperature: -1 })).toThrow(RangeError);
    expect(() => sampleToken(logits, { topK: 1.5, rng: createRng(0) })).toThrow(/topK/);
    expect(() => sampleToken(logits, { topP: 0, rng: createRng(0) })).toThrow(/topP/);
    expect(() => sampleToken(logits, { temperature: 1 })).toThrow(/rng/);
  });
});
