/**
 * Writes a converted model in the DeepSeek-V3 layout: `model.safetensors` (HF tensor names, F32,
 * through lib/loaders/safetensors.ts) and `config.json` (deepseek_v3 keys plus the flags the
 * converted model needs: no latent norms, and a `latentkv` section for what the stock layout cannot
 * say: rope keys per KV head, the per-pair frequency table, or one table per layer in
 * `latentkv.layer_rope_inv_freq`, kept in the JSON so the float64 frequencies round-trip exactly).
 * The folder is written under a temporary name beside the target and renamed at the end, so an
 * interrupted or failed export leaves nothing half-written. Also reads it back.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import {
  openSafetensors,
  type TensorToWrite,
  tensorToFloat32,
  writeSafetensors,
} from '../loaders/safetensors.js';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from '../model/mla-weights.js';
import { assertMlaWeightsMatch } from '../model/mla-weights.js';
import { type ProgressCallback, throwIfAborted } from './progress.js';

type Tensors = Record<string, TensorToWrite>;

function f32(data: Float32Array, shape: number[]): TensorToWrite {
  return { dtype: 'F32', shape, data };
}

/**
 * The deepseek_v3 config.json for a converted model. `layerTables`: one frequency table per layer
 * (null when the config's table or rope_theta applies to every layer).
 */
export function deepseekConfig(
  config: MlaConfig,
  extra: Record<string, unknown> = {},
  tied = false,
  layerTables: (Float64Array | null)[] | null = null,
): Record<string, unknown> {
  const perLayerTables = layerTables?.some((t) => t !== null) === true;
  return {
    architectures: ['DeepseekV3ForCausalLM'],
    model_type: 'deepseek_v3',
    hidden_size: config.dim,
    intermediate_size: config.hiddenDim,
    num_hidden_layers: config.nLayers,
    num_attention_heads: config.nHeads,
    num_key_value_heads: config.nHeads,
    vocab_size: config.vocabSize,
    max_position_embeddings: config.seqLen,
    rms_norm_eps: config.normEps,
    hidden_act: 'silu',
    q_lora_rank: config.qLoraRank,
    kv_lora_rank: config.kvLoraRank,
    qk_nope_head_dim: config.qkNopeHeadDim,
    qk_rope_head_dim: config.qkRopeHeadDim,
    v_head_dim: config.vHeadDim,
    head_dim: config.qkRopeHeadDim,
    rope_theta: config.ropeTheta,
    rope_scaling: null,
    rope_interleave: config.ropeStyle === 'interleaved',
    attention_bias: false,
    qk_latent_layernorm: false,
    first_k_dense_replace: config.nLayers,
    n_routed_experts: null,
    tie_word_embeddings: tied,
    torch_dtype: 'float32',
    latentkv: {
      format: 1,
      rope_heads: config.ropeHeads,
      softmax_scale: config.softmaxScale,
      rope_inv_freq: config.ropeInvFreq ? Array.from(config.ropeInvFreq) : null,
      per_layer_rope_inv_freq: perLayerTables,
      layer_rope_inv_freq: perLayerTables
        ? layerTables!.map((t) => (t === null ? null : Array.from(t)))
        : null,
      q_latent_layernorm: false,
      kv_latent_layernorm: false,
      /** Loadable by stock DeepSeek-V3 code only with one rope key, no table and the latent norms' flag honoured. */
      deepseek_compatible: config.ropeHeads === 1 && !config.ropeInvFreq && !perLayerTables,
      ...extra,
    },
  };
}

function layerTensors(out: Tensors, i: number, layer: MlaLayerWeights, config: MlaConfig): void {
  const E = config.dim;
  const H = config.nHeads;
  const qRows = H * (config.qkNopeHeadDim + config.qkRopeHeadDim);
  const p = `model.layers.${i}.`;
  out[`${p}input_layernorm.weight`] = f32(layer.rmsAtt, [E]);
  if (layer.qProj !== null) out[`${p}self_attn.q_proj.weight`] = f32(layer.qProj, [qRows, E]);
  else {
    const rq = config.qLoraRank!;
    out[`${p}self_attn.q_a_proj.weight`] = f32(layer.qAProj!, [rq, E]);
    if (layer.qALayernorm !== null) out[`${p}self_attn.q_a_layernorm.weight`] = f32(layer.qALayernorm, [rq]);
    out[`${p}self_attn.q_b_proj.weight`] = f32(layer.qBProj!, [qRows, rq]);
  }
  const kvRows = config.kvLoraRank + config.qkRopeHeadDim * config.ropeHeads;
  out[`${p}self_attn.kv_a_proj_with_mqa.weight`] = f32(layer.kvAProjWithMqa, [kvRows, E]);
  if (layer.kvALayernorm !== null)
    out[`${p}self_attn.kv_a_layernorm.weight`] = f32(layer.kvALayernorm, [config.kvLoraRank]);
  out[`${p}self_attn.kv_b_proj.weight`] = f32(layer.kvBProj, [
    H * (config.qkNopeHeadDim + config.vHeadDim),
    config.kvLoraRank,
  ]);
  out[`${p}self_attn.o_proj.weight`] = f32(layer.oProj, [E, H * config.vHeadDim]);
  out[`${p}post_attention_layernorm.weight`] = f32(layer.rmsFfn, [E]);
  out[`${p}mlp.gate_proj.weight`] = f32(layer.w1, [config.hiddenDim, E]);
  out[`${p}mlp.up_proj.weight`] = f32(layer.w3, [config.hiddenDim, E]);
  out[`${p}mlp.down_proj.weight`] = f32(layer.w2, [E, config.hiddenDim]);
}

export interface WriteMlaOptions {
  /** Extra keys for config.json's latentkv section (e.g. the conversion report). */
  extra?: Record<string, unknown>;
  /** Files copied into the folder (name -> source path), e.g. tokenizer.bin. */
  copyFiles?: Record<string, string>;
  /** Replace an existing folder (default false: error). */
  overwrite?: boolean;
  signal?: AbortSignal;
  onProgress?: ProgressCallback;
}

/** Writes `checkpoint` to the folder `outDir` atomically (temporary sibling folder, then rename). */
export async function writeMlaCheckpoint(
  outDir: string,
  checkpoint: MlaCheckpoint,
  options: WriteMlaOptions = {},
): Promise<void> {
  const { config, weights } = checkpoint;
  assertMlaWeightsMatch(weights, config);
  const exists = await stat(outDir).then(
    () => true,
    () => false,
  );
  if (exists && !options.overwrite)
    throw new Error(`${outDir} already exists (pass overwrite to replace it)`);
  await mkdir(dirname(outDir), { recursive: true });
  const temp = join(dirname(outDir), `.${basename(outDir)}.partial-${randomBytes(4).toString('hex')}`);
  await mkdir(temp);
  try {
    const tied = weights.classifier === weights.tokenEmbedding;
    const tensors: Tensors = {
      'model.embed_tokens.weight': f32(weights.tokenEmbedding, [config.vocabSize, config.dim]),
    };
    weights.layers.forEach((layer, i) => {
      layerTensors(tensors, i, layer, config);
    });
    tensors['model.norm.weight'] = f32(weights.rmsFinal, [config.dim]);
    if (!tied) tensors['lm_head.weight'] = f32(weights.classifier, [config.vocabSize, config.dim]);
    options.onProgress?.({
      stage: 'write',
      fraction: 0,
      message: `writing ${Object.keys(tensors).length} tensors`,
    });
    throwIfAborted(options.signal);
    await writeSafetensors(join(temp, 'model.safetensors'), tensors, { format: 'pt', producer: 'latentkv' });
    throwIfAborted(options.signal);
    const layerTables = weights.layers.map((l) => l.ropeInvFreq ?? null);
    const json = deepseekConfig(config, options.extra, tied, layerTables);
    await writeFile(join(temp, 'config.json'), `${JSON.stringify(json, null, 2)}\n`);
    for (const [name, from] of Object.entries(options.copyFiles ?? {}))
      await copyFile(from, join(temp, name));
    throwIfAborted(options.signal);
    if (exists) await rm(outDir, { recursive: true, force: true });
    await rename(temp, outDir);
    options.onProgress?.({ stage: 'write', fraction: 1, message: `wrote ${outDir}` });
  } catch (error) {
    await rm(temp, { recursive: true, force: true });
    throw error;
  }
}

/** True when `dir` holds a config.json written by writeMlaCheckpoint (a `latentkv` section). */
export async function isLatentkvCheckpoint(dir: string): Promise<boolean> {
  try {
    const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
    return json.latentkv !== null && typeof json.latentkv === 'object' && json.kv_lora_rank !== undefined;
  } catch {
    return false;
  }
}

/** Reads a folder written by writeMlaCheckpoint back into memory. */
export async function readMlaCheckpoint(dir: string): Promise<MlaCheckpoint> {
  const json = JSON.parse(await readFile(join(dir, 'config.json'), 'utf8')) as Record<string, unknown> & {
    latentkv?: Record<string, unknown>;
  };
  const lk = json.latentkv ?? {};
  const num = (key: string): number => json[key] as number;
  const config: MlaConfig = {
    dim: num('hidden_size'),
    hiddenDim: num('intermediate_size'),
    nLayers: num('num_hidden_layers'),
    nHeads: num('num_attention_heads'),
    vocabSize: num('vocab_size'),
    seqLen: num('max_position_embeddings'),
    normEps: num('rms_norm_eps'),
    qLoraRank: (json.q_lora_rank as number | null) ?? null,
    kvLoraRank: num('kv_lora_rank'),
    qkNopeHeadDim: num('qk_nope_head_dim'),
    qkRopeHeadDim: num('qk_rope_head_dim'),
    vHeadDim: num('v_head_dim'),
    ropeHeads: (lk.rope_heads as number | undefined) ?? 1,
    ropeTheta: num('rope_theta'),
    ropeStyle: json.rope_interleave === false ? 'half-split' : 'interleaved',
    softmaxScale:
      (lk.softmax_scale as number | undefined) ??
      1 / Math.sqrt(num('qk_nope_head_dim') + num('qk_rope_head_dim')),
    ropeInvFreq: Array.isArray(lk.rope_inv_freq) ? Float64Array.from(lk.rope_inv_freq as number[]) : null,
  };
  const layerTables = Array.isArray(lk.layer_rope_inv_freq)
    ? (lk.layer_rope_inv_freq as (number[] | null)[])
    : null;
  // Tensor by tensor from the open file: the peak is the converted weights, not file + weights.
  const file = openSafetensors(join(dir, 'model.safetensors'));
  try {
    const get = (name: string): Float32Array => {
      if (!file.tensors.has(name)) throw new RangeError(`${dir}: missing tensor ${name}`);
      return tensorToFloat32(file, name);
    };
    const opt = (name: string): Float32Array | null => (file.tensors.has(name) ? get(name) : null);
    const tokenEmbedding = get('model.embed_tokens.weight');
    const layers: MlaLayerWeights[] = Array.from({ length: config.nLayers }, (_, i) => {
      const p = `model.layers.${i}.`;
      const table = layerTables?.[i];
      return {
        rmsAtt: get(`${p}input_layernorm.weight`),
        qProj: opt(`${p}self_attn.q_proj.weight`),
        qAProj: opt(`${p}self_attn.q_a_proj.weight`),
        qALayernorm: opt(`${p}self_attn.q_a_layernorm.weight`),
        qBProj: opt(`${p}self_attn.q_b_proj.weight`),
        kvAProjWithMqa: get(`${p}self_attn.kv_a_proj_with_mqa.weight`),
        kvALayernorm: opt(`${p}self_attn.kv_a_layernorm.weight`),
        kvBProj: get(`${p}self_attn.kv_b_proj.weight`),
        oProj: get(`${p}self_attn.o_proj.weight`),
        ropeInvFreq: Array.isArray(table) ? Float64Array.from(table) : null,
        rmsFfn: get(`${p}post_attention_layernorm.weight`),
        w1: get(`${p}mlp.gate_proj.weight`),
        w3: get(`${p}mlp.up_proj.weight`),
        w2: get(`${p}mlp.down_proj.weight`),
      };
    });
    const classifier = opt('lm_head.weight') ?? tokenEmbedding;
    const weights = { tokenEmbedding, layers, rmsFinal: get('model.norm.weight'), classifier };
    assertMlaWeightsMatch(weights, config);
    return { config, weights };
  } finally {
    file.close();
  }
}
