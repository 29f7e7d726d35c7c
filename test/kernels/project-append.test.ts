import { afterAll, describe, expect, it } from 'vitest';
import type { CacheDtype } from '../../lib/dtypes.js';
import { projectAppend, projectAppendSync } from '../../lib/index.js';
import { backendsPerIsa } from '../helpers/backends.js';
import { rng } from '../helpers/random.js';
import { expectedLayout, readRow } from '../reference/cache-codec.js';
import { f32ToBf16 } from '../reference/dtype-codec.js';
import { referenceProject, ropeInvFreq } from '../reference/mla-reference.js';

const backends = backendsPerIsa();
afterAll(() => {
  for (const b of backends) b.backend.dispose();
});

// Largest difference two correct kernels may show after the cache's rounding, relative to max|ref|.
const tolerance: Record<CacheDtype, number> = {
  f32: 1e-5,
  f16: 2e-3,
  bf16: 1e-2,
  int8: 1.5 / 127,
  fp8_e4m3: 0.07,
};

interface Shape {
  T: number;
  E: number;
  R: number;
  P: number;
  ropeHeads: number;
  norm: boolean;
  style: 'interleaved' | 'half-split';
  weightDtype: 'f32' | 'bf16';
}

const shapes: Shape[] = [
  { T: 5, E: 96, R: 64, P: 16, ropeHeads: 1, norm: true, style: 'interleaved', weightDtype: 'f32' },
  { T: 7, E: 33, R: 17, P: 6, ropeHeads: 3, norm: false, style: 'half-split', weightDtype: 'f32' },
  { T: 3, E: 64, R: 32, P: 8, ropeHeads: 1, norm: true, style: 'half-split', weightDtype: 'bf16' },
];

describe.each(backends)('mla_project_append on $isa', ({ isa, backend }) => {
  it.each(['f32', 'f16', 'bf16', 'int8', 'fp8_e4m3'] as CacheDtype[])(
    'matches the float64 reference into a %s cache',
    async (dtype) => {
      let seed = 40;
      for (const s of shapes) {
        const r = rng(seed++);
        const rows = s.R + s.P * s.ropeHeads;
        const hidden = Float32Array.from({ length: s.T * s.E }, () => r.normal());
        const w32 = Float32Array.from({ length: rows * s.E }, () => r.normal() / Math.sqrt(s.E));
        const wBits = Uint16Array.from(w32, (v) => f32ToBf16(v));
        const wEffective =
          s.weightDtype === 'f32'
            ? w32
            : Float32Array.from(
                wBits,
                (h) => new Float32Array(new Uint32Array([h << 16]).buffer)[0] as number,
              );
        const normWeight = s.norm
          ? Float32Array.from({ length: s.R }, () => 1 + 0.1 * r.normal())
          : undefined;
        const blockSize = 4;
        const numBlocks = Math.ceil(s.T / blockSize) + 2;
        const layout = expectedLayout(dtype, s.R, s.P * s.ropeHeads);
        const pages = new Uint8Array(numBlocks * blockSize * layout.rowBytes).fill(0xab);
        const slots = r.shuffle(Array.from({ length: numBlocks * blockSize }, (_, i) => i)).slice(0, s.T);
        slots[1] = -1; // padding token: skipped
        const positions = Int32Array.from({ length: s.T }, () => r.int(5000));
        const cache = {
          dtype,
          blockSize,
          numBlocks,
          kvLoraRank: s.R,
          ropeDim: s.P,
          ropeHeads: s.ropeHeads,
          pages,
        };
        const hiddenBefore = hidden.slice();
        await projectAppend({
          cache,
          hidden,
          hiddenSize: s.E,
          weight: s.weightDtype === 'f32' ? w32 : wBits,
          weightDtype: s.weightDtype,
          normWeight,
          rope: { style: s.style, theta: 10000 },
          positions,
          slotMapping: Int32Array.from(slots),
          backend,
        });
        expect(hidden).toEqual(hiddenBefore);
        const rope = { style: s.style, invFreq: ropeInvFreq(10000, s.P) };
        for (let t = 0; t < s.T; t++) {
          const slot = slots[t] as number;
          if (slot < 0) continue;
          const want = referenceProject(
            hidden.subarray(t * s.E, (t + 1) * s.E),
            wEffective,
            s.E,
            s.R,
            s.P,
            s.ropeHeads,
            normWeight,
            1e-6,
            rope,
            positions[t] as number,
          );
          const got = readRow(pages, slot * layout.rowBytes, layout, dtype, s.R, s.P * s.ropeHeads);
          const scale = Math.max(...Array.from(want.subarray(0, s.R), Math.abs));
          let maxDiff = 0;
          for (let i = 0; i < s.R; i++)
            maxDiff = Math.max(maxDiff, Math.abs((got.latent[i] as number) - (want[i] as number)));
          expect(maxDiff / scale, `${isa} ${dtype} latent t=${t}`).toBeLessThan(tolerance[dtype]);
          const ropeTol = dtype === 'f32' ? 1e-5 : dtype === 'f16' ? 2e-3 : 1e-2;
          for (let i = 0; i < s.P * s.ropeHeads; i++) {
            const w = want[s.R + i] as number;
            expect(
              Math.abs((got.rope[i] as number) - w),
              `${isa} ${dtype} rope t=${t} i=${i}`,
            ).toBeLessThanOrEqual(ropeTol * Math.max(1, Math.abs(w)));
          }
        }
        // Rows that no token maps to keep their bytes.
        const written = new Set(slots.filter((x) => x >= 0));
        for (let row = 0; row < numBlocks * blockSize; row++) {
          if (written.has(row)) continue;
          expect(
            pages.subarray(row * layout.rowBytes, (row + 1) * layout.rowBytes).every((v) => v === 0xab),
          ).toBe(true);
        }
      }
    },
  );

  it('sync variant writes the same bytes', async () => {
    const r = rng(3);
    const E = 32;
    const R = 16;
    const P = 4;
    const hidden = Float32Array.from({ length: 3 * E }, () => r.normal());
    const weight = Float32Array.from({ length: (R + P) * E }, () => r.normal());
    const mk = () => ({
      dtype: 'bf16' as const,
      blockSize: 4,
      numBlocks: 2,
      kvLoraRank: R,
      ropeDim: P,
      ropeHeads: 1,
      pages: new Uint8Array(8 * 2 * (R + P)),
    });
    const a = mk();
    const b = mk();
    const common = {
      hidden,
      hiddenSize: E,
      weight,
      rope: { style: 'interleaved' as const },
      positions: Int32Array.of(0, 1, 2),
      slotMapping: Int32Array.of(0, 1, 2),
      backend,
    };
    await projectAppend({ ...common, cache: a });
    projectAppendSync({ ...common, cache: b });
    expect(b.pages).toEqual(a.pages);
  });
});
