/** Reading and writing cache rows in TypeScript, following the layout in latentkv.h. */
import type { CacheDtype } from '../../lib/dtypes.js';
import { bf16ToF32, f16ToF32, f32ToBf16, f32ToF16, f32ToFp8, fp8ToF32 } from './dtype-codec.js';

export interface RowLayout {
  rowBytes: number;
  scaleOffset: number;
  ropeOffset: number;
}

const quantized = (d: CacheDtype) => d === 'int8' || d === 'fp8_e4m3';

export function expectedLayout(dtype: CacheDtype, R: number, ropeWidth: number): RowLayout {
  if (quantized(dtype)) {
    const scaleOffset = Math.ceil(R / 4) * 4;
    const ropeOffset = scaleOffset + 4;
    return { rowBytes: Math.ceil((ropeOffset + 2 * ropeWidth) / 4) * 4, scaleOffset, ropeOffset };
  }
  const e = dtype === 'f32' ? 4 : 2;
  return { rowBytes: e * (R + ropeWidth), scaleOffset: 0, ropeOffset: e * R };
}

function load(view: DataView, offset: number, dtype: CacheDtype | 'bf16', i: number): number {
  switch (dtype) {
    case 'f32':
      return view.getFloat32(offset + 4 * i, true);
    case 'f16':
      return f16ToF32(view.getUint16(offset + 2 * i, true));
    case 'bf16':
      return bf16ToF32(view.getUint16(offset + 2 * i, true));
    case 'int8':
      return view.getInt8(offset + i);
    case 'fp8_e4m3':
      return fp8ToF32(view.getUint8(offset + i));
  }
}

function store(view: DataView, offset: number, dtype: CacheDtype, i: number, v: number): void {
  switch (dtype) {
    case 'f32':
      view.setFloat32(offset + 4 * i, v, true);
      return;
    case 'f16':
      view.setUint16(offset + 2 * i, f32ToF16(v), true);
      return;
    case 'bf16':
      view.setUint16(offset + 2 * i, f32ToBf16(v), true);
      return;
    case 'int8':
      view.setInt8(offset + i, Math.round(Math.max(-127, Math.min(127, v))));
      return;
    case 'fp8_e4m3':
      view.setUint8(offset + i, f32ToFp8(v));
      return;
  }
}

/** Dequantized [latent (R), rope (ropeWidth)] of the row at byte offset `row`. */
export function readRow(
  pages: Uint8Array,
  row: number,
  layout: RowLayout,
  dtype: CacheDtype,
  R: number,
  ropeWidth: number,
): { latent: Float64Array; rope: Float64Array } {
  const view = new DataView(pages.buffer, pages.byteOffset, pages.byteLength);
  const scale = quantized(dtype) ? view.getFloat32(row + layout.scaleOffset, true) : 1;
  const latent = new Float64Array(R);
  for (let r = 0; r < R; r++) latent[r] = load(view, row, dtype, r) * scale;
  const rope = new Float64Array(ropeWidth);
  const ropeDtype = quantized(dtype) ? 'bf16' : dtype;
  for (let i = 0; i < ropeWidth; i++) rope[i] = load(view, row + layout.ropeOffset, ropeDtype, i);
  return { latent, rope };
}

export function writeRow(
  pages: Uint8Array,
  row: number,
  layout: RowLayout,
  dtype: CacheDtype,
  latent: ArrayLike<number>,
  rope: ArrayLike<number>,
): void {
  const view = new DataView(pages.buffer, pages.byteOffset, pages.byteLength);
  let scale = 1;
  if (quantized(dtype)) {
    let amax = 0;
    for (let r = 0; r < latent.length; r++) amax = Math.max(amax, Math.abs(latent[r] as number));
    scale = amax > 0 ? Math.fround(amax / (dtype === 'int8' ? 127 : 448)) : 1;
    view.setFloat32(row + layout.scaleOffset, scale, true);
  }
  for (let r = 0; r < latent.length; r++)
    store(view, row, dtype, r, Math.fround((latent[r] as number) / scale));
  const ropeDtype = quantized(dtype) ? 'bf16' : dtype;
  for (let i = 0; i < rope.length; i++) store(view, row + layout.ropeOffset, ropeDtype, i, rope[i] as number);
}
