/**
 * The llama2.c tokenizer on a small hand-made tokenizer.bin in the current llama2.c layout
 * (byte tokens written as "<0xXX>"), so every rule can be checked without downloading anything.
 * The real 32000-token vocabulary is tested in stories15m.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { parseLlama2cTokenizer } from '../../lib/model/llama2c-tokenizer.js';
import { ModelFormatError } from '../../lib/model/model-format-error.js';

function tokenizerBin(pieces: [string, number][], maxTokenLength = 16): Buffer {
  const parts: Buffer[] = [];
  const header = Buffer.alloc(4);
  header.writeInt32LE(maxTokenLength);
  parts.push(header);
  for (const [piece, score] of pieces) {
    const bytes = Buffer.from(piece, 'utf8');
    const entry = Buffer.alloc(8);
    entry.writeFloatLE(score, 0);
    entry.writeInt32LE(bytes.length, 4);
    parts.push(entry, bytes);
  }
  return Buffer.concat(parts);
}

const special: [string, number][] = [
  ['<unk>', 0],
  ['\n<s>\n', 0],
  ['\n</s>\n', 0],
];
const bytes: [string, number][] = Array.from({ length: 256 }, (_, b) => [
  `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`,
  0,
]);
// ids from 259: merges with scores (higher merges first), then single characters.
const pieces: [string, number][] = [
  [' ', -1],
  ['a', -2],
  ['b', -3],
  ['c', -4],
  ['ab', -5],
  ['bc', -5], // same score as "ab": llama2.c merges the leftmost best pair
  [' ab', -6],
  ['abc', -7],
  ['é', -8],
];
const vocab = [...special, ...bytes, ...pieces];
const id = (piece: string): number => vocab.findIndex(([p]) => p === piece);
const tokenizer = parseLlama2cTokenizer(tokenizerBin(vocab), 'synthetic/tokenizer.bin');

describe('llama2.c tokenizer rules', () => {
  it('prepends BOS and the dummy space, then merges the best-scoring pair first', () => {
    // " abc": candidates " "+"a"? no piece; "a"+"b" = ab (-5), "b"+"c" = bc (-5): leftmost wins -> " ", ab, c;
    // then " "+"ab" = " ab" (-6) vs "ab"+"c" = abc (-7): " ab" wins -> " ab", c. No further pieces.
    expect(tokenizer.encode('abc')).toEqual([1, id(' ab'), id('c')]);
    expect(tokenizer.encode('abc', { bos: false, eos: true })).toEqual([id(' ab'), id('c'), 2]);
  });

  it('uses the byte fallback (+3) for characters that have no piece', () => {
    expect(tokenizer.encode('aZ', { bos: false })).toEqual([id(' '), id('a'), 'Z'.charCodeAt(0) + 3]);
    // "ü" is two UTF-8 bytes and not a piece; "é" is a piece.
    expect(tokenizer.encode('üé', { bos: false })).toEqual([id(' '), 0xc3 + 3, 0xbc + 3, id('é')]);
  });

  it('decodes pieces, byte tokens and the space after BOS as llama2.c prints them', () => {
    const tokens = tokenizer.encode('abc üZ');
    expect(tokenizer.decode(tokens)).toBe('abc üZ');
    expect(Buffer.from(tokenizer.decodeToken(1, id(' ab'))).toString()).toBe('ab');
    expect(Buffer.from(tokenizer.decodeToken(id('c'), id(' ab'))).toString()).toBe(' ab');
    expect([...tokenizer.decodeToken(id('a'), 0x0a + 3)]).toEqual([0x0a]);
    expect(() => tokenizer.decodeToken(1, vocab.length)).toThrow(RangeError);
  });
});

describe('llama2.c tokenizer file errors', () => {
  it('names the file for a bad header, a bad length, truncation and a vocab mismatch', () => {
    const good = tokenizerBin(vocab);
    const cases: [Buffer, RegExp, number | undefined][] = [
      [Buffer.alloc(2), /truncated/, undefined],
      [tokenizerBin(vocab, -5), /max_token_length = -5/, undefined],
      [good.subarray(0, good.length - 1), /invalid length|truncated/, undefined],
      [good, /holds 268 tokens, the model needs 512/, 512],
    ];
    for (const [bytes, message, vocabSize] of cases) {
      let error: unknown;
      try {
        parseLlama2cTokenizer(bytes, '/models/tok.bin', vocabSize);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(ModelFormatError);
      expect((error as Error).message).toMatch(/^\/models\/tok\.bin: /);
      expect((error as Error).message).toMatch(message);
    }
  });
});
