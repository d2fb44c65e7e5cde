import { CxrError } from '../errors/index.js';
import type { DecodedFrame, FrameGeometry, SampleArray } from './types.js';

/** Native pixel data as typed samples: byte order fixed, bit-packed (1-bit) data unpacked, planes interleaved. */
export function readUncompressed(bytes: Uint8Array, littleEndian: boolean, geometry: FrameGeometry): DecodedFrame {
  const count = geometry.rows * geometry.columns * geometry.samplesPerPixel;
  const signed = geometry.pixelRepresentation === 1;
  let samples: SampleArray;
  switch (geometry.bitsAllocated) {
    case 1: {
      const out = new Uint8Array(count);
      for (let i = 0; i < count; i++) out[i] = ((bytes[i >> 3] ?? 0) >> (i & 7)) & 1;
      samples = out;
      break;
    }
    case 8:
      samples = signed ? new Int8Array(bytes.buffer, bytes.byteOffset, count) : bytes.subarray(0, count);
      break;
    case 16:
      samples = wordArray(bytes, count, 2, littleEndian, signed);
      break;
    case 32:
      samples = wordArray(bytes, count, 4, littleEndian, signed);
      break;
    default:
      throw new CxrError('CXR_INVALID_PIXEL_MODULE', `BitsAllocated ${geometry.bitsAllocated}`);
  }
  if (geometry.samplesPerPixel > 1 && geometry.planarConfiguration === 1) samples = interleave(samples, geometry.samplesPerPixel);
  return {
    samples,
    rows: geometry.rows,
    columns: geometry.columns,
    samplesPerPixel: geometry.samplesPerPixel,
    origin: 'native',
    decoder: 'uncompressed',
  };
}

function wordArray(bytes: Uint8Array, count: number, size: 2 | 4, littleEndian: boolean, signed: boolean): SampleArray {
  const hostLittleEndian = true;
  if (littleEndian === hostLittleEndian && bytes.byteOffset % size === 0) {
    if (size === 2) return signed ? new Int16Array(bytes.buffer, bytes.byteOffset, count) : new Uint16Array(bytes.buffer, bytes.byteOffset, count);
    return signed ? new Int32Array(bytes.buffer, bytes.byteOffset, count) : new Uint32Array(bytes.buffer, bytes.byteOffset, count);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, count * size);
  if (size === 2) {
    const out = signed ? new Int16Array(count) : new Uint16Array(count);
    for (let i = 0; i < count; i++) out[i] = signed ? view.getInt16(i * 2, littleEndian) : view.getUint16(i * 2, littleEndian);
    return out;
  }
  const out = signed ? new Int32Array(count) : new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = signed ? view.getInt32(i * 4, littleEndian) : view.getUint32(i * 4, littleEndian);
  return out;
}

/** Planar (RRR...GGG...BBB) to interleaved (RGBRGB...). */
export function interleave<T extends SampleArray>(planar: T, samplesPerPixel: number): T {
  const pixels = planar.length / samplesPerPixel;
  const out = new (planar.constructor as new (n: number) => T)(planar.length);
  for (let s = 0; s < samplesPerPixel; s++) {
    const base = s * pixels;
    for (let i = 0; i < pixels; i++) out[i * samplesPerPixel + s] = planar[base + i] ?? 0;
  }
  return out;
}
