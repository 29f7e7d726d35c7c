import { afterAll, describe, expect, it } from 'vitest';
import { GqaCache, type GqaCacheDtype, gqaDecode, gqaDecodeSync } from '../../lib/index.js';
import { backendsPerIsa } from '../helpers/backends.js';
import { relativeError } from '../helpers/compare.js';
import { rng } from '../helpers/random.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16 } from '../reference/dtype-codec.js';

const backends = backendsPerIsa();
afterAll(() => {
  for (const b of backends) b.backend.dispose();
});

const rounded = (dtype: GqaCacheDtype, x: number) =>
  dtype === 'f32' ? Math.fround(x) : dtype === 'bf16' ? bf16ToF32(f32ToBf16(x)) : f16ToF32(f32ToF16(x));

/** Float64 GQA attention over per-sequence K/V arrays [L, Hkv, D]. */
function reference(
  ks: Float64Array[],
  vs: Float64Array[],
  q: Float32Array,
  H: number,
  Hkv: number,
  D: number,
  qLen: number,
  scale: number,
) {
  const out = new Float64Array(q.length);
  ks.forEach((k, b) => {
    const len = k.length / (Hkv * D);
    for (let s = 0; s < qLen; s++) {
      const visible = Math.max(0, len - qLen + 1 + s);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / Hkv));
        const qi = ((b * qLen + s) * H + h) * D;
        const sc = Array.from({ length: visible }, (_, j) => {
          let d = 0;
          for (let i = 0; i < D; i++) d += (q[qi + i] as number) * (k[(j * Hkv + g) * D + i] as number);
          return d * scale;
        });
        if (visible === 0) continue;
        const m = Math.max(...sc);
        const w = sc.map((x) => Math.exp(x - m));
        const z = w.reduce((a, c) => a + c, 0);
        for (let j = 0; j < visible; j++) {
          for (let i = 0; i < D; i++)
            out[qi + i] =
              (out[qi + i] as number) +
              ((w[j] as number) / z) * ((vs[b] as Float64Array)[(j * Hkv + g) * D + i] as number);
        }
      }
    }
  });
  return out;
}

describe.each(backends)('gqa_decode on $isa', ({ isa, backend }) => {
  it.each(['f32', 'f16', 'bf16'] as GqaCacheDtype[])(
    'matches the float64 reference with a %s cache',
    async (dtype) => {
      const r = rng(21);
      for (const [H, Hkv, D, qLen, lens] of [
        [8, 4, 8, 1, [13, 0, 40]],
        [6, 6, 48, 2, [33]],
        [12, 3, 16, 3, [2, 70]],
      ] as [number, number, number, number, number[]][]) {
        const cache = new GqaCache({
          numKvHeads: Hkv,
          headDim: D,
          dtype,
          blockSize: 16,
          numBlocks: 2,
          maxBlocks: 64,
        });
        const ids = lens.map(() => cache.createSequence());
        const ks: Float64Array[] = [];
        const vs: Float64Array[] = [];
        lens.forEach((len, b) => {
          const k = Float32Array.from({ length: len * Hkv * D }, () => r.normal());
          const v = Float32Array.from({ length: len * Hkv * D }, () => r.normal());
          // Two appends, as prefill then decode would do.
          const cut = Math.floor(len / 2) * Hkv * D;
          cache.append(ids[b] as number, k.subarray(0, cut), v.subarray(0, cut), backend);
          cache.append(ids[b] as number, k.subarray(cut), v.subarray(cut), backend);
          ks.push(Float64Array.from(k, (x) => rounded(dtype, x)));
          vs.push(Float64Array.from(v, (x) => rounded(dtype, x)));
        });
        const q = Float32Array.from({ length: lens.length * qLen * H * D }, () => r.normal());
        const scale = 1 / Math.sqrt(D);
        const got = await gqaDecode({
          cache: cache.view(ids),
          numHeads: H,
          qLen,
          q,
          softmaxScale: scale,
          backend,
        });
        const sync = gqaDecodeSync({
          cache: cache.view(ids),
          numHeads: H,
          qLen,
          q,
          softmaxScale: scale,
          backend,
        });
        const want = reference(ks, vs, q, H, Hkv, D, qLen, scale);
        expect(relativeError(got.out, want), `${isa} ${dtype} H=${H} Hkv=${Hkv} D=${D}`).toBeLessThan(
          dtype === 'f32' ? 1e-5 : 1e-2,
        );
        expect(Array.from(sync.out)).toEqual(Array.from(got.out));
      }
    },
  );

  it('rejects bad input with typed errors', () => {
    const cache = new GqaCache({ numKvHeads: 2, headDim: 4, blockSize: 4, numBlocks: 1 });
    const id = cache.createSequence();
    expect(() => cache.append(id, new Float32Array(3), new Float32Array(3), backend)).toThrow(
      /k: expected a Float32Array/,
    );
    cache.append(id, new Float32Array(8), new Float32Array(8), backend);
    const view = cache.view([id]);
    expect(() =>
      gqaDecodeSync({ cache: view, numHeads: 3, q: new Float32Array(12), softmaxScale: 1, backend }),
    ).toThrow(/multiple of numKvHeads/);
    expect(() =>
      gqaDecodeSync({ cache: view, numHeads: 2, q: new Float32Array(7), softmaxScale: 1, backend }),
    ).toThrow(/q: expected 8 elements/);
    expect(() =>
      gqaDecodeSync({
        cache: { ...view, seqLens: Int32Array.of(9) },
        numHeads: 2,
        q: new Float32Array(8),
        softmaxScale: 1,
        backend,
      }),
    ).toThrow(/seqLens\[0\]/);
    expect(() => cache.append(id, new Float32Array(8 * 4), new Float32Array(8 * 4), backend)).toThrow(
      /cache is full/,
    );
    expect(cache.length(id)).toBe(1);
  });
});
