/**
 * The tokenizer interface the runtime and the CLI use: llama2.c's tokenizer.bin
 * (Llama2cTokenizer) and Hugging Face's tokenizer.json (HfTokenizer) both satisfy it.
 */

export interface TokenizerEncodeOptions {
  /** Start with the model's BOS token, if it has one. Default true. */
  bos?: boolean;
  /** End with the model's EOS token, if it has one. Default false. */
  eos?: boolean;
}

export interface TextTokenizer {
  /** Number of ids the tokenizer can produce (ids are 0..vocabSize-1). */
  readonly vocabSize: number;
  encode(text: string, options?: TokenizerEncodeOptions): number[];
  /** Text of a token sequence; special tokens (BOS, EOS, ...) produce no text. */
  decode(tokens: readonly number[]): string;
  /**
   * Bytes of `token` printed after `previous` (-1 at the start), for streaming: the bytes of a
   * sequence's tokens, joined, are the UTF-8 of decode(sequence). A multi-byte character may be
   * split over tokens, so join bytes before decoding them as UTF-8.
   */
  decodeToken(previous: number, token: number): Uint8Array;
  /**
   * Tokens that end generation. Absent for llama2.c's tokenizer, whose BOS and EOS (ids 1 and 2)
   * do: see stopTokensOf.
   */
  readonly stopTokens?: readonly number[];
  /**
   * The token a generation starts from when the prompt encodes to nothing (no BOS and no text);
   * absent or null when the tokenizer always gives a BOS.
   */
  readonly startToken?: number | null;
}

/** llama2.c's BOS and EOS: the stop tokens of a tokenizer that names none. */
const LLAMA2C_STOP_TOKENS: readonly number[] = [1, 2];

export function stopTokensOf(tokenizer: TextTokenizer): readonly number[] {
  return tokenizer.stopTokens ?? LLAMA2C_STOP_TOKENS;
}
