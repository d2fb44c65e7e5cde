import sharp, { type OutputInfo } from 'sharp';
import { CxrError, boundedDetail } from '../errors/index.js';

export type RasterFormat = 'png' | 'jpeg';

export function rasterFormatOf(bytes: Uint8Array): RasterFormat | undefined {
  if (bytes.length >= 8 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47) return 'png';
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) return 'jpeg';
  return undefined;
}

export interface RasterGrey {
  readonly format: RasterFormat;
  /** Intensities in [0, 1]: v / (2^bitDepth - 1) of the (luma of the) file's samples, in double precision (step 3). */
  readonly data: Float64Array;
  readonly rows: number;
  readonly columns: number;
  readonly bitDepth: 8 | 16;
  readonly colour: boolean;
}

/**
 * PNG and JPEG enter the contract at step 3: `v / (2^bitdepth - 1)`. Colour is made grey with ITU-R 601-2 luma
 * exactly as PIL's convert('L') does for 8-bit images (fixed point, rounded), alpha ignored.
 */
export async function readRasterGrey(bytes: Uint8Array, format: RasterFormat): Promise<RasterGrey> {
  let raw: { data: Buffer; info: OutputInfo };
  let sixteen: boolean;
  try {
    const image = sharp(bytes, { failOn: 'error', limitInputPixels: 16384 * 16384 });
    const meta = await image.metadata();
    sixteen = meta.depth === 'ushort';
    raw = await image
      .toColourspace(sixteen ? (meta.channels ?? 1) >= 3 ? 'rgb16' : 'grey16' : meta.channels !== undefined && meta.channels >= 3 ? 'srgb' : 'b-w')
      .raw({ depth: sixteen ? 'ushort' : 'uchar' })
      .toBuffer({ resolveWithObject: true });
  } catch (err) {
    throw new CxrError('CXR_IMAGE_UNREADABLE', `${format}: ${boundedDetail(err)}`);
  }
  const { info, data } = raw;
  const channels = info.channels;
  const pixels = info.width * info.height;
  const samples = sixteen ? new Uint16Array(data.buffer, data.byteOffset, data.length / 2) : data;
  const max = sixteen ? 65535 : 255;
  const out = new Float64Array(pixels);
  const colour = channels >= 3;
  for (let i = 0; i < pixels; i++) {
    const base = i * channels;
    let v: number;
    if (colour) {
      const r = samples[base] ?? 0;
      const g = samples[base + 1] ?? 0;
      const b = samples[base + 2] ?? 0;
      v = sixteen ? 0.299 * r + 0.587 * g + 0.114 * b : (r * 19595 + g * 38470 + b * 7471 + 0x8000) >> 16;
    } else {
      v = samples[base] ?? 0;
    }
    out[i] = v / max;
  }
  return { format, data: out, rows: info.height, columns: info.width, bitDepth: sixteen ? 16 : 8, colour };
}
