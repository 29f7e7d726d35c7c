/**
 * mla_prefill bench: the absorbed and non-absorbed forms, and what `auto` picks, for prompt
 * chunks of T new tokens over L cached ones (DeepSeek-V2-Lite head: R 512, P 64, Dn = Dv = 128,
 * bf16 cache and kv_b_proj). A program, not a test: `latentkv bench --prefill`.
 */
import type { Backend } from '../backend.js';
import type { PagedCacheView } from './paged-cache.js';
import { mlaPrefillSync, type PrefillForm } from './prefill.js';

export interface PrefillBenchRow {
  numHeads: number;
  /** New tokens. */
  qLen: number;
  /** Cached tokens, the new ones included. */
  len: number;
  /** Median milliseconds per form. */
  ms: Record<PrefillForm, number>;
}

const R = 512;
const P = 64;
const DN = 128;
const DV = 128;
const BLOCK = 64;

/** Deterministic, non-zero data (zeros can run faster than real data). */
function wave(n: number, seed: number, scale: number): Float32Array {
  return Float32Array.from({ length: n }, (_, i) => Math.sin(i * 12.9898 + seed) * scale);
}

function bf16(a: Float32Array): Uint16Array {
  const bits = new Uint32Array(a.buffer, a.byteOffset, a.length);
  return Uint16Array.from(bits, (b) => b >>> 16);
}

function view(len: number): PagedCacheView {
  const blocks = Math.ceil(len / BLOCK);
  const pages = new Uint8Array(blocks * BLOCK * 2 * (R + P));
  new Uint16Array(pages.buffer).set(bf16(wave(pages.length / 2, 7, 1)));
  return {
    dtype: 'bf16',
    blockSize: BLOCK,
    numBlocks: blocks,
    kvLoraRank: R,
    ropeDim: P,
    ropeHeads: 1,
    pages,
    blockTable: Int32Array.from({ length: blocks }, (_, i) => i),
    maxBlocksPerSeq: blocks,
    seqLens: Int32Array.from([len]),
  };
}

function medianMs(fn: () => void, reps: number): number {
  fn();
  const t: number[] = [];
  for (let i = 0; i < reps; i++) {
    const start = performance.now();
    fn();
    t.push(performance.now() - start);
  }
  t.sort((a, b) => a - b);
  return t[Math.floor(t.length / 2)] as number;
}

export const PREFILL_BENCH_SHAPES: [number, number, number][] = [
  [16, 16, 16],
  [16, 64, 64],
  [16, 64, 1024],
  [16, 256, 256],
  [16, 256, 4096],
  [16, 1024, 1024],
  [128, 64, 64],
  [128, 256, 256],
];

export function benchPrefill(backend: Backend, shapes = PREFILL_BENCH_SHAPES, reps = 3): PrefillBenchRow[] {
  return shapes.map(([numHeads, qLen, len]) => {
    const cache = view(len);
    const qNope = wave(qLen * numHeads * DN, 1, 0.5);
    const qRope = wave(qLen * numHeads * P, 2, 0.5);
    const kvBProj = bf16(wave(numHeads * (DN + DV) * R, 3, 0.05));
    const out = new Float32Array(qLen * numHeads * DV);
    const run = (form: PrefillForm) => () =>
      mlaPrefillSync({
        cache,
        numHeads,
        qLen,
        qkNopeHeadDim: DN,
        vHeadDim: DV,
        qNope,
        qRope,
        kvBProj,
        softmaxScale: 1 / Math.sqrt(DN + P),
        out,
        form,
        backend,
      });
    const ms = {
      absorbed: medianMs(run('absorbed'), reps),
      nonAbsorbed: medianMs(run('nonAbsorbed'), reps),
      auto: medianMs(run('auto'), reps),
    };
    return { numHeads, qLen, len, ms };
  });
}

export function formatPrefillBench(rows: PrefillBenchRow[]): string {
  const lines = ['   H      T      L   absorbed ms   non-absorbed ms   auto ms'];
  for (const r of rows) {
    lines.push(
      `${String(r.numHeads).padStart(4)} ${String(r.qLen).padStart(6)} ${String(r.len).padStart(6)} ` +
        `${r.ms.absorbed.toFixed(1).padStart(13)} ${r.ms.nonAbsorbed.toFixed(1).padStart(17)} ${r.ms.auto.toFixed(1).padStart(9)}`,
    );
  }
  return lines.join('\n');
}
