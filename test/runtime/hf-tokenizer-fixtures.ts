/**
 * Small hand-written tokenizer.json files for tests: a Llama-style SentencePiece BPE with byte
 * fallback (legacy Prepend/Replace normalizer, or Metaspace pre-tokenizer) and a GPT-2 style
 * byte-level BPE as Qwen2 and SmolLM use (Split regex then ByteLevel). Vocabularies and merges
 * are made up for the tests; the expected encodings in the tests were worked out by hand from them.
 */

type Json = Record<string, unknown>;

const added = (id: number, content: string): Json => ({
  id,
  content,
  single_word: false,
  lstrip: false,
  rstrip: false,
  normalized: false,
  special: true,
});

/** Pieces after <unk>, <s>, </s> and the 256 byte tokens <0x00>..<0xFF> (ids 3..258). */
export const SP_PIECES = [
  '▁',
  't',
  'h',
  'e',
  'a',
  'c',
  'f',
  'o',
  'n',
  'é',
  '▁t',
  'he',
  '▁the',
  'at',
  '▁c',
  '▁cat',
  '▁ca',
  '▁caf',
  '▁café',
  'on',
  '▁on',
];
/** Merges in rank order; each pair's result is in SP_PIECES. */
const SP_MERGES = ['▁ t', 'h e', '▁t he', 'a t', '▁ c', '▁c at', '▁c a', '▁ca f', '▁caf é', 'o n', '▁ on'];

export const SP_FIRST_PIECE_ID = 259;
export const spId = (piece: string): number => SP_FIRST_PIECE_ID + SP_PIECES.indexOf(piece);

/** Llama-2 / Mistral style. `style` picks the legacy normalizer or the Metaspace pre-tokenizer. */
export function sentencePieceTokenizerJson(style: 'normalizer' | 'metaspace'): Json {
  const vocab: Record<string, number> = { '<unk>': 0, '<s>': 1, '</s>': 2 };
  for (let b = 0; b < 256; b++) vocab[`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`] = 3 + b;
  SP_PIECES.forEach((p, i) => {
    vocab[p] = SP_FIRST_PIECE_ID + i;
  });
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(0, '<unk>'), added(1, '<s>'), added(2, '</s>')],
    normalizer:
      style === 'normalizer'
        ? {
            type: 'Sequence',
            normalizers: [
              { type: 'Prepend', prepend: '▁' },
              { type: 'Replace', pattern: { String: ' ' }, content: '▁' },
            ],
          }
        : null,
    pre_tokenizer:
      style === 'metaspace'
        ? { type: 'Metaspace', replacement: '▁', prepend_scheme: 'first', split: false }
        : null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: '▁' }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges: SP_MERGES,
    },
  };
}

export const SP_TOKENIZER_CONFIG: Json = {
  add_bos_token: true,
  add_eos_token: false,
  bos_token: '<s>',
  eos_token: '</s>',
  unk_token: '<unk>',
  clean_up_tokenization_spaces: false,
};

/**
 * GPT-2's byte alphabet, written out independently of lib/tokenizers/byte-level.ts: printable
 * Latin-1 bytes stand for themselves, the rest map in order to U+0100 upwards.
 */
export function gpt2ByteChars(): string[] {
  const chars: string[] = [];
  let next = 256;
  for (let b = 0; b < 256; b++) {
    const keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    chars.push(String.fromCodePoint(keep ? b : next++));
  }
  return chars;
}

/** Byte-level pieces after the 256 byte characters (ids 0..255); then <|endoftext|>. */
export const BL_PIECES = ['Ġt', 'he', 'Ġthe', 'at', 'Ġc', 'Ġcat', 'Ã©'];
const BL_MERGES = ['Ġ t', 'h e', 'Ġt he', 'a t', 'Ġ c', 'Ġc at', 'Ã ©'];
export const blId = (piece: string): number => 256 + BL_PIECES.indexOf(piece);
export const BL_EOS = 256 + BL_PIECES.length;

/** Qwen2 / SmolLM style byte-level BPE (no BOS; <|endoftext|> ends text). */
export function byteLevelTokenizerJson(): Json {
  const vocab: Record<string, number> = {};
  gpt2ByteChars().forEach((c, b) => {
    vocab[c] = b;
  });
  BL_PIECES.forEach((p, i) => {
    vocab[p] = 256 + i;
  });
  vocab['<|endoftext|>'] = BL_EOS;
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [added(BL_EOS, '<|endoftext|>')],
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          // GPT-2's split: contractions, letters, digits, other symbols, whitespace.
          pattern: {
            Regex: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
          },
          behavior: 'Isolated',
          invert: false,
        },
        { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
      ],
    },
    post_processor: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      ignore_merges: false,
      vocab,
      merges: BL_MERGES,
    },
  };
}

export const BL_TOKENIZER_CONFIG: Json = {
  add_prefix_space: false,
  bos_token: null,
  eos_token: '<|endoftext|>',
  clean_up_tokenization_spaces: false,
};
