/**
 * The byte-level alphabet of GPT-2 style BPE (GPT-2, Llama 3, Qwen2, SmolLM): every byte is a
 * printable character. Bytes that are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
 * themselves; the other 68 bytes are mapped, in increasing order, to U+0100, U+0101, ...
 */

let byteToChar: string[] | undefined;
let charToByte: Map<string, number> | undefined;

function build(): void {
  const printable = (b: number): boolean =>
    (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  byteToChar = [];
  charToByte = new Map();
  let next = 0x100;
  for (let b = 0; b < 256; b++) {
    const char = String.fromCodePoint(printable(b) ? b : next++);
    byteToChar[b] = char;
    charToByte.set(char, b);
  }
}

/** The character that stands for byte b. */
export function byteLevelChar(b: number): string {
  if (byteToChar === undefined) build();
  return byteToChar![b]!;
}

/**
 * Bytes of a byte-level token string; a character outside the alphabet (in an added token such
 * as "<|im_end|>" every character is inside it, but not necessarily elsewhere) gives its UTF-8.
 */
export function byteLevelBytes(token: string): Uint8Array {
  if (charToByte === undefined) build();
  const out: number[] = [];
  for (const char of token) {
    const b = charToByte!.get(char);
    if (b !== undefined) out.push(b);
    else out.push(...Buffer.from(char, 'utf8'));
  }
  return Uint8Array.from(out);
}
