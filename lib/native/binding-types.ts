/**
 * @internal The raw shape of the native addon's exports (bindings/). Not public API: the
 * wrappers in lib/ validate every argument before calling these.
 */

export interface NativeBuildInfo {
  version: string;
  apiVersion: number;
  backends: string;
  compiledIsaMask: number;
  supportedIsaMask: number;
}

export interface NativeBackendInfo {
  name: string;
  cpuIsa: number;
  compiledIsaMask: number;
  supportedIsaMask: number;
  threads: number;
  apiVersion: number;
  version: string;
}

/** The fields mla_decode and mla_prefill share: shape, cache geometry, paging, scale. */
export interface NativeAttentionFields {
  batch: number;
  qLen: number;
  numHeads: number;
  kvLoraRank: number;
  ropeDim: number;
  ropeHeads: number;
  blockSize: number;
  numBlocks: number;
  maxBlocksPerSeq: number;
  cacheDtype: number;
  softmaxScale: number;
  cache: ArrayBufferView;
  blockTable: Int32Array;
  seqLens: Int32Array;
}

export interface NativeDecodeParams extends NativeAttentionFields {
  qLatent: Float32Array;
  qRope: Float32Array | undefined;
  out: Float32Array;
  lse: Float32Array | undefined;
}

export interface NativePrefillParams extends NativeAttentionFields {
  qkNopeHeadDim: number;
  vHeadDim: number;
  weightDtype: number;
  form: number;
  qNope: Float32Array;
  qRope: Float32Array | undefined;
  weight: ArrayBufferView;
  out: Float32Array;
  lse: Float32Array | undefined;
}

export interface NativeRopeParams {
  style: number;
  scaling: number;
  theta: number;
  factor: number;
  lowFreqFactor: number;
  highFreqFactor: number;
  originalMaxPosition: number;
  betaFast: number;
  betaSlow: number;
  attentionFactor: number;
  invFreq: Float32Array | undefined;
}

export interface NativeProjectAppendParams {
  numTokens: number;
  hiddenSize: number;
  kvLoraRank: number;
  ropeDim: number;
  ropeHeads: number;
  blockSize: number;
  numBlocks: number;
  cacheDtype: number;
  weightDtype: number;
  normEps: number;
  rope: NativeRopeParams;
  hidden: Float32Array;
  weight: ArrayBufferView;
  normWeight: Float32Array | undefined;
  positions: Int32Array;
  slotMapping: BigInt64Array;
  cache: ArrayBufferView;
}

export interface NativeDecodeLayerParams {
  batch: number;
  qLen: number;
  hiddenSize: number;
  numHeads: number;
  qLoraRank: number;
  qkNopeHeadDim: number;
  vHeadDim: number;
  kvLoraRank: number;
  ropeDim: number;
  ropeHeads: number;
  blockSize: number;
  numBlocks: number;
  maxBlocksPerSeq: number;
  cacheDtype: number;
  weightDtype: number;
  softmaxScale: number;
  normEps: number;
  foldAbsorption: number;
  rope: NativeRopeParams;
  hidden: Float32Array;
  wQ: ArrayBufferView | undefined;
  wQA: ArrayBufferView | undefined;
  qANormWeight: Float32Array | undefined;
  wQB: ArrayBufferView | undefined;
  wKvA: ArrayBufferView;
  kvANormWeight: Float32Array | undefined;
  wKvB: ArrayBufferView;
  wO: ArrayBufferView;
  positions: Int32Array;
  slotMapping: BigInt64Array | undefined;
  cache: ArrayBufferView;
  blockTable: Int32Array;
  seqLens: Int32Array;
  out: Float32Array;
}

export interface NativeGqaDecodeParams {
  batch: number;
  qLen: number;
  numHeads: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  numBlocks: number;
  maxBlocksPerSeq: number;
  cacheDtype: number;
  softmaxScale: number;
  q: Float32Array;
  cache: ArrayBufferView;
  blockTable: Int32Array;
  seqLens: Int32Array;
  out: Float32Array;
  lse: Float32Array | undefined;
}

export interface NativeGqaAppendParams {
  numTokens: number;
  numKvHeads: number;
  headDim: number;
  blockSize: number;
  numBlocks: number;
  cacheDtype: number;
  k: Float32Array;
  v: Float32Array;
  slotMapping: BigInt64Array;
  cache: ArrayBufferView;
}

/** lkv_gemm_params: c = a w^T (+ bias) (+ c when accumulate is 1). */
export interface NativeGemmParams {
  m: number;
  n: number;
  k: number;
  /** 0 f32 (w a Float32Array), 2 bf16 (w a Uint16Array of raw bf16 bits). */
  weightDtype: number;
  accumulate: number;
  a: Float32Array;
  w: ArrayBufferView;
  bias: Float32Array | undefined;
  c: Float32Array;
}

export interface NativeBackend {
  gqaDecode(p: NativeGqaDecodeParams): void;
  gqaDecodeAsync(p: NativeGqaDecodeParams): Promise<void>;
  gqaAppend(p: NativeGqaAppendParams): void;
  info(): NativeBackendInfo;
  mlaDecode(p: NativeDecodeParams): void;
  mlaDecodeAsync(p: NativeDecodeParams): Promise<void>;
  projectAppend(p: NativeProjectAppendParams): void;
  projectAppendAsync(p: NativeProjectAppendParams): Promise<void>;
  mlaDecodeLayer(p: NativeDecodeLayerParams): void;
  mlaDecodeLayerAsync(p: NativeDecodeLayerParams): Promise<void>;
  mlaPrefill(p: NativePrefillParams): void;
  mlaPrefillAsync(p: NativePrefillParams): Promise<void>;
  /** Sync only: the runtime's forward is synchronous and one projection is short. */
  gemm(p: NativeGemmParams): void;
  dispose(): void;
}

export interface NativeCeilings {
  readGBs: number;
  f32FmaGflops: number;
  bf16DotGflops: number;
  threads: number;
}

export interface NativeBinding {
  measureCeilings(threads: number, quick: boolean): Promise<NativeCeilings>;
  NativeBackend: new (name: string, cpuIsa: number, threads: number) => NativeBackend;
  buildInfo(): NativeBuildInfo;
  cacheLayout(
    dtype: number,
    kvLoraRank: number,
    ropeDim: number,
    ropeHeads: number,
  ): {
    rowBytes: number;
    scaleOffset: number;
    ropeOffset: number;
  };
}

/** lkv_mtla_merge_append_params (bindings/mtla.cc). */
export interface NativeMtlaMergeAppendParams {
  numTokens: number;
  kvLoraRank: number;
  ropeDim: number;
  ropeHeads: number;
  hyperDim: number;
  stride: number;
  blockSize: number;
  numBlocks: number;
  cacheDtype: number;
  normEps: number;
  latent: Float32Array;
  kRope: Float32Array | undefined;
  normWeight: Float32Array | undefined;
  normBias: Float32Array | undefined;
  wFcC: Float32Array;
  bFcC: Float32Array | undefined;
  wFcP: Float32Array;
  bFcP: Float32Array | undefined;
  tokenIndex: Int32Array;
  slotMapping: BigInt64Array;
  cache: Uint8Array;
  mergeWeight: Float32Array | undefined;
}

/** Module-level MTLA functions (host-memory kernel, no backend handle). */
export interface NativeMtlaBinding {
  mtlaMergeAppend(p: NativeMtlaMergeAppendParams): void;
  mtlaMergeAppendAsync(p: NativeMtlaMergeAppendParams): Promise<void>;
}
