/**
 * mla_prefill: the non-absorbed MLA attention of a prompt chunk over the paged latent cache.
 * The last qLen cached tokens of each sequence are the new ones (append them first); new token t
 * of sequence b sees the first seqLens[b] - qLen + 1 + t cached tokens. For head h,
 * out = softmax(scale * (qNope . W_UK,h c + qRope . kRope)) . (W_UV,h c) with W_UK,h and W_UV,h
 * the head's rows of kv_b_proj: the same result as mlaDecode with qLen new tokens on the
 * absorbed query followed by W_UV, computed in the order that is cheaper for long prompts.
 */
import { type Backend, getBackend } from '../backend.js';
import { DTYPE_CODE } from '../dtypes.js';
import { invalidArgument } from '../errors.js';
import type { NativePrefillParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, typedArray } from '../validate.js';
import {
  attentionCache,
  checkNoAlias,
  lseOutput,
  nativeAttentionFields,
  ropeQuery,
} from './attention-args.js';
import type { PagedCacheView } from './paged-cache.js';

export interface MlaPrefillArgs {
  /** Paged cache, block table and lengths; seqLens[b] counts the qLen new tokens too. */
  cache: PagedCacheView;
  /** H, query heads. */
  numHeads: number;
  /** New tokens per sequence (the prompt chunk). */
  qLen: number;
  /** Dn, qk_nope_head_dim. */
  qkNopeHeadDim: number;
  /** Dv, v_head_dim. */
  vHeadDim: number;
  /** [batch, qLen, numHeads, qkNopeHeadDim] the non-rope part of the queries. */
  qNope: Float32Array;
  /** [batch, qLen, numHeads, ropeDim] rotated rope queries; omit when ropeDim is 0. */
  qRope?: Float32Array;
  /** kv_b_proj [numHeads (Dn + Dv), kvLoraRank]: Float32Array, or Uint16Array of bf16 bits. */
  kvBProj: Float32Array | Uint16Array;
  /** Required: DeepSeek uses mscale^2 / sqrt(qkNopeHeadDim + ropeDim). */
  softmaxScale: number;
  /** Output buffer to reuse, [batch, qLen, numHeads, vHeadDim]; allocated when omitted. */
  out?: Float32Array;
  /** true to return lse [batch, numHeads, qLen], or a buffer to fill. */
  lse?: boolean | Float32Array;
  /**
   * Which form computes it: 'absorbed' (W_UK into the query, mlaDecode's kernel over the new
   * tokens, then W_UV; mlaDecode's precision), 'nonAbsorbed' (K_nope and V up-projected a tile
   * of cached tokens at a time; f32), or 'auto' (default: the backend's choice for the shape).
   */
  form?: PrefillForm;
  backend?: Backend;
}

export const PREFILL_FORMS = ['auto', 'absorbed', 'nonAbsorbed'] as const;
export type PrefillForm = (typeof PREFILL_FORMS)[number];

export interface MlaPrefillResult {
  out: Float32Array;
  lse: Float32Array | undefined;
}

function prepare(args: MlaPrefillArgs): {
  backend: Backend;
  params: NativePrefillParams;
  result: MlaPrefillResult;
} {
  const a = objectArg('mlaPrefill args', args);
  const numHeads = intInRange('numHeads', a.numHeads, 1);
  const qLen = intInRange('qLen', a.qLen, 1);
  const Dn = intInRange('qkNopeHeadDim', a.qkNopeHeadDim, 1);
  const Dv = intInRange('vHeadDim', a.vHeadDim, 1);
  const softmaxScale = finiteNumber('softmaxScale', a.softmaxScale);
  const form = a.form === undefined ? 0 : PREFILL_FORMS.indexOf(a.form as PrefillForm);
  if (form < 0) throw invalidArgument('form', `one of ${PREFILL_FORMS.join(', ')}`, a.form);
  const { cache, batch } = attentionCache(a.cache, numHeads);
  const R = cache.kvLoraRank;
  const P = cache.ropeDim;
  const rows = batch * qLen * numHeads;
  const shape = `[batch ${batch}, qLen ${qLen}, numHeads ${numHeads}`;
  const qNope = typedArray('qNope', a.qNope, Float32Array, rows * Dn, `${shape}, qkNopeHeadDim ${Dn}]`);
  const qRope = ropeQuery(a.qRope, rows, P, shape);
  const wRows = numHeads * (Dn + Dv);
  const wShape = `[numHeads ${numHeads} x (qkNopeHeadDim ${Dn} + vHeadDim ${Dv}) = ${wRows}, kvLoraRank ${R}]`;
  let kvBProj: Float32Array | Uint16Array;
  if (a.kvBProj instanceof Uint16Array) {
    kvBProj = typedArray('kvBProj', a.kvBProj, Uint16Array, wRows * R, `${wShape} of bf16 bits`);
  } else {
    kvBProj = typedArray(
      'kvBProj',
      a.kvBProj,
      Float32Array,
      wRows * R,
      `${wShape} (or a Uint16Array of bf16 bits)`,
    );
  }
  const out =
    a.out === undefined
      ? new Float32Array(rows * Dv)
      : typedArray('out', a.out, Float32Array, rows * Dv, `${shape}, vHeadDim ${Dv}]`);
  const lse = lseOutput(a.lse, rows);
  checkNoAlias(
    [
      ['qNope', qNope],
      ['qRope', qRope],
      ['kvBProj', kvBProj],
    ],
    out,
    lse,
  );
  const backend = (a.backend as Backend | undefined) ?? getBackend();
  const params: NativePrefillParams = {
    ...nativeAttentionFields(cache, batch, qLen, numHeads, softmaxScale),
    qkNopeHeadDim: Dn,
    vHeadDim: Dv,
    weightDtype: DTYPE_CODE[kvBProj instanceof Uint16Array ? 'bf16' : 'f32'],
    form,
    qNope,
    qRope,
    weight: kvBProj,
    out,
    lse,
  };
  return { backend, params, result: { out, lse } };
}

/**
 * Runs the prefill off the event loop.
 * Rejects with InvalidArgumentError on bad input, before any native work starts.
 */
export async function mlaPrefill(args: MlaPrefillArgs): Promise<MlaPrefillResult> {
  const { backend, params, result } = prepare(args);
  await backend._prefill(params);
  return result;
}

/** The same on the calling thread. */
export function mlaPrefillSync(args: MlaPrefillArgs): MlaPrefillResult {
  const { backend, params, result } = prepare(args);
  backend._prefillSync(params);
  return result;
}
