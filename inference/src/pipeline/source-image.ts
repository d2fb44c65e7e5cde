import { decodeFrame, type DecodeOptions, type DecodedFrame } from '../codecs/index.js';
import { firstFrame } from '../dicom/frames.js';
import { readImageInfo, type ImageInfo } from '../dicom/image-info.js';
import { parseDicom, type ParsedDicom } from '../dicom/parse.js';
import { CxrError } from '../errors/index.js';
import { rasterFormatOf, readRasterGrey, type RasterFormat, type RasterGrey } from '../images/raster.js';
import { intensityByLookup } from '../preprocess/intensity-lut.js';
import { applyIntensity, storedValues, type GreyImage, type IntensityApplied, type IntensityMode, type PixelSource } from '../preprocess/index.js';

/** An image read from a file: a decoded DICOM first frame, or a PNG/JPEG already in [0, 1]. */
export type SourceImage =
  | { readonly kind: 'dicom'; readonly info: ImageInfo; readonly frame: DecodedFrame }
  | { readonly kind: 'raster'; readonly raster: RasterGrey };

export async function readSourceImage(bytes: Uint8Array, options: DecodeOptions = {}): Promise<SourceImage> {
  const header = readSourceHeader(bytes);
  return header.kind === 'raster' ? { kind: 'raster', raster: await readRasterGrey(bytes, header.format) } : decodeSourceImage(header, options);
}

/** The header alone: enough to gate on applicability before paying for a decode. */
export type SourceHeader =
  | { readonly kind: 'dicom'; readonly parsed: ParsedDicom; readonly info: ImageInfo }
  | { readonly kind: 'raster'; readonly format: RasterFormat };

export function readSourceHeader(bytes: Uint8Array): SourceHeader {
  if (bytes.length === 0) throw new CxrError('CXR_EMPTY_FILE');
  const format = rasterFormatOf(bytes);
  if (format) return { kind: 'raster', format };
  const parsed = parseDicom(bytes);
  return { kind: 'dicom', parsed, info: readImageInfo(parsed) };
}

export async function decodeSourceImage(header: SourceHeader & { kind: 'dicom' }, options: DecodeOptions = {}): Promise<SourceImage> {
  const { parsed, info } = header;
  const frame = await decodeFrame(info.transferSyntaxUid, firstFrame(parsed, info), info, options);
  return { kind: 'dicom', info, frame };
}

export function isColourDicom(info: ImageInfo): boolean {
  return info.samplesPerPixel > 1 || !info.photometricInterpretation.startsWith('MONOCHROME');
}

/**
 * Contract steps 1 to 4 for DICOM (stored values, Modality LUT, intensity, MONOCHROME1), or the [0, 1] raster
 * for PNG/JPEG, which skip the DICOM-only steps and the window whatever the mode says.
 */
export function intensityImage(source: SourceImage, mode: IntensityMode): { image: GreyImage; applied: IntensityApplied | undefined } {
  const { pixels, applied } = intensitySource(source, mode);
  if (!('lut' in pixels)) return { image: pixels, applied };
  const data = new Float64Array(pixels.rows * pixels.columns);
  for (let i = 0; i < data.length; i++) data[i] = pixels.lut[(pixels.samples[i] as number) + pixels.lutOffset] as number;
  return { image: { data, rows: pixels.rows, columns: pixels.columns }, applied };
}

/** Like `intensityImage`, but 8/16-bit greyscale stays as samples plus a lookup table (no full-size copy). */
export function intensitySource(source: SourceImage, mode: IntensityMode): { pixels: PixelSource; applied: IntensityApplied | undefined } {
  if (source.kind === 'raster') {
    const { raster } = source;
    return { pixels: { data: raster.data, rows: raster.rows, columns: raster.columns }, applied: undefined };
  }
  const { info, frame } = source;
  const fast = intensityByLookup(frame, info, mode);
  if (fast) {
    return {
      pixels: { samples: frame.samples, lut: fast.lut, lutOffset: fast.lutOffset, rows: frame.rows, columns: frame.columns, ...(fast.affine ? { affine: fast.affine } : {}) },
      applied: fast.applied,
    };
  }
  let values = storedValues(frame, info);
  if (frame.samplesPerPixel > 1) values = luma(values, frame.samplesPerPixel);
  const applied = applyIntensity(values, info, mode);
  return { pixels: { data: values, rows: frame.rows, columns: frame.columns }, applied };
}

/** Colour DICOM is not applicable, but a preview (and a forced run) still needs one grey plane. */
function luma(interleaved: Float64Array, samplesPerPixel: number): Float64Array {
  const pixels = interleaved.length / samplesPerPixel;
  const out = new Float64Array(pixels);
  for (let i = 0; i < pixels; i++) {
    const b = i * samplesPerPixel;
    out[i] = 0.299 * (interleaved[b] ?? 0) + 0.587 * (interleaved[b + 1] ?? 0) + 0.114 * (interleaved[b + 2] ?? 0);
  }
  return out;
}
