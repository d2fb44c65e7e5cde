/**
 * A minimal PNG reader for tests, independent of sharp/libvips: non-interlaced grey, RGB or RGBA, 8 or 16 bit.
 * The wrap tests compare what the DICOM file stores against what this reads, so a conversion inside libvips
 * (a colour profile, a gamma) could not pass unseen.
 */
import { inflateSync } from 'node:zlib';

export interface PngImage {
  readonly width: number;
  readonly height: number;
  readonly bitDepth: 8 | 16;
  readonly channels: number;
  /** Interleaved samples, row by row. */
  readonly samples: Uint16Array;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  if (pa <= pb && pa <= pc) return a;
  return pb <= pc ? b : c;
}

export function readPng(bytes: Uint8Array): PngImage {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = 8;
  let width = 0;
  let height = 0;
  let bitDepth = 8;
  let colourType = 0;
  const idat: Uint8Array[] = [];
  while (pos < bytes.length) {
    const length = view.getUint32(pos);
    const type = String.fromCharCode(...bytes.subarray(pos + 4, pos + 8));
    const data = bytes.subarray(pos + 8, pos + 8 + length);
    if (type === 'IHDR') {
      const header = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = header.getUint32(0);
      height = header.getUint32(4);
      bitDepth = header.getUint8(8);
      colourType = header.getUint8(9);
      if (header.getUint8(12) !== 0) throw new Error('interlaced PNG: not supported by the test reader');
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + length;
  }
  const channels = { 0: 1, 2: 3, 4: 2, 6: 4 }[colourType];
  if (channels === undefined || (bitDepth !== 8 && bitDepth !== 16)) throw new Error(`PNG colour type ${colourType}, depth ${bitDepth}: not supported`);
  const raw = inflateSync(Buffer.concat(idat));
  const bytesPerPixel = (channels * bitDepth) / 8;
  const stride = width * bytesPerPixel;
  const rows = new Uint8Array(height * stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] ?? 0;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let x = 0; x < stride; x++) {
      const a = x >= bytesPerPixel ? (rows[y * stride + x - bytesPerPixel] ?? 0) : 0;
      const b = y > 0 ? (rows[(y - 1) * stride + x] ?? 0) : 0;
      const c = x >= bytesPerPixel && y > 0 ? (rows[(y - 1) * stride + x - bytesPerPixel] ?? 0) : 0;
      const value = line[x] ?? 0;
      const predictor = [0, a, b, (a + b) >> 1, paeth(a, b, c)][filter];
      if (predictor === undefined) throw new Error(`PNG filter ${filter}`);
      rows[y * stride + x] = (value + predictor) & 0xff;
    }
  }
  const count = width * height * channels;
  const samples = new Uint16Array(count);
  for (let i = 0; i < count; i++) samples[i] = bitDepth === 8 ? (rows[i] ?? 0) : ((rows[2 * i] ?? 0) << 8) | (rows[2 * i + 1] ?? 0);
  return { width, height, bitDepth, channels, samples };
}

/** The grey value of each pixel: the sample itself, or ITU-R 601-2 luma rounded as PIL's convert('L') for 8 bits. */
export function greyOf(image: PngImage): Uint16Array {
  const pixels = image.width * image.height;
  const out = new Uint16Array(pixels);
  for (let i = 0; i < pixels; i++) {
    const base = i * image.channels;
    if (image.channels < 3) {
      out[i] = image.samples[base] ?? 0;
      continue;
    }
    const r = image.samples[base] ?? 0;
    const g = image.samples[base + 1] ?? 0;
    const b = image.samples[base + 2] ?? 0;
    out[i] = image.bitDepth === 8 ? (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16 : Math.min(65535, Math.round(0.299 * r + 0.587 * g + 0.114 * b));
  }
  return out;
}
