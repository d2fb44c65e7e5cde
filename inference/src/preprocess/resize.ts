import { loadNativeResize, type IntegerSamples } from './native-resize.js';

/** A single-channel image, row-major, in double precision (contract steps 1 to 7 are). */
export interface GreyImage {
  readonly data: Float64Array;
  readonly rows: number;
  readonly columns: number;
}

/**
 * Pixels to resize: intensities, or raw samples with a lookup table giving each sample's intensity
 * (`lut[sample + lutOffset]`), which spares a full-resolution intermediate image.
 */
export type PixelSource =
  | GreyImage
  | {
      readonly samples: ArrayLike<number>;
      readonly lut: Float64Array;
      readonly lutOffset: number;
      readonly rows: number;
      readonly columns: number;
      /** the table is `scale * sample + offset` for samples 0..last (see `intensityByLookup`) */
      readonly affine?: { readonly last: number; readonly scale: number; readonly offset: number };
    };

/** A rectangle of the source, in pixels. */
export interface Region {
  readonly top: number;
  readonly left: number;
  readonly height: number;
  readonly width: number;
}

/** The region step 5 keeps. */
export function cropRegion(rows: number, columns: number, mode: CropMode): Region {
  if (mode === 'none') return { top: 0, left: 0, height: rows, width: columns };
  const size = Math.min(rows, columns);
  return { top: Math.floor((rows - size) / 2), left: Math.floor((columns - size) / 2), height: size, width: size };
}

export type CropMode = 'none' | 'center-square';
export type ResizeMode = 'area' | 'bilinear';

/** Contract step 5: `center-square` keeps the central S x S square, S = min(rows, columns). */
export function crop(image: GreyImage, mode: CropMode): GreyImage {
  if (mode === 'none' || image.rows === image.columns) return image;
  const { top, left, height, width } = cropRegion(image.rows, image.columns, mode);
  const out = new Float64Array(height * width);
  for (let y = 0; y < height; y++) {
    const from = (top + y) * image.columns + left;
    out.set(image.data.subarray(from, from + width), y * width);
  }
  return { data: out, rows: height, columns: width };
}

/** One output pixel's source taps along one axis. */
interface AxisTaps {
  readonly index: Int32Array;
  readonly weight: Float64Array;
  /** taps of output pixel i are start[i] .. start[i + 1] - 1 */
  readonly start: Int32Array;
}

/**
 * OpenCV's INTER_AREA weights for shrinking (computeResizeAreaTab): each output pixel averages the source pixels
 * weighted by their overlap with it.
 */
function areaTaps(source: number, target: number): AxisTaps {
  const scale = source / target;
  const index: number[] = [];
  const weight: number[] = [];
  const start = new Int32Array(target + 1);
  for (let d = 0; d < target; d++) {
    start[d] = index.length;
    const f1 = d * scale;
    const f2 = f1 + scale;
    const cell = Math.min(scale, source - f1);
    let s1 = Math.ceil(f1);
    let s2 = Math.floor(f2);
    s2 = Math.min(s2, source - 1);
    s1 = Math.min(s1, s2);
    if (s1 - f1 > 1e-3) {
      index.push(s1 - 1);
      weight.push((s1 - f1) / cell);
    }
    for (let s = s1; s < s2; s++) {
      index.push(s);
      weight.push(1 / cell);
    }
    if (f2 - s2 > 1e-3) {
      index.push(s2);
      weight.push(Math.min(Math.min(f2 - s2, 1), cell) / cell);
    }
  }
  start[target] = index.length;
  return { index: Int32Array.from(index), weight: Float64Array.from(weight), start };
}

/** OpenCV's INTER_LINEAR: half-pixel centres, edges clamped. */
function bilinearTaps(source: number, target: number): AxisTaps {
  const scale = source / target;
  const index = new Int32Array(target * 2);
  const weight = new Float64Array(target * 2);
  const start = new Int32Array(target + 1);
  for (let d = 0; d < target; d++) {
    let f = (d + 0.5) * scale - 0.5;
    let s = Math.floor(f);
    f -= s;
    if (s < 0) {
      s = 0;
      f = 0;
    }
    if (s >= source - 1) {
      s = source - 1;
      f = 0;
    }
    start[d] = d * 2;
    index[d * 2] = s;
    weight[d * 2] = 1 - f;
    index[d * 2 + 1] = Math.min(s + 1, source - 1);
    weight[d * 2 + 1] = f;
  }
  start[target] = target * 2;
  return { index, weight, start };
}

function taps(source: number, target: number, mode: ResizeMode): AxisTaps {
  return mode === 'area' && source >= target ? areaTaps(source, target) : bilinearTaps(source, target);
}

/** Contract step 6 on the whole image. */
export function resize(image: PixelSource, rows: number, columns: number, mode: ResizeMode): GreyImage {
  return resizeRegion(image, { top: 0, left: 0, height: image.rows, width: image.columns }, rows, columns, mode);
}

/**
 * Contract steps 5 and 6 together: resizes `region` of the source without copying it out first. Separable,
 * vertical then horizontal, in double precision from the intensities to the result (a float32 anywhere on the
 * way moves values within 1e-6 of a rounding tie of step 7 to its other side). `area` falls back to bilinear
 * when the source is smaller than the target, as OpenCV does.
 */
export function resizeRegion(source: PixelSource, region: Region, rows: number, columns: number, mode: ResizeMode): GreyImage {
  const effective: ResizeMode = mode === 'area' && (region.height < rows || region.width < columns) ? 'bilinear' : mode;
  const xt = taps(region.width, columns, effective);
  const yt = taps(region.height, rows, effective);
  if ('lut' in source && source.affine && effective === 'area' && (source.samples instanceof Uint16Array || source.samples instanceof Uint8Array)) {
    const fast = resizeAffine(source.samples, source.columns, source.affine, region, xt, yt, rows, columns);
    if (fast) return fast;
  }
  const width = region.width;
  const native = loadNativeResize();
  // Columns of source rows first: contiguous reads of whole rows, the cache-friendly order for big images.
  const vertical = new Float64Array(rows * width);
  const nativeVertical =
    native !== null &&
    ('lut' in source
      ? isIntegerSamples(source.samples) &&
        native.verticalLookup(source.samples, source.columns, region.top, region.left, width, source.lut, source.lutOffset, yt.start, yt.index, yt.weight, vertical)
      : native.verticalLookup(source.data, source.columns, region.top, region.left, width, noTable, 0, yt.start, yt.index, yt.weight, vertical));
  if (!nativeVertical) {
    // A sample outside the table (undefined in TypeScript, so NaN) is the TypeScript loop's to handle.
    vertical.fill(0);
    verticalPass(source, region, yt, rows, vertical);
  }
  const result = new Float64Array(rows * columns);
  if (native) {
    native.horizontal(vertical, width, xt.start, xt.index, xt.weight, result);
    return { data: result, rows, columns };
  }
  for (let y = 0; y < rows; y++) {
    const rowBase = y * width;
    for (let x = 0; x < columns; x++) {
      let acc = 0;
      for (let t = xt.start[x] as number, end = xt.start[x + 1] as number; t < end; t++) {
        acc += (vertical[rowBase + (xt.index[t] as number)] as number) * (xt.weight[t] as number);
      }
      result[y * columns + x] = acc;
    }
  }
  return { data: result, rows, columns };
}

const noTable = new Float64Array(0);

function isIntegerSamples(samples: ArrayLike<number>): samples is IntegerSamples {
  return samples instanceof Uint8Array || samples instanceof Uint16Array || samples instanceof Int16Array || samples instanceof Int32Array;
}

function verticalPass(source: PixelSource, region: Region, yt: AxisTaps, rows: number, vertical: Float64Array): void {
  const width = region.width;
  for (let y = 0; y < rows; y++) {
    const out = y * width;
    for (let t = yt.start[y] as number, end = yt.start[y + 1] as number; t < end; t++) {
      const w = yt.weight[t] as number;
      const base = (region.top + (yt.index[t] as number)) * source.columns + region.left;
      if ('lut' in source) {
        const { samples, lut, lutOffset } = source;
        for (let x = 0; x < width; x++) vertical[out + x] = (vertical[out + x] as number) + (lut[(samples[base + x] as number) + lutOffset] as number) * w;
      } else {
        const data = source.data;
        for (let x = 0; x < width; x++) vertical[out + x] = (vertical[out + x] as number) + (data[base + x] as number) * w;
      }
    }
  }
}

/**
 * Area resize of raw unsigned samples whose intensity is affine (`scale * sample + offset`): averages the samples
 * themselves, then maps the averages. Each output pixel's interior taps share one weight, so the inner loop is
 * an integer sum. Undefined when a sample lies beyond the affine part of the table (the caller then takes the
 * lookup path): samples are OR-ed on the way, which bounds the largest one.
 */
function resizeAffine(
  samples: Uint16Array | Uint8Array,
  sourceColumns: number,
  affine: { readonly last: number; readonly scale: number; readonly offset: number },
  region: Region,
  xt: AxisTaps,
  yt: AxisTaps,
  rows: number,
  columns: number,
): GreyImage | undefined {
  // Per output column: first tap, tap count, and the weights of the first, interior and last taps.
  const first = new Int32Array(columns);
  const count = new Int32Array(columns);
  const wFirst = new Float64Array(columns);
  const wInner = new Float64Array(columns);
  const wLast = new Float64Array(columns);
  const weightSumX = new Float64Array(columns);
  for (let x = 0; x < columns; x++) {
    const start = xt.start[x] as number;
    const end = xt.start[x + 1] as number;
    first[x] = xt.index[start] as number;
    count[x] = end - start;
    wFirst[x] = xt.weight[start] as number;
    wInner[x] = end - start > 2 ? (xt.weight[start + 1] as number) : 0;
    wLast[x] = xt.weight[end - 1] as number;
    let sum = 0;
    for (let t = start; t < end; t++) sum += xt.weight[t] as number;
    weightSumX[x] = sum;
  }
  const sums = new Float64Array(rows * columns);
  const native = loadNativeResize();
  const seen = native
    ? native.sumAffine(samples, sourceColumns, region.top, region.left, first, count, wFirst, wInner, wLast, yt.start, yt.index, yt.weight, sums, affine.last)
    : sumAffine(samples, sourceColumns, region, first, count, wFirst, wInner, wLast, yt, sums, affine.last);
  if (seen > affine.last) return undefined;
  const result = new Float64Array(rows * columns);
  for (let y = 0; y < rows; y++) {
    let weightSumY = 0;
    for (let t = yt.start[y] as number, end = yt.start[y + 1] as number; t < end; t++) weightSumY += yt.weight[t] as number;
    for (let x = 0; x < columns; x++) {
      result[y * columns + x] = affine.scale * (sums[y * columns + x] as number) + affine.offset * weightSumY * (weightSumX[x] as number);
    }
  }
  return { data: result, rows, columns };
}

/**
 * The loop of `resizeAffine` (its native twin is `sumAffine` in cxr_resize.c); returns the OR of every sample read,
 * stopping at the end of the first output row where it exceeds `limit`.
 */
function sumAffine(
  samples: Uint16Array | Uint8Array,
  sourceColumns: number,
  region: Region,
  first: Int32Array,
  count: Int32Array,
  wFirst: Float64Array,
  wInner: Float64Array,
  wLast: Float64Array,
  yt: AxisTaps,
  sums: Float64Array,
  limit: number,
): number {
  const rows = yt.start.length - 1;
  const columns = first.length;
  let seen = 0;
  for (let y = 0; y < rows; y++) {
    const out = y * columns;
    for (let t = yt.start[y] as number, end = yt.start[y + 1] as number; t < end; t++) {
      const wy = yt.weight[t] as number;
      const base = (region.top + (yt.index[t] as number)) * sourceColumns + region.left;
      for (let x = 0; x < columns; x++) {
        const s0 = base + (first[x] as number);
        const n = count[x] as number;
        const v0 = samples[s0] as number;
        seen |= v0;
        let acc = v0 * (wFirst[x] as number);
        if (n > 1) {
          let inner = 0;
          const innerEnd = s0 + n - 1;
          for (let s = s0 + 1; s < innerEnd; s++) {
            const v = samples[s] as number;
            inner += v;
            seen |= v;
          }
          const vLast = samples[innerEnd] as number;
          seen |= vLast;
          acc += inner * (wInner[x] as number) + vLast * (wLast[x] as number);
        }
        sums[out + x] = (sums[out + x] as number) + acc * wy;
      }
    }
    if (seen > limit) break;
  }
  return seen;
}
