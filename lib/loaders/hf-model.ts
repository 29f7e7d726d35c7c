/**
 * Hugging Face checkpoints: a folder with config.json and model.safetensors, or shards listed in
 * model.safetensors.index.json; tensors in f32, f16 or bf16 (read into Float32Array).
 *
 * - Llama family (model_type llama, mistral, qwen2, smollm/SmolLM which is llama): half-split RoPE,
 *   rope_theta, rope_scaling (llama3, linear), Qwen2's q/k/v biases, tied embeddings. A sliding
 *   window (Mistral's sliding_window; Qwen2's only with use_sliding_window true) is exact only while
 *   the whole context fits in it, because the gqa kernel has no window: seqLen is capped at the
 *   window and the runtime refuses a longer maxSeqLen (see LlamaConfig.slidingWindow).
 * - MLA in the DeepSeek-V2/V3 layout (any config with kv_lora_rank): q_proj or q_a_proj /
 *   q_a_layernorm / q_b_proj, kv_a_proj_with_mqa, optional kv_a_layernorm, kv_b_proj, o_proj, dense
 *   SwiGLU MLP; interleaved RoPE (rope_interleave false selects half-split), YaRN rope_scaling with
 *   mscale and mscale_all_dim, softmax scale 1/sqrt(Dn+P) * mscale^2. The number of rope keys per
 *   token (1 for DeepSeek, one per KV head for MHA2MLA) is read from kv_a_proj_with_mqa's rows
 *   (or the config key rope_heads) and must divide the heads.
 *
 * Every problem is a ModelFormatError naming the file and, where one is at fault, the tensor.
 */
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { RopeScaling } from '../mla/rope.js';
import type { LlamaCheckpoint, LlamaConfig, LlamaLayerWeights } from '../model/llama-weights.js';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from '../model/mla-weights.js';
import { ModelFormatError } from '../model/model-format-error.js';
import { openSafetensors, type SafetensorsReader, tensorToFloat32 } from './safetensors.js';

export type HfModel =
  | { kind: 'gqa'; checkpoint: LlamaCheckpoint; ropeScaling?: RopeScaling; modelType: string }
  | { kind: 'mla'; checkpoint: MlaCheckpoint; ropeScaling?: RopeScaling; modelType: string };

type Json = Record<string, unknown>;

/**
 * All tensors of a checkpoint folder, by name, with the file each lives in. The files are open
 * and each tensor is read when converted, so loading never holds a whole file besides the
 * converted weights; close() when done.
 */
class TensorSource {
  readonly #files: Map<string, SafetensorsReader>;
  readonly #where = new Map<string, SafetensorsReader>();
  readonly folder: string;

  constructor(folder: string, files: SafetensorsReader[]) {
    this.folder = folder;
    this.#files = new Map(files.map((f) => [f.path, f]));
    for (const f of files) for (const name of f.tensors.keys()) this.#where.set(name, f);
  }

  has(name: string): boolean {
    return this.#where.has(name);
  }

  /** Rows of a 2-D tensor (or the length of a 1-D one), for shape inference. */
  dim0(name: string): number | undefined {
    return this.#where.get(name)?.tensors.get(name)?.shape[0];
  }

  /** The tensor as Float32Array, checked against the expected shape. */
  get(name: string, shape: readonly number[]): Float32Array {
    const file = this.#where.get(name);
    if (file === undefined) {
      throw new ModelFormatError(
        this.folder,
        `missing (looked in ${[...this.#files.keys()].join(', ')})`,
        name,
      );
    }
    const info = file.tensors.get(name)!;
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new ModelFormatError(
        file.path,
        `shape [${info.shape.join(', ')}], the config needs [${shape.join(', ')}]`,
        name,
      );
    }
    return tensorToFloat32(file, name);
  }

  optional(name: string, shape: readonly number[]): Float32Array | null {
    return this.has(name) ? this.get(name, shape) : null;
  }

  close(): void {
    for (const f of this.#files.values()) f.close();
  }
}

async function readJson(path: string): Promise<Json> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ModelFormatError(path, `cannot read file: ${(error as Error).message}`);
  }
  try {
    const value = JSON.parse(text) as unknown;
    if (value === null || typeof value !== 'object' || Array.isArray(value))
      throw new Error('not a JSON object');
    return value as Json;
  } catch (error) {
    throw new ModelFormatError(path, `invalid JSON: ${(error as Error).message}`);
  }
}

async function openTensors(folder: string): Promise<TensorSource> {
  const single = join(folder, 'model.safetensors');
  const index = join(folder, 'model.safetensors.index.json');
  if (existsSync(index)) {
    const json = await readJson(index);
    const map = json.weight_map as Record<string, string> | undefined;
    if (map === undefined || typeof map !== 'object')
      throw new ModelFormatError(index, 'no weight_map object');
    const shardNames = [...new Set(Object.values(map))];
    const files: SafetensorsReader[] = [];
    try {
      for (const s of shardNames) files.push(openSafetensors(join(folder, s)));
      const byName = new Map(shardNames.map((s, i) => [s, files[i]!]));
      for (const [tensor, shard] of Object.entries(map)) {
        if (!byName.get(shard)!.tensors.has(tensor)) {
          throw new ModelFormatError(
            join(folder, shard),
            'listed in model.safetensors.index.json but absent',
            tensor,
          );
        }
      }
    } catch (error) {
      for (const f of files) f.close();
      throw error;
    }
    return new TensorSource(folder, files);
  }
  if (existsSync(single)) return new TensorSource(folder, [openSafetensors(single)]);
  throw new ModelFormatError(folder, 'no model.safetensors or model.safetensors.index.json');
}

function configInt(config: Json, path: string, key: string, fallback?: number): number {
  const v = config[key] ?? fallback;
  if (!Number.isInteger(v) || (v as number) < 0) {
    throw new ModelFormatError(
      path,
      `config key ${key} must be a non-negative integer, got ${JSON.stringify(v)}`,
    );
  }
  return v as number;
}

function configNumber(config: Json, path: string, key: string, fallback: number): number {
  const v = config[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ModelFormatError(path, `config key ${key} must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** rope_scaling of a config as the kernels take it (undefined when none). */
export function parseRopeScaling(config: Json, path: string): RopeScaling | undefined {
  const s = config.rope_scaling as Json | null | undefined;
  if (s === null || s === undefined) return undefined;
  const type = (s.rope_type ?? s.type) as string | undefined;
  const factor = s.factor as number;
  switch (type) {
    case 'default':
      return undefined;
    case 'linear':
      return { type: 'linear', factor };
    case 'llama3':
      return {
        type: 'llama3',
        factor,
        lowFreqFactor: (s.low_freq_factor as number) ?? 1,
        highFreqFactor: (s.high_freq_factor as number) ?? 4,
        originalMaxPosition: s.original_max_position_embeddings as number,
      };
    case 'yarn': {
      const scaling: RopeScaling = {
        type: 'yarn',
        factor,
        originalMaxPosition: s.original_max_position_embeddings as number,
        betaFast: (s.beta_fast as number) ?? 32,
        betaSlow: (s.beta_slow as number) ?? 1,
      };
      const mscale =
        yarnMscale(factor, (s.mscale as number) ?? 1) / yarnMscale(factor, (s.mscale_all_dim as number) ?? 0);
      if (mscale !== 1) scaling.attentionFactor = mscale;
      return scaling;
    }
    default:
      throw new ModelFormatError(
        path,
        `rope_scaling type ${JSON.stringify(type)} is not supported (linear, llama3, yarn)`,
      );
  }
}

/** DeepSeek's yarn_get_mscale. */
function yarnMscale(scale: number, mscale: number): number {
  return scale <= 1 ? 1 : 0.1 * mscale * Math.log(scale) + 1;
}

export async function loadHfModel(folder: string): Promise<HfModel> {
  const configPath = join(folder, 'config.json');
  const config = await readJson(configPath);
  const tensors = await openTensors(folder);
  const modelType = String(config.model_type ?? 'llama');
  try {
    return config.kv_lora_rank !== undefined && config.kv_lora_rank !== null
      ? loadMla(config, configPath, tensors, modelType)
      : loadLlama(config, configPath, tensors, modelType);
  } finally {
    tensors.close();
  }
}

function commonShapes(config: Json, path: string) {
  return {
    dim: configInt(config, path, 'hidden_size'),
    hiddenDim: configInt(config, path, 'intermediate_size'),
    nLayers: configInt(config, path, 'num_hidden_layers'),
    nHeads: configInt(config, path, 'num_attention_heads'),
    vocabSize: configInt(config, path, 'vocab_size'),
    seqLen: configInt(config, path, 'max_position_embeddings', 2048),
    normEps: configNumber(config, path, 'rms_norm_eps', 1e-6),
    ropeTheta: configNumber(config, path, 'rope_theta', 10000),
  };
}

function embeddings(config: Json, tensors: TensorSource, vocab: number, dim: number) {
  const tokenEmbedding = tensors.get('model.embed_tokens.weight', [vocab, dim]);
  const tied = config.tie_word_embeddings === true || !tensors.has('lm_head.weight');
  return {
    tokenEmbedding,
    rmsFinal: tensors.get('model.norm.weight', [dim]),
    classifier: tied ? tokenEmbedding : tensors.get('lm_head.weight', [vocab, dim]),
  };
}

function mlp(tensors: TensorSource, p: string, dim: number, hiddenDim: number) {
  return {
    rmsFfn: tensors.get(`${p}.post_attention_layernorm.weight`, [dim]),
    w1: tensors.get(`${p}.mlp.gate_proj.weight`, [hiddenDim, dim]),
    w2: tensors.get(`${p}.mlp.down_proj.weight`, [dim, hiddenDim]),
    w3: tensors.get(`${p}.mlp.up_proj.weight`, [hiddenDim, dim]),
  };
}

/**
 * The attention window of a config, or undefined when attention is fully causal: sliding_window
 * when it is set, unless use_sliding_window is false (Qwen2 writes a window it does not use).
 */
function parseSlidingWindow(config: Json, path: string): number | undefined {
  const window = config.sliding_window;
  if (window === null || window === undefined || config.use_sliding_window === false) return undefined;
  if (!Number.isInteger(window) || (window as number) < 1) {
    throw new ModelFormatError(
      path,
      `config key sliding_window must be a positive integer or null, got ${JSON.stringify(window)}`,
    );
  }
  return window as number;
}

function loadLlama(config: Json, path: string, tensors: TensorSource, modelType: string): HfModel {
  const s = commonShapes(config, path);
  const nKvHeads = configInt(config, path, 'num_key_value_heads', s.nHeads);
  const headDim = configInt(config, path, 'head_dim', s.nHeads > 0 ? s.dim / s.nHeads : 0);
  if (!Number.isInteger(headDim) || headDim % 2 !== 0 || nKvHeads === 0 || s.nHeads % nKvHeads !== 0) {
    throw new ModelFormatError(
      path,
      `inconsistent heads: num_attention_heads ${s.nHeads}, num_key_value_heads ${nKvHeads}, head_dim ${headDim}`,
    );
  }
  const slidingWindow = parseSlidingWindow(config, path);
  const llamaConfig: LlamaConfig = {
    dim: s.dim,
    hiddenDim: s.hiddenDim,
    nLayers: s.nLayers,
    nHeads: s.nHeads,
    nKvHeads,
    vocabSize: s.vocabSize,
    seqLen: slidingWindow === undefined ? s.seqLen : Math.min(s.seqLen, slidingWindow),
    headDim,
    ropeTheta: s.ropeTheta,
    ropeStyle: 'half-split',
    normEps: s.normEps,
  };
  if (slidingWindow !== undefined) llamaConfig.slidingWindow = slidingWindow;
  const qDim = s.nHeads * headDim;
  const kvDim = nKvHeads * headDim;
  const layers: LlamaLayerWeights[] = [];
  for (let l = 0; l < s.nLayers; l++) {
    const p = `model.layers.${l}`;
    const layer: LlamaLayerWeights = {
      rmsAtt: tensors.get(`${p}.input_layernorm.weight`, [s.dim]),
      wq: tensors.get(`${p}.self_attn.q_proj.weight`, [qDim, s.dim]),
      wk: tensors.get(`${p}.self_attn.k_proj.weight`, [kvDim, s.dim]),
      wv: tensors.get(`${p}.self_attn.v_proj.weight`, [kvDim, s.dim]),
      wo: tensors.get(`${p}.self_attn.o_proj.weight`, [s.dim, qDim]),
      ...mlp(tensors, p, s.dim, s.hiddenDim),
    };
    const bq = tensors.optional(`${p}.self_attn.q_proj.bias`, [qDim]);
    const bk = tensors.optional(`${p}.self_attn.k_proj.bias`, [kvDim]);
    const bv = tensors.optional(`${p}.self_attn.v_proj.bias`, [kvDim]);
    if (bq) layer.bq = bq;
    if (bk) layer.bk = bk;
    if (bv) layer.bv = bv;
    layers.push(layer);
  }
  const model: HfModel = {
    kind: 'gqa',
    modelType,
    checkpoint: {
      config: llamaConfig,
      weights: { ...embeddings(config, tensors, s.vocabSize, s.dim), layers },
    },
  };
  const scaling = parseRopeScaling(config, path);
  if (scaling !== undefined) model.ropeScaling = scaling;
  return model;
}

function loadMla(config: Json, path: string, tensors: TensorSource, modelType: string): HfModel {
  const s = commonShapes(config, path);
  const R = configInt(config, path, 'kv_lora_rank');
  const Dn = configInt(config, path, 'qk_nope_head_dim');
  const P = configInt(config, path, 'qk_rope_head_dim');
  const Dv = configInt(config, path, 'v_head_dim');
  const qLoraRank =
    config.q_lora_rank === null || config.q_lora_rank === undefined
      ? null
      : configInt(config, path, 'q_lora_rank');
  if (config.n_routed_experts !== undefined && config.n_routed_experts !== null) {
    const dense = configInt(config, path, 'first_k_dense_replace', 0);
    if (dense < s.nLayers) {
      throw new ModelFormatError(
        path,
        `mixture-of-experts layers (n_routed_experts) are not supported; layers ${dense}.. are MoE`,
      );
    }
  }
  if (P % 2 !== 0) throw new ModelFormatError(path, `qk_rope_head_dim ${P} must be even`);
  // Rope keys per token: the config's rope_heads, else inferred from layer 0's kv_a_proj_with_mqa.
  const kvAName = 'model.layers.0.self_attn.kv_a_proj_with_mqa.weight';
  const kvARows = tensors.dim0(kvAName);
  const inferred = kvARows !== undefined && P > 0 ? (kvARows - R) / P : 1;
  const ropeHeads = config.rope_heads === undefined ? inferred : configInt(config, path, 'rope_heads');
  if (!Number.isInteger(ropeHeads) || ropeHeads < 1 || s.nHeads % ropeHeads !== 0) {
    throw new ModelFormatError(
      path,
      `rope keys per token (${ropeHeads}, from ${kvAName} rows ${kvARows} = kv_lora_rank ${R} + qk_rope_head_dim ${P} x rope heads) must divide num_attention_heads ${s.nHeads}`,
      kvAName,
    );
  }
  const scaling = parseRopeScaling(config, path);
  let softmaxScale = 1 / Math.sqrt(Dn + P);
  const rs = config.rope_scaling as Json | null | undefined;
  if (scaling?.type === 'yarn' && rs && rs.mscale_all_dim) {
    const m = yarnMscale(scaling.factor, rs.mscale_all_dim as number);
    softmaxScale *= m * m;
  }
  const mlaConfig: MlaConfig = {
    dim: s.dim,
    hiddenDim: s.hiddenDim,
    nLayers: s.nLayers,
    nHeads: s.nHeads,
    vocabSize: s.vocabSize,
    seqLen: s.seqLen,
    normEps: s.normEps,
    qLoraRank,
    kvLoraRank: R,
    qkNopeHeadDim: Dn,
    qkRopeHeadDim: P,
    vHeadDim: Dv,
    ropeHeads,
    ropeTheta: s.ropeTheta,
    ropeStyle: config.rope_interleave === false ? 'half-split' : 'interleaved',
    softmaxScale,
  };
  const H = s.nHeads;
  const layers: MlaLayerWeights[] = [];
  for (let l = 0; l < s.nLayers; l++) {
    const p = `model.layers.${l}`;
    const a = `${p}.self_attn`;
    layers.push({
      rmsAtt: tensors.get(`${p}.input_layernorm.weight`, [s.dim]),
      qProj: qLoraRank === null ? tensors.get(`${a}.q_proj.weight`, [H * (Dn + P), s.dim]) : null,
      qAProj: qLoraRank === null ? null : tensors.get(`${a}.q_a_proj.weight`, [qLoraRank, s.dim]),
      qALayernorm: qLoraRank === null ? null : tensors.optional(`${a}.q_a_layernorm.weight`, [qLoraRank]),
      qBProj: qLoraRank === null ? null : tensors.get(`${a}.q_b_proj.weight`, [H * (Dn + P), qLoraRank]),
      kvAProjWithMqa: tensors.get(`${a}.kv_a_proj_with_mqa.weight`, [R + P * ropeHeads, s.dim]),
      kvALayernorm: tensors.optional(`${a}.kv_a_layernorm.weight`, [R]),
      kvBProj: tensors.get(`${a}.kv_b_proj.weight`, [H * (Dn + Dv), R]),
      oProj: tensors.get(`${a}.o_proj.weight`, [s.dim, H * Dv]),
      ...mlp(tensors, p, s.dim, s.hiddenDim),
    });
  }
  const model: HfModel = {
    kind: 'mla',
    modelType,
    checkpoint: {
      config: mlaConfig,
      weights: { ...embeddings(config, tensors, s.vocabSize, s.dim), layers },
    },
  };
  if (scaling !== undefined) model.ropeScaling = scaling;
  return model;
}
