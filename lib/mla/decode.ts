/**
 * mla_decode: the absorbed MLA attention core over a paged latent cache (FlashMLA's contract).
 * For sequence b, query token s and head h, the query sees the first seqLens[b] - qLen + 1 + s
 * cached tokens; out = softmax(scale * (qLatent . c + qRope . kRope)) . c, lse in natural log.
 */
import { type Backend, getBackend } from '../backend.js';
import { DTYPE_CODE } from '../dtypes.js';
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import type { NativeDecodeParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, typedArray } from '../validate.js';
import { checkView, type PagedCacheView } from './paged-cache.js';

export interface MlaDecodeArgs {
  /** Paged cache plus block table and lengths for the batch (LatentCache.view()). */
  cache: PagedCacheView;
  /** H, query heads. */
  numHeads: number;
  /** Sq, query tokens per sequence (1 for plain decoding); default 1. */
  qLen?: number;
  /** [batch, qLen, numHeads, kvLoraRank] absorbed queries (W_UK already applied). */
  qLatent: Float32Array;
  /** [batch, qLen, numHeads, ropeDim] rotated rope queries; omit when ropeDim is 0. */
  qRope?: Float32Array;
  /** Required: DeepSeek uses mscale^2 / sqrt(qk_nope_head_dim + qk_rope_head_dim). */
  softmaxScale: number;
  /** Output buffer to reuse, [batch, qLen, numHeads, kvLoraRank]; allocated when omitted. */
  out?: Float32Array;
  /** true to return lse [batch, numHeads, qLen], or a buffer to fill. */
  lse?: boolean | Float32Array;
  backend?: Backend;
}

export interface MlaDecodeResult {
  out: Float32Array;
  lse: Float32Array | undefined;
}

function prepare(args: MlaDecodeArgs): {
  backend: Backend;
  params: NativeDecodeParams;
  result: MlaDecodeResult;
} {
  const a = objectArg('mlaDecode args', args);
  const numHeads = intInRange('numHeads', a.numHeads, 1);
  const qLen = a.qLen === undefined ? 1 : intInRange('qLen', a.qLen, 1);
  const softmaxScale = finiteNumber('softmaxScale', a.softmaxScale);
  const cacheArg = objectArg('cache', a.cache);
  if (!(cacheArg.seqLens instanceof Int32Array))
    throw invalidArgument('cache.seqLens', 'an Int32Array', cacheArg.seqLens);
  const batch = cacheArg.seqLens.length;
  if (batch < 1) throw invalidArgument('cache.seqLens', 'at least one sequence', 'an empty array');
  const cache = checkView('cache', cacheArg, batch);
  if (numHeads % cache.ropeHeads !== 0) {
    throw new InvalidArgumentError(
      `numHeads (${numHeads}) must be a multiple of cache.ropeHeads (${cache.ropeHeads})`,
    );
  }
  const R = cache.kvLoraRank;
  const P = cache.ropeDim;
  const rows = batch * qLen * numHeads;
  const shape = `[batch ${batch}, qLen ${qLen}, numHeads ${numHeads}`;
  const qLatent = typedArray('qLatent', a.qLatent, Float32Array, rows * R, `${shape}, kvLoraRank ${R}]`);
  let qRope: Float32Array | undefined;
  if (P > 0) qRope = typedArray('qRope', a.qRope, Float32Array, rows * P, `${shape}, ropeDim ${P}]`);
  else if (a.qRope !== undefined && (a.qRope as Float32Array).length !== 0) {
    throw invalidArgument('qRope', 'nothing (the cache has ropeDim 0)', a.qRope);
  }
  const out =
    a.out === undefined
      ? new Float32Array(rows * R)
      : typedArray('out', a.out, Float32Array, rows * R, `${shape}, kvLoraRank ${R}]`);
  let lse: Float32Array | undefined;
  if (a.lse instanceof Float32Array)
    lse = typedArray('lse', a.lse, Float32Array, rows, '[batch, numHeads, qLen]');
  else if (a.lse === true) lse = new Float32Array(rows);
  else if (a.lse !== undefined && a.lse !== false)
    throw invalidArgument('lse', 'a boolean or a Float32Array', a.lse);
  for (const [name, buf] of [
    ['qLatent', qLatent],
    ['qRope', qRope],
  ] as const) {
    if (buf && (buf.buffer === out.buffer || (lse && buf.buffer === lse.buffer))) {
      throw new InvalidArgumentError(
        `${name} must not share memory with out or lse (outputs would overwrite inputs)`,
      );
    }
  }
  const backend = (a.backend as Backend | undefined) ?? getBackend();
  const params: NativeDecodeParams = {
    batch,
    qLen,
    numHeads,
    kvLoraRank: R,
    ropeDim: P,
    ropeHeads: cache.ropeHeads,
    blockSize: cache.blockSize,
    numBlocks: cache.numBlocks,
    maxBlocksPerSeq: cache.maxBlocksPerSeq,
    cacheDtype: DTYPE_CODE[cache.dtype],
    softmaxScale,
    qLatent,
    qRope,
    cache: cache.pages,
    blockTable: cache.blockTable,
    seqLens: cache.seqLens,
    out,
    lse,
  };
  return { backend, params, result: { out, lse } };
}

/**
 * Runs the decode off the event loop.
 * Rejects with InvalidArgumentError on bad input, before any native work starts.
 */
export async function mlaDecode(args: MlaDecodeArgs): Promise<MlaDecodeResult> {
  const { backend, params, result } = prepare(args);
  await backend._decode(params);
  return result;
}

/** The same on the calling thread: for tight loops where a promise per step costs too much. */
export function mlaDecodeSync(args: MlaDecodeArgs): MlaDecodeResult {
  const { backend, params, result } = prepare(args);
  backend._decodeSync(params);
  return result;
}
