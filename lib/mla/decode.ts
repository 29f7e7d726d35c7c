/**
 * mla_decode: the absorbed MLA attention core over a paged latent cache (FlashMLA's contract).
 * For sequence b, query token s and head h, the query sees the first seqLens[b] - qLen + 1 + s
 * cached tokens; out = softmax(scale * (qLatent . c + qRope . kRope)) . c, lse in natural log.
 */
import { type Backend, getBackend } from '../backend.js';
import type { NativeDecodeParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, typedArray } from '../validate.js';
import {
  attentionCache,
  checkNoAlias,
  lseOutput,
  nativeAttentionFields,
  ropeQuery,
} from './attention-args.js';
import type { PagedCacheView } from './paged-cache.js';

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
  const { cache, batch } = attentionCache(a.cache, numHeads);
  const R = cache.kvLoraRank;
  const P = cache.ropeDim;
  const rows = batch * qLen * numHeads;
  const shape = `[batch ${batch}, qLen ${qLen}, numHeads ${numHeads}`;
  const qLatent = typedArray('qLatent', a.qLatent, Float32Array, rows * R, `${shape}, kvLoraRank ${R}]`);
  const qRope = ropeQuery(a.qRope, rows, P, shape);
  const out =
    a.out === undefined
      ? new Float32Array(rows * R)
      : typedArray('out', a.out, Float32Array, rows * R, `${shape}, kvLoraRank ${R}]`);
  const lse = lseOutput(a.lse, rows);
  checkNoAlias(
    [
      ['qLatent', qLatent],
      ['qRope', qRope],
    ],
    out,
    lse,
  );
  const backend = (a.backend as Backend | undefined) ?? getBackend();
  const params: NativeDecodeParams = {
    ...nativeAttentionFields(cache, batch, qLen, numHeads, softmaxScale),
    qLatent,
    qRope,
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
