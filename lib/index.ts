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
  type ScoredCandidate,
  type ShapeCandidate,
  type ShapeSearchOptions,
  type ShapeSearchResult,
  searchShape,
  shapeCandidates,
} from './convert/auto-shape.js';
export {
  type CalibrationStats,
  calibrate,
  mergeCalibration,
  sampleSequences,
  splitText,
  textCalibrationSequences,
} from './convert/calibration.js';
export {
  type ConversionReport,
  type ConversionResult,
  type ConvertMethod,
  type ConvertOptions,
  convertToMla,
} from './convert/convert.js';
export {
  isLatentkvCheckpoint,
  readMlaCheckpoint,
  type WriteMlaOptions,
  writeMlaCheckpoint,
} from './convert/export.js';
export type { Decomposition } from './convert/mla-builder.js';
export { ConversionAbortedError, type ConvertProgress } from './convert/progress.js';
export {
  evaluateConverted,
  kvBytesPerToken,
  type QualityResult,
  type ReferenceRun,
  runReference,
  windows,
} from './convert/quality.js';
export type { PartialRopeStrategy, RopeAllocation, RopeFrequencies } from './convert/rope-split.js';
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
export { type HfModel, loadHfModel, parseRopeScaling } from './loaders/hf-model.js';
export {
  f16ToFloat,
  floatToBf16,
  floatToF16,
  openSafetensors,
  parseSafetensors,
  readSafetensors,
  type SafetensorsDtype,
  type SafetensorsFile,
  type SafetensorsHeader,
  type SafetensorsReader,
  type TensorInfo,
  type TensorToWrite,
  tensorToFloat32,
  writeSafetensors,
} from './loaders/safetensors.js';
export { type MlaDecodeArgs, type MlaDecodeResult, mlaDecode, mlaDecodeSync } from './mla/decode.js';
export {
  LAYER_WEIGHT_DTYPES,
  type LayerWeightDtype,
  type MlaDecodeLayerArgs,
  type MlaDecodeLayerResult,
  type MlaLayerConfig,
  type MlaLayerWeights,
  mlaDecodeLayer,
  mlaDecodeLayerSync,
} from './mla/decode-layer.js';
export { type CacheAppendArgs, LatentCache, type LatentCacheOptions } from './mla/latent-cache.js';
export {
  type CacheGeometry,
  type CachePages,
  type CacheRowLayout,
  cacheRowLayout,
  type PagedCacheView,
} from './mla/paged-cache.js';
export {
  type MlaPrefillArgs,
  type MlaPrefillResult,
  mlaPrefill,
  mlaPrefillSync,
  PREFILL_FORMS,
  type PrefillForm,
} from './mla/prefill.js';
export { type ProjectAppendArgs, projectAppend, projectAppendSync } from './mla/project-append.js';
export type { RopeConfig, RopeScaling } from './mla/rope.js';
export { benchMtla, formatMtlaBench, type MtlaBenchOptions, type MtlaBenchRow } from './mtla/bench.js';
export {
  benchDecode,
  type DecodeBenchOptions,
  type DecodeBenchRow,
  formatBenchTable,
} from './runtime/bench.js';
export {
  type EvaluateOptions,
  type EvaluationReport,
  evaluateModel,
  type ModelReport,
  sequenceLogits,
} from './runtime/evaluate.js';
export { type GenerateOptions, type GenerateResult, generate, generateBatch } from './runtime/generate.js';
export { GqaModel, type GqaModelOptions } from './runtime/gqa-model.js';
export {
  type CreateRuntimeOptions,
  createRuntime,
  type LoadedCheckpoint,
  type ResolvedModel,
  resolveModel,
  resolveTokenizer,
} from './runtime/load-model.js';
export { MlaModel, type MlaModelOptions } from './runtime/mla-model.js';
export type { CausalLanguageModel, ForwardOptions, ForwardRequest, RuntimeOptions } from './runtime/model.js';
export { HfTokenizer, loadHfTokenizer } from './tokenizers/hf-tokenizer.js';
export type { TextTokenizer } from './tokenizers/tokenizer.js';
export {
  benchTpla,
  formatTplaBench,
  type TplaBenchOptions,
  type TplaBenchRow,
  type TplaQualityRow,
  tplaQuality,
} from './tpla/index.js';
