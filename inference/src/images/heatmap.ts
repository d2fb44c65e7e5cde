import sharp from 'sharp';
import type { CropMode } from '../preprocess/index.js';
import { resize } from '../preprocess/index.js';
import type { ClassActivationMaps } from '../runtime/types.js';
import { TURBO, type ColourMap } from './colormap.js';

export interface HeatmapOptions {
  /** The model manifest's `input.crop`: which part of the image the model saw. */
  readonly crop: CropMode;
  /** Opacity of the strongest activation, 0 to 1. Default 0.6. */
  readonly alpha?: number;
  /** Normalised activation at or below which the overlay is fully transparent, 0 to 1. Default 0.2. */
  readonly threshold?: number;
}

export const DEFAULT_HEATMAP_ALPHA = 0.6;
export const DEFAULT_HEATMAP_THRESHOLD = 0.2;

/**
 * An RGBA PNG the size of the preview, to lay over it: the class activation map of one label, normalised to [0, 1] by
 * its own min and max, upsampled bilinearly (the contract's `resize`) onto the part of the preview the model saw
 * (the central square for `center-square`, same offset rule as contract step 5; everything for `none`), coloured with
 * turbo. Opacity rises smoothly from 0 at `threshold` to `alpha` at the maximum; outside the model's view, below the
 * threshold, and everywhere for a flat map, the overlay is fully transparent.
 */
export async function renderHeatmap(
  cam: ClassActivationMaps,
  labelIndex: number,
  preview: { readonly width: number; readonly height: number },
  options: HeatmapOptions,
): Promise<Buffer> {
  const alpha = options.alpha ?? DEFAULT_HEATMAP_ALPHA;
  const threshold = options.threshold ?? DEFAULT_HEATMAP_THRESHOLD;
  checkArguments(cam, labelIndex, preview, alpha, threshold);
  const { width, height } = preview;
  const rgba = new Uint8Array(width * height * 4);

  const plane = cam.height * cam.width;
  const normalised = normalise(cam.data.subarray(labelIndex * plane, (labelIndex + 1) * plane));
  if (normalised) {
    const side = Math.min(width, height);
    const region =
      options.crop === 'center-square'
        ? { left: Math.floor((width - side) / 2), top: Math.floor((height - side) / 2), width: side, height: side }
        : { left: 0, top: 0, width, height };
    const up = resize({ data: normalised, rows: cam.height, columns: cam.width }, region.height, region.width, 'bilinear').data;
    paint(rgba, width, region, up, alpha, threshold, TURBO);
  }

  return sharp(rgba, { raw: { width, height, channels: 4 } }).png({ compressionLevel: 6 }).toBuffer();
}

/**
 * The label whose heatmap to show: the most probable positive finding, else the most probable label overall.
 * -1 when there are no probabilities.
 */
export function pickHeatmapLabel(probabilities: readonly number[], positives: readonly boolean[]): number {
  const best = (eligible: (i: number) => boolean): number => {
    let index = -1;
    let top = -Infinity;
    for (let i = 0; i < probabilities.length; i++) {
      const p = probabilities[i] ?? Number.NaN;
      if (!eligible(i)) continue;
      // NaN never wins, but a label is still chosen when every probability is NaN.
      if (index < 0 || p > top) {
        index = i;
        top = Number.isNaN(p) ? -Infinity : p;
      }
    }
    return index;
  };
  const positive = best((i) => positives[i] === true);
  return positive >= 0 ? positive : best(() => true);
}

function checkArguments(
  cam: ClassActivationMaps,
  labelIndex: number,
  preview: { readonly width: number; readonly height: number },
  alpha: number,
  threshold: number,
): void {
  if (!Number.isInteger(labelIndex) || labelIndex < 0 || labelIndex >= cam.labels) {
    throw new RangeError(`labelIndex ${labelIndex} is outside the ${cam.labels} labels of the activation maps`);
  }
  if (!(Number.isInteger(cam.height) && Number.isInteger(cam.width) && cam.height > 0 && cam.width > 0)) {
    throw new RangeError(`activation maps of ${cam.height} x ${cam.width}`);
  }
  if (cam.data.length < cam.labels * cam.height * cam.width) {
    throw new RangeError(`activation maps hold ${cam.data.length} values, fewer than ${cam.labels} x ${cam.height} x ${cam.width}`);
  }
  if (!(Number.isInteger(preview.width) && Number.isInteger(preview.height) && preview.width > 0 && preview.height > 0)) {
    throw new RangeError(`preview of ${preview.width} x ${preview.height}`);
  }
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`alpha ${alpha} is outside 0..1`);
  if (!(threshold >= 0 && threshold <= 1)) throw new RangeError(`threshold ${threshold} is outside 0..1`);
}

/** (v - min) / (max - min), NaN as the minimum; undefined when the map is flat (nothing to show). */
function normalise(values: Float32Array): Float64Array | undefined {
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? Number.NaN;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  if (!(max > min) || !Number.isFinite(max - min)) return undefined;
  const range = max - min;
  const out = new Float64Array(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? Number.NaN;
    out[i] = Number.isNaN(v) ? 0 : (v - min) / range;
  }
  return out;
}

/** Activations are looked up in steps of 1/1024: far finer than the 8-bit colour and opacity they become. */
const LEVELS = 1024;

/** For each activation step, the RGBA pixel as one 32-bit word in the platform's byte order. */
function pixelTable(alpha: number, threshold: number, map: ColourMap): Uint32Array {
  const table = new Uint32Array(LEVELS + 1);
  const bytes = new Uint8Array(table.buffer);
  const span = 1 - threshold;
  for (let q = 0; q <= LEVELS; q++) {
    const v = q / LEVELS;
    if (!(v > threshold) || span <= 0) continue;
    const t = Math.min(1, (v - threshold) / span);
    const a = Math.round(255 * alpha * t * t * (3 - 2 * t));
    if (a === 0) continue;
    const c = Math.round(v * 255) * 3;
    bytes[q * 4] = map[c] ?? 0;
    bytes[q * 4 + 1] = map[c + 1] ?? 0;
    bytes[q * 4 + 2] = map[c + 2] ?? 0;
    bytes[q * 4 + 3] = a;
  }
  return table;
}

/** Writes the region's pixels; everything else stays transparent (zero). */
function paint(
  rgba: Uint8Array,
  stride: number,
  region: { left: number; top: number; width: number; height: number },
  values: Float64Array,
  alpha: number,
  threshold: number,
  map: ColourMap,
): void {
  const table = pixelTable(alpha, threshold, map);
  const pixels = new Uint32Array(rgba.buffer, rgba.byteOffset, rgba.length / 4);
  for (let y = 0; y < region.height; y++) {
    const from = y * region.width;
    const to = (region.top + y) * stride + region.left;
    for (let x = 0; x < region.width; x++) {
      const v = values[from + x] as number;
      // NaN falls through both tests to step 0 (transparent).
      const q = v >= 1 ? LEVELS : v > 0 ? (v * LEVELS + 0.5) | 0 : 0;
      pixels[to + x] = table[q] as number;
    }
  }
}
