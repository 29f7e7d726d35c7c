/**
 * A small streaming tar reader, enough for npm tarballs: 512-byte ustar headers (with the name
 * prefix field), pax extended headers ('x': path, size) and GNU long names ('L'). It returns the
 * regular files a caller asks for and skips everything else without buffering it, so reading two
 * files out of a 120 MB package costs only those two files in memory.
 */

const BLOCK = 512;

export class TarFormatError extends Error {
  readonly code = 'ERR_LATENTKV_TAR_FORMAT';
  constructor(message: string) {
    super(message);
    this.name = 'TarFormatError';
  }
}

/** FIFO of byte chunks with exact-length reads and skips. */
class ByteQueue {
  private chunks: Uint8Array[] = [];
  private headOffset = 0;
  length = 0;

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.length += chunk.length;
  }

  /** Moves up to `count` bytes into target[at..] (or drops them when target is null); returns how many. */
  drain(count: number, target: Uint8Array | null, at: number): number {
    let moved = 0;
    while (moved < count && this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const n = Math.min(count - moved, head.length - this.headOffset);
      if (target !== null) target.set(head.subarray(this.headOffset, this.headOffset + n), at + moved);
      moved += n;
      this.headOffset += n;
      if (this.headOffset === head.length) {
        this.chunks.shift();
        this.headOffset = 0;
      }
    }
    this.length -= moved;
    return moved;
  }
}

function cString(block: Uint8Array, offset: number, length: number): string {
  const field = block.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return Buffer.from(end === -1 ? field : field.subarray(0, end)).toString('utf8');
}

function numberField(block: Uint8Array, offset: number, length: number): number {
  // GNU base-256 for values that do not fit in octal: high bit set on the first byte.
  if ((block[offset]! & 0x80) !== 0) {
    let value = block[offset]! & 0x7f;
    for (let i = 1; i < length; i++) value = value * 256 + block[offset + i]!;
    return value;
  }
  const text = cString(block, offset, length).trim();
  if (text === '') return 0;
  if (!/^[0-7]+$/.test(text)) throw new TarFormatError(`bad octal number field "${text}"`);
  return Number.parseInt(text, 8);
}

interface Header {
  name: string;
  size: number;
  type: string;
}

function parseHeader(block: Uint8Array): Header {
  const stored = numberField(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i]!;
  if (sum !== stored)
    throw new TarFormatError(
      `header checksum mismatch (stored ${stored}, computed ${sum}): not a tar file or corrupted`,
    );
  let name = cString(block, 0, 100);
  if (cString(block, 257, 6).startsWith('ustar')) {
    const prefix = cString(block, 345, 155);
    if (prefix !== '') name = `${prefix}/${name}`;
  }
  const typeByte = block[156]!;
  return {
    name,
    size: numberField(block, 124, 12),
    type: typeByte === 0 ? '0' : String.fromCharCode(typeByte),
  };
}

/** Applies pax records ("<len> key=value\n") that this reader understands. */
function applyPax(data: Uint8Array, overrides: { name?: string; size?: number }): void {
  let offset = 0;
  while (offset < data.length) {
    const space = data.indexOf(0x20, offset);
    if (space === -1) break;
    const length = Number.parseInt(Buffer.from(data.subarray(offset, space)).toString('ascii'), 10);
    if (!(length > 0)) throw new TarFormatError('bad pax record length');
    const record = Buffer.from(data.subarray(space + 1, offset + length - 1)).toString('utf8');
    const eq = record.indexOf('=');
    const key = record.slice(0, eq);
    const value = record.slice(eq + 1);
    if (key === 'path') overrides.name = value;
    if (key === 'size') overrides.size = Number(value);
    offset += length;
  }
}

/**
 * Reads a tar stream and returns the contents of the regular files whose (normalised) names
 * `wanted` accepts. Throws TarFormatError on a corrupted or truncated archive.
 */
export async function readTarFiles(
  source: AsyncIterable<Uint8Array>,
  wanted: (name: string) => boolean,
): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const queue = new ByteQueue();
  const header = new Uint8Array(BLOCK);
  // Reader state in one object: the step closure mutates it, which plain `let`s would hide from
  // TypeScript's narrowing.
  const reader: {
    state: 'header' | 'data' | 'padding' | 'end';
    entry: { name: string; size: number; type: string; target: Buffer | null; read: number } | null;
    padding: number;
    overrides: { name?: string; size?: number };
  } = { state: 'header', entry: null, padding: 0, overrides: {} };

  const finishEntry = (entry: NonNullable<typeof reader.entry>): void => {
    if (entry.type === 'x') {
      applyPax(entry.target!, reader.overrides);
    } else if (entry.type === 'L') {
      reader.overrides.name = cString(entry.target!, 0, entry.target!.length);
    } else if (entry.target !== null) {
      files.set(entry.name, entry.target);
    }
  };

  /** Advances by one header, data or padding section; false when more input is needed. */
  const step = (): boolean => {
    switch (reader.state) {
      case 'header': {
        if (queue.length < BLOCK) return false;
        queue.drain(BLOCK, header, 0);
        if (header.every((b) => b === 0)) {
          reader.state = 'end';
          return false;
        }
        const parsed = parseHeader(header);
        const metadata = parsed.type === 'x' || parsed.type === 'L' || parsed.type === 'g';
        const name = (metadata ? parsed.name : (reader.overrides.name ?? parsed.name)).replace(/^\.\//, '');
        const size = metadata ? parsed.size : (reader.overrides.size ?? parsed.size);
        if (!metadata) reader.overrides = {};
        const isRegular = parsed.type === '0' || parsed.type === '7';
        const keep = parsed.type === 'x' || parsed.type === 'L' || (isRegular && wanted(name));
        reader.entry = { name, size, type: parsed.type, target: keep ? Buffer.alloc(size) : null, read: 0 };
        reader.padding = (BLOCK - (size % BLOCK)) % BLOCK;
        reader.state = 'data';
        return true;
      }
      case 'data': {
        const entry = reader.entry!;
        entry.read += queue.drain(entry.size - entry.read, entry.target, entry.read);
        if (entry.read < entry.size) return false;
        finishEntry(entry);
        reader.state = 'padding';
        return true;
      }
      case 'padding': {
        reader.padding -= queue.drain(reader.padding, null, 0);
        if (reader.padding > 0) return false;
        reader.entry = null;
        reader.state = 'header';
        return true;
      }
      case 'end':
        return false;
    }
  };

  for await (const chunk of source) {
    if (reader.state === 'end') break;
    queue.push(chunk);
    while (step()) {
      // keep consuming complete sections
    }
  }
  // Some writers omit the two zero end blocks; ending cleanly between entries is accepted.
  if (reader.state !== 'end' && !(reader.state === 'header' && queue.length === 0)) {
    const where = reader.entry === null ? 'a header' : `"${reader.entry.name}"`;
    throw new TarFormatError(`truncated archive (stopped while reading ${where})`);
  }
  return files;
}
