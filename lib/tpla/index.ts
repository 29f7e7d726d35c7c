/** TPLA: tensor-parallel latent attention (research/mla-methods.md section 4). */

export { benchTpla, formatTplaBench, type TplaBenchOptions, type TplaBenchRow } from './bench.js';
export {
  createTplaForwardState,
  type TplaForwardState,
  type TplaNormMode,
  type TplaShardPlan,
  type TplaStepMode,
  tplaForwardSequence,
  tplaForwardToken,
} from './forward.js';
export { type TplaQualityRow, tplaQuality } from './quality.js';
export {
  collectLatentMoments,
  type LatentMoments,
  shardAlphas,
  type TplaReparamOptions,
  type TplaReparamResult,
  type TplaTransform,
  tplaReparameterize,
} from './reparam.js';
export {
  type TplaDecodeArgs,
  type TplaDecodeResult,
  type TplaShardAppendArgs,
  TplaShardedCache,
  type TplaShardedCacheOptions,
  tplaDecode,
  tplaDecodeSync,
  valueUpProjection,
} from './sharded-decode.js';
