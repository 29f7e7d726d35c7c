/** gqa_decode: plain paged GQA/MHA decode over a GqaCache view. */
import { type Backend, getBackend } from '../backend.js';
import { DTYPE_CODE } from '../dtypes.js';
import { InvalidArgumentError, invalidArgument } from '../errors.js';
import type { NativeGqaDecodeParams } from '../native/binding-types.js';
import { finiteNumber, intInRange, objectArg, oneOf, typedArray } from '../validate.js';
import { GQA_CACHE_DTYPES, type GqaCacheView } from './gqa-cache.js';

export interface GqaDecodeArgs {
  cache: GqaCacheView;
  numHeads: number;
  qLen?: number;
  /** [batch, qLen, numHeads, headDim], RoPE applied. */
  q: Float32Array;
  softmaxScale: number;
  out?: Float32Array;
  lse?: boolean | Float32Array;
  backend?: Backend;
}

function prepare(args: GqaDecodeArgs): {
  backend: Backend;
  params: NativeGqaDecodeParams;
  out: Float32Array;
  lse: Float32Array | undefined;
} {
  const a = objectArg('gqaDecode args', args);
  const c = objectArg('cache', a.cache) as unknown as GqaCacheView;
  const dtype = oneOf('cache.dtype', c.dtype, GQA_CACHE_DTYPES);
  const numKvHeads = intInRange('cache.numKvHeads', c.numKvHeads, 1);
  const headDim = intInRange('cache.headDim', c.headDim, 1);
  const blockSize = intInRange('cache.blockSize', c.blockSize, 1, 256);
  const numBlocks = intInRange('cache.numBlocks', c.numBlocks, 1);
  const maxBlocksPerSeq = intInRange('cache.maxBlocksPerSeq', c.maxBlocksPerSeq, 1);
  if (!(c.seqLens instanceof Int32Array) || c.seqLens.length < 1)
    throw invalidArgument('cache.seqLens', 'a non-empty Int32Array', c.seqLens);
  const batch = c.seqLens.length;
  typedArray(
    'cache.blockTable',
    c.blockTable,
    Int32Array,
    batch * maxBlocksPerSeq,
    '[batch, maxBlocksPerSeq]',
  );
  const bytes = numBlocks * blockSize * 2 * numKvHeads * headDim * (dtype === 'f32' ? 4 : 2);
  if (!(c.pages instanceof Uint8Array) || c.pages.byteLength !== bytes) {
    throw invalidArgument('cache.pages', `a Uint8Array of ${bytes} bytes`, c.pages);
  }
  for (let b = 0; b < batch; b++) {
    const len = c.seqLens[b] as number;
    if (len < 0 || len > maxBlocksPerSeq * blockSize) {
      throw new InvalidArgumentError(
        `cache.seqLens[${b}]: expected 0..${maxBlocksPerSeq * blockSize}, got ${len}`,
      );
    }
    for (let i = 0; i < Math.ceil(len / blockSize); i++) {
      const id = c.blockTable[b * maxBlocksPerSeq + i] as number;
      if (id < 0 || id >= numBlocks)
        throw invalidArgument(`cache.blockTable[${b}][${i}]`, `a page id in 0..${numBlocks - 1}`, id);
    }
  }
  const numHeads = intInRange('numHeads', a.numHeads, 1);
  if (numHeads % numKvHeads !== 0)
    throw new InvalidArgumentError(`numHeads (${numHeads}) must be a multiple of numKvHeads (${numKvHeads})`);
  const qLen = a.qLen === undefined ? 1 : intInRange('qLen', a.qLen, 1);
  const n = batch * qLen * numHeads * headDim;
  const q = typedArray('q', a.q, Float32Array, n, '[batch, qLen, numHeads, headDim]');
  const softmaxScale = finiteNumber('softmaxScale', a.softmaxScale);
  const out =
    a.out === undefined
      ? new Float32Array(n)
      : typedArray('out', a.out, Float32Array, n, '[batch, qLen, numHeads, headDim]');
  if (out.buffer === q.buffer) throw new InvalidArgumentError('q must not share memory with out');
  let lse: Float32Array | undefined;
  if (a.lse instanceof Float32Array)
    lse = typedArray('lse', a.lse, Float32Array, batch * qLen * numHeads, '[batch, numHeads, qLen]');
  else if (a.lse === true) lse = new Float32Array(batch * qLen * numHeads);
  const backend = (a.backend as Backend | undefined) ?? getBackend();
  const params: NativeGqaDecodeParams = {
    batch,
    qLen,
    numHeads,
    numKvHeads,
    headDim,
    blockSize,
    numBlocks,
    maxBlocksPerSeq,
    cacheDtype: DTYPE_CODE[dtype],
    softmaxScale,
    q,
    cache: c.pages,
    blockTable: c.blockTable,
    seqLens: c.seqLens,
    out,
    lse,
  };
  return { backend, params, out, lse };
}

export async function gqaDecode(
  args: GqaDecodeArgs,
): Promise<{ out: Float32Array; lse: Float32Array | undefined }> {
  const { backend, params, out, lse } = prepare(args);
  await backend._gqaDecode(params);
  return { out, lse };
}

export function gqaDecodeSync(args: GqaDecodeArgs): { out: Float32Array; lse: Float32Array | undefined } {
  const { backend, params, out, lse } = prepare(args);
  backend._gqaDecodeSync(params);
  return { out, lse };
}
