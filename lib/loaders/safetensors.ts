/**
 * safetensors files: reading (header check, tensor lookup, f32/f16/bf16 to Float32Array; either
 * the whole file in memory or one tensor at a time from an open file) and
 * writing (`writeSafetensors`, streamed to a temporary file beside the target, then renamed, so a
 * reader never sees half a file). Format: u64 little-endian header length N, N bytes of JSON
 * {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then the
 * data; offsets are relative to the end of the header.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { open, readFile, rename, rm } from 'node:fs/promises';
import { ModelFormatError } from '../model/model-format-error.js';

export type SafetensorsDtype = 'F32' | 'F16' | 'BF16';
const DTYPE_BYTES: Record<SafetensorsDtype, number> = { F32: 4, F16: 2, BF16: 2 };
/** Other dtypes that may appear in a file (readable as headers, not convertible here). */
const KNOWN_DTYPES: Record<string, number> = {
  ...DTYPE_BYTES,
  F64: 8,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
  F8_E4M3: 1,
  F8_E5M2: 1,
};
/** Largest header we accept (the format caps it at 100 MB). */
const MAX_HEADER = 100 * 1024 * 1024;

export interface TensorInfo {
  dtype: string;
  shape: number[];
  /** Byte range in the file (absolute). */
  begin: number;
  end: number;
}

/** The header of a safetensors file: where each tensor's bytes are. */
export interface SafetensorsHeader {
  path: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
}

/** A whole file in memory. */
export interface SafetensorsFile extends SafetensorsHeader {
  bytes: Uint8Array;
}

/** An open file whose tensors are read one at a time (peak memory: one tensor's bytes). */
export interface SafetensorsReader extends SafetensorsHeader {
  /** The raw bytes of one tensor, read from the file now. */
  tensorBytes(name: string): Uint8Array;
  close(): void;
}

/** The header length from the first 8 bytes, checked against the file size. */
function headerLength(first8: Uint8Array, fileSize: number, path: string): number {
  if (fileSize < 8) throw new ModelFormatError(path, `truncated: ${fileSize} bytes, no safetensors header`);
  const n = Number(new DataView(first8.buffer, first8.byteOffset, 8).getBigUint64(0, true));
  if (n < 2 || n > MAX_HEADER || 8 + n > fileSize) {
    throw new ModelFormatError(
      path,
      `not a safetensors file or truncated: header length ${n}, file ${fileSize} bytes`,
    );
  }
  return n;
}

export function parseSafetensors(bytes: Uint8Array, path: string): SafetensorsFile {
  const n = headerLength(bytes, bytes.length, path);
  return { ...parseHeader(bytes.subarray(8, 8 + n), bytes.length, path), bytes };
}

/** The JSON header (the n bytes after the length) of a file of fileSize bytes. */
function parseHeader(json: Uint8Array, fileSize: number, path: string): SafetensorsHeader {
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(Buffer.from(json).toString('utf8'));
  } catch (error) {
    throw new ModelFormatError(path, `safetensors header is not valid JSON: ${(error as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) {
    throw new ModelFormatError(path, 'safetensors header is not a JSON object');
  }
  const dataStart = 8 + json.length;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = (value ?? {}) as Record<string, string>;
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bytesPer = typeof v.dtype === 'string' ? KNOWN_DTYPES[v.dtype] : undefined;
    if (bytesPer === undefined)
      throw new ModelFormatError(path, `unknown dtype ${JSON.stringify(v.dtype)}`, name);
    if (!Array.isArray(v.shape) || !v.shape.every((d) => Number.isInteger(d) && d >= 0)) {
      throw new ModelFormatError(path, `bad shape ${JSON.stringify(v.shape)}`, name);
    }
    const offsets = v.data_offsets;
    if (
      !Array.isArray(offsets) ||
      offsets.length !== 2 ||
      !offsets.every((o) => Number.isInteger(o) && o >= 0)
    ) {
      throw new ModelFormatError(path, `bad data_offsets ${JSON.stringify(offsets)}`, name);
    }
    const count = (v.shape as number[]).reduce((a, b) => a * b, 1);
    const [b, e] = offsets as [number, number];
    if (e - b !== count * bytesPer) {
      throw new ModelFormatError(
        path,
        `data_offsets span ${e - b} bytes, shape and dtype need ${count * bytesPer}`,
        name,
      );
    }
    if (dataStart + e > fileSize) {
      throw new ModelFormatError(
        path,
        `truncated: data ends at byte ${dataStart + e}, file has ${fileSize}`,
        name,
      );
    }
    tensors.set(name, {
      dtype: v.dtype as string,
      shape: v.shape as number[],
      begin: dataStart + b,
      end: dataStart + e,
    });
  }
  return { path, tensors, metadata };
}

/** Reads exactly length bytes at position, or throws a ModelFormatError naming what was read. */
function readExactly(fd: number, length: number, position: number, path: string, what: string): Uint8Array {
  const out = Buffer.allocUnsafe(length);
  let done = 0;
  try {
    while (done < length) {
      const got = readSync(fd, out, done, length - done, position + done);
      if (got === 0) break;
      done += got;
    }
  } catch (error) {
    throw new ModelFormatError(path, `cannot read ${what}: ${(error as Error).message}`);
  }
  if (done < length)
    throw new ModelFormatError(path, `truncated while reading ${what}: ${done} of ${length} bytes`);
  return out;
}

/**
 * Opens a safetensors file and reads only its header; each tensor is read when asked for, so a
 * loader that converts tensor by tensor never holds the whole file. Close it when done.
 */
export function openSafetensors(path: string): SafetensorsReader {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (error) {
    throw new ModelFormatError(path, `cannot read file: ${(error as Error).message}`);
  }
  try {
    const size = fstatSync(fd).size;
    const first8 = size >= 8 ? readExactly(fd, 8, 0, path, 'the header length') : new Uint8Array(0);
    const n = headerLength(first8, size, path);
    const header = parseHeader(readExactly(fd, n, 8, path, 'the header'), size, path);
    let open = true;
    return {
      ...header,
      tensorBytes(name: string): Uint8Array {
        const info = header.tensors.get(name);
        if (info === undefined) throw new ModelFormatError(path, 'missing', name);
        if (!open) throw new ModelFormatError(path, 'the file was closed before the tensor was read', name);
        return readExactly(fd, info.end - info.begin, info.begin, path, `tensor ${name}`);
      },
      close(): void {
        if (open) closeSync(fd);
        open = false;
      },
    };
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (error) {
    throw new ModelFormatError(path, `cannot read file: ${(error as Error).message}`);
  }
  return parseSafetensors(bytes, path);
}

/** bf16 bits -> float. */
function bf16ToFloat(bits: number, scratch: DataView): number {
  scratch.setUint32(0, bits << 16, true);
  return scratch.getFloat32(0, true);
}

/** IEEE half bits -> float. */
export function f16ToFloat(bits: number): number {
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const mantissa = bits & 0x3ff;
  if (exponent === 0) return sign * mantissa * 2 ** -24;
  if (exponent === 31) return mantissa === 0 ? sign * Number.POSITIVE_INFINITY : Number.NaN;
  return sign * (1 + mantissa / 1024) * 2 ** (exponent - 15);
}

/** float -> IEEE half bits, round to nearest even. */
export function floatToF16(value: number): number {
  const f = Math.fround(value);
  if (Number.isNaN(f)) return 0x7e00;
  const sign = f < 0 || Object.is(f, -0) ? 0x8000 : 0;
  const a = Math.abs(f);
  if (a === Number.POSITIVE_INFINITY) return sign | 0x7c00;
  if (a >= 65520) return sign | 0x7c00; // rounds past the largest half
  if (a < 2 ** -14) {
    // Subnormal: units of 2^-24, round half to even.
    const units = a / 2 ** -24;
    let q = Math.floor(units);
    const rest = units - q;
    if (rest > 0.5 || (rest === 0.5 && q % 2 === 1)) q++;
    return sign | q;
  }
  let exponent = Math.floor(Math.log2(a));
  if (2 ** exponent > a) exponent--;
  if (2 ** (exponent + 1) <= a) exponent++;
  const scaled = a / 2 ** exponent - 1; // [0, 1)
  const units = scaled * 1024;
  let q = Math.floor(units);
  const rest = units - q;
  if (rest > 0.5 || (rest === 0.5 && q % 2 === 1)) q++;
  if (q === 1024) {
    q = 0;
    exponent++;
  }
  if (exponent + 15 >= 31) return sign | 0x7c00;
  return sign | ((exponent + 15) << 10) | q;
}

/** float -> bf16 bits, round to nearest even (NaN stays NaN). */
export function floatToBf16(value: number, scratch = new DataView(new ArrayBuffer(4))): number {
  scratch.setFloat32(0, value, true);
  const bits = scratch.getUint32(0, true);
  if ((bits & 0x7fffffff) > 0x7f800000) return 0x7fc0;
  return ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
}

/** A tensor's values as a new Float32Array (F32, F16 or BF16 in the file). */
export function tensorToFloat32(file: SafetensorsFile | SafetensorsReader, name: string): Float32Array {
  const info = file.tensors.get(name);
  if (info === undefined) throw new ModelFormatError(file.path, 'missing', name);
  const count = info.shape.reduce((a, b) => a * b, 1);
  const bytes = 'bytes' in file ? file.bytes.subarray(info.begin, info.end) : file.tensorBytes(name);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(count);
  switch (info.dtype) {
    case 'F32':
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(i * 4, true);
      break;
    case 'F16':
      for (let i = 0; i < count; i++) out[i] = f16ToFloat(view.getUint16(i * 2, true));
      break;
    case 'BF16': {
      const scratch = new DataView(new ArrayBuffer(4));
      for (let i = 0; i < count; i++) out[i] = bf16ToFloat(view.getUint16(i * 2, true), scratch);
      break;
    }
    default:
      throw new ModelFormatError(file.path, `dtype ${info.dtype} is not supported (F32, F16 or BF16)`, name);
  }
  return out;
}

export interface TensorToWrite {
  dtype: SafetensorsDtype;
  shape: readonly number[];
  /** Float values (converted to the dtype), or the raw 16-bit patterns for F16/BF16. */
  data: Float32Array | Uint16Array;
}

function encodeTensor(name: string, t: TensorToWrite): Uint8Array {
  const count = t.shape.reduce((a, b) => a * b, 1);
  if (!(DTYPE_BYTES as Record<string, number>)[t.dtype]) {
    throw new RangeError(`tensor ${name}: dtype ${t.dtype} is not one of F32, F16, BF16`);
  }
  if (t.data.length !== count) {
    throw new RangeError(
      `tensor ${name}: ${t.data.length} values, shape [${t.shape.join(', ')}] needs ${count}`,
    );
  }
  if (t.dtype === 'F32') {
    if (!(t.data instanceof Float32Array))
      throw new RangeError(`tensor ${name}: F32 data must be a Float32Array`);
    const out = new Uint8Array(count * 4);
    const view = new DataView(out.buffer);
    for (let i = 0; i < count; i++) view.setFloat32(i * 4, t.data[i]!, true);
    return out;
  }
  const out = new Uint8Array(count * 2);
  const view = new DataView(out.buffer);
  if (t.data instanceof Uint16Array) {
    for (let i = 0; i < count; i++) view.setUint16(i * 2, t.data[i]!, true);
  } else {
    const scratch = new DataView(new ArrayBuffer(4));
    for (let i = 0; i < count; i++) {
      view.setUint16(
        i * 2,
        t.dtype === 'BF16' ? floatToBf16(t.data[i]!, scratch) : floatToF16(t.data[i]!),
        true,
      );
    }
  }
  return out;
}

/**
 * Writes a safetensors file: tensors in the given key order, 8-byte aligned header, optional
 * string metadata. The data streams to `<path>.<random>.tmp`, which is renamed to `path` when
 * complete (and removed on failure).
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): Promise<void> {
  const header: Record<string, unknown> = {};
  if (metadata !== undefined) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new TypeError(`metadata ${k} must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new RangeError('a tensor cannot be named __metadata__');
    const count = t.shape.reduce((a, b) => a * b, 1);
    const size = count * (DTYPE_BYTES[t.dtype] ?? 0);
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const headerBytes = Buffer.from(json, 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(headerBytes.length));

  const temporary = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  const handle = await open(temporary, 'w');
  try {
    await handle.write(prefix);
    await handle.write(headerBytes);
    for (const [name, t] of Object.entries(tensors)) await handle.write(encodeTensor(name, t));
    await handle.sync();
    await handle.close();
    await rename(temporary, path);
  } catch (error) {
    await handle.close().catch(() => {});
    await rm(temporary, { force: true });
    throw error;
  }
}
