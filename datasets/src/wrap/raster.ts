import { CxrError } from '@cxr/inference';
import sharp from 'sharp';

/** A PNG or JPEG as integer grey samples, exactly as stored in the file (or its luma, for colour files). */
export interface RasterSamples {
  readonly format: 'png' | 'jpeg';
  readonly samples: Uint8Array | Uint16Array;
  readonly rows: number;
  readonly columns: number;
  readonly bitDepth: 8 | 16;
  /** The file had colour channels; `samples` is their luma. */
  readonly colour: boolean;
  readonly hadAlpha: boolean;
}

export function rasterFormatOf(bytes: Uint8Array): 'png' | 'jpeg' | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return undefined;
}

/**
 * Reads the grey samples. Grey files are read through libvips' grey colourspaces, which keep 8- and 16-bit values
 * as they are (checked in the tests against known arrays); colour files are made grey with ITU-R 601-2 luma, as PIL's
 * `convert('L')` and the inference pipeline do: fixed point and rounded for 8 bits, rounded to the nearest integer
 * for 16 bits. Alpha is ignored.
 */
export async function readRasterSamples(bytes: Uint8Array): Promise<RasterSamples> {
  const format = rasterFormatOf(bytes);
  if (!format) throw new CxrError('CXR_IMAGE_UNREADABLE', 'not a PNG or JPEG file');
  let data: Buffer;
  let width: number;
  let height: number;
  let channels: number;
  let sixteen: boolean;
  let colour: boolean;
  let hadAlpha: boolean;
  try {
    const image = sharp(bytes, { failOn: 'error', limitInputPixels: 16384 * 16384 });
    const meta = await image.metadata();
    sixteen = meta.depth === 'ushort';
    hadAlpha = meta.hasAlpha;
    colour = meta.channels - (meta.hasAlpha ? 1 : 0) >= 3;
    const space = sixteen ? (colour ? 'rgb16' : 'grey16') : colour ? 'srgb' : 'b-w';
    const raw = await image
      .toColourspace(space)
      .raw({ depth: sixteen ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
    data = raw.data;
    ({ width, height, channels } = raw.info);
  } catch (err) {
    throw new CxrError('CXR_IMAGE_UNREADABLE', `${format}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const pixels = width * height;
  const source = sixteen ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : new Uint8Array(data.buffer, data.byteOffset, data.length);
  const samples = sixteen ? new Uint16Array(pixels) : new Uint8Array(pixels);
  for (let i = 0; i < pixels; i++) {
    const base = i * channels;
    if (!colour) {
      samples[i] = source[base] ?? 0;
      continue;
    }
    const r = source[base] ?? 0;
    const g = source[base + 1] ?? 0;
    const b = source[base + 2] ?? 0;
    samples[i] = sixteen ? Math.min(65535, Math.round(0.299 * r + 0.587 * g + 0.114 * b)) : (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
  }
  return { format, samples, rows: height, columns: width, bitDepth: sixteen ? 16 : 8, colour, hadAlpha };
}
