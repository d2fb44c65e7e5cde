import sharp from 'sharp';
import type { DecodedFrame } from '../codecs/index.js';
import type { ImageInfo } from '../dicom/image-info.js';
import { intensityImage, isColourDicom, type SourceImage } from '../pipeline/source-image.js';
import { applyIntensity, storedValues } from '../preprocess/index.js';

export interface PreviewOptions {
  /** Longest side of the preview in pixels; smaller images are never upscaled. Default 1024. */
  readonly maxSide?: number;
  /**
   * PNG encoding: `fast` (default, zlib level 2, no row filters: about 10 ms for 1024 x 1024) or `small` (level 6 with
   * adaptive row filters: about a third smaller, several times slower), for a preview that goes over a slow link.
   */
  readonly compression?: 'fast' | 'small';
}

export interface Preview {
  /** 8-bit greyscale PNG (one channel): air dark, bone bright. */
  readonly png: Buffer;
  readonly width: number;
  readonly height: number;
  /**
   * How the source maps onto the preview: preview pixels per source pixel, `maxSide / longest side`, or 1 when the
   * source was small enough. Exact on the long side; the short side is rounded to whole pixels.
   */
  readonly scale: number;
  /** The window the grey levels show, in modality units (after RescaleSlope/Intercept); null for PNG/JPEG. */
  readonly window: { readonly center: number; readonly width: number } | null;
}

export const DEFAULT_PREVIEW_MAX_SIDE = 1024;

/** A display image: float32 as libvips gives it back (a preview needs no double precision, and no copy into it). */
interface PreviewGrey {
  readonly data: Float32Array | Float64Array;
  readonly rows: number;
  readonly columns: number;
}

/** Robust display window: these fractions of the pixels fall below black and above white. */
const LOW_PERCENTILE = 0.005;
const HIGH_PERCENTILE = 0.995;
const HISTOGRAM_BINS = 4096;

/**
 * A display preview of a source image.
 *
 * DICOM: stored values (contract step 1) shrunk to the preview size first (windowing an average looks the same as
 * averaging windowed pixels, and it is a quarter of the work on a 4-megapixel CR), then the contract's own
 * `applyIntensity`: Modality LUT, the file's first window (else the 0.5th to 99.5th percentile of the image, taken
 * from a histogram), MONOCHROME1 inverted so that bone is bright. PNG/JPEG (and colour DICOM, made grey) are already
 * in [0, 1] and are only shrunk.
 */
export async function renderPreview(source: SourceImage, options: PreviewOptions = {}): Promise<Preview> {
  const maxSide = options.maxSide ?? DEFAULT_PREVIEW_MAX_SIDE;
  if (!Number.isInteger(maxSide) || maxSide < 1) throw new RangeError(`maxSide must be a positive integer, got ${maxSide}`);

  let grey: PreviewGrey;
  let window: Preview['window'] = null;
  let scale: number;
  if (source.kind === 'dicom' && !isColourDicom(source.info)) {
    const { info, frame } = source;
    const size = previewSize(frame.rows, frame.columns, maxSide);
    scale = size.scale;
    grey = await shrink(samplesAsStoredValues(frame, info) ?? storedValues(frame, info), frame.rows, frame.columns, size);
    window = displayWindow(grey.data, info);
  } else {
    const { image } = intensityImage(source, 'bits');
    const size = previewSize(image.rows, image.columns, maxSide);
    scale = size.scale;
    grey = await shrink(image.data, image.rows, image.columns, size);
  }

  const small = options.compression === 'small';
  const png = await sharp(toBytes(grey.data), { raw: { width: grey.columns, height: grey.rows, channels: 1 } })
    // One grey channel in the file as well (sharp would otherwise write sRGB).
    .toColourspace('b-w')
    .png({ compressionLevel: small ? 6 : 2, adaptiveFiltering: small })
    .toBuffer();
  return { png, width: grey.columns, height: grey.rows, scale, window };
}

export interface PreviewSize {
  readonly rows: number;
  readonly columns: number;
  readonly scale: number;
}

/** Long side at most `maxSide`, aspect kept, never upscaled. */
export function previewSize(rows: number, columns: number, maxSide: number): PreviewSize {
  const long = Math.max(rows, columns);
  if (long <= maxSide) return { rows, columns, scale: 1 };
  const scale = maxSide / long;
  return {
    rows: rows >= columns ? maxSide : Math.max(1, Math.round(rows * scale)),
    columns: columns >= rows ? maxSide : Math.max(1, Math.round(columns * scale)),
    scale,
  };
}

/**
 * Most frames already hold their stored values (contract step 1), and skipping the full-size float copy of them is
 * a good part of what makes a preview fast. Unsigned 8 or 16-bit samples qualify when:
 * - decoded: step 1 only clamps a lossy decoder's overshoot of a step above the BitsStored range, which after
 *   averaging and a display window is invisible;
 * - native: the stored bits start at bit 0 and no sample has a bit above them set (nothing to mask).
 */
function samplesAsStoredValues(frame: DecodedFrame, info: ImageInfo): Uint8Array | Uint16Array | undefined {
  const { samples } = frame;
  if (info.pixelRepresentation !== 0 || !(samples instanceof Uint8Array || samples instanceof Uint16Array)) return undefined;
  if (frame.origin === 'decoded') return samples;
  if (info.highBit + 1 !== info.bitsStored) return undefined;
  const max = 2 ** info.bitsStored - 1;
  if (max >= (samples instanceof Uint8Array ? 0xff : 0xffff)) return samples;
  const highest = samples instanceof Uint16Array ? maxOf16(samples) : maxOf8(samples);
  return highest <= max ? samples : undefined;
}

// One loop per array type keeps each one monomorphic (fast).
function maxOf16(samples: Uint16Array): number {
  let m = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i] ?? 0;
    if (v > m) m = v;
  }
  return m;
}

function maxOf8(samples: Uint8Array): number {
  let m = 0;
  for (let i = 0; i < samples.length; i++) {
    const v = samples[i] ?? 0;
    if (v > m) m = v;
  }
  return m;
}

/**
 * Shrinks to the preview size with libvips: a triangle filter as wide as the shrink factor, which averages the
 * source pixels much as `area` does, several times faster than the contract's float `resize` (a preview needs no
 * bit-exact match with the model's input). Returned as floats, in the input's units.
 */
async function shrink(data: Uint8Array | Uint16Array | Float64Array, rows: number, columns: number, size: PreviewSize): Promise<PreviewGrey> {
  if (size.rows === rows && size.columns === columns) {
    return { data: data instanceof Float64Array ? data : new Float32Array(data), rows, columns };
  }
  if (!(data instanceof Float64Array)) return { data: await shrinkIntegers(data, rows, columns, size), rows: size.rows, columns: size.columns };
  // libvips rounds float grey images to integers on the way, so floats (stored values that needed masking or a
  // sign, PNG/JPEG intensities) go through 16 bits: their range mapped onto 0..65535, and back afterwards. Integer
  // stored values (a range of 65535 or less) stay exact.
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] ?? 0;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const scale = max > min ? 65535 / (max - min) : 1;
  const offset = Number.isFinite(min) ? min : 0;
  const words = new Uint16Array(data.length);
  for (let i = 0; i < data.length; i++) words[i] = Math.round(((data[i] ?? 0) - offset) * scale);
  const out = await shrinkIntegers(words, rows, columns, size);
  for (let i = 0; i < out.length; i++) out[i] = (out[i] ?? 0) / scale + offset;
  return { data: out, rows: size.rows, columns: size.columns };
}

async function shrinkIntegers(data: Uint8Array | Uint16Array, rows: number, columns: number, size: PreviewSize): Promise<Float32Array> {
  const { data: out, info } = await sharp(data, { raw: { width: columns, height: rows, channels: 1 } })
    .resize(size.columns, size.rows, { kernel: 'linear', fit: 'fill' })
    // Back to the space libvips gave the input, so that no conversion rescales the values (8-bit raw input is
    // b-w and 16-bit grey16; b-w would divide 16-bit values by 256, and sRGB would make three channels).
    .toColourspace(data instanceof Uint16Array ? 'grey16' : 'b-w')
    .raw({ depth: 'float' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || info.width !== size.columns || info.height !== size.rows) {
    throw new Error(`preview shrink returned ${info.width} x ${info.height} x ${info.channels}, expected ${size.columns} x ${size.rows} x 1`);
  }
  // A Float32Array view needs 4-byte alignment, which sharp's buffer has in practice; copy when it has not.
  return out.byteOffset % 4 === 0
    ? new Float32Array(out.buffer, out.byteOffset, out.length / 4)
    : new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.length));
}

/**
 * Contract steps 2 to 4 on the shrunk stored values, in place, with a display window: the file's first usable
 * WindowCenter/Width (with its VOI LUT Function), else a robust window from the percentiles. Returns the window.
 */
function displayWindow(values: Float32Array | Float64Array, info: ImageInfo): Preview['window'] {
  const center = info.windowCenters[0];
  const width = info.windowWidths[0];
  if (center !== undefined && width !== undefined && isUsableWindow(width, info.voiLutFunction)) {
    applyIntensity(values, info, 'window');
    return { center, width };
  }
  const robust = percentileWindow(values, info);
  const applied = applyIntensity(
    values,
    {
      ...info,
      windowCenters: robust ? [robust.center] : [],
      windowWidths: robust ? [robust.width] : [],
      // LINEAR_EXACT maps center - width/2 and center + width/2 exactly onto black and white.
      voiLutFunction: 'LINEAR_EXACT',
      voiLuts: [],
    },
    'window',
  );
  // A flat image has no window: applyIntensity fell back to min/max (all black, or all white for MONOCHROME1).
  return applied.mode === 'window' ? { center: applied.center, width: applied.width } : null;
}

/** PS3.3 C.11.2.1.2, as the contract's intensity step checks it. */
function isUsableWindow(width: number, fn: ImageInfo['voiLutFunction']): boolean {
  return fn === 'LINEAR' ? width >= 1 : width > 0;
}

/**
 * The 0.5th and 99.5th percentiles of the stored values from a histogram (one pass for the range, one to count),
 * carried through the Modality LUT. Undefined for a flat image.
 */
function percentileWindow(values: Float32Array | Float64Array, info: ImageInfo): { center: number; width: number } | undefined {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max > min)) return undefined;
  const bins = new Uint32Array(HISTOGRAM_BINS);
  const binScale = HISTOGRAM_BINS / (max - min);
  for (let i = 0; i < values.length; i++) {
    const b = Math.min(HISTOGRAM_BINS - 1, Math.floor(((values[i] ?? 0) - min) * binScale));
    bins[b] = (bins[b] ?? 0) + 1;
  }
  const lowCount = LOW_PERCENTILE * values.length;
  const highCount = HIGH_PERCENTILE * values.length;
  let low = -1;
  let high = HISTOGRAM_BINS - 1;
  let seen = 0;
  for (let b = 0; b < HISTOGRAM_BINS; b++) {
    seen += bins[b] ?? 0;
    if (low < 0 && seen > lowCount) low = b;
    if (seen >= highCount) {
      high = b;
      break;
    }
  }
  // From the lower edge of the low bin to the upper edge of the high bin, so that even a two-level image gets one.
  const slope = info.rescaleSlope ?? 1;
  const intercept = info.rescaleIntercept ?? 0;
  const a = (min + Math.max(low, 0) / binScale) * slope + intercept;
  const b = (min + (high + 1) / binScale) * slope + intercept;
  const width = Math.abs(b - a);
  return width > 0 ? { center: (a + b) / 2, width } : undefined;
}

function toBytes(values: Float32Array | Float64Array): Uint8ClampedArray {
  // A clamped array clamps to 0..255 and rounds (NaN becomes 0).
  const out = new Uint8ClampedArray(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (values[i] ?? 0) * 255;
  return out;
}
