import type { VoiLut, VoiLutFunction } from '../dicom/image-info.js';

export type IntensityMode = 'bits' | 'window' | 'minmax';

export interface IntensityModule {
  readonly bitsStored: number;
  readonly rescaleSlope: number | undefined;
  readonly rescaleIntercept: number | undefined;
  readonly windowCenters: readonly number[];
  readonly windowWidths: readonly number[];
  readonly voiLutFunction: VoiLutFunction;
  readonly voiLuts: readonly VoiLut[];
  readonly photometricInterpretation: string;
}

/** How step 3 was carried out, for the result's provenance and the `info` command. */
export type IntensityApplied =
  | { readonly mode: 'bits'; readonly bitsStored: number }
  | { readonly mode: 'window'; readonly center: number; readonly width: number; readonly function: VoiLutFunction }
  | { readonly mode: 'voi-lut'; readonly entries: number; readonly firstValue: number; readonly bits: number }
  | { readonly mode: 'minmax'; readonly min: number; readonly max: number };

/**
 * Values steps 2 to 4 work on in place: doubles for the model's input, as the contract says (a float32 intensity
 * can move an average across a rounding tie of step 7); the display preview also windows float32 pixels.
 */
export type IntensityValues = Float64Array | Float32Array;

/**
 * Contract steps 2 to 4, in place: Modality LUT, intensity to [0, 1], MONOCHROME1 inversion.
 * `values` holds the stored values from step 1 and holds intensities on return.
 */
export function applyIntensity(
  values: IntensityValues,
  module: IntensityModule,
  mode: IntensityMode,
  /** The image's range after the Modality LUT, when `values` is a lookup table rather than the image. */
  imageRange?: { readonly min: number; readonly max: number },
): IntensityApplied {
  const slope = module.rescaleSlope ?? 1;
  const intercept = module.rescaleIntercept ?? 0;
  if (slope !== 1 || intercept !== 0) {
    for (let i = 0; i < values.length; i++) values[i] = (values[i] ?? 0) * slope + intercept;
  }
  const applied = toUnitRange(values, module, mode, imageRange);
  if (module.photometricInterpretation === 'MONOCHROME1') {
    for (let i = 0; i < values.length; i++) values[i] = 1 - (values[i] ?? 0);
  }
  return applied;
}

function toUnitRange(
  values: IntensityValues,
  module: IntensityModule,
  mode: IntensityMode,
  imageRange: { readonly min: number; readonly max: number } | undefined,
): IntensityApplied {
  if (mode === 'bits') {
    const scale = 2 ** module.bitsStored - 1;
    for (let i = 0; i < values.length; i++) values[i] = clamp01((values[i] ?? 0) / scale);
    return { mode: 'bits', bitsStored: module.bitsStored };
  }
  if (mode === 'window') {
    const center = module.windowCenters[0];
    const width = module.windowWidths[0];
    if (center !== undefined && width !== undefined && isUsableWindow(width, module.voiLutFunction)) {
      applyWindow(values, center, width, module.voiLutFunction);
      return { mode: 'window', center, width, function: module.voiLutFunction };
    }
    const lut = module.voiLuts[0];
    if (lut) {
      applyVoiLut(values, lut);
      return { mode: 'voi-lut', entries: lut.entries, firstValue: lut.firstValue, bits: lut.bits };
    }
  }
  return applyMinMax(values, imageRange);
}

function isUsableWindow(width: number, fn: VoiLutFunction): boolean {
  // PS3.3 C.11.2.1.2: LINEAR needs a width of at least 1; LINEAR_EXACT and SIGMOID a positive one.
  return fn === 'LINEAR' ? width >= 1 : width > 0;
}

/** PS3.3 C.11.2.1.2 with an output range of [0, 1]. */
export function applyWindow(values: IntensityValues, c: number, w: number, fn: VoiLutFunction): void {
  if (fn === 'SIGMOID') {
    for (let i = 0; i < values.length; i++) values[i] = 1 / (1 + Math.exp((-4 * ((values[i] ?? 0) - c)) / w));
    return;
  }
  if (fn === 'LINEAR_EXACT') {
    const lo = c - w / 2;
    const hi = c + w / 2;
    for (let i = 0; i < values.length; i++) {
      const v = values[i] ?? 0;
      values[i] = v <= lo ? 0 : v > hi ? 1 : (v - c) / w + 0.5;
    }
    return;
  }
  const lo = c - 0.5 - (w - 1) / 2;
  const hi = c - 0.5 + (w - 1) / 2;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    values[i] = v <= lo ? 0 : v > hi ? 1 : (v - (c - 0.5)) / (w - 1) + 0.5;
  }
}

function applyVoiLut(values: IntensityValues, lut: VoiLut): void {
  const last = lut.firstValue + lut.entries - 1;
  const scale = 2 ** lut.bits - 1;
  for (let i = 0; i < values.length; i++) {
    const v = Math.round(values[i] ?? 0);
    const clamped = v < lut.firstValue ? lut.firstValue : v > last ? last : v;
    values[i] = (lut.data[clamped - lut.firstValue] ?? 0) / scale;
  }
}

function applyMinMax(values: IntensityValues, imageRange: { readonly min: number; readonly max: number } | undefined): IntensityApplied {
  let min = imageRange?.min ?? Infinity;
  let max = imageRange?.max ?? -Infinity;
  if (!imageRange) {
    for (let i = 0; i < values.length; i++) {
      const v = values[i] ?? 0;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  const range = max - min;
  for (let i = 0; i < values.length; i++) values[i] = range > 0 ? ((values[i] ?? 0) - min) / range : 0;
  return { mode: 'minmax', min: Number.isFinite(min) ? min : 0, max: Number.isFinite(max) ? max : 0 };
}

function clamp01(v: number): number {
  return v < 0 ? 0 : v > 1 ? 1 : v;
}
