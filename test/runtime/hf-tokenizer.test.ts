/**
 * Hugging Face tokenizer.json through lib/tokenizers/hf-tokenizer.ts on small hand-written
 * tokenizers (hf-tokenizer-fixtures.ts): a Llama-style SentencePiece BPE with byte fallback in
 * both of its tokenizer.json forms, and a Qwen2/SmolLM-style byte-level BPE. Then `latentkv
 * generate <hf folder>` end to end on tiny synthetic models, and Mistral's sliding window.
 */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { main } from '../../lib/cli/main.js';
import { loadHfModel } from '../../lib/loaders/hf-model.js';
import { type TensorToWrite, writeSafetensors } from '../../lib/loaders/safetensors.js';
import type { LlamaCheckpoint } from '../../lib/model/llama-weights.js';
import { ModelFormatError } from '../../lib/model/model-format-error.js';
import { generate } from '../../lib/runtime/generate.js';
import { GqaModel } from '../../lib/runtime/gqa-model.js';
import { createRuntime, resolveModel, resolveTokenizer } from '../../lib/runtime/load-model.js';
import { byteLevelBytes, byteLevelChar } from '../../lib/tokenizers/byte-level.js';
import { HfTokenizer, loadHfTokenizer } from '../../lib/tokenizers/hf-tokenizer.js';
import { stopTokensOf, type TextTokenizer } from '../../lib/tokenizers/tokenizer.js';
import { rng } from '../helpers/random.js';
import {
  BL_EOS,
  BL_TOKENIZER_CONFIG,
  blId,
  byteLevelTokenizerJson,
  gpt2ByteChars,
  SP_TOKENIZER_CONFIG,
  sentencePieceTokenizerJson,
  spId,
} from './hf-tokenizer-fixtures.js';

let folder: string;
beforeAll(async () => {
  folder = await mkdtemp(join(tmpdir(), 'latentkv-hf-tok-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

/** SentencePiece byte-fallback id of each UTF-8 byte of s (<0x00> is id 3). */
const byteIds = (s: string): number[] => [...Buffer.from(s, 'utf8')].map((b) => b + 3);

/** Text of tokens as streaming prints it: decodeToken bytes joined, then UTF-8. */
function streamed(tokenizer: TextTokenizer, tokens: readonly number[]): string {
  const parts: Uint8Array[] = [];
  let previous = -1;
  for (const t of tokens) {
    parts.push(tokenizer.decodeToken(previous, t));
    previous = t;
  }
  return Buffer.concat(parts).toString('utf8');
}

const ROUND_TRIP = [
  'the cat',
  'café on the cat',
  '日本語のテキスト',
  'emoji 🙂 and naïve façade',
  'x',
  'the  cat\nsat\ton the mat.',
  "it's 42, isn't it?",
];

describe('SentencePiece-style BPE with byte fallback (Llama 2, Mistral)', () => {
  for (const style of ['normalizer', 'metaspace'] as const) {
    const tokenizer = new HfTokenizer({
      tokenizer: sentencePieceTokenizerJson(style),
      tokenizerConfig: SP_TOKENIZER_CONFIG,
    });

    it(`${style}: encodes as worked out by hand`, () => {
      expect(tokenizer.vocabSize).toBe(280);
      expect(tokenizer.bosToken).toBe(1);
      expect(tokenizer.stopTokens).toEqual([2]);
      // "▁the▁cat": ▁ t -> ▁t, h e -> he, ▁t he -> ▁the, a t -> at, ▁ c -> ▁c, ▁c at -> ▁cat.
      expect(tokenizer.encode('the cat')).toEqual([1, spId('▁the'), spId('▁cat')]);
      // "▁café": ▁c, then ▁c a -> ▁ca, ▁ca f -> ▁caf, ▁caf é -> ▁café (the "a t" merge never fires).
      expect(tokenizer.encode('café on the', { bos: false })).toEqual([
        spId('▁café'),
        spId('▁on'),
        spId('▁the'),
      ]);
      // Characters outside the vocabulary fall back to their UTF-8 bytes.
      expect(tokenizer.encode('日本')).toEqual([1, spId('▁'), ...byteIds('日本')]);
      expect(tokenizer.encode('x🙂', { eos: true })).toEqual([1, spId('▁'), ...byteIds('x🙂'), 2]);
      expect(tokenizer.encode('')).toEqual([1]);
    });

    it(`${style}: round-trips text, and streamed bytes equal decode`, () => {
      for (const text of ROUND_TRIP) {
        const tokens = tokenizer.encode(text);
        expect(tokenizer.decode(tokens)).toBe(text);
        expect(streamed(tokenizer, tokens)).toBe(text);
      }
      // Mid-sequence the "▁" of a piece is a space; after BOS (or at the start) it is dropped.
      expect(Buffer.from(tokenizer.decodeToken(1, spId('▁the'))).toString()).toBe('the');
      expect(Buffer.from(tokenizer.decodeToken(spId('▁the'), spId('▁cat'))).toString()).toBe(' cat');
      expect([...tokenizer.decodeToken(spId('▁'), 3 + 0xe6)]).toEqual([0xe6]);
      expect(tokenizer.decodeToken(spId('▁cat'), 2)).toEqual(new Uint8Array(0));
      // A model's padded vocabulary: ids past the tokenizer's print nothing.
      expect(tokenizer.decodeToken(spId('▁cat'), 300)).toEqual(new Uint8Array(0));
      expect(tokenizer.decode([1, spId('▁the'), 300, 2])).toBe('the');
    });
  }

  it('keeps a leading space the legacy normalizer way (one "▁" is the dummy prefix)', () => {
    const t = new HfTokenizer({ tokenizer: sentencePieceTokenizerJson('normalizer') });
    expect(t.encode(' the', { bos: false })).toEqual([spId('▁'), spId('▁the')]);
    expect(t.decode(t.encode(' the'))).toBe(' the');
  });
});

describe('byte-level BPE (GPT-2 style: Qwen2, SmolLM, Llama 3)', () => {
  const tokenizer = new HfTokenizer({
    tokenizer: byteLevelTokenizerJson(),
    tokenizerConfig: BL_TOKENIZER_CONFIG,
  });

  it('has the GPT-2 byte alphabet', () => {
    const chars = gpt2ByteChars();
    for (let b = 0; b < 256; b++) {
      expect(byteLevelChar(b)).toBe(chars[b]);
      expect([...byteLevelBytes(chars[b]!)]).toEqual([b]);
    }
    expect(byteLevelChar(0x20)).toBe('Ġ');
    expect(byteLevelChar(0x0a)).toBe('Ċ');
  });

  it('encodes as worked out by hand', () => {
    expect(tokenizer.vocabSize).toBe(BL_EOS + 1);
    expect(tokenizer.bosToken).toBeNull();
    expect(tokenizer.stopTokens).toEqual([BL_EOS]);
    expect(tokenizer.startToken).toBe(BL_EOS);
    // Split: "the" | " cat"; "the": h e -> he (no "Ġt he": there is no Ġ); " cat" -> Ġcat.
    expect(tokenizer.encode('the cat')).toEqual([0x74, blId('he'), blId('Ġcat')]);
    // "é" is C3 A9, written "Ã©", one merge.
    expect(tokenizer.encode(' the café')).toEqual([blId('Ġthe'), blId('Ġc'), 0x61, 0x66, blId('Ã©')]);
    expect(tokenizer.encode('日本')).toEqual([...Buffer.from('日本', 'utf8')]);
    expect(tokenizer.encode("it's 42!")).toEqual([...Buffer.from("it's 42!", 'utf8')]);
    // An added special token inside the text is matched whole; eos: true appends it.
    expect(tokenizer.encode('the<|endoftext|>', { eos: true })).toEqual([0x74, blId('he'), BL_EOS, BL_EOS]);
    expect(tokenizer.encode('')).toEqual([]);
  });

  it('round-trips text, and streamed bytes equal decode (characters split over tokens too)', () => {
    for (const text of [...ROUND_TRIP, ' leading space', 'trailing  ']) {
      const tokens = tokenizer.encode(text);
      expect(tokenizer.decode(tokens)).toBe(text);
      expect(streamed(tokenizer, tokens)).toBe(text);
    }
    // "日" is three byte tokens; each alone is one byte.
    expect([...tokenizer.decodeToken(-1, 0xe6)]).toEqual([0xe6]);
    expect(tokenizer.decode([0x74, blId('he'), BL_EOS])).toBe('the');
  });
});

describe('tokenizer files', () => {
  it('loads tokenizer.json with its configs from a folder, and names the file on errors', async () => {
    const dir = join(folder, 'files');
    await mkdir(dir);
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
    // No tokenizer_config.json: the end token comes from generation_config.json.
    await writeFile(join(dir, 'generation_config.json'), JSON.stringify({ eos_token_id: [BL_EOS, 0x21] }));
    const t = await loadHfTokenizer(dir, 300);
    expect(t.stopTokens).toEqual([BL_EOS, 0x21]);
    expect(stopTokensOf(t)).toEqual([BL_EOS, 0x21]);
    await expect(loadHfTokenizer(dir, 100)).rejects.toThrow(
      /tokenizer\.json: holds ids up to 263, the model's vocabulary has 100/,
    );
    await writeFile(join(dir, 'tokenizer.json'), '{"model": ');
    await expect(loadHfTokenizer(join(dir, 'tokenizer.json'))).rejects.toThrow(ModelFormatError);
    await expect(loadHfTokenizer(dir)).rejects.toThrow(/tokenizer\.json: invalid JSON/);
    await writeFile(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    await expect(loadHfTokenizer(dir)).rejects.toThrow(/not a Hugging Face tokenizer\.json/);
    await expect(loadHfTokenizer(join(dir, 'nope.json'))).rejects.toThrow(/nope\.json: cannot read file/);
  });
});

interface TinyModel {
  vocabSize: number;
  bias?: boolean;
  extraConfig?: Record<string, unknown>;
}

/** A tiny random Llama-family checkpoint in the Hugging Face layout. */
async function writeTinyHfModel(dir: string, m: TinyModel): Promise<void> {
  const dim = 16;
  const hidden = 32;
  const heads = 2;
  const kvHeads = 1;
  const headDim = 8;
  const layers = 2;
  const r = rng(7);
  const t = (shape: number[], scale = 0.4): TensorToWrite => ({
    dtype: 'F32',
    shape,
    data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => scale * r.normal()),
  });
  const ones = (n: number): TensorToWrite => ({
    dtype: 'F32',
    shape: [n],
    data: new Float32Array(n).fill(1),
  });
  const tensors: Record<string, TensorToWrite> = {
    'model.embed_tokens.weight': t([m.vocabSize, dim], 1),
    'model.norm.weight': ones(dim),
  };
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}`;
    tensors[`${p}.input_layernorm.weight`] = ones(dim);
    tensors[`${p}.post_attention_layernorm.weight`] = ones(dim);
    tensors[`${p}.self_attn.q_proj.weight`] = t([heads * headDim, dim]);
    tensors[`${p}.self_attn.k_proj.weight`] = t([kvHeads * headDim, dim]);
    tensors[`${p}.self_attn.v_proj.weight`] = t([kvHeads * headDim, dim]);
    tensors[`${p}.self_attn.o_proj.weight`] = t([dim, heads * headDim]);
    if (m.bias) {
      tensors[`${p}.self_attn.q_proj.bias`] = t([heads * headDim]);
      tensors[`${p}.self_attn.k_proj.bias`] = t([kvHeads * headDim]);
      tensors[`${p}.self_attn.v_proj.bias`] = t([kvHeads * headDim]);
    }
    tensors[`${p}.mlp.gate_proj.weight`] = t([hidden, dim]);
    tensors[`${p}.mlp.up_proj.weight`] = t([hidden, dim]);
    tensors[`${p}.mlp.down_proj.weight`] = t([dim, hidden]);
  }
  await mkdir(dir, { recursive: true });
  await writeSafetensors(join(dir, 'model.safetensors'), tensors);
  await writeFile(
    join(dir, 'config.json'),
    JSON.stringify({
      model_type: 'llama',
      hidden_size: dim,
      intermediate_size: hidden,
      num_hidden_layers: layers,
      num_attention_heads: heads,
      num_key_value_heads: kvHeads,
      vocab_size: m.vocabSize,
      max_position_embeddings: 64,
      rms_norm_eps: 1e-5,
      rope_theta: 10000,
      tie_word_embeddings: true,
      ...m.extraConfig,
    }),
  );
}

/** Runs the CLI's main() and returns its exit code and what it wrote to stdout. */
async function runCli(argv: string[]): Promise<{ code: number; stdout: string }> {
  const chunks: Buffer[] = [];
  const out = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(Buffer.from(chunk));
    return true;
  });
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
  try {
    const code = await main(argv);
    return { code, stdout: Buffer.concat(chunks).toString('utf8') };
  } finally {
    out.mockRestore();
    err.mockRestore();
  }
}

/** The greedy continuation the CLI should print, computed through the runtime directly. */
async function expectedContinuation(dir: string, prompt: string, maxTokens: number): Promise<string> {
  const resolved = await resolveModel(dir);
  const tokenizer = await resolveTokenizer(resolved);
  const model = createRuntime(resolved.loaded);
  const promptTokens = tokenizer.encode(prompt);
  if (promptTokens.length === 0) promptTokens.push(tokenizer.startToken!);
  const result = generate(model, promptTokens, {
    maxTokens,
    temperature: 0,
    stopTokens: stopTokensOf(tokenizer),
  });
  model.dispose();
  const parts: Uint8Array[] = [];
  let previous = promptTokens.at(-1)!;
  for (const t of result.tokens) {
    parts.push(tokenizer.decodeToken(previous, t));
    previous = t;
  }
  // The streamed continuation is the decode of prompt + continuation minus the prompt's text.
  const full = tokenizer.decode([...promptTokens, ...result.tokens]);
  expect(full.startsWith(prompt.trimStart()) || prompt === '').toBe(true);
  expect(result.tokens.length).toBeGreaterThan(0);
  return Buffer.concat(parts).toString('utf8');
}

describe('latentkv generate on a Hugging Face folder with tokenizer.json', () => {
  it('Llama-style model and SentencePiece tokenizer (model vocabulary padded past the tokenizer)', async () => {
    const dir = join(folder, 'tiny-llama');
    await writeTinyHfModel(dir, { vocabSize: 288 });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(sentencePieceTokenizerJson('metaspace')));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(SP_TOKENIZER_CONFIG));
    const prompt = 'the café';
    const expected = await expectedContinuation(dir, prompt, 12);
    const { code, stdout } = await runCli([
      'generate',
      dir,
      '--prompt',
      prompt,
      '--max-tokens',
      '12',
      '--temperature',
      '0',
    ]);
    expect(code).toBe(0);
    expect(stdout).toBe(`${prompt}${expected}\n`);
  });

  it('Qwen2-style model (q/k/v bias) and byte-level tokenizer, prompt with non-ASCII and an empty one', async () => {
    const dir = join(folder, 'tiny-qwen2');
    await writeTinyHfModel(dir, {
      vocabSize: 272,
      bias: true,
      extraConfig: {
        model_type: 'qwen2',
        sliding_window: 32,
        use_sliding_window: false,
        eos_token_id: BL_EOS,
      },
    });
    await writeFile(join(dir, 'tokenizer.json'), JSON.stringify(byteLevelTokenizerJson()));
    await writeFile(join(dir, 'tokenizer_config.json'), JSON.stringify(BL_TOKENIZER_CONFIG));
    // use_sliding_window false: the window is not applied.
    expect((await loadHfModel(dir)).checkpoint.config).toMatchObject({ seqLen: 64 });
    for (const prompt of ['the cat 日本', '']) {
      const expected = await expectedContinuation(dir, prompt, 10);
      const { code, stdout } = await runCli([
        'generate',
        dir,
        '--prompt',
        prompt,
        '--max-tokens',
        '10',
        '--temperature',
        '0',
      ]);
      expect(code).toBe(0);
      expect(stdout).toBe(`${prompt}${expected}\n`);
    }
  });
});

describe("Mistral's sliding window", () => {
  it('caps the context at the window and refuses a longer one (the gqa kernel has no window)', async () => {
    const dir = join(folder, 'tiny-mistral');
    await writeTinyHfModel(dir, {
      vocabSize: 280,
      extraConfig: { model_type: 'mistral', sliding_window: 24 },
    });
    const hf = await loadHfModel(dir);
    expect(hf.kind).toBe('gqa');
    const checkpoint = hf.checkpoint as LlamaCheckpoint;
    expect(checkpoint.config).toMatchObject({ seqLen: 24, slidingWindow: 24 });
    const model = new GqaModel(checkpoint);
    expect(model.maxSeqLen).toBe(24);
    model.dispose();
    expect(() => new GqaModel(checkpoint, { maxSeqLen: 25 })).toThrow(
      /maxSeqLen 25 exceeds the model's sliding window of 24 tokens/,
    );
    new GqaModel(checkpoint, { maxSeqLen: 16 }).dispose();

    // A window as long as the context changes nothing; null means none.
    await writeTinyHfModel(dir, {
      vocabSize: 280,
      extraConfig: { model_type: 'mistral', sliding_window: null },
    });
    expect((await loadHfModel(dir)).checkpoint.config).toMatchObject({ seqLen: 64 });
    expect((await loadHfModel(dir)).checkpoint.config).not.toHaveProperty('slidingWindow');
    await writeTinyHfModel(dir, {
      vocabSize: 280,
      extraConfig: { model_type: 'mistral', sliding_window: 0 },
    });
    await expect(loadHfModel(dir)).rejects.toThrow(
      /config\.json: config key sliding_window must be a positive integer/,
    );
  });
});
