/**
 * Decode test inputs: pages written by the TypeScript codec, NaN-poisoned (0xff bytes) wherever
 * no token lives, shuffled page ids, -1 sentinels in the block table past each sequence.
 */
import type { CacheDtype } from '../../lib/dtypes.js';
import type { PagedCacheView } from '../../lib/index.js';
import { expectedLayout, type RowLayout, writeRow } from '../reference/cache-codec.js';
import type { DecodeInputs } from '../reference/mla-reference.js';
import { rng } from './random.js';

export interface DecodeShape {
  qLen: number;
  numHeads: number;
  R: number;
  P: number;
  ropeHeads: number;
  blockSize: number;
  dtype: CacheDtype;
  seqLens: number[];
}

export interface DecodeCase {
  shape: DecodeShape;
  layout: RowLayout;
  view: PagedCacheView;
  qLatent: Float32Array;
  qRope: Float32Array;
  softmaxScale: number;
  inputs: DecodeInputs;
}

export function describeShape(s: DecodeShape): string {
  return `${s.dtype} H=${s.numHeads} R=${s.R} P=${s.P}x${s.ropeHeads} bs=${s.blockSize} Sq=${s.qLen} L=[${s.seqLens}]`;
}

export function makeDecodeCase(shape: DecodeShape, seed: number): DecodeCase {
  const r = rng(seed);
  const { R, P, ropeHeads, blockSize, dtype } = shape;
  const batch = shape.seqLens.length;
  const layout = expectedLayout(dtype, R, P * ropeHeads);
  const perSeq = shape.seqLens.map((l) => Math.ceil(l / blockSize));
  const maxBlocksPerSeq = Math.max(1, ...perSeq) + 1;
  const numBlocks = perSeq.reduce((a, b) => a + b, 0) + 3;
  const pages = new Uint8Array(numBlocks * blockSize * layout.rowBytes).fill(0xff);
  const ids = r.shuffle(Array.from({ length: numBlocks }, (_, i) => i));
  const blockTable = new Int32Array(batch * maxBlocksPerSeq).fill(-1);
  let next = 0;
  shape.seqLens.forEach((len, b) => {
    for (let i = 0; i < (perSeq[b] as number); i++)
      blockTable[b * maxBlocksPerSeq + i] = ids[next++] as number;
    for (let j = 0; j < len; j++) {
      const page = blockTable[b * maxBlocksPerSeq + Math.floor(j / blockSize)] as number;
      const latent = Array.from({ length: R }, () => r.normal());
      const rope = Array.from({ length: P * ropeHeads }, () => r.normal());
      writeRow(pages, (page * blockSize + (j % blockSize)) * layout.rowBytes, layout, dtype, latent, rope);
    }
  });
  const rows = batch * shape.qLen * shape.numHeads;
  const qLatent = Float32Array.from({ length: rows * R }, () => r.normal());
  const qRope = Float32Array.from({ length: rows * P }, () => r.normal());
  const softmaxScale = 1 / Math.sqrt(R + P);
  const seqLens = Int32Array.from(shape.seqLens);
  const view: PagedCacheView = {
    dtype,
    blockSize,
    numBlocks,
    kvLoraRank: R,
    ropeDim: P,
    ropeHeads,
    pages,
    blockTable,
    maxBlocksPerSeq,
    seqLens,
  };
  const inputs: DecodeInputs = {
    batch,
    qLen: shape.qLen,
    numHeads: shape.numHeads,
    R,
    P,
    ropeHeads,
    blockSize,
    dtype,
    layout,
    pages,
    blockTable,
    maxBlocksPerSeq,
    seqLens,
    qLatent,
    qRope,
    softmaxScale,
  };
  return { shape, layout, view, qLatent, qRope, softmaxScale, inputs };
}
