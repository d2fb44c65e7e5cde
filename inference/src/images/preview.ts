import sharp from 'sharp';
import type { ImageInfo } from '../dicom/image-info.js';
import { intensityImage, isColourDicom, type SourceImage } from '../pipeline/source-image.js';
import type { DecodedFrame } from '../codecs/index.js';
import { applyIntensity, storedValues, type GreyImage } from '../preprocess/index.js';

export interface PreviewOptions {
  /** Longest side of the preview in pixels; smaller images are never upscaled. Default 1024. */
  readonly maxSide?: number;
}

export interface Preview {
  /** 8-bit greyscale PNG: air dark, bone bright. */
  readonly png: Buffer;
  readonly width: number;
  readonly height: number;
  /**
   * How the source maps onto the preview: preview pixels per source pixel (`maxSide / longest side`, or 1 when the
   * source was small enough). Exact on the long side; the short side is rounded to whole pixels.
   */
  readonly scale: number;
  /** The window the grey levels show, in modality units (after RescaleSlope/Intercept); null for PNG/JPEG. */
  readonly window: { readonly center: number; readonly width: number } | null;
}

export const DEFAULT_PREVIEW_MAX_SIDE = 1024;

/** Robust display window: these percentiles of the image's values map to black and white. */
const LOW_PERCENTILE = 0.005;
const HIGH_PERCENTILE = 0.995;
const HISTOGRAM_BINS = 4096;

/**
 * A display preview of a source image. DICOM: stored values (contract step 1), area-shrunk to the preview size first
 * (averaging then windowing looks the same and is about four times less work), Modality LUT, the file's first
 * window (else the 0.5th to 99.5th percentile of the image), MONOCHROME1 inverted. PNG/JPEG are already in [0, 1]
 * and are only shrunk. The processing steps are the preprocessing contract's own functions.
 */
export async function renderPreview(source: SourceImage, options: PreviewOptions = {}): Promise<Preview> {
  const maxSide = options.maxSide ?? DEFAULT_PREVIEW_MAX_SIDE;
  if (!Number.isInteger(maxSide) || maxSide < 1) throw new RangeError(`maxSide must be a positive integer, got ${maxSide}`);

  let grey: GreyImage;
  let window: Preview['window'] = null;
  let scale: number;
  if (source.kind === 'dicom' && !isColourDicom(source.info)) {
    const { info, frame } = source;
    const size = previewSize(frame.rows, frame.columns, maxSide);
    scale = size.scale;
    // Contract step 1. Most frames (unsigned, nothing above BitsStored) already hold their stored values, and
    // skipping a full-size float copy of them is most of what makes a 4-megapixel preview fast.
    const stored = samplesAreStoredValues(frame, info) ? frame.samples : storedValues(frame, info);
    grey = await shrink(stored, frame.rows, frame.columns, size);
    window = displayWindow(grey.data, info);
  } else {
    // PNG/JPEG, or a colour DICOM made grey (luma): already intensities in [0, 1].
    const { image } = intensityImage(source, 'bits');
    const size = previewSize(image.rows, image.columns, maxSide);
    scale = size.scale;
    grey = await shrink(image.data, image.rows, image.columns, size);
  }

  const bytes = toBytes(grey.data);
  const png = await sharp(bytes, { raw: { width: grey.columns, height: grey.rows, channels: 1 } })
    // One grey channel in the file too (sharp would otherwise write sRGB).
    .toColourspace('b-w')
    .png({ compressionLevel: 2, adaptiveFiltering: false })
    .toBuffer();
  return { png, width: grey.columns, height: grey.rows, scale, window };
}

interface PreviewSize {
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
 * True when the frame's samples are already the stored values of contract step 1: unsigned 8 or 16-bit words
 * starting at bit 0, none above 2^BitsStored - 1 (so there is nothing to mask or clamp).
 */
function samplesAreStoredValues(frame: DecodedFrame, info: ImageInfo): frame is DecodedFrame & { samples: Uint8Array | Uint16Array } {
  const { samples } = frame;
  if (info.pixelRepresentation !== 0 || !(samples instanceof Uint8Array || samples instanceof Uint16Array)) return false;
  if (frame.origin === 'native' && info.highBit + 1 !== info.bitsStored) return false;
  const max = 2 ** info.bitsStored - 1;
  if (max >= (samples instanceof Uint8Array ? 0xff : 0xffff)) return true;
  for (let i = 0; i < samples.length; i++) if ((samples[i] ?? 0) > max) return false;
  return true;
}

/**
 * Shrinks to the preview size with libvips (triangle filter as wide as the shrink, which averages like `area`
 * does), in the samples' own precision, returned as floats. Several times faster than the contract's float `resize`,
 * and a preview needs no bit-exact match with the model's input.
 */
async function shrink(data: Uint8Array | Uint16Array | Float32Array, rows: number, columns: number, size: PreviewSize): Promise<GreyImage> {
  if (size.rows === rows && size.columns === columns) {
    return { data: data instanceof Float32Array ? data : Float32Array.from(data), rows, columns };
  }
  const { data: out, info } = await sharp(data, { raw: { width: columns, height: rows, channels: 1 } })
    .resize(size.columns, size.rows, { kernel: 'linear', fit: 'fill' })
    // grey16 keeps 16-bit values as they are; b-w would rescale them to 8 bits.
    .toColourspace(data instanceof Uint16Array ? 'grey16' : 'b-w')
    .raw({ depth: 'float' })
    .toBuffer({ resolveWithObject: true });
  if (info.channels !== 1 || info.width !== size.columns || info.height !== size.rows) {
    throw new Error(`preview shrink returned ${info.width} x ${info.height} x ${info.channels}`);
  }
  // Copied: sharp's output buffer need not be 4-byte aligned.
  return { data: new Float32Array(out.buffer.slice(out.byteOffset, out.byteOffset + out.length)), rows: size.rows, columns: size.columns };
}

/**
 * Contract steps 2 to 4 on the shrunk stored values, in place, with a display window: the file's first usable
 * WindowCenter/Width (with its VOI LUT Function), else a robust window from the percentiles. Returns the window used.
 */
function displayWindow(values: Float32Array, info: ImageInfo): Preview['window'] {
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
      // LINEAR_EXACT maps center ± width/2 exactly onto black and white.
      voiLutFunction: 'LINEAR_EXACT',
      voiLuts: [],
    },
    'window',
  );
  return applied.mode === 'window' ? { center: applied.center, width: applied.width } : null;
}

/** PS3.3 C.11.2.1.2, as the contract's intensity step checks it. */
function isUsableWindow(width: number, fn: ImageInfo['voiLutFunction']): boolean {
  return fn === 'LINEAR' ? width >= 1 : width > 0;
}

/**
 * The 0.5th and 99.5th percentiles of the stored values, from a histogram (one pass for the range, one to count),
 * carried through the Modality LUT. Undefined for a flat image.
 */
function percentileWindow(values: Float32Array, info: ImageInfo): { center: number; width: number } | undefined {
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
  let low = 0;
  let high = HISTOGRAM_BINS - 1;
  let seen = 0;
  let lowFound = false;
  for (let b = 0; b < HISTOGRAM_BINS; b++) {
    seen += bins[b] ?? 0;
    if (!lowFound && seen > lowCount) {
      low = b;
      lowFound = true;
    }
    if (seen >= highCount) {
      high = b;
      break;
    }
  }
  // Lower edge of the low bin to upper edge of the high bin, so that a two-level image still gets a window.
  const lo = min + low / binScale;
  const hi = min + (high + 1) / binScale;
  const slope = info.rescaleSlope ?? 1;
  const intercept = info.rescaleIntercept ?? 0;
  const a = lo * slope + intercept;
  const b = hi * slope + intercept;
  const width = Math.abs(b - a);
  if (!(width > 0)) return undefined;
  return { center: (a + b) / 2, width };
}

function toBytes(values: Float32Array): Uint8ClampedArray {
  // A clamped array clamps to 0..255 and rounds (NaN becomes 0).
  const out = new Uint8ClampedArray(values.length);
  for (let i = 0; i < values.length; i++) out[i] = (values[i] ?? 0) * 255;
  return out;
}
