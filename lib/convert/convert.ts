/**
 * convertToMla: a Llama-family checkpoint (MHA or GQA) to an MLA model in the DeepSeek layout,
 * by TransMLA (KV-head merge, RoRoPE + FreqFold, BKV, joint PCA, query mapping, optional low-rank q)
 * or by the MHA2MLA initialisation (partial RoPE, SVD joint/split), with latentkv's options on top
 * (attention-aware decomposition, energy allocation of the rope components, per-pair frequency
 * table). Pure computation on in-memory weights; writing files is export.ts.
 */
import { principalComponents, psdFactor } from '../linalg/svd.js';
import type { LlamaCheckpoint, LlamaConfig, LlamaLayerWeights } from '../model/llama-weights.js';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from '../model/mla-weights.js';
import { type CalibrationStats, calibrate, type LayerCalibration } from './calibration.js';
import { assembleLayer, type Decomposition, type Dims, decompose, type LayerSource } from './mla-builder.js';
import { type ProgressCallback, throwIfAborted } from './progress.js';
import {
  mha2mlaRopeStage,
  type PartialRopeStrategy,
  partialRopePairs,
  type RopeAllocation,
  type RopeFrequencies,
  transMlaKeptPerGroup,
  transMlaRopeStage,
} from './rope-split.js';

export type ConvertMethod = 'transmla' | 'mha2mla';

export interface CalibrationInput {
  /** Token sequences (BOS first) to run the original model over. */
  tokens?: readonly (readonly number[])[];
  /** Statistics already collected (calibrate() or sampleSequences()); reused as is. */
  stats?: CalibrationStats;
}

export interface ConvertOptions {
  /** Default 'transmla'. */
  method?: ConvertMethod;
  /**
   * Cache size as a fraction of the original's 2*g*headDim values per token per layer (e.g. 0.3125).
   * Ignored where kvLoraRank is given. Default 0.3125 when neither is given.
   */
  kvBudget?: number;
  /** Latent width R. */
  kvLoraRank?: number;
  /** TransMLA: total rope dims d_R (qk_rope_head_dim). MHA2MLA: rope dims per KV head (2r). */
  ropeDim?: number;
  /** TransMLA FreqFold (frequencies per PCA group). Default 2 * hd/d_R where valid. */
  freqfold?: number;
  /** TransMLA: 'uniform' (official) or 'energy' (latentkv; implies a frequency table). */
  allocation?: RopeAllocation;
  /** TransMLA 'rotation' allocation: distances (tokens) over which rotation cost is averaged; default 32. */
  ropeContext?: number;
  /** TransMLA: 'deepseek' (official, plain DeepSeek layout) or 'weighted' (latentkv frequency table). */
  frequencies?: RopeFrequencies;
  /** Default 'pca' for TransMLA, 'svd-joint' for MHA2MLA. */
  decomposition?: Decomposition;
  /** BKV before 'pca'; default true (TransMLA's default). */
  bkv?: boolean;
  /** MHA2MLA partial-RoPE strategy; default '2-norm'. */
  partialRope?: PartialRopeStrategy;
  /** Low-rank query latent width (q_lora_rank); default none. */
  qLoraRank?: number | null;
  calibration?: CalibrationInput;
  onProgress?: ProgressCallback;
  signal?: AbortSignal;
}

export interface LayerReport {
  layer: number;
  /** BKV ratio. */
  alpha: number;
  /** Share of the [K_nope ; V] second moment the latent keeps ('pca'/'attention'). */
  explained: number | null;
  /** Share of the key energy that keeps RoPE (TransMLA). */
  ropeEnergy: number;
}

export interface ConversionReport {
  method: ConvertMethod;
  decomposition: Decomposition;
  kvLoraRank: number;
  /** qk_rope_head_dim. */
  ropeDim: number;
  ropeHeads: number;
  freqfold: number | null;
  allocation: RopeAllocation | null;
  frequencies: RopeFrequencies | 'original' | null;
  partialRope: PartialRopeStrategy | null;
  qLoraRank: number | null;
  bkv: boolean;
  /** Cached values per token per layer, converted and original. */
  cacheValues: number;
  originalCacheValues: number;
  /** cacheValues / originalCacheValues. */
  kvRatio: number;
  calibrationTokens: number;
  layers: LayerReport[];
  seconds: number;
}

export interface ConversionResult extends MlaCheckpoint {
  report: ConversionReport;
}

/** Resolved shape of a conversion. */
export interface ConversionShape {
  kvLoraRank: number;
  ropeDim: number;
  freqfold: number | null;
}

/** Values per token per layer of the original GQA/MHA cache. */
export function originalCacheValues(config: LlamaConfig): number {
  return 2 * config.nKvHeads * config.headDim;
}

function validFreqfolds(hd: number, g: number, ropeDim: number): number[] {
  const out: number[] = [];
  for (let ff = 1; ff <= hd / 2; ff++) {
    if ((hd / 2) % ff !== 0) continue;
    const kept = (ropeDim * ff) / hd;
    if (Number.isInteger(kept) && kept >= 1 && kept <= g * ff) out.push(ff);
  }
  return out;
}

/** The official default FreqFold: twice the collapse hd/d_R (LLaMA-3's 4 for 64 of 128), where valid. */
export function defaultFreqfold(hd: number, g: number, ropeDim: number): number {
  const valid = validFreqfolds(hd, g, ropeDim);
  if (valid.length === 0) throw new RangeError(`no FreqFold fits rope dim ${ropeDim} with head dim ${hd}`);
  const target = (2 * hd) / ropeDim;
  return valid.find((ff) => ff >= target) ?? valid[valid.length - 1]!;
}

/** Total cache values for a budget fraction. */
export function budgetValues(config: LlamaConfig, kvBudget: number): number {
  if (!(kvBudget > 0 && kvBudget <= 1)) throw new RangeError(`kvBudget must be in (0, 1], got ${kvBudget}`);
  return Math.max(2, Math.round(kvBudget * originalCacheValues(config)));
}

/** TransMLA (R, d_R, ff) for the options: explicit values win, then the budget. */
export function resolveTransMlaShape(config: LlamaConfig, options: ConvertOptions): ConversionShape {
  const { headDim: hd, nKvHeads: g } = config;
  const maxNope = 2 * g * hd;
  let ropeDim = options.ropeDim;
  let rank = options.kvLoraRank;
  const allocation = options.allocation ?? 'uniform';
  if (ropeDim === undefined && allocation !== 'uniform') {
    // latentkv allocations: half of the budget to RoPE (small heads need it, see docs/quality.md).
    const total = rank === undefined ? budgetValues(config, options.kvBudget ?? 0.3125) : 2 * rank;
    ropeDim = Math.max(2, 2 * Math.round(total / 4));
  }
  if (ropeDim === undefined) {
    const total = rank === undefined ? budgetValues(config, options.kvBudget ?? 0.3125) : rank * 1.5;
    // Official proportion: 64 rope dims of a 128 head (hd/2), smaller while it would exceed a third.
    ropeDim = hd / 2;
    while (ropeDim > 2 && (ropeDim > total / 3 || validFreqfolds(hd, g, ropeDim).length === 0)) ropeDim /= 2;
    ropeDim = Math.max(2, 2 * Math.round(ropeDim / 2));
    while (validFreqfolds(hd, g, ropeDim).length === 0 && ropeDim > 2) ropeDim -= 2;
  }
  if (rank === undefined) rank = budgetValues(config, options.kvBudget ?? 0.3125) - ropeDim;
  if (!(Number.isInteger(rank) && rank >= 1 && rank <= maxNope - ropeDim)) {
    throw new RangeError(
      `kv latent rank ${rank} (budget minus ${ropeDim} rope dims) must be an integer in [1, ${maxNope - ropeDim}]`,
    );
  }
  if (allocation !== 'uniform') return { kvLoraRank: rank, ropeDim, freqfold: options.freqfold ?? 1 };
  const freqfold = options.freqfold ?? defaultFreqfold(hd, g, ropeDim);
  transMlaKeptPerGroup(hd, g, ropeDim, freqfold);
  return { kvLoraRank: rank, ropeDim, freqfold };
}

/** MHA2MLA (R, d_r per KV head). Default d_r = 2 * max(1, round(hd/16)) pairs (the paper's r = hd/16). */
export function resolveMha2MlaShape(config: LlamaConfig, options: ConvertOptions): ConversionShape {
  const { headDim: hd, nKvHeads: g } = config;
  const total = options.kvLoraRank === undefined ? budgetValues(config, options.kvBudget ?? 0.3125) : null;
  let ropeDim = options.ropeDim ?? 2 * Math.max(1, Math.round(hd / 16));
  if (total !== null && options.ropeDim === undefined) {
    while (ropeDim > 2 && total - g * ropeDim < g) ropeDim -= 2;
  }
  if (!(Number.isInteger(ropeDim) && ropeDim >= 2 && ropeDim % 2 === 0 && ropeDim <= hd)) {
    throw new RangeError(`MHA2MLA rope dims per head ${ropeDim} must be even and in [2, ${hd}]`);
  }
  const rank = options.kvLoraRank ?? total! - g * ropeDim;
  const maxRank = g * (hd - ropeDim) + g * hd;
  if (!(Number.isInteger(rank) && rank >= 1 && rank <= maxRank)) {
    throw new RangeError(
      `MHA2MLA cannot fit this budget: ${g} KV heads x ${ropeDim} rope dims leave a latent rank of ${rank} (needs [1, ${maxRank}])`,
    );
  }
  return { kvLoraRank: rank, ropeDim, freqfold: null };
}

/** Per-layer factor L (C = L L^T) of a calibration's Gram matrix, cached so that budgets share it. */
const factorCache = new WeakMap<LayerCalibration, Float64Array>();
function gramFactor(calib: LayerCalibration, E: number): Float64Array {
  let f = factorCache.get(calib);
  if (f === undefined) {
    f = psdFactor(calib.gram, E);
    factorCache.set(calib, f);
  }
  return f;
}

/** Interleaved-layout q/k/v/o of one layer (half-split rows permuted per head). */
function layerSource(layer: LlamaLayerWeights, config: LlamaConfig, index: number): LayerSource {
  if (layer.bq !== undefined || layer.bk !== undefined || layer.bv !== undefined) {
    throw new RangeError(`layer ${index} has q/k/v biases; this converter handles bias-free models only`);
  }
  if (config.ropeStyle === 'interleaved') return { wq: layer.wq, wk: layer.wk, wv: layer.wv, wo: layer.wo };
  const { headDim: hd, dim: E } = config;
  const permute = (m: Float32Array, heads: number): Float32Array => {
    const out = new Float32Array(m.length);
    for (let h = 0; h < heads; h++) {
      for (let j = 0; j < hd / 2; j++) {
        out.set(m.subarray((h * hd + j) * E, (h * hd + j + 1) * E), (h * hd + 2 * j) * E);
        out.set(
          m.subarray((h * hd + j + hd / 2) * E, (h * hd + j + hd / 2 + 1) * E),
          (h * hd + 2 * j + 1) * E,
        );
      }
    }
    return out;
  };
  return {
    wq: permute(layer.wq, config.nHeads),
    wk: permute(layer.wk, config.nKvHeads),
    wv: layer.wv,
    wo: layer.wo,
  };
}

/**
 * If a shared table is theta'^(-2p/P) for some theta', the plain DeepSeek layout can carry it as
 * rope_theta; returns that theta', else null.
 */
export function geometricTheta(table: Float64Array, ropeDim: number): number | null {
  const pairs = ropeDim / 2;
  if (table.length !== pairs || Math.abs(table[0]! - 1) > 1e-12) return null;
  if (pairs === 1) return 10000;
  const theta = table[1]! ** -pairs;
  for (let p = 0; p < pairs; p++) {
    if (Math.abs(theta ** ((-2 * p) / ropeDim) / table[p]! - 1) > 1e-9) return null;
  }
  return theta;
}

function sameArray(a: Float64Array, b: Float64Array): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

const yieldToEventLoop = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function convertToMla(
  checkpoint: LlamaCheckpoint,
  options: ConvertOptions = {},
): Promise<ConversionResult> {
  const started = performance.now();
  const { config, weights } = checkpoint;
  const method = options.method ?? 'transmla';
  if (method !== 'transmla' && method !== 'mha2mla') {
    throw new RangeError(`method must be 'transmla' or 'mha2mla', got ${JSON.stringify(method)}`);
  }
  const { dim: E, nHeads: H, nKvHeads: g, headDim: hd } = config;
  const dims: Dims = { E, H, g, hd };
  const progress = options.onProgress ?? (() => {});
  const signal = options.signal;
  const decomposition = options.decomposition ?? (method === 'transmla' ? 'pca' : 'svd-joint');
  const bkv = options.bkv ?? true;
  const partialRope = method === 'mha2mla' ? (options.partialRope ?? '2-norm') : null;
  const allocation = method === 'transmla' ? (options.allocation ?? 'uniform') : null;
  const frequencies =
    method === 'transmla'
      ? (options.frequencies ?? (allocation === 'uniform' ? 'deepseek' : 'weighted'))
      : null;
  const shape =
    method === 'transmla' ? resolveTransMlaShape(config, options) : resolveMha2MlaShape(config, options);
  const qLoraRank = options.qLoraRank ?? null;
  if (qLoraRank !== null && !(Number.isInteger(qLoraRank) && qLoraRank >= 1 && qLoraRank <= H * hd)) {
    throw new RangeError(`qLoraRank must be an integer in [1, ${H * hd}], got ${qLoraRank}`);
  }

  const needsActivations =
    method === 'transmla' ||
    partialRope === '2-norm' ||
    decomposition === 'pca' ||
    decomposition === 'attention' ||
    qLoraRank !== null;
  let stats = options.calibration?.stats;
  if (stats === undefined && needsActivations) {
    const tokens = options.calibration?.tokens;
    if (tokens === undefined || tokens.length === 0) {
      throw new RangeError(`${method} with these options needs calibration tokens or statistics`);
    }
    progress({ stage: 'calibrate', fraction: 0, message: `calibrating on ${tokens.length} sequences` });
    stats = calibrate(checkpoint, tokens, {
      signal,
      onSequence: (done, total) =>
        progress({
          stage: 'calibrate',
          fraction: done / total,
          message: `calibration sequence ${done}/${total}`,
        }),
    });
    await yieldToEventLoop();
  }
  if (stats !== undefined) {
    if (stats.layers.length !== config.nLayers || stats.layers[0]!.gram.length !== E * E) {
      throw new RangeError('calibration statistics do not belong to this model');
    }
    const pcaDim = 2 * g * hd - (method === 'transmla' ? shape.ropeDim : g * shape.ropeDim);
    if (stats.tokenCount <= Math.min(pcaDim, E) && needsActivations) {
      progress({
        stage: 'calibrate',
        message: `warning: ${stats.tokenCount} calibration tokens do not exceed the PCA dimension ${Math.min(pcaDim, E)}`,
      });
    }
  }

  const layers: MlaLayerWeights[] = [];
  const reports: LayerReport[] = [];
  let ropeHeads = 1;
  let nopeDim = hd;
  const nLayers = config.nLayers;
  const identityGram = (): Float64Array => {
    const id = new Float64Array(E * E);
    for (let i = 0; i < E; i++) id[i * E + i] = 1;
    return id;
  };
  for (let l = 0; l < nLayers; l++) {
    throwIfAborted(signal);
    const layer = weights.layers[l]!;
    const source = layerSource(layer, config, l);
    const calib: LayerCalibration | null = stats?.layers[l] ?? null;
    const gram = calib?.gram ?? identityGram();
    // The [E, E] factor only pays off where a PCA has more rows than E (principalComponents works
    // in the smaller space then); computing it costs a float64 eigendecomposition of size E.
    const pcaRows = 2 * g * hd; // upper bound of the [K_nope ; V] rows
    const needsFactor = pcaRows > E || (qLoraRank !== null && H * hd > E);
    const factor = calib === null || !needsFactor ? undefined : gramFactor(calib, E);
    const step = (name: string, message: string): void =>
      progress({ stage: 'layer', layer: l, layers: nLayers, step: name, fraction: l / nLayers, message });

    step(
      method === 'transmla' ? 'rorope' : 'partial-rope',
      `layer ${l + 1}/${nLayers}: ${method === 'transmla' ? 'RoRoPE + FreqFold' : `partial RoPE (S_${partialRope})`}`,
    );
    const stage =
      method === 'transmla'
        ? transMlaRopeStage(source, dims, calib!, config.ropeTheta, {
            ropeDim: shape.ropeDim,
            freqfold: shape.freqfold!,
            allocation: allocation!,
            frequencies: frequencies!,
            contextLength: options.ropeContext ?? 32,
          })
        : mha2mlaRopeStage(
            source,
            dims,
            partialRopePairs(partialRope!, shape.ropeDim / 2, dims, calib),
            config.ropeTheta,
          );
    await yieldToEventLoop();
    throwIfAborted(signal);
    step(
      'latent',
      `layer ${l + 1}/${nLayers}: ${decomposition}${decomposition === 'pca' && bkv ? ' + BKV' : ''} to rank ${shape.kvLoraRank}`,
    );
    const latent = decompose(stage.split, source, dims, gram, factor, {
      decomposition,
      rank: shape.kvLoraRank,
      bkv,
    });
    await yieldToEventLoop();
    throwIfAborted(signal);
    step(
      'query',
      `layer ${l + 1}/${nLayers}: query mapping${qLoraRank === null ? '' : ` (low-rank q ${qLoraRank})`}`,
    );
    const P = stage.split.ropeDim;
    const Dn = stage.split.nopeDim;
    const qBasis =
      qLoraRank === null ? null : principalComponents(source.wq, gram, H * hd, E, qLoraRank, factor).basis;
    const attention = assembleLayer(stage.split, latent, source, dims, {
      qScale: Math.sqrt((Dn + P) / hd),
      qBasis,
      qRank: qLoraRank ?? 0,
    });
    layers.push({
      rmsAtt: layer.rmsAtt,
      qProj: attention.qProj,
      qAProj: attention.qAProj,
      qALayernorm: null,
      qBProj: attention.qBProj,
      kvAProjWithMqa: attention.kvAProjWithMqa,
      kvALayernorm: null,
      kvBProj: attention.kvBProj,
      oProj: layer.wo,
      rmsFfn: layer.rmsFfn,
      w1: layer.w1,
      w2: layer.w2,
      w3: layer.w3,
    });
    reports.push({
      layer: l,
      alpha: latent.alpha,
      explained: latent.explained,
      ropeEnergy: stage.ropeEnergy,
    });
    // Frequencies are chosen per layer; identical tables become the config's (see below).
    layers[l]!.ropeInvFreq = stage.invFreq;
    ropeHeads = stage.split.ropeHeads;
    nopeDim = Dn;
    await yieldToEventLoop();
  }

  const P = shape.ropeDim;
  let ropeTheta = config.ropeTheta;
  let table: Float64Array | null = null;
  const first = layers[0]?.ropeInvFreq ?? null;
  const allSame =
    first !== null &&
    layers.every(
      (layer) =>
        layer.ropeInvFreq !== null && layer.ropeInvFreq !== undefined && sameArray(layer.ropeInvFreq, first),
    );
  if (allSame) {
    for (const layer of layers) layer.ropeInvFreq = null;
    const theta = geometricTheta(first, P);
    if (theta === null) table = first;
    else ropeTheta = theta;
  }
  const mlaConfig: MlaConfig = {
    dim: E,
    hiddenDim: config.hiddenDim,
    nLayers,
    nHeads: H,
    vocabSize: config.vocabSize,
    seqLen: config.seqLen,
    normEps: config.normEps,
    qLoraRank,
    kvLoraRank: shape.kvLoraRank,
    qkNopeHeadDim: nopeDim,
    qkRopeHeadDim: P,
    vHeadDim: hd,
    ropeHeads,
    ropeTheta,
    ropeStyle: 'interleaved',
    softmaxScale: 1 / Math.sqrt(nopeDim + P),
    ropeInvFreq: table,
  };
  const cacheValues = shape.kvLoraRank + P * ropeHeads;
  const report: ConversionReport = {
    method,
    decomposition,
    kvLoraRank: shape.kvLoraRank,
    ropeDim: P,
    ropeHeads,
    freqfold: shape.freqfold,
    allocation,
    frequencies: method === 'transmla' ? frequencies : 'original',
    partialRope,
    qLoraRank,
    bkv: decomposition === 'pca' ? bkv : false,
    cacheValues,
    originalCacheValues: originalCacheValues(config),
    kvRatio: cacheValues / originalCacheValues(config),
    calibrationTokens: stats?.tokenCount ?? 0,
    layers: reports,
    seconds: (performance.now() - started) / 1000,
  };
  progress({ stage: 'done', fraction: 1, message: `converted in ${report.seconds.toFixed(1)} s` });
  return {
    config: mlaConfig,
    weights: {
      tokenEmbedding: weights.tokenEmbedding,
      layers,
      rmsFinal: weights.rmsFinal,
      classifier: weights.classifier,
    },
    report,
  };
}
