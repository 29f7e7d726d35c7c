import { describe, expect, it } from 'vitest';
import { createBackend, InvalidArgumentError, LatentCache, mlaDecode } from '../../lib/index.js';
import { relativeError } from '../helpers/compare.js';
import { rng } from '../helpers/random.js';
import { expectedLayout, readRow } from '../reference/cache-codec.js';
import { referenceDecode, referenceProject, ropeInvFreq } from '../reference/mla-reference.js';

describe('LatentCache', () => {
  it('allocates pages per sequence, frees them, and grows the pool up to maxBlocks', () => {
    const cache = new LatentCache({
      kvLoraRank: 8,
      ropeDim: 2,
      dtype: 'f32',
      blockSize: 4,
      numBlocks: 2,
      maxBlocks: 8,
    });
    const a = cache.createSequence();
    const b = cache.createSequence();
    const slotsA = cache.allocateSlots(a, 6);
    expect(cache.blockTable(a).length).toBe(2);
    expect(Array.from(slotsA, Number).map((s) => Math.floor(s / 4))).toEqual([
      ...Array(4).fill(cache.blockTable(a)[0]),
      ...Array(2).fill(cache.blockTable(a)[1]),
    ]);
    cache.allocateSlots(b, 5); // needs 2 more pages: the pool grows from 2 to 4
    expect(cache.numBlocks).toBe(4);
    expect(cache.pages.byteLength).toBe(4 * 4 * cache.rowBytes);
    const all = [...cache.blockTable(a), ...cache.blockTable(b)];
    expect(new Set(all).size).toBe(all.length);
    cache.freeSequence(a);
    expect(cache.freeBlocks).toBe(8 - 2);
    expect(() => cache.allocateSlots(b, 100)).toThrow(/cache is full/);
    expect(cache.length(b)).toBe(5); // the failed call changed nothing
    cache.truncate(b, 2);
    expect(cache.blockTable(b).length).toBe(1);
    expect(() => cache.length(a)).toThrow(InvalidArgumentError);
  });

  it('appends projected tokens and decodes them like the float64 reference', async () => {
    const backend = createBackend({ threads: 2 });
    const r = rng(77);
    const E = 48;
    const R = 32;
    const P = 8;
    const H = 6;
    const weight = Float32Array.from({ length: (R + P) * E }, () => r.normal() / Math.sqrt(E));
    const normWeight = Float32Array.from({ length: R }, () => 1 + 0.1 * r.normal());
    const cache = new LatentCache({
      kvLoraRank: R,
      ropeDim: P,
      dtype: 'f32',
      blockSize: 16,
      numBlocks: 2,
      maxBlocks: 16,
    });
    const seqs = [cache.createSequence(), cache.createSequence()];
    const lengths = [37, 5];
    const hiddens: Float32Array[] = [];
    for (const [i, id] of seqs.entries()) {
      const hidden = Float32Array.from({ length: (lengths[i] as number) * E }, () => r.normal());
      hiddens.push(hidden);
      // In two chunks, the way prefill then decode would append.
      const split = Math.floor((lengths[i] as number) / 2) * E;
      await cache.append(id, {
        hidden: hidden.subarray(0, split),
        hiddenSize: E,
        weight,
        normWeight,
        rope: { style: 'interleaved' },
        backend,
      });
      await cache.append(id, {
        hidden: hidden.subarray(split),
        hiddenSize: E,
        weight,
        normWeight,
        rope: { style: 'interleaved' },
        backend,
      });
    }
    expect(seqs.map((id) => cache.length(id))).toEqual(lengths);
    // Every row holds the projection of its token at its position.
    const layout = expectedLayout('f32', R, P);
    const view = cache.view(seqs);
    for (const [b, hidden] of hiddens.entries()) {
      for (let j = 0; j < (lengths[b] as number); j++) {
        const page = view.blockTable[b * view.maxBlocksPerSeq + Math.floor(j / 16)] as number;
        const row = readRow(view.pages, (page * 16 + (j % 16)) * layout.rowBytes, layout, 'f32', R, P);
        const want = referenceProject(
          hidden.subarray(j * E, (j + 1) * E),
          weight,
          E,
          R,
          P,
          1,
          normWeight,
          1e-6,
          { style: 'interleaved', invFreq: ropeInvFreq(10000, P) },
          j,
        );
        expect(relativeError([...row.latent, ...row.rope], Array.from(want))).toBeLessThan(1e-5);
      }
    }
    const qLatent = Float32Array.from({ length: 2 * H * R }, () => r.normal());
    const qRope = Float32Array.from({ length: 2 * H * P }, () => r.normal());
    const got = await mlaDecode({
      cache: view,
      numHeads: H,
      qLatent,
      qRope,
      softmaxScale: 0.2,
      lse: true,
      backend,
    });
    const want = referenceDecode({
      batch: 2,
      qLen: 1,
      numHeads: H,
      R,
      P,
      ropeHeads: 1,
      blockSize: 16,
      dtype: 'f32',
      layout,
      pages: view.pages,
      blockTable: view.blockTable,
      maxBlocksPerSeq: view.maxBlocksPerSeq,
      seqLens: view.seqLens,
      qLatent,
      qRope,
      softmaxScale: 0.2,
    });
    expect(relativeError(got.out, want.out)).toBeLessThan(1e-5);
    expect(relativeError(got.lse!, want.lse)).toBeLessThan(1e-5);
    backend.dispose();
  });

  it('refuses to mutate while an async append runs, and rolls back a failed append', async () => {
    const cache = new LatentCache({ kvLoraRank: 8, ropeDim: 2, dtype: 'bf16', blockSize: 4, numBlocks: 4 });
    const id = cache.createSequence();
    const weight = new Float32Array(10 * 4).fill(0.1);
    const pending = cache.append(id, {
      hidden: new Float32Array(8),
      hiddenSize: 4,
      weight,
      rope: { style: 'half-split' },
    });
    expect(() => cache.createSequence()).toThrow(/async append is still running/);
    await pending;
    expect(cache.length(id)).toBe(2);
    expect(() =>
      cache.appendSync(id, {
        hidden: new Float32Array(8),
        hiddenSize: 4,
        weight: new Float32Array(3),
        rope: { style: 'half-split' },
      }),
    ).toThrow(/weight: expected 40 elements/);
    expect(cache.length(id)).toBe(2);
  });
});
