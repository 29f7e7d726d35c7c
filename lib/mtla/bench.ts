/**
 * MTLA bench: decode speed and cache size of the merged cache (stride s = 2, 3, 4) against plain
 * MLA (s = 1 rows per token) at the same context, plus the cost of merge-append per token.
 * A program, not a test: call benchMtla() (the CLI can wire it as `latentkv bench --mtla`).
 */
import { type Backend, createBackend } from '../backend.js';
import type { CacheDtype } from '../dtypes.js';
import { mlaDecodeSync } from '../mla/decode.js';
import { LatentCache } from '../mla/latent-cache.js';
import { mtlaAppendSync } from './merge-append.js';

export interface MtlaBenchOptions {
  numHeads?: number;
  kvLoraRank?: number;
  ropeDim?: number;
  /** Context length in tokens; default 4096. */
  tokens?: number;
  strides?: number[];
  dtype?: CacheDtype;
  threads?: number;
  /** Minimum seconds per measurement; default 0.5. */
  seconds?: number;
}

export interface MtlaBenchRow {
  stride: number;
  /** Cache rows the decode reads (ceil(tokens / s)). */
  rows: number;
  cacheBytesPerToken: number;
  cacheMiB: number;
  decodeMs: number;
  /** Plain MLA decode time / this decode time. */
  speedup: number;
  /** merge-append time per token (hyper-network + merge), ms. */
  appendMsPerToken: number;
}

function time(fn: () => void, seconds: number): number {
  fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < seconds * 1000 || n < 3) {
    fn();
    n++;
    now = performance.now();
  }
  return (now - start) / n;
}

function filledCache(
  rows: number,
  R: number,
  P: number,
  dtype: CacheDtype,
): { cache: LatentCache; seq: number } {
  const blockSize = 64;
  const cache = new LatentCache({
    kvLoraRank: R,
    ropeDim: P,
    dtype,
    blockSize,
    numBlocks: Math.max(1, Math.ceil(rows / blockSize)),
  });
  const seq = cache.createSequence();
  cache.allocateSlots(seq, rows);
  // Deterministic small values: for f32 a float pattern, for 16-bit types 0x3c00..0x3cff-ish bits.
  const pages = cache.pages;
  if (dtype === 'f32') {
    const f = new Float32Array(pages.buffer, pages.byteOffset, pages.byteLength / 4);
    for (let i = 0; i < f.length; i++) f[i] = Math.sin(i * 0.37) * 0.5;
  } else {
    const u = new Uint16Array(pages.buffer, pages.byteOffset, pages.byteLength / 2);
    for (let i = 0; i < u.length; i++)
      u[i] = (dtype === 'bf16' ? 0x3e00 : 0x3400) + ((i * 2654435761) % 0xff);
  }
  return { cache, seq };
}

export function benchMtla(options: MtlaBenchOptions = {}): MtlaBenchRow[] {
  const H = options.numHeads ?? 16;
  const R = options.kvLoraRank ?? 512;
  const P = options.ropeDim ?? 64;
  const L = options.tokens ?? 4096;
  const dtype = options.dtype ?? 'bf16';
  const seconds = options.seconds ?? 0.5;
  const backend: Backend = createBackend({ threads: options.threads ?? 0 });
  const qLatent = Float32Array.from({ length: H * R }, (_, i) => Math.cos(i));
  const qRope = Float32Array.from({ length: H * P }, (_, i) => Math.sin(i));
  const out = new Float32Array(H * R);
  const rowsOut: MtlaBenchRow[] = [];
  let base = 0;
  const D = R / 4;
  const hyper = {
    fcC: Float32Array.from({ length: D * R }, (_, i) => Math.sin(i) * 0.05),
    fcP: Float32Array.from({ length: D * R }, (_, i) => Math.cos(i) * 0.05),
  };
  const norm = { weight: new Float32Array(R).fill(1), bias: new Float32Array(R) };
  for (const s of [1, ...(options.strides ?? [2, 3, 4])]) {
    const rows = Math.ceil(L / s);
    const { cache, seq } = filledCache(rows, R, P, dtype);
    const view = cache.view([seq]);
    const decodeMs = time(
      () => mlaDecodeSync({ cache: view, numHeads: H, qLatent, qRope, softmaxScale: 0.1, out, backend }),
      seconds,
    );
    if (s === 1) base = decodeMs;
    // merge-append of one token into the last row (s - 1 of every s tokens merge, 1 opens).
    const latent = Float32Array.from({ length: R }, (_, i) => Math.sin(i * 0.1));
    const kRope = new Float32Array(P);
    const slot = BigInt(Number(view.blockTable[Math.floor((rows - 1) / 64)]) * 64 + ((rows - 1) % 64));
    let n = (rows - 1) * s;
    const appendMs = time(() => {
      mtlaAppendSync({
        cache,
        stride: s,
        latent,
        kRope,
        hyper,
        norm,
        tokenIndex: Int32Array.of(n),
        slotMapping: BigInt64Array.of(slot),
      });
      n = (rows - 1) * s + (((n % s) + 1) % s);
    }, seconds / 2);
    rowsOut.push({
      stride: s,
      rows,
      cacheBytesPerToken: cache.rowBytes / s,
      cacheMiB: (rows * cache.rowBytes) / 2 ** 20,
      decodeMs,
      speedup: base / decodeMs,
      appendMsPerToken: appendMs,
    });
    cache.dispose();
  }
  backend.dispose();
  return rowsOut;
}

export function formatMtlaBench(rows: MtlaBenchRow[]): string {
  const lines = ['stride  rows   B/token  cache MiB  decode ms  speed-up  merge-append ms/token'];
  for (const r of rows) {
    lines.push(
      `${String(r.stride).padStart(6)}  ${String(r.rows).padStart(5)}  ${r.cacheBytesPerToken.toFixed(0).padStart(7)}  ${r.cacheMiB.toFixed(2).padStart(9)}  ${r.decodeMs.toFixed(3).padStart(9)}  ${r.speedup.toFixed(2).padStart(8)}  ${r.appendMsPerToken.toFixed(4).padStart(10)}`,
    );
  }
  return lines.join('\n');
}
