/**
 * Writes a converted model in the DeepSeek-V3 layout: `model.safetensors` (HF tensor names) and
 * `config.json` (deepseek_v3 keys plus the flags the converted model needs: no latent norms, and a
 * `latentkv` section for what the stock layout cannot say: rope keys per KV head, a per-pair
 * frequency table). The folder is written under a temporary name beside the target and renamed at
 * the end, so an interrupted or failed export leaves nothing half-written. Also reads it back.
 *
 * (Own minimal safetensors writer/reader: F32 and F64 tensors, little-endian.)
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { MlaCheckpoint, MlaConfig, MlaLayerWeights } from '../model/mla-weights.js';
import { assertMlaWeightsMatch } from '../model/mla-weights.js';
import { type ProgressCallback, throwIfAborted } from './progress.js';

export interface TensorEntry {
  name: string;
  data: Float32Array | Float64Array;
  shape: number[];
}

function dtypeOf(data: Float32Array | Float64Array): 'F32' | 'F64' {
  return data instanceof Float64Array ? 'F64' : 'F32';
}

/** Streams tensors to a .safetensors file (header first, then each tensor's bytes in order). */
export async function writeSafetensors(
  path: string,
  tensors: TensorEntry[],
  metadata: Record<string, string> = {},
  signal?: AbortSignal,
): Promise<void> {
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of tensors) {
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length)
      throw new RangeError(`tensor ${t.name}: shape ${t.shape} does not match ${t.data.length} values`);
    header[t.name] = {
      dtype: dtypeOf(t.data),
      shape: t.shape,
      data_offsets: [offset, offset + t.data.byteLength],
    };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' ';
  const headerBytes = Buffer.from(json, 'utf8');
  const size = Buffer.alloc(8);
  size.writeBigUInt64LE(BigInt(headerBytes.length));
  const stream = createWriteStream(path);
  const write = async (chunk: Uint8Array): Promise<void> => {
    if (!stream.write(chunk)) await once(stream, 'drain');
  };
  try {
    await write(size);
    await write(headerBytes);
    for (const t of tensors) {
      throwIfAborted(signal);
      await write(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    }
  } finally {
    stream.end();
    await once(stream, 'close');
  }
}

/** Reads every tensor of a .safetensors file (F32/F64 only) into memory. */
export async function readSafetensors(path: string): Promise<{
  tensors: Map<string, { data: Float32Array | Float64Array; shape: number[] }>;
  metadata: Record<string, string>;
}> {
  const bytes = await readFile(path);
  const headerLength = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + headerLength).toString('utf8')) as Record<
    string,
    { dtype: string; shape: number[]; data_offsets: [number, number] }
  >;
  const base = 8 + headerLength;
  const tensors = new Map<string, { data: Float32Array | Float64Array; shape: number[] }>();
  let metadata: Record<string, string> = {};
  for (const [name, entry] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = entry as unknown as Record<string, string>;
      continue;
    }
    const [begin, end] = entry.data_offsets;
    const raw = bytes.subarray(base + begin, base + end);
    const copy = new Uint8Array(raw.length);
    copy.set(raw);
    if (entry.dtype === 'F32') tensors.set(name, { data: new Float32Array(copy.buffer), shape: entry.shape });
    else if (entry.dtype === 'F64')
      tensors.set(name, { data: new Float64Array(copy.buffer), shape: entry.shape });
    else throw new RangeError(`${path}: tensor ${name} has dtype ${entry.dtype}; only F32/F64 are read here`);
  }
  return { tensors, metadata };
}

/** The deepseek_v3 config.json for a converted model. */
export function deepseekConfig(
  config: MlaConfig,
  extra: Record<string, unknown> = {},
  tied = false,
): Record<string, unknown> {
  const perLayerTables = extra.perLayerRopeTables === true;
  const { perLayerRopeTables: _drop, ...rest } = extra;
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
      q_latent_layernorm: false,
      kv_latent_layernorm: false,
      /** Loadable by stock DeepSeek-V3 code only with one rope key, no table and the latent norms' flag honoured. */
      deepseek_compatible: config.ropeHeads === 1 && !config.ropeInvFreq && !perLayerTables,
      ...rest,
    },
  };
}

function layerTensors(i: number, layer: MlaLayerWeights, config: MlaConfig): TensorEntry[] {
  const E = config.dim;
  const H = config.nHeads;
  const qRows = H * (config.qkNopeHeadDim + config.qkRopeHeadDim);
  const p = `model.layers.${i}.`;
  const out: TensorEntry[] = [{ name: `${p}input_layernorm.weight`, data: layer.rmsAtt, shape: [E] }];
  if (layer.qProj !== null)
    out.push({ name: `${p}self_attn.q_proj.weight`, data: layer.qProj, shape: [qRows, E] });
  else {
    const rq = config.qLoraRank!;
    out.push({ name: `${p}self_attn.q_a_proj.weight`, data: layer.qAProj!, shape: [rq, E] });
    if (layer.qALayernorm !== null)
      out.push({ name: `${p}self_attn.q_a_layernorm.weight`, data: layer.qALayernorm, shape: [rq] });
    out.push({ name: `${p}self_attn.q_b_proj.weight`, data: layer.qBProj!, shape: [qRows, rq] });
  }
  const kvRows = config.kvLoraRank + config.qkRopeHeadDim * config.ropeHeads;
  out.push({
    name: `${p}self_attn.kv_a_proj_with_mqa.weight`,
    data: layer.kvAProjWithMqa,
    shape: [kvRows, E],
  });
  if (layer.kvALayernorm !== null) {
    out.push({
      name: `${p}self_attn.kv_a_layernorm.weight`,
      data: layer.kvALayernorm,
      shape: [config.kvLoraRank],
    });
  }
  out.push({
    name: `${p}self_attn.kv_b_proj.weight`,
    data: layer.kvBProj,
    shape: [H * (config.qkNopeHeadDim + config.vHeadDim), config.kvLoraRank],
  });
  out.push({ name: `${p}self_attn.o_proj.weight`, data: layer.oProj, shape: [E, H * config.vHeadDim] });
  if (layer.ropeInvFreq)
    out.push({
      name: `${p}self_attn.rope_inv_freq`,
      data: layer.ropeInvFreq,
      shape: [layer.ropeInvFreq.length],
    });
  out.push({ name: `${p}post_attention_layernorm.weight`, data: layer.rmsFfn, shape: [E] });
  out.push({ name: `${p}mlp.gate_proj.weight`, data: layer.w1, shape: [config.hiddenDim, E] });
  out.push({ name: `${p}mlp.up_proj.weight`, data: layer.w3, shape: [config.hiddenDim, E] });
  out.push({ name: `${p}mlp.down_proj.weight`, data: layer.w2, shape: [E, config.hiddenDim] });
  return out;
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
    const tensors: TensorEntry[] = [
      {
        name: 'model.embed_tokens.weight',
        data: weights.tokenEmbedding,
        shape: [config.vocabSize, config.dim],
      },
    ];
    weights.layers.forEach((layer, i) => {
      tensors.push(...layerTensors(i, layer, config));
    });
    tensors.push({ name: 'model.norm.weight', data: weights.rmsFinal, shape: [config.dim] });
    if (!tied)
      tensors.push({
        name: 'lm_head.weight',
        data: weights.classifier,
        shape: [config.vocabSize, config.dim],
      });
    options.onProgress?.({ stage: 'write', fraction: 0, message: `writing ${tensors.length} tensors` });
    await writeSafetensors(
      join(temp, 'model.safetensors'),
      tensors,
      { format: 'pt', producer: 'latentkv' },
      options.signal,
    );
    const perLayerRopeTables = weights.layers.some((l) => l.ropeInvFreq);
    const json = deepseekConfig(config, { ...options.extra, perLayerRopeTables }, tied);
    const { writeFile } = await import('node:fs/promises');
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
  const { tensors } = await readSafetensors(join(dir, 'model.safetensors'));
  const get = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (t === undefined || !(t.data instanceof Float32Array))
      throw new RangeError(`${dir}: missing F32 tensor ${name}`);
    return t.data;
  };
  const opt = (name: string): Float32Array | null => (tensors.has(name) ? get(name) : null);
  const tokenEmbedding = get('model.embed_tokens.weight');
  const layers: MlaLayerWeights[] = Array.from({ length: config.nLayers }, (_, i) => {
    const p = `model.layers.${i}.`;
    const table = tensors.get(`${p}self_attn.rope_inv_freq`)?.data;
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
      ropeInvFreq: table instanceof Float64Array ? table : null,
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
}
