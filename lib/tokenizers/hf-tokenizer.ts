/**
 * Hugging Face `tokenizer.json` (with tokenizer_config.json, generation_config.json and
 * config.json beside it when present), read from a local folder: no network.
 *
 * Library choice: @huggingface/tokenizers (tokenizers.js, Apache-2.0, by Hugging Face, the
 * tokenizer engine of transformers.js v4). It is pure TypeScript/JavaScript with no dependencies
 * (about 650 kB unpacked, ESM and CommonJS builds), has no install scripts, takes the parsed
 * tokenizer.json object so nothing is fetched, and implements the components the Llama-family
 * models here use: BPE with merges and byte fallback, Metaspace, ByteLevel and Split
 * pre-tokenizers (with Oniguruma-to-JS regex translation), Prepend/Replace/NFC normalizers,
 * TemplateProcessing, and the matching decoders. Passed over: `tokenizers` (Rust bindings whose
 * native binaries come through per-platform optionalDependencies; heavier and tied to prebuilt
 * targets), and @huggingface/transformers / @xenova/transformers (the same tokenizers inside a
 * large tree with onnxruntime and sharp, which have install steps).
 *
 * What this file adds around the library: BOS/EOS handling as the runtime wants it (the BOS
 * that the post-processor's template or tokenizer_config.json's add_bos_token names; EOS and stop
 * tokens from tokenizer_config.json, generation_config.json and config.json), and decodeToken,
 * the exact bytes of one token for streaming, derived from the tokenizer's decoder (byte-level
 * alphabet, or SentencePiece-style "▁" replacement, byte fallback <0xXX> and the dropped first
 * space), so that bytes of a sequence's tokens, joined, are the UTF-8 of decode().
 */
import { existsSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { ModelFormatError } from '../model/model-format-error.js';
import { byteLevelBytes } from './byte-level.js';
import type { TextTokenizer, TokenizerEncodeOptions } from './tokenizer.js';

type Json = Record<string, unknown>;

/** Names of end tokens used when no config names one. */
const FALLBACK_EOS_NAMES = ['</s>', '<|endoftext|>', '<|end_of_text|>', '<|eot_id|>', '<|im_end|>'];

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const utf8 = new TextEncoder();

/** One decoder step as decodeToken applies it to a single token. */
type DecodeStep =
  | { kind: 'replace'; pattern: string | RegExp; content: string }
  | { kind: 'byte-fallback' }
  | { kind: 'fuse' }
  | { kind: 'strip'; content: string; start: number }
  | { kind: 'metaspace'; replacement: string; stripFirst: boolean };

type DecodePlan = { mode: 'byte-level' } | { mode: 'pieces'; steps: DecodeStep[] } | { mode: 'library' };

function decoderList(decoder: unknown): Json[] {
  if (decoder === null || typeof decoder !== 'object') return [];
  const d = decoder as Json;
  if (d.type === 'Sequence' && Array.isArray(d.decoders))
    return (d.decoders as unknown[]).flatMap(decoderList);
  return [d];
}

function decodePlan(decoder: unknown): DecodePlan {
  const list = decoderList(decoder);
  if (list.some((d) => d.type === 'ByteLevel')) return { mode: 'byte-level' };
  const steps: DecodeStep[] = [];
  for (const d of list) {
    switch (d.type) {
      case 'Replace': {
        const p = d.pattern as { String?: string; Regex?: string } | undefined;
        const content = String(d.content ?? '');
        if (typeof p?.String === 'string') steps.push({ kind: 'replace', pattern: p.String, content });
        else if (typeof p?.Regex === 'string')
          steps.push({ kind: 'replace', pattern: new RegExp(p.Regex, 'gu'), content });
        else return { mode: 'library' };
        break;
      }
      case 'ByteFallback':
        steps.push({ kind: 'byte-fallback' });
        break;
      case 'Fuse':
        steps.push({ kind: 'fuse' });
        break;
      case 'Strip':
        if (Number(d.stop ?? 0) !== 0) return { mode: 'library' };
        steps.push({ kind: 'strip', content: String(d.content ?? ' '), start: Number(d.start ?? 0) });
        break;
      case 'Metaspace': {
        const scheme = d.prepend_scheme as string | undefined;
        const stripFirst = scheme === undefined ? d.add_prefix_space !== false : scheme !== 'never';
        steps.push({ kind: 'metaspace', replacement: String(d.replacement ?? '▁'), stripFirst });
        break;
      }
      default:
        return { mode: 'library' };
    }
  }
  return { mode: 'pieces', steps };
}

/** A special token's id: its content looked up, or a plain number. */
function tokenId(tokenizer: Tokenizer, value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value)) return value;
  if (typeof value === 'string') return tokenizer.token_to_id(value);
  if (value !== null && typeof value === 'object' && typeof (value as Json).content === 'string')
    return tokenizer.token_to_id((value as Json).content as string);
  return undefined;
}

/** The BOS that the post-processor's single-sequence template puts first, if any. */
function templateBos(tokenizer: Tokenizer, postProcessor: unknown): number | null {
  if (postProcessor === null || typeof postProcessor !== 'object') return null;
  const p = postProcessor as Json;
  if (p.type === 'Sequence' && Array.isArray(p.processors)) {
    for (const inner of p.processors as unknown[]) {
      const bos = templateBos(tokenizer, inner);
      if (bos !== null) return bos;
    }
    return null;
  }
  if (p.type !== 'TemplateProcessing' || !Array.isArray(p.single)) return null;
  const first = (p.single as Json[])[0];
  const special = first?.SpecialToken as { id?: string } | undefined;
  if (special?.id === undefined) return null;
  const entry = (p.special_tokens as Record<string, { ids?: number[] }> | undefined)?.[special.id];
  return entry?.ids?.[0] ?? tokenizer.token_to_id(special.id) ?? null;
}

async function readOptionalJson(path: string): Promise<Json | null> {
  if (!existsSync(path)) return null;
  let value: unknown;
  try {
    value = JSON.parse(await readFile(path, 'utf8'));
  } catch (error) {
    throw new ModelFormatError(path, `invalid JSON: ${(error as Error).message}`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value))
    throw new ModelFormatError(path, 'not a JSON object');
  return value as Json;
}

export interface HfTokenizerFiles {
  /** tokenizer.json, parsed. */
  tokenizer: Json;
  /** tokenizer_config.json, parsed, if any. */
  tokenizerConfig?: Json | null;
  /** generation_config.json, parsed, if any. */
  generationConfig?: Json | null;
  /** The model's config.json, parsed, if any (for eos_token_id / bos_token_id). */
  modelConfig?: Json | null;
  /** For error messages. */
  path?: string;
}

export class HfTokenizer implements TextTokenizer {
  readonly vocabSize: number;
  /** The BOS that encode puts first (unless bos: false), or null when the model uses none. */
  readonly bosToken: number | null;
  /** The EOS that encode appends with eos: true: the first stop token, or null. */
  readonly eosToken: number | null;
  readonly stopTokens: readonly number[];
  readonly startToken: number | null;
  readonly #tokenizer: Tokenizer;
  readonly #special: Set<number>;
  readonly #plan: DecodePlan;

  constructor(files: HfTokenizerFiles) {
    const path = files.path ?? 'tokenizer.json';
    const json = files.tokenizer;
    const config = files.tokenizerConfig ?? {};
    try {
      this.#tokenizer = new Tokenizer(json, config);
    } catch (error) {
      throw new ModelFormatError(path, `unsupported or invalid tokenizer: ${(error as Error).message}`);
    }
    const t = this.#tokenizer;
    const added = Array.isArray(json.added_tokens) ? (json.added_tokens as Json[]) : [];
    this.#special = new Set(
      added.filter((a) => a.special === true && Number.isInteger(a.id)).map((a) => a.id as number),
    );
    let maxId = -1;
    for (const id of t.get_vocab(true).values()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;

    let bos = templateBos(t, json.post_processor);
    if (bos === null && config.add_bos_token === true) bos = tokenId(t, config.bos_token) ?? null;
    this.bosToken = bos;

    const stops: number[] = [];
    const addStop = (value: unknown): void => {
      for (const v of Array.isArray(value) ? value : [value]) {
        const id = tokenId(t, v);
        if (id !== undefined && !stops.includes(id)) stops.push(id);
      }
    };
    addStop(config.eos_token);
    addStop(files.generationConfig?.eos_token_id);
    addStop(files.modelConfig?.eos_token_id);
    if (stops.length === 0) {
      for (const name of FALLBACK_EOS_NAMES) {
        const id = t.token_to_id(name);
        if (id !== undefined && this.#special.has(id)) addStop(id);
      }
    }
    this.stopTokens = stops;
    this.eosToken = stops[0] ?? null;
    this.startToken = bos ?? this.eosToken;
    this.#plan = decodePlan(json.decoder);
  }

  encode(text: string, options: TokenizerEncodeOptions = {}): number[] {
    const ids = this.#tokenizer.encode(text, { add_special_tokens: false }).ids;
    if ((options.bos ?? true) && this.bosToken !== null) ids.unshift(this.bosToken);
    if ((options.eos ?? false) && this.eosToken !== null) ids.push(this.eosToken);
    return ids;
  }

  /** Text of the tokens without special tokens and without clean-up of spaces. */
  decode(tokens: readonly number[]): string {
    const known = tokens.filter((t) => t < this.vocabSize);
    if (known.length === 0) return '';
    return this.#tokenizer.decode(known, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  decodeToken(previous: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0) {
      throw new RangeError(`token must be a non-negative integer, got ${token}`);
    }
    // Ids past the tokenizer's (a model's vocabulary may be padded) and special tokens: no text.
    if (token >= this.vocabSize || this.#special.has(token)) return new Uint8Array(0);
    const piece = this.#tokenizer.id_to_token(token);
    if (piece === undefined) return new Uint8Array(0);
    const plan = this.#plan;
    if (plan.mode === 'byte-level') return byteLevelBytes(piece);
    if (plan.mode === 'library')
      return utf8.encode(this.#tokenizer.decode([token], { clean_up_tokenization_spaces: false }));
    const first = previous < 0 || previous === this.bosToken;
    let s = piece;
    let fused = false;
    for (const step of plan.steps) {
      switch (step.kind) {
        case 'replace':
          s =
            typeof step.pattern === 'string'
              ? s.split(step.pattern).join(step.content)
              : s.replace(step.pattern, step.content);
          break;
        case 'byte-fallback': {
          const m = BYTE_PIECE.exec(s);
          if (m !== null) return Uint8Array.of(Number.parseInt(m[1]!, 16));
          break;
        }
        case 'fuse':
          fused = true;
          break;
        case 'strip':
          // After Fuse the sequence is one string, so only its start (the first token) is stripped.
          if (first || !fused) {
            let n = 0;
            while (n < step.start && s.startsWith(step.content)) {
              s = s.slice(step.content.length);
              n++;
            }
          }
          break;
        case 'metaspace':
          s = s.split(step.replacement).join(' ');
          if (first && step.stripFirst && s.startsWith(' ')) s = s.slice(1);
          break;
      }
    }
    return utf8.encode(s);
  }
}

/**
 * Loads a tokenizer.json (the file itself, or a folder holding it) with the configs beside it.
 * With vocabSize (the model's), a tokenizer that produces ids the model does not have is refused.
 */
export async function loadHfTokenizer(path: string, vocabSize?: number): Promise<HfTokenizer> {
  const file = existsSync(path) && statSync(path).isDirectory() ? join(path, 'tokenizer.json') : path;
  const folder = dirname(file);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ModelFormatError(file, `cannot read file: ${(error as Error).message}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ModelFormatError(file, `invalid JSON: ${(error as Error).message}`);
  }
  if (
    json === null ||
    typeof json !== 'object' ||
    Array.isArray(json) ||
    typeof (json as Json).model !== 'object'
  ) {
    throw new ModelFormatError(file, 'not a Hugging Face tokenizer.json (no "model" object)');
  }
  const tokenizer = new HfTokenizer({
    tokenizer: json as Json,
    tokenizerConfig: await readOptionalJson(join(folder, 'tokenizer_config.json')),
    generationConfig: await readOptionalJson(join(folder, 'generation_config.json')),
    modelConfig: await readOptionalJson(join(folder, 'config.json')),
    path: file,
  });
  if (vocabSize !== undefined && tokenizer.vocabSize > vocabSize) {
    throw new ModelFormatError(
      file,
      `holds ids up to ${tokenizer.vocabSize - 1}, the model's vocabulary has ${vocabSize} tokens`,
    );
  }
  return tokenizer;
}
