/** A single-channel float image, row-major. */
export interface GreyImage {
  readonly data: Float32Array;
  readonly rows: number;
  readonly columns: number;
}

export type CropMode = 'none' | 'center-square';
export type ResizeMode = 'area' | 'bilinear';

/** Contract step 5: `center-square` keeps the central S x S square, S = min(rows, columns). */
export function crop(image: GreyImage, mode: CropMode): GreyImage {
  if (mode === 'none' || image.rows === image.columns) return image;
  const size = Math.min(image.rows, image.columns);
  const top = Math.floor((image.rows - size) / 2);
  const left = Math.floor((image.columns - size) / 2);
  const out = new Float32Array(size * size);
  for (let y = 0; y < size; y++) {
    const from = (top + y) * image.columns + left;
    out.set(image.data.subarray(from, from + size), y * size);
  }
  return { data: out, rows: size, columns: size };
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

/**
 * Contract step 6, separable: rows first, then columns, in double precision. `area` falls back to bilinear
 * when the source is smaller than the target (OpenCV does the same).
 */
export function resize(image: GreyImage, rows: number, columns: number, mode: ResizeMode): GreyImage {
  const effective: ResizeMode = mode === 'area' && (image.rows < rows || image.columns < columns) ? 'bilinear' : mode;
  const xt = taps(image.columns, columns, effective);
  const yt = taps(image.rows, rows, effective);
  const src = image.data;
  const horizontal = new Float64Array(image.rows * columns);
  for (let y = 0; y < image.rows; y++) {
    const rowBase = y * image.columns;
    const outBase = y * columns;
    for (let x = 0; x < columns; x++) {
      let acc = 0;
      for (let t = xt.start[x] ?? 0, end = xt.start[x + 1] ?? 0; t < end; t++) {
        acc += (src[rowBase + (xt.index[t] ?? 0)] ?? 0) * (xt.weight[t] ?? 0);
      }
      horizontal[outBase + x] = acc;
    }
  }
  const acc = new Float64Array(rows * columns);
  for (let y = 0; y < rows; y++) {
    const outBase = y * columns;
    for (let t = yt.start[y] ?? 0, end = yt.start[y + 1] ?? 0; t < end; t++) {
      const w = yt.weight[t] ?? 0;
      const srcBase = (yt.index[t] ?? 0) * columns;
      for (let x = 0; x < columns; x++) acc[outBase + x] = (acc[outBase + x] ?? 0) + (horizontal[srcBase + x] ?? 0) * w;
    }
  }
  return { data: Float32Array.from(acc), rows, columns };
}
