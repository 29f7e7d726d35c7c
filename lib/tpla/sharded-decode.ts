/**
 * TPLA sharded decode on the native kernels. Each shard is what one device holds: a LatentCache
 * of width R/G plus the full rope part, its own mla_decode (its own softmax), its own slice of
 * W_UV. The shard outputs are summed here (in process); across devices the caller all-reduces
 * the per-shard partials this API also returns.
 */
import type { Backend } from '../backend.js';
import { InvalidArgumentError, invalidArgument, UnsupportedError } from '../errors.js';
import { mlaDecode, mlaDecodeSync } from '../mla/decode.js';
import { LatentCache, type LatentCacheOptions } from '../mla/latent-cache.js';
import { cacheRowLayout, type PagedCacheView } from '../mla/paged-cache.js';
import type { RopeConfig } from '../mla/rope.js';
import type { MlaLayerWeights } from '../model/mla-weights.js';
import { linear } from '../runtime/linear.js';
import { finiteNumber, intInRange, objectArg, typedArray } from '../validate.js';

export interface TplaDecodeArgs {
  /** One view per shard (G >= 1), all with the same geometry, rope width and lengths. */
  shards: PagedCacheView[];
  numHeads: number;
  qLen?: number;
  /** [batch, qLen, numHeads, R] absorbed queries over the FULL reparameterised latent (R = G x shard width). */
  qLatent: Float32Array;
  /** [batch, qLen, numHeads, ropeDim], shared by every shard. */
  qRope?: Float32Array;
  softmaxScale: number;
  /** mu_i per shard, multiplying the shard's latent scores (TPLA uses alpha_i); default 1. */
  scoreScales?: readonly number[];
  /** W_UV of the layer: [numHeads, vHeadDim, R] (kv_b_proj's value rows, per head). */
  wUv: Float32Array;
  vHeadDim: number;
  /** One backend per shard (e.g. one thread each) or one for all; default the shared backend. */
  backends?: Backend | readonly Backend[];
}

export interface TplaDecodeResult {
  /** [batch, qLen, numHeads, vHeadDim]: the sum of the partials. */
  out: Float32Array;
  /** Per shard [batch, qLen, numHeads, vHeadDim]: what each device contributes to the all-reduce. */
  partials: Float32Array[];
  /** Per shard [batch, qLen, numHeads, R/G]: the shard's latent attention output. */
  latents: Float32Array[];
}

interface Prepared {
  G: number;
  W: number;
  rows: number;
  H: number;
  qLen: number;
  Dv: number;
  R: number;
  calls: Parameters<typeof mlaDecode>[0][];
  wUv: Float32Array;
}

function prepare(args: TplaDecodeArgs): Prepared {
  const a = objectArg('tplaDecode args', args);
  if (!Array.isArray(a.shards) || a.shards.length < 1)
    throw invalidArgument('shards', 'a non-empty array of cache views', a.shards);
  const shards = a.shards as PagedCacheView[];
  const G = shards.length;
  const first = objectArg('shards[0]', shards[0]);
  const W = intInRange('shards[0].kvLoraRank', first.kvLoraRank, 1);
  const seqLens = first.seqLens;
  if (!(seqLens instanceof Int32Array)) throw invalidArgument('shards[0].seqLens', 'an Int32Array', seqLens);
  for (let i = 1; i < G; i++) {
    const s = objectArg(`shards[${i}]`, shards[i]);
    for (const key of ['kvLoraRank', 'ropeDim', 'ropeHeads'] as const) {
      if (s[key] !== first[key]) {
        throw new InvalidArgumentError(
          `shards[${i}].${key} (${String(s[key])}) differs from shards[0].${key} (${String(first[key])})`,
        );
      }
    }
    const lens = s.seqLens;
    if (
      !(lens instanceof Int32Array) ||
      lens.length !== seqLens.length ||
      lens.some((v, b) => v !== seqLens[b])
    ) {
      throw new InvalidArgumentError(
        `shards[${i}].seqLens differs from shards[0].seqLens: every shard must hold the same tokens`,
      );
    }
  }
  const H = intInRange('numHeads', a.numHeads, 1);
  const qLen = a.qLen === undefined ? 1 : intInRange('qLen', a.qLen, 1);
  const Dv = intInRange('vHeadDim', a.vHeadDim, 1);
  const softmaxScale = finiteNumber('softmaxScale', a.softmaxScale);
  const R = W * G;
  const B = seqLens.length;
  const rows = B * qLen * H;
  const shape = `[batch ${B}, qLen ${qLen}, numHeads ${H}`;
  const qLatent = typedArray(
    'qLatent',
    a.qLatent,
    Float32Array,
    rows * R,
    `${shape}, R ${R} (= ${G} shards x ${W})]`,
  );
  const wUv = typedArray('wUv', a.wUv, Float32Array, H * Dv * R, `[numHeads ${H}, vHeadDim ${Dv}, R ${R}]`);
  let scales: number[] = new Array<number>(G).fill(1);
  if (a.scoreScales !== undefined) {
    if (!Array.isArray(a.scoreScales) || a.scoreScales.length !== G) {
      throw invalidArgument('scoreScales', `an array of ${G} numbers (one per shard)`, a.scoreScales);
    }
    scales = (a.scoreScales as unknown[]).map((v, i) => finiteNumber(`scoreScales[${i}]`, v));
  }
  let backends: (Backend | undefined)[];
  if (Array.isArray(a.backends)) {
    if (a.backends.length !== G)
      throw invalidArgument('backends', `one backend per shard (${G})`, a.backends);
    backends = a.backends as Backend[];
  } else {
    backends = new Array<Backend | undefined>(G).fill(a.backends as Backend | undefined);
  }
  const calls = shards.map((cache, i) => {
    const q = new Float32Array(rows * W);
    const mu = scales[i]!;
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < W; c++) q[r * W + c] = mu * qLatent[r * R + i * W + c]!;
    }
    return {
      cache,
      numHeads: H,
      qLen,
      qLatent: q,
      qRope: a.qRope as Float32Array | undefined,
      softmaxScale,
      backend: backends[i],
    };
  });
  return { G, W, rows, H, qLen, Dv, R, calls, wUv };
}

/**
 * Each shard's W_UV partial through the native GEMM, head by head: the shard's slice of W_UV is
 * columns [iW, iW + W) of the head's [Dv, R] rows, so with the shard's latent placed in those
 * columns of an otherwise zero [tokens, R] input, the whole contiguous rows give the same
 * products (the zeros add nothing) and no slice of the weights has to be copied.
 */
function finish(p: Prepared, latents: Float32Array[]): TplaDecodeResult {
  const { W, rows, H, Dv, R, wUv } = p;
  const T = rows / H; // query tokens (batch x qLen), H head rows each
  const out = new Float32Array(rows * Dv);
  const x = new Float32Array(T * R);
  const y = new Float32Array(T * Dv);
  const partials = latents.map((lat, i) => {
    const part = new Float32Array(rows * Dv);
    for (let h = 0; h < H; h++) {
      x.fill(0);
      for (let t = 0; t < T; t++) {
        const r = t * H + h;
        x.set(lat.subarray(r * W, (r + 1) * W), t * R + i * W);
      }
      linear(y, x, wUv.subarray(h * Dv * R, (h + 1) * Dv * R), T, Dv, R);
      for (let t = 0; t < T; t++) part.set(y.subarray(t * Dv, (t + 1) * Dv), (t * H + h) * Dv);
    }
    for (let k = 0; k < part.length; k++) out[k] = out[k]! + part[k]!;
    return part;
  });
  return { out, partials, latents };
}

/** The G shard decodes run concurrently (each on its backend's threads), then the partials are summed. */
export async function tplaDecode(args: TplaDecodeArgs): Promise<TplaDecodeResult> {
  const p = prepare(args);
  const results = await Promise.all(p.calls.map((c) => mlaDecode(c)));
  return finish(
    p,
    results.map((r) => r.out),
  );
}

export function tplaDecodeSync(args: TplaDecodeArgs): TplaDecodeResult {
  const p = prepare(args);
  return finish(
    p,
    p.calls.map((c) => mlaDecodeSync(c).out),
  );
}

/** W_UV of a layer as [H, Dv, R] (kv_b_proj's value rows), the layout tplaDecode takes. */
export function valueUpProjection(
  kvBProj: Float32Array,
  H: number,
  Dn: number,
  Dv: number,
  R: number,
): Float32Array {
  const out = new Float32Array(H * Dv * R);
  for (let h = 0; h < H; h++)
    out.set(kvBProj.subarray((h * (Dn + Dv) + Dn) * R, (h * (Dn + Dv) + Dn + Dv) * R), h * Dv * R);
  return out;
}

export interface TplaShardedCacheOptions extends Omit<LatentCacheOptions, 'kvLoraRank'> {
  /** R of the (reparameterised) model. */
  kvLoraRank: number;
  /** G, divides kvLoraRank. */
  shards: number;
}

export interface TplaShardAppendArgs {
  /** [numTokens, hiddenSize], already input-normed. */
  hidden: Float32Array;
  hiddenSize: number;
  /** The reparameterised layer (tplaReparameterize). */
  layer: MlaLayerWeights;
  /** The layer's alpha_i (plan.alpha[layer]). */
  alpha: Float64Array | readonly number[];
  rope: RopeConfig;
  /** RMSNorm epsilon of the latent norm; default 1e-6. */
  normEps?: number;
  positions?: Int32Array;
}

/** G shard caches of one layer, each [c_i (R/G) | k_rope], holding the same tokens. */
export class TplaShardedCache {
  readonly shards: LatentCache[];
  readonly kvLoraRank: number;
  readonly #ids = new Map<number, number[]>();
  #next = 0;

  constructor(options: TplaShardedCacheOptions) {
    const o = objectArg('TplaShardedCache options', options);
    const R = intInRange('kvLoraRank', o.kvLoraRank, 1);
    const G = intInRange('shards', o.shards, 1);
    if (R % G !== 0) throw new InvalidArgumentError(`shards (${G}) must divide kvLoraRank (${R})`);
    this.kvLoraRank = R;
    this.shards = Array.from({ length: G }, () => new LatentCache({ ...options, kvLoraRank: R / G }));
  }

  get shardWidth(): number {
    return this.kvLoraRank / this.shards.length;
  }

  createSequence(): number {
    const id = this.#next++;
    this.#ids.set(
      id,
      this.shards.map((c) => c.createSequence()),
    );
    return id;
  }

  #seq(id: number): number[] {
    const s = this.#ids.get(id);
    if (s === undefined)
      throw new InvalidArgumentError(`sequence ${id} does not exist in this TplaShardedCache`);
    return s;
  }

  length(id: number): number {
    return this.shards[0]!.length(this.#seq(id)[0]!);
  }

  /** One view per shard, for tplaDecode. */
  views(ids: readonly number[]): PagedCacheView[] {
    return this.shards.map((c, i) => c.view(ids.map((id) => this.#seq(id)[i]!)));
  }

  /**
   * TPLA decode-time append: shard i projects with its latent rows and normalises locally,
   * c_i / (sqrt(alpha_i / G) RMS_local(c_i)), the estimate of the global RMSNorm that needs no
   * communication. Without a latent norm in the layer the slice is stored as is.
   */
  appendSync(id: number, args: TplaShardAppendArgs): void {
    const seqs = this.#seq(id);
    const a = objectArg('append args', args);
    const G = this.shards.length;
    const W = this.shardWidth;
    const R = this.kvLoraRank;
    const E = intInRange('hiddenSize', a.hiddenSize, 1);
    const layer = args.layer;
    const rows = layer.kvAProjWithMqa.length / E;
    const ropeWidth = rows - R;
    if (!Number.isInteger(rows) || ropeWidth < 0) {
      throw new InvalidArgumentError(
        `layer.kvAProjWithMqa: ${layer.kvAProjWithMqa.length} values do not fit [R ${R} + rope, hiddenSize ${E}]`,
      );
    }
    if (args.alpha.length !== G) throw invalidArgument('alpha', `${G} values (one per shard)`, args.alpha);
    const eps = a.normEps === undefined ? 1e-6 : finiteNumber('normEps', a.normEps);
    const before = this.length(id);
    const done: number[] = [];
    try {
      for (let i = 0; i < G; i++) {
        const w = new Float32Array((W + ropeWidth) * E);
        w.set(layer.kvAProjWithMqa.subarray(i * W * E, (i + 1) * W * E), 0);
        w.set(layer.kvAProjWithMqa.subarray(R * E, rows * E), W * E);
        let normWeight: Float32Array | undefined;
        let normEps = eps;
        if (layer.kvALayernorm !== null) {
          const alpha = args.alpha[i]!;
          normWeight = Float32Array.from(
            layer.kvALayernorm.subarray(i * W, (i + 1) * W),
            (g) => g * Math.sqrt(G / alpha),
          );
          normEps = (eps * G) / alpha;
        }
        this.shards[i]!.appendSync(seqs[i]!, {
          hidden: args.hidden,
          hiddenSize: E,
          weight: w,
          normWeight,
          normEps,
          rope: args.rope,
          positions: args.positions,
        });
        done.push(i);
      }
    } catch (e) {
      for (const i of done) this.shards[i]!.truncate(seqs[i]!, before);
      throw e;
    }
  }

  /**
   * PD separation: copies the rows of a full-width cache filled by the exact prefill (project
   * append with the reparameterised weights, global RMSNorm) into the shards, each taking its
   * latent slice and the whole rope part. Unquantized caches (f32, f16, bf16) of the same dtype.
   */
  importFromFull(id: number, full: LatentCache, fullSeqId: number): void {
    const seqs = this.#seq(id);
    const G = this.shards.length;
    const W = this.shardWidth;
    if (full.kvLoraRank !== this.kvLoraRank) {
      throw new InvalidArgumentError(
        `full.kvLoraRank (${full.kvLoraRank}) differs from this cache's (${this.kvLoraRank})`,
      );
    }
    const s0 = this.shards[0]!;
    if (full.dtype !== s0.dtype || full.ropeDim !== s0.ropeDim || full.ropeHeads !== s0.ropeHeads) {
      throw new InvalidArgumentError('full cache dtype, ropeDim and ropeHeads must match the shards');
    }
    if (full.dtype === 'int8' || full.dtype === 'fp8_e4m3') {
      throw new UnsupportedError(
        `importFromFull copies rows as bytes; a ${full.dtype} cache would need requantizing per shard`,
      );
    }
    const n = full.length(fullSeqId);
    const fullTable = full.blockTable(fullSeqId);
    const el = full.dtype === 'f32' ? 4 : 2;
    const ropeBytes = full.ropeDim * full.ropeHeads * el;
    const fullLayout = cacheRowLayout(full.dtype, full.kvLoraRank, full.ropeDim, full.ropeHeads);
    const shardLayout = cacheRowLayout(s0.dtype, W, s0.ropeDim, s0.ropeHeads);
    const slots = this.shards.map((c, i) => c.allocateSlots(seqs[i]!, n));
    const fb = full.blockSize;
    const fullPages = full.pages;
    for (let i = 0; i < G; i++) {
      const shard = this.shards[i]!;
      const pages = shard.pages;
      for (let t = 0; t < n; t++) {
        const src = ((fullTable[Math.floor(t / fb)] as number) * fb + (t % fb)) * full.rowBytes;
        const dst = Number(slots[i]![t]!) * shard.rowBytes;
        pages.set(fullPages.subarray(src + i * W * el, src + (i + 1) * W * el), dst);
        const ropeSrc = src + fullLayout.ropeOffset;
        pages.set(fullPages.subarray(ropeSrc, ropeSrc + ropeBytes), dst + shardLayout.ropeOffset);
      }
    }
  }

  dispose(): void {
    for (const c of this.shards) c.dispose();
    this.#ids.clear();
  }
}
