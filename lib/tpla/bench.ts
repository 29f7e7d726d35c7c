/**
 * TPLA bench: per-shard work and the speed-up of sharded decode against single-shard (plain MLA)
 * decode when shards map to threads: G backends of one thread each, the G shard decodes issued
 * concurrently through the async API, against one backend of one thread running the full latent.
 * A program, not a test: call benchTpla().
 */
import { type Backend, createBackend } from '../backend.js';
import { mlaDecode } from '../mla/decode.js';
import { LatentCache } from '../mla/latent-cache.js';
import { tplaDecode } from './sharded-decode.js';

export interface TplaBenchOptions {
  numHeads?: number;
  kvLoraRank?: number;
  ropeDim?: number;
  vHeadDim?: number;
  tokens?: number;
  shards?: number[];
  seconds?: number;
}

export interface TplaBenchRow {
  shards: number;
  /** Cache bytes one shard reads per step (bf16). */
  shardBytes: number;
  /** Attention flops per shard per step (scores + output). */
  shardFlops: number;
  /** One shard's decode alone, one thread, ms. */
  shardMs: number;
  /** The G shard attention decodes issued concurrently on G one-thread backends, ms. */
  attentionMs: number;
  /** Full-latent decode on one thread / attentionMs. */
  speedup: number;
  /** Whole tplaDecode (query slicing, concurrent decodes, W_UV partials on the native GEMM, sum), ms. */
  tplaDecodeMs: number;
}

async function time(fn: () => Promise<unknown>, seconds: number): Promise<number> {
  await fn();
  let n = 0;
  const start = performance.now();
  let now = start;
  while (now - start < seconds * 1000 || n < 3) {
    await fn();
    n++;
    now = performance.now();
  }
  return (now - start) / n;
}

function filled(rows: number, R: number, P: number): LatentCache {
  const cache = new LatentCache({
    kvLoraRank: R,
    ropeDim: P,
    dtype: 'bf16',
    blockSize: 64,
    numBlocks: Math.ceil(rows / 64),
  });
  cache.allocateSlots(cache.createSequence(), rows);
  const u = new Uint16Array(cache.pages.buffer);
  for (let i = 0; i < u.length; i++) u[i] = 0x3e00 + ((i * 2654435761) % 0xff);
  return cache;
}

export async function benchTpla(options: TplaBenchOptions = {}): Promise<TplaBenchRow[]> {
  const H = options.numHeads ?? 16;
  const R = options.kvLoraRank ?? 512;
  const P = options.ropeDim ?? 64;
  const Dv = options.vHeadDim ?? 128;
  const L = options.tokens ?? 4096;
  const seconds = options.seconds ?? 0.5;
  const shardsList = options.shards ?? [1, 2, 4];
  const maxG = Math.max(...shardsList);
  const backends: Backend[] = Array.from({ length: maxG }, () => createBackend({ threads: 1 }));
  const qLatent = Float32Array.from({ length: H * R }, (_, i) => Math.cos(i));
  const qRope = Float32Array.from({ length: H * P }, (_, i) => Math.sin(i));
  const wUv = Float32Array.from({ length: H * Dv * R }, (_, i) => Math.sin(i) * 0.01);
  const full = filled(L, R, P);
  const fullView = full.view([0]);
  const single = await time(
    () =>
      mlaDecode({ cache: fullView, numHeads: H, qLatent, qRope, softmaxScale: 0.1, backend: backends[0] }),
    seconds,
  );
  const rows: TplaBenchRow[] = [];
  for (const G of shardsList) {
    const W = R / G;
    const caches = Array.from({ length: G }, () => filled(L, W, P));
    const views = caches.map((c) => c.view([0]));
    const qShard = qLatent.subarray(0, H * W);
    const shardMs = await time(
      () =>
        mlaDecode({
          cache: views[0]!,
          numHeads: H,
          qLatent: Float32Array.from(qShard),
          qRope,
          softmaxScale: 0.1,
          backend: backends[0],
        }),
      seconds,
    );
    const qs = Array.from({ length: G }, (_, i) => {
      const q = new Float32Array(H * W);
      for (let h = 0; h < H; h++) q.set(qLatent.subarray(h * R + i * W, h * R + (i + 1) * W), h * W);
      return q;
    });
    const attentionMs = await time(
      () =>
        Promise.all(
          views.map((cache, i) =>
            mlaDecode({
              cache,
              numHeads: H,
              qLatent: qs[i]!,
              qRope,
              softmaxScale: 0.1,
              backend: backends[i],
            }),
          ),
        ),
      seconds,
    );
    const tplaDecodeMs = await time(
      () =>
        tplaDecode({
          shards: views,
          numHeads: H,
          qLatent,
          qRope,
          softmaxScale: 0.1,
          wUv,
          vHeadDim: Dv,
          backends: backends.slice(0, G),
        }),
      seconds,
    );
    rows.push({
      shards: G,
      shardBytes: L * (W + P) * 2,
      shardFlops: L * H * (2 * (W + P) + 2 * W),
      shardMs,
      attentionMs,
      speedup: single / attentionMs,
      tplaDecodeMs,
    });
    for (const c of caches) c.dispose();
  }
  full.dispose();
  for (const b of backends) b.dispose();
  return rows;
}

export function formatTplaBench(rows: TplaBenchRow[]): string {
  const lines = [
    'G  shard MiB  shard MFLOP  one shard ms  G shards concurrent ms  speed-up  tplaDecode ms (incl. W_UV)',
  ];
  for (const r of rows) {
    lines.push(
      `${r.shards}  ${(r.shardBytes / 2 ** 20).toFixed(2).padStart(9)}  ${(r.shardFlops / 1e6).toFixed(1).padStart(11)}  ${r.shardMs.toFixed(3).padStart(12)}  ${r.attentionMs.toFixed(3).padStart(22)}  ${r.speedup.toFixed(2).padStart(8)}  ${r.tplaDecodeMs.toFixed(3).padStart(8)}`,
    );
  }
  return lines.join('\n');
}
