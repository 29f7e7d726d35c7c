/**
 * Test helper: writes a Hugging Face Llama folder (config.json + model.safetensors, BF16) with
 * random weights of a given shape, e.g. Llama-3.2-1B's for the conversion speed measurement
 * (see speed-1b.ts). Never commit the output.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type TensorToWrite, writeSafetensors } from '../../lib/loaders/safetensors.js';

export interface SyntheticShape {
  layers: number;
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  vocab: number;
}

/** Llama-3.2-1B's attention and MLP shapes with a small vocabulary. */
export const LLAMA_3_2_1B_SHAPE: SyntheticShape = {
  layers: 16,
  hidden: 2048,
  heads: 32,
  kvHeads: 8,
  headDim: 64,
  ffn: 8192,
  vocab: 1024,
};

/** Gaussian-ish BF16 bit patterns (sum of uniforms), std `std`, from a fixed seed. */
function randomBf16(count: number, std: number, state: { s: number }): Uint16Array {
  const out = new Uint16Array(count);
  const f = new Float32Array(1);
  const bits = new Uint32Array(f.buffer);
  let s = state.s >>> 0;
  const next = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return (s >>> 0) / 4294967296;
  };
  const scale = std * Math.sqrt(12 / 4);
  for (let i = 0; i < count; i++) {
    f[0] = (next() + next() + next() + next() - 2) * scale;
    out[i] = bits[0]! >>> 16;
  }
  state.s = s;
  return out;
}

function ones(count: number): Uint16Array {
  return new Uint16Array(count).fill(0x3f80);
}

export async function writeSyntheticLlama(dir: string, shape: SyntheticShape, seed = 1): Promise<void> {
  await mkdir(dir, { recursive: true });
  const { layers, hidden: E, heads: H, kvHeads: g, headDim: hd, ffn: F, vocab: V } = shape;
  const state = { s: seed * 2654435761 || 1 };
  const t = (shapeOf: number[], data: Uint16Array): TensorToWrite => ({
    dtype: 'BF16',
    shape: shapeOf,
    data,
  });
  const w = (rows: number, cols: number): TensorToWrite =>
    t([rows, cols], randomBf16(rows * cols, 1 / Math.sqrt(cols), state));
  const tensors: Record<string, TensorToWrite> = {
    'model.embed_tokens.weight': t([V, E], randomBf16(V * E, 1, state)),
  };
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    tensors[`${p}.input_layernorm.weight`] = t([E], ones(E));
    tensors[`${p}.self_attn.q_proj.weight`] = w(H * hd, E);
    tensors[`${p}.self_attn.k_proj.weight`] = w(g * hd, E);
    tensors[`${p}.self_attn.v_proj.weight`] = w(g * hd, E);
    tensors[`${p}.self_attn.o_proj.weight`] = w(E, H * hd);
    tensors[`${p}.post_attention_layernorm.weight`] = t([E], ones(E));
    tensors[`${p}.mlp.gate_proj.weight`] = w(F, E);
    tensors[`${p}.mlp.up_proj.weight`] = w(F, E);
    tensors[`${p}.mlp.down_proj.weight`] = w(E, F);
  }
  tensors['model.norm.weight'] = t([E], ones(E));
  await writeSafetensors(join(dir, 'model.safetensors'), tensors, { format: 'pt' });
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: E,
    intermediate_size: F,
    num_hidden_layers: layers,
    num_attention_heads: H,
    num_key_value_heads: g,
    head_dim: hd,
    vocab_size: V,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 500000,
    tie_word_embeddings: true,
    torch_dtype: 'bfloat16',
  };
  await writeFile(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
}
