/** MTLA: temporal compression of the latent cache (stride s), research/mla-methods.md section 5. */

export { benchMtla, formatMtlaBench, type MtlaBenchOptions, type MtlaBenchRow } from './bench.js';
export {
  MtlaDecoder,
  type MtlaDecoderOptions,
  type MtlaLayerConfig,
  type MtlaLayerWeights,
  type MtlaTrainingResult,
  mtlaChunkPe,
  mtlaMaskAllows,
  mtlaTrainingForward,
} from './layer.js';
export {
  type MtlaAppendArgs,
  type MtlaAppendResult,
  type MtlaHyperWeights,
  type MtlaLatentNorm,
  mtlaAppend,
  mtlaAppendSync,
} from './merge-append.js';
export { MtlaCache, type MtlaCacheAppendArgs, type MtlaCacheOptions } from './mtla-cache.js';
