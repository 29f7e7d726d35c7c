/**
 * `latentkv bench`: first measures this machine's ceilings (memory read bandwidth, f32 FMA and
 * bf16 dot-product peaks with all threads), then times each kernel through the public API at
 * the standard shapes and prints time, GFLOP/s, GB/s, the ceiling that binds it and the
 * fraction reached, and the speed-up over the scalar reference and over a composed baseline
 * (lib/cli/composed-baseline.ts). A program that prints numbers, not a test.
 */
import { type Backend, createBackend } from '../backend.js';
import type { CacheDtype } from '../dtypes.js';
import { GqaCache } from '../gqa/gqa-cache.js';
import { gqaDecodeSync } from '../gqa/gqa-decode.js';
import { mlaDecodeSync } from '../mla/decode.js';
import { cacheRowLayout, type PagedCacheView } from '../mla/paged-cache.js';
import { benchPrefill, formatPrefillBench } from '../mla/prefill-bench.js';
import { projectAppendSync } from '../mla/project-append.js';
import { benchMtla, formatMtlaBench } from '../mtla/bench.js';
import type { NativeCeilings } from '../native/binding-types.js';
import { loadCpuBinding } from '../native/load-binding.js';
import { benchTpla, formatTplaBench } from '../tpla/bench.js';
import { intFlag, parseArgs } from './args.js';
import { composedDecode } from './composed-baseline.js';

interface Shape {
  name: string;
  heads: number;
  rank: number;
  rope: number;
  hidden: number;
}

// DESIGN.md's standard shapes: DeepSeek-V3, DeepSeek-V2-Lite and a converted Llama-3-8B.
const SHAPES: Shape[] = [
  { name: 'V3 H=128', heads: 128, rank: 512, rope: 64, hidden: 7168 },
  { name: 'V2-Lite H=16', heads: 16, rank: 512, rope: 64, hidden: 2048 },
  { name: 'Llama3-8B H=32', heads: 32, rank: 512, rope: 64, hidden: 4096 },
];

export interface BenchRow {
  kernel: string;
  shape: string;
  dtype: string;
  batch: number;
  tokens: number;
  ms: number;
  gflops: number;
  gbs: number;
  bound: 'bf16-dot' | 'f32-fma' | 'memory';
  fractionOfCeiling: number;
  speedupVsReference: number | null;
  speedupVsComposed: number | null;
  /** The ceiling %ceil is taken against (GB/s for memory-bound rows, GFLOP/s otherwise). */
  ceiling: number;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

// Swept before every timed run so memory-bound kernels read from DRAM, not from a last-level
// cache still warm from the previous repetition (which would report more than the read ceiling).
// Filled once (so its pages are real, not the shared zero page), then only read: a sweep that
// wrote would leave the caches full of dirty lines whose write-back the timed kernel would pay.
// The work before a kernel in a decode step mostly reads weights and leaves clean lines.
let EVICT: Uint8Array | undefined;
let evictSink = 0;
function evictCaches(): void {
  EVICT ??= new Uint8Array(128 << 20).fill(1);
  for (let i = 0; i < EVICT.length; i += 64) evictSink += EVICT[i] as number;
}

// The kernels' worker threads spin for a moment after each call and then sleep. In a decode
// loop the calls come back to back, so the workers are awake when a kernel starts; after the
// eviction sweep (tens of ms) they would be asleep, and their 15-50 us wake-up would be timed
// as part of the kernel. A tiny call right before the timed one wakes them, as the previous
// kernel of a decode step would.
let wakeWorkers: () => void = () => {};

/** A projectAppendSync call on the shape's weights (all 1.0) for `tokens` tokens of width hiddenSize. */
function appendCall(shape: Shape, tokens: number, hiddenSize: number): (backend: Backend) => void {
  const weight = new Uint16Array((shape.rank + shape.rope) * hiddenSize).fill(0x3c00);
  const hidden = new Float32Array(tokens * hiddenSize).fill(0.01);
  const cache = { ...randomView('bf16', shape, 1, tokens) };
  const slotMapping = BigInt64Array.from({ length: tokens }, (_, t) => BigInt(t));
  const positions = Int32Array.from({ length: tokens }, (_, t) => t);
  return (backend) =>
    projectAppendSync({
      cache,
      hidden,
      hiddenSize,
      weight,
      weightDtype: 'bf16',
      rope: { style: 'interleaved' },
      positions,
      slotMapping,
      backend,
    });
}

function timeMs(fn: () => void, reps: number): number {
  fn();
  const times: number[] = [];
  for (let r = 0; r < reps; r++) {
    evictCaches();
    wakeWorkers();
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  return median(times);
}

/** Pages of small finite values in every dtype (bytes 0..63), with a sane scale for quantized rows. */
function randomView(
  dtype: CacheDtype,
  shape: Shape,
  batch: number,
  length: number,
  blockSize = 64,
): PagedCacheView {
  const layout = cacheRowLayout(dtype, shape.rank, shape.rope, 1);
  const perSeq = Math.max(1, Math.ceil(length / blockSize));
  const numBlocks = perSeq * batch;
  const pages = new Uint8Array(numBlocks * blockSize * layout.rowBytes);
  let s = 12345;
  for (let i = 0; i < pages.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
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

function classify(
  flops: number,
  bytes: number,
  ms: number,
  peakGflops: number,
  peak: 'bf16-dot' | 'f32-fma',
  c: NativeCeilings,
) {
  const tCompute = peakGflops > 0 ? flops / (peakGflops * 1e6) : 0;
  const tMemory = bytes / (c.readGBs * 1e6);
  return tCompute >= tMemory
    ? { bound: peak, fractionOfCeiling: tCompute / ms, ceiling: peakGflops }
    : { bound: 'memory' as const, fractionOfCeiling: tMemory / ms, ceiling: c.readGBs };
}

export async function benchCommand(argv: string[]): Promise<number> {
  const args = parseArgs(argv, {
    quick: 'flag',
    json: 'flag',
    reps: 'value',
    threads: 'value',
    mtla: 'flag',
    tpla: 'flag',
    prefill: 'flag',
  });
  const quick = args.flags.has('quick');
  const json = args.flags.has('json');
  const reps = intFlag(args, 'reps', quick ? 3 : 7, 1);
  const threads = intFlag(args, 'threads', 0, 0);
  const log = (line: string) => {
    if (!json) console.log(line);
  };
  const fast = createBackend({ threads });
  const wake = appendCall(SHAPES[0] as Shape, 1, 64);
  wakeWorkers = () => wake(fast);
  const reference = createBackend({ cpuIsa: 'scalar', threads: 1 });
  const info = fast.info();
  const ceilings = await loadCpuBinding().binding.measureCeilings(info.threads, quick);
  const bf16Peak = info.cpuIsa === 'avx512bf16' ? ceilings.bf16DotGflops : ceilings.f32FmaGflops;
  // The host's memory bandwidth drifts over a run (other machines share it: 42-80 GB/s was seen
  // within minutes), so the memory-bound kernels are rated against a read ceiling measured
  // again right before each of them.
  const readSeen: number[] = [ceilings.readGBs];
  const ceilingsNow = async (): Promise<NativeCeilings> => {
    const now = await loadCpuBinding().binding.measureCeilings(info.threads, true);
    readSeen.push(now.readGBs);
    return { ...ceilings, readGBs: now.readGBs };
  };
  log(
    `latentkv bench: ${info.backend} backend, isa ${info.cpuIsa}, ${info.threads} threads; medians of ${reps} runs`,
  );
  log(
    `ceilings (${ceilings.threads} threads, measured now): memory read ${ceilings.readGBs.toFixed(1)} GB/s, ` +
      `f32 FMA ${ceilings.f32FmaGflops.toFixed(0)} GFLOP/s, bf16 dot ${ceilings.bf16DotGflops.toFixed(0)} GFLOP/s`,
  );
  log(
    'x ref: scalar reference (1 thread) timed on 256 tokens, scaled linearly; x composed: plain TypeScript',
  );
  log('matrix product + softmax + matrix product on an f32 copy of the cache, timed on 1024 tokens, scaled.');
  log('');
  log(
    'kernel          shape           dtype   B      L        ms  GFLOP/s     GB/s  bound     %ceil   x ref  x composed',
  );
  const rows: BenchRow[] = [];
  const print = (r: BenchRow) => {
    rows.push(r);
    log(
      `${r.kernel.padEnd(15)} ${r.shape.padEnd(15)} ${r.dtype.padEnd(6)} ${String(r.batch).padStart(2)} ${String(r.tokens).padStart(6)} ` +
        `${r.ms.toFixed(3).padStart(9)} ${r.gflops.toFixed(1).padStart(8)} ${r.gbs.toFixed(1).padStart(8)}  ${r.bound.padEnd(8)} ` +
        `${(100 * r.fractionOfCeiling).toFixed(0).padStart(5)}% ${r.speedupVsReference?.toFixed(0).padStart(7) ?? '      -'} ${r.speedupVsComposed?.toFixed(0).padStart(11) ?? '          -'}`,
    );
  };

  const lengths = quick ? [4096] : [4096, 32768];
  const batches = quick ? [1] : [1, 8];
  const dtypes: CacheDtype[] = quick ? ['bf16'] : ['f32', 'bf16', 'int8'];
  for (const shape of SHAPES) {
    const composedMs = composedBaselineMs(shape);
    for (const dtype of dtypes) {
      const refMsPerToken = referenceMsPerToken(shape, dtype, reference);
      for (const batch of batches) {
        for (const length of lengths) {
          const view = randomView(dtype, shape, batch, length);
          const qLatent = new Float32Array(batch * shape.heads * shape.rank).fill(0.01);
          const qRope = new Float32Array(batch * shape.heads * shape.rope).fill(0.01);
          const out = new Float32Array(qLatent.length);
          const ms = timeMs(
            () =>
              mlaDecodeSync({
                cache: view,
                numHeads: shape.heads,
                qLatent,
                qRope,
                softmaxScale: 0.07,
                out,
                backend: fast,
              }),
            reps,
          );
          const flops = 2 * batch * shape.heads * length * (2 * shape.rank + shape.rope);
          const bytes = batch * length * cacheRowLayout(dtype, shape.rank, shape.rope, 1).rowBytes;
          const peak = dtype === 'f32' ? 'f32-fma' : 'bf16-dot';
          print({
            kernel: 'mla_decode',
            shape: shape.name,
            dtype,
            batch,
            tokens: length,
            ms,
            gflops: flops / ms / 1e6,
            gbs: bytes / ms / 1e6,
            ...classify(flops, bytes, ms, dtype === 'f32' ? ceilings.f32FmaGflops : bf16Peak, peak, ceilings),
            speedupVsReference: (refMsPerToken * batch * length) / ms,
            speedupVsComposed: (composedMs * batch * length) / ms,
          });
        }
      }
    }
    for (const tokens of quick ? [1] : [1, 64]) {
      const rows2 = shape.rank + shape.rope;
      const run = appendCall(shape, tokens, shape.hidden);
      const near = await ceilingsNow();
      const ms = timeMs(() => run(fast), reps);
      const refMs = timeMs(() => run(reference), 1);
      const flops = 2 * tokens * rows2 * shape.hidden;
      const bytes = 2 * rows2 * shape.hidden + 4 * tokens * shape.hidden;
      print({
        kernel: 'project_append',
        shape: shape.name,
        dtype: 'bf16 w',
        batch: 1,
        tokens,
        ms,
        gflops: flops / ms / 1e6,
        gbs: bytes / ms / 1e6,
        ...classify(flops, bytes, ms, ceilings.f32FmaGflops, 'f32-fma', near),
        speedupVsReference: refMs / ms,
        speedupVsComposed: null,
      });
    }
  }
  // gqa_decode of the unconverted Llama-3-8B layer (32 heads, 8 KV heads, head dim 128): the baseline MLA replaces.
  for (const length of lengths) {
    const cache = new GqaCache({
      numKvHeads: 8,
      headDim: 128,
      dtype: 'bf16',
      blockSize: 64,
      numBlocks: Math.ceil(length / 64),
    });
    const id = cache.createSequence();
    const kv = new Float32Array(length * 8 * 128).fill(0.01);
    cache.append(id, kv, kv, fast);
    const q = new Float32Array(32 * 128).fill(0.01);
    const out = new Float32Array(q.length);
    const view = cache.view([id]);
    const near = await ceilingsNow();
    const ms = timeMs(
      () => gqaDecodeSync({ cache: view, numHeads: 32, q, softmaxScale: 0.088, out, backend: fast }),
      reps,
    );
    const small = new GqaCache({ numKvHeads: 8, headDim: 128, dtype: 'bf16', blockSize: 64, numBlocks: 4 });
    const sid = small.createSequence();
    small.append(sid, kv.subarray(0, 256 * 1024), kv.subarray(0, 256 * 1024), fast);
    const refMs =
      (timeMs(
        () =>
          gqaDecodeSync({
            cache: small.view([sid]),
            numHeads: 32,
            q,
            softmaxScale: 0.088,
            out,
            backend: reference,
          }),
        1,
      ) *
        length) /
      256;
    const flops = 4 * 32 * length * 128;
    const bytes = length * cache.bytesPerToken;
    print({
      kernel: 'gqa_decode',
      shape: 'Llama3-8B GQA',
      dtype: 'bf16',
      batch: 1,
      tokens: length,
      ms,
      gflops: flops / ms / 1e6,
      gbs: bytes / ms / 1e6,
      ...classify(flops, bytes, ms, ceilings.f32FmaGflops, 'f32-fma', near),
      speedupVsReference: refMs / ms,
      speedupVsComposed: null,
    });
  }
  log(
    `memory-bound rows: %ceil of the read ceiling measured just before each row ` +
      `(${Math.min(...readSeen).toFixed(1)}-${Math.max(...readSeen).toFixed(1)} GB/s in this run)`,
  );
  // The extensions, on request: MTLA temporal compression and TPLA sharded decode against plain MLA.
  const extensions: Record<string, unknown> = {};
  if (args.flags.has('mtla')) {
    const mtla = benchMtla({ tokens: quick ? 1024 : 4096 });
    extensions.mtla = mtla;
    log('');
    log('MTLA (H=16, R=512, P=64, bf16): cache and decode time against plain MLA (stride 1)');
    log(formatMtlaBench(mtla));
  }
  if (args.flags.has('tpla')) {
    const tpla = await benchTpla({});
    extensions.tpla = tpla;
    log('');
    log('TPLA (H=16, R=512, P=64): per-shard work and sharded decode against one shard');
    log(formatTplaBench(tpla));
  }
  if (args.flags.has('prefill')) {
    const prefill = benchPrefill(fast, undefined, reps);
    extensions.prefill = prefill;
    log('');
    log(
      'mla_prefill (R=512, P=64, Dn=Dv=128, bf16 cache and kv_b_proj, one sequence): the two forms and auto',
    );
    log(formatPrefillBench(prefill));
  }
  if (json) console.log(JSON.stringify({ backend: info, ceilings, rows, ...extensions }, null, 2));
  if (evictSink < 0) console.log(''); // keeps the eviction sweep from being optimised away
  fast.dispose();
  reference.dispose();
  return 0;
}

function referenceMsPerToken(shape: Shape, dtype: CacheDtype, reference: Backend): number {
  const tokens = 256;
  const view = randomView(dtype, shape, 1, tokens);
  const qLatent = new Float32Array(shape.heads * shape.rank).fill(0.01);
  const qRope = new Float32Array(shape.heads * shape.rope).fill(0.01);
  return (
    timeMs(
      () =>
        mlaDecodeSync({
          cache: view,
          numHeads: shape.heads,
          qLatent,
          qRope,
          softmaxScale: 0.07,
          backend: reference,
        }),
      1,
    ) / tokens
  );
}

function composedBaselineMs(shape: Shape): number {
  const tokens = 1024;
  const latent = new Float32Array(tokens * shape.rank).fill(0.01);
  const rope = new Float32Array(tokens * shape.rope).fill(0.01);
  const qLatent = new Float32Array(shape.heads * shape.rank).fill(0.01);
  const qRope = new Float32Array(shape.heads * shape.rope).fill(0.01);
  const out = new Float32Array(shape.heads * shape.rank);
  return (
    timeMs(
      () => composedDecode(latent, rope, qLatent, qRope, shape.heads, shape.rank, shape.rope, 0.07, out),
      1,
    ) / tokens
  );
}
