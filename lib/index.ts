/**
 * latentkv: Multi-head Latent Attention for Node.js.
 * @packageDocumentation
 */
export {
  Backend,
  type BackendInfo,
  type BackendOptions,
  createBackend,
  getBackend,
  info,
} from './backend.js';
export { type ResolvedBackendOptions, resolveBackendOptions } from './backend-options.js';
export {
  BACKEND_NAMES,
  type BackendName,
  CACHE_DTYPES,
  type CacheDtype,
  CPU_ISAS,
  type CpuIsa,
  WEIGHT_DTYPES,
  type WeightDtype,
} from './dtypes.js';
export {
  BackendUnavailableError,
  BinaryMismatchError,
  DisposedError,
  type ErrorCode,
  InvalidArgumentError,
  LatentkvError,
  NativeError,
  UnsupportedError,
} from './errors.js';
export {
  GQA_CACHE_DTYPES,
  GqaCache,
  type GqaCacheDtype,
  type GqaCacheOptions,
  type GqaCacheView,
} from './gqa/gqa-cache.js';
export { type GqaDecodeArgs, gqaDecode, gqaDecodeSync } from './gqa/gqa-decode.js';
export { type MlaDecodeArgs, type MlaDecodeResult, mlaDecode, mlaDecodeSync } from './mla/decode.js';
export { type CacheAppendArgs, LatentCache, type LatentCacheOptions } from './mla/latent-cache.js';
export {
  type CacheGeometry,
  type CachePages,
  type CacheRowLayout,
  cacheRowLayout,
  type PagedCacheView,
} from './mla/paged-cache.js';
export { type ProjectAppendArgs, projectAppend, projectAppendSync } from './mla/project-append.js';
export type { RopeConfig, RopeScaling } from './mla/rope.js';
