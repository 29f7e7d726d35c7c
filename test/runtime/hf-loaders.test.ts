/**
 * Hugging Face loaders on small checkpoints written by writeSafetensors in temporary folders:
 * stories260K in the HF Llama layout (half-split RoPE; single file, sharded, f32/bf16), its exact
 * MLA merge in the DeepSeek-V3 layout, and broken files whose errors must name file and tensor.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadHfModel } from '../../lib/loaders/hf-model.js';
import {
  f16ToFloat,
  floatToBf16,
  floatToF16,
  openSafetensors,
  readSafetensors,
  type TensorToWrite,
  tensorToFloat32,
  writeSafetensors,
} from '../../lib/loaders/safetensors.js';
import { forwardSequence } from '../../lib/model/llama-forward.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { loadLlama2cCheckpoint } from '../../lib/model/llama2c.js';
import { mergeKvHeadsToMla } from '../../lib/model/merge-kv-heads.js';
import { sequenceLogits } from '../../lib/runtime/evaluate.js';
import { createRuntime } from '../../lib/runtime/load-model.js';
import {
  missingFileMessage,
  STORIES260K_PATH,
  sampleTokenIds,
  toHalfSplit,
  worstRelativeError,
} from './fixtures.js';

const missing = missingFileMessage(STORIES260K_PATH);
let folder: string;
let model: LlamaCheckpoint;

beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'latentkv-hf-'));
  if (missing === null) model = await loadLlama2cCheckpoint(STORIES260K_PATH);
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

function hfLlamaTensors(m: LlamaCheckpoint, dtype: 'F32' | 'BF16'): Record<string, TensorToWrite> {
  const { config: c, weights: w } = m;
  const t = (data: Float32Array, shape: number[]): TensorToWrite => ({ dtype, shape, data });
  const out: Record<string, TensorToWrite> = {
    'model.embed_tokens.weight': t(w.tokenEmbedding, [c.vocabSize, c.dim]),
    'model.norm.weight': t(w.rmsFinal, [c.dim]),
  };
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  w.layers.forEach((l, i) => {
    const p = `model.layers.${i}`;
    out[`${p}.input_layernorm.weight`] = t(l.rmsAtt, [c.dim]);
    out[`${p}.self_attn.q_proj.weight`] = t(l.wq, [q, c.dim]);
    out[`${p}.self_attn.k_proj.weight`] = t(l.wk, [kv, c.dim]);
    out[`${p}.self_attn.v_proj.weight`] = t(l.wv, [kv, c.dim]);
    out[`${p}.self_attn.o_proj.weight`] = t(l.wo, [c.dim, q]);
    out[`${p}.post_attention_layernorm.weight`] = t(l.rmsFfn, [c.dim]);
    out[`${p}.mlp.gate_proj.weight`] = t(l.w1, [c.hiddenDim, c.dim]);
    out[`${p}.mlp.down_proj.weight`] = t(l.w2, [c.dim, c.hiddenDim]);
    out[`${p}.mlp.up_proj.weight`] = t(l.w3, [c.hiddenDim, c.dim]);
  });
  return out;
}

function hfLlamaConfig(m: LlamaCheckpoint): Record<string, unknown> {
  const c = m.config;
  return {
    model_type: 'llama',
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    vocab_size: c.vocabSize,
    max_position_embeddings: c.seqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: true,
  };
}

describe('safetensors', () => {
  it('round-trips f32, f16 and bf16 tensors with metadata', async () => {
    const path = join(folder, 'rt.safetensors');
    const values = Float32Array.from([0, 1, -2.5, 3.25, 1e-3, 65504, -1e-7]);
    await writeSafetensors(
      path,
      {
        a: { dtype: 'F32', shape: [7], data: values },
        b: { dtype: 'F16', shape: [7, 1], data: values },
        c: { dtype: 'BF16', shape: [1, 7], data: values },
      },
      { format: 'pt' },
    );
    const file = await readSafetensors(path);
    expect(file.metadata).toEqual({ format: 'pt' });
    expect([...tensorToFloat32(file, 'a')]).toEqual([...values]);
    expect([...tensorToFloat32(file, 'b')]).toEqual([...values].map((v) => f16ToFloat(floatToF16(v))));
    const bf = tensorToFloat32(file, 'c');
    values.forEach((v, i) => {
      expect(Math.abs(bf[i]! - v)).toBeLessThanOrEqual(Math.abs(v) * 2 ** -8);
    });
    expect(floatToF16(65504)).toBe(0x7bff);
    expect(floatToF16(1)).toBe(0x3c00);
    expect(floatToBf16(1)).toBe(0x3f80);
    expect(() => tensorToFloat32(file, 'zzz')).toThrow(/rt\.safetensors: tensor zzz: missing/);
  });

  it('rejects truncated and malformed files, naming the file', async () => {
    const path = join(folder, 'bad.safetensors');
    await writeSafetensors(path, { w: { dtype: 'F32', shape: [4, 4], data: new Float32Array(16) } });
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 8));
    await expect(readSafetensors(path)).rejects.toThrow(/bad\.safetensors: tensor w: truncated/);
    await writeFile(path, Buffer.from('not a safetensors file at all'));
    await expect(readSafetensors(path)).rejects.toThrow(/bad\.safetensors: not a safetensors file/);
    await expect(
      writeSafetensors(path, { w: { dtype: 'F32', shape: [3], data: new Float32Array(2) } }),
    ).rejects.toThrow(/tensor w: 2 values/);
  });

  it('reads tensor by tensor from an open file, as the whole-file reader does', async () => {
    const path = join(folder, 'lazy.safetensors');
    const a = Float32Array.from({ length: 300 }, (_, i) => Math.sin(i) * 3);
    await writeSafetensors(path, {
      a: { dtype: 'F32', shape: [30, 10], data: a },
      b: { dtype: 'BF16', shape: [300], data: a },
      c: { dtype: 'F16', shape: [3, 100], data: a },
    });
    const whole = await readSafetensors(path);
    const reader = openSafetensors(path);
    try {
      expect([...reader.tensors.keys()]).toEqual([...whole.tensors.keys()]);
      for (const name of ['c', 'a', 'b']) {
        expect([...tensorToFloat32(reader, name)]).toEqual([...tensorToFloat32(whole, name)]);
      }
      expect(() => tensorToFloat32(reader, 'zzz')).toThrow(/lazy\.safetensors: tensor zzz: missing/);
    } finally {
      reader.close();
    }
    expect(() => reader.tensorBytes('a')).toThrow(/lazy\.safetensors: tensor a: the file was closed/);
    // A file cut inside the data is refused when opened, from the header alone.
    const { readFile } = await import('node:fs/promises');
    const bytes = await readFile(path);
    await writeFile(path, bytes.subarray(0, bytes.length - 2));
    expect(() => openSafetensors(path)).toThrow(/lazy\.safetensors: tensor c: truncated/);
    expect(() => openSafetensors(join(folder, 'absent.safetensors'))).toThrow(
      /absent\.safetensors: cannot read file/,
    );
  });
});

describe('Hugging Face loaders', () => {
  it('loads stories260K in the HF Llama layout (f32 single file) with the original logits', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const dir = join(folder, 'llama-f32');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const hf = toHalfSplit(model);
    await writeSafetensors(join(dir, 'model.safetensors'), hfLlamaTensors(hf, 'F32'));
    await writeFile(join(dir, 'config.json'), JSON.stringify(hfLlamaConfig(hf)));
    const loaded = await loadHfModel(dir);
    expect(loaded.kind).toBe('gqa');
    expect(loaded.checkpoint.config).toMatchObject({ ropeStyle: 'half-split', nKvHeads: 4, headDim: 8 });
    const tokens = sampleTokenIds(30, model.config.vocabSize);
    const reference = forwardSequence(model.weights, model.config, tokens);
    expect(worstRelativeError(sequenceLogits(createRuntime(loaded), tokens), reference)).toBeLessThan(1e-4);
    // And through the MLA runtime after the exact merge (half-split rows permuted to interleaved).
    expect(
      worstRelativeError(sequenceLogits(createRuntime(loaded, { mla: true }), tokens), reference),
    ).toBeLessThan(1e-4);
  });

  it('loads a sharded bf16 checkpoint', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const dir = join(folder, 'llama-sharded');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const hf = toHalfSplit(model);
    const all = Object.entries(hfLlamaTensors(hf, 'BF16'));
    const half = Math.ceil(all.length / 2);
    const shards = [all.slice(0, half), all.slice(half)];
    const weightMap: Record<string, string> = {};
    for (const [i, shard] of shards.entries()) {
      const name = `model-0000${i + 1}-of-00002.safetensors`;
      await writeSafetensors(join(dir, name), Object.fromEntries(shard));
      for (const [tensor] of shard) weightMap[tensor] = name;
    }
    await writeFile(join(dir, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    await writeFile(join(dir, 'config.json'), JSON.stringify(hfLlamaConfig(hf)));
    const loaded = await loadHfModel(dir);
    // The reference: the same model with every weight rounded to bf16 in memory.
    const scratch = new DataView(new ArrayBuffer(4));
    const round = (a: Float32Array): Float32Array =>
      a.map((v) => {
        scratch.setUint32(0, floatToBf16(v) << 16, true);
        return scratch.getFloat32(0, true);
      });
    const rounded: LlamaCheckpoint = {
      config: model.config,
      weights: {
        tokenEmbedding: round(model.weights.tokenEmbedding),
        classifier: round(model.weights.classifier),
        rmsFinal: round(model.weights.rmsFinal),
        layers: model.weights.layers.map((l) => ({
          rmsAtt: round(l.rmsAtt),
          wq: round(l.wq),
          wk: round(l.wk),
          wv: round(l.wv),
          wo: round(l.wo),
          rmsFfn: round(l.rmsFfn),
          w1: round(l.w1),
          w2: round(l.w2),
          w3: round(l.w3),
        })),
      },
    };
    const tokens = sampleTokenIds(20, model.config.vocabSize);
    const reference = forwardSequence(rounded.weights, rounded.config, tokens);
    expect(worstRelativeError(sequenceLogits(createRuntime(loaded), tokens), reference)).toBeLessThan(1e-4);
  });

  it('loads the exact MLA merge written in the DeepSeek-V3 layout and reproduces the original', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const dir = join(folder, 'mla');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const { config: c, weights: w } = mergeKvHeadsToMla(model);
    const t = (data: Float32Array, shape: number[]): TensorToWrite => ({ dtype: 'F32', shape, data });
    const H = c.nHeads;
    const tensors: Record<string, TensorToWrite> = {
      'model.embed_tokens.weight': t(w.tokenEmbedding, [c.vocabSize, c.dim]),
      'model.norm.weight': t(w.rmsFinal, [c.dim]),
    };
    w.layers.forEach((l, i) => {
      const p = `model.layers.${i}`;
      tensors[`${p}.input_layernorm.weight`] = t(l.rmsAtt, [c.dim]);
      tensors[`${p}.self_attn.q_proj.weight`] = t(l.qProj!, [H * (c.qkNopeHeadDim + c.qkRopeHeadDim), c.dim]);
      tensors[`${p}.self_attn.kv_a_proj_with_mqa.weight`] = t(l.kvAProjWithMqa, [
        c.kvLoraRank + c.qkRopeHeadDim * c.ropeHeads,
        c.dim,
      ]);
      tensors[`${p}.self_attn.kv_b_proj.weight`] = t(l.kvBProj, [
        H * (c.qkNopeHeadDim + c.vHeadDim),
        c.kvLoraRank,
      ]);
      tensors[`${p}.self_attn.o_proj.weight`] = t(l.oProj, [c.dim, H * c.vHeadDim]);
      tensors[`${p}.post_attention_layernorm.weight`] = t(l.rmsFfn, [c.dim]);
      tensors[`${p}.mlp.gate_proj.weight`] = t(l.w1, [c.hiddenDim, c.dim]);
      tensors[`${p}.mlp.down_proj.weight`] = t(l.w2, [c.dim, c.hiddenDim]);
      tensors[`${p}.mlp.up_proj.weight`] = t(l.w3, [c.hiddenDim, c.dim]);
    });
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    const config = {
      model_type: 'deepseek_v3',
      hidden_size: c.dim,
      intermediate_size: c.hiddenDim,
      num_hidden_layers: c.nLayers,
      num_attention_heads: H,
      vocab_size: c.vocabSize,
      max_position_embeddings: c.seqLen,
      rms_norm_eps: c.normEps,
      rope_theta: c.ropeTheta,
      q_lora_rank: null,
      kv_lora_rank: c.kvLoraRank,
      qk_nope_head_dim: 0,
      qk_rope_head_dim: c.qkRopeHeadDim,
      v_head_dim: c.vHeadDim,
      tie_word_embeddings: true,
    };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const loaded = await loadHfModel(dir);
    expect(loaded.kind).toBe('mla');
    expect(loaded.checkpoint.config).toMatchObject({
      ropeHeads: 4,
      kvLoraRank: 32,
      softmaxScale: 1 / Math.sqrt(8),
    });
    const tokens = sampleTokenIds(30, model.config.vocabSize, 9);
    const reference = forwardSequence(model.weights, model.config, tokens);
    expect(worstRelativeError(sequenceLogits(createRuntime(loaded), tokens), reference)).toBeLessThan(1e-4);

    // A config that contradicts the weights names the file and the tensor.
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, v_head_dim: 4 }));
    await expect(loadHfModel(dir)).rejects.toThrow(
      /model\.safetensors: tensor model\.layers\.0\.self_attn\.kv_b_proj\.weight: shape \[64, 32\], the config needs \[32, 32\]/,
    );
    await writeFile(join(dir, 'config.json'), JSON.stringify({ ...config, kv_lora_rank: 30 }));
    await expect(loadHfModel(dir)).rejects.toThrow(/kv_a_proj_with_mqa/);
  });

  it('names the missing tensor and the missing config', async (ctx) => {
    ctx.skip(missing !== null, missing ?? '');
    const dir = join(folder, 'broken');
    const { mkdir } = await import('node:fs/promises');
    await mkdir(dir);
    const tensors = hfLlamaTensors(model, 'F32');
    delete tensors['model.layers.3.mlp.up_proj.weight'];
    await writeSafetensors(join(dir, 'model.safetensors'), tensors);
    await expect(loadHfModel(dir)).rejects.toThrow(/config\.json: cannot read file/);
    await writeFile(join(dir, 'config.json'), JSON.stringify(hfLlamaConfig(model)));
    await expect(loadHfModel(dir)).rejects.toThrow(/tensor model\.layers\.3\.mlp\.up_proj\.weight: missing/);
  });
});
