/**
 * `latentkv bench`: times the kernels through the public API at the standard shapes and prints
 * time, GFLOP/s, GB/s and the speed-up over the scalar reference. A program, not a test.
 */
import { createBackend } from '../backend.js';
import type { CacheDtype } from '../dtypes.js';
import { mlaDecodeSync } from '../mla/decode.js';
import { cacheRowLayout, type PagedCacheView } from '../mla/paged-cache.js';
import { intFlag, parseArgs } from './args.js';

interface Shape {
  name: string;
  heads: number;
  rank: number;
  rope: number;
}

const SHAPES: Shape[] = [
  { name: 'DeepSeek-V3', heads: 128, rank: 512, rope: 64 },
  { name: 'DeepSeek-V2-Lite', heads: 16, rank: 512, rope: 64 },
  { name: 'Llama-3-8B->MLA', heads: 32, rank: 512, rope: 64 },
];

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

function randomView(
  dtype: CacheDtype,
  shape: Shape,
  batch: number,
  length: number,
  blockSize: number,
): PagedCacheView {
  const layout = cacheRowLayout(dtype, shape.rank, shape.rope, 1);
  const perSeq = Math.ceil(length / blockSize);
  const numBlocks = perSeq * batch;
  const pages = new Uint8Array(numBlocks * blockSize * layout.rowBytes);
  // Small random bit patterns that are finite in every dtype: bytes 0..63, and a sane scale.
  let s = 12345;
  for (let i = 0; i < pages.length; i++) {
    s = (s * 1103515245 + 12345) >>> 0;
    pages[i] = (s >>> 24) & 0x3f;
  }
  if (dtype === 'int8' || dtype === 'fp8_e4m3') {
    const dv = new DataView(pages.buffer);
    for (let row = 0; row < numBlocks * blockSize; row++)
      dv.setFloat32(row * layout.rowBytes + layout.scaleOffset, 0.01, true);
  }
  const blockTable = Int32Array.from({ length: numBlocks }, (_, i) => i);
  return {
    dtype,
    blockSize,
    numBlocks,
    kvLoraRank: shape.rank,
    ropeDim: shape.rope,
    ropeHeads: 1,
    pages,
    blockTable,
    maxBlocksPerSeq: perSeq,
    seqLens: new Int32Array(batch).fill(length),
  };
}

export function benchCommand(argv: string[]): number {
  const args = parseArgs(argv, { quick: 'flag', json: 'flag', reps: 'value', threads: 'value' });
  const quick = args.flags.has('quick');
  const reps = intFlag(args, 'reps', quick ? 3 : 5, 1);
  const threads = intFlag(args, 'threads', 0, 0);
  const fast = createBackend({ threads });
  const reference = createBackend({ cpuIsa: 'scalar', threads: 1 });
  const info = fast.info();
  const rows: Record<string, string | number>[] = [];
  const lengths = quick ? [4096] : [4096, 32768];
  const batches = quick ? [1] : [1, 8];
  const dtypes: CacheDtype[] = quick ? ['bf16'] : ['f32', 'bf16', 'int8'];
  const log = (s: string) => {
    if (!args.flags.has('json')) console.log(s);
  };
  log(
    `latentkv bench: backend ${info.backend}, isa ${info.cpuIsa}, ${info.threads} threads; medians of ${reps} runs`,
  );
  log('kernel      shape              dtype  B     L   ms       GFLOP/s  GB/s    x scalar-ref');
  for (const shape of SHAPES) {
    for (const dtype of dtypes) {
      for (const batch of batches) {
        for (const length of lengths) {
          const view = randomView(dtype, shape, batch, length, 64);
          const q = new Float32Array(batch * shape.heads * shape.rank).fill(0.01);
          const qr = new Float32Array(batch * shape.heads * shape.rope).fill(0.01);
          const out = new Float32Array(q.length);
          const run = (backend: typeof fast, v: PagedCacheView) =>
            mlaDecodeSync({
              cache: v,
              numHeads: shape.heads,
              qLatent: q,
              qRope: qr,
              softmaxScale: 0.07,
              out,
              backend,
            });
          run(fast, view);
          const times: number[] = [];
          for (let r = 0; r < reps; r++) {
            const t0 = performance.now();
            run(fast, view);
            times.push(performance.now() - t0);
          }
          const ms = median(times);
          const flops = 2 * batch * shape.heads * length * (2 * shape.rank + shape.rope);
          const bytes = batch * length * cacheRowLayout(dtype, shape.rank, shape.rope, 1).rowBytes;
          // The scalar reference is slow: time it on 256 tokens and scale linearly in L.
          const refLen = 256;
          const refView = randomView(dtype, shape, 1, refLen, 64);
          const rq = q.subarray(0, shape.heads * shape.rank);
          const t0 = performance.now();
          mlaDecodeSync({
            cache: refView,
            numHeads: shape.heads,
            qLatent: rq,
            qRope: qr.subarray(0, shape.heads * shape.rope),
            softmaxScale: 0.07,
            backend: reference,
          });
          const refMs = ((performance.now() - t0) * (batch * length)) / refLen;
          const row = {
            kernel: 'mla_decode',
            shape: shape.name,
            dtype,
            batch,
            length,
            ms,
            gflops: flops / ms / 1e6,
            gbs: bytes / ms / 1e6,
            speedupVsReference: refMs / ms,
          };
          rows.push(row);
          log(
            `mla_decode  ${shape.name.padEnd(18)} ${dtype.padEnd(6)} ${String(batch).padEnd(2)} ${String(length).padStart(6)} ${ms.toFixed(2).padStart(8)} ${row.gflops.toFixed(1).padStart(8)} ${row.gbs.toFixed(2).padStart(6)} ${row.speedupVsReference.toFixed(1).padStart(8)}`,
          );
        }
      }
    }
  }
  if (args.flags.has('json')) console.log(JSON.stringify({ backend: info, rows }, null, 2));
  fast.dispose();
  reference.dispose();
  return 0;
}
