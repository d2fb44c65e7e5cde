import type { DecodedFrame } from '../codecs/index.js';
import { applyIntensity, type IntensityApplied, type IntensityMode, type IntensityModule } from './intensity.js';
import { storedValues, type StoredValueModule } from './stored-values.js';

/**
 * Steps 1 to 4 for 8- and 16-bit greyscale frames through a lookup table: every possible sample value goes through
 * the very same step functions once, then each pixel is one table lookup, done where the pixel is read (see `resizeRegion`). Returns undefined for frames
 * the table does not fit (32-bit, colour), which take the per-pixel path.
 */
export function intensityByLookup(
  frame: DecodedFrame,
  module: StoredValueModule & IntensityModule,
  mode: IntensityMode,
): { lut: Float64Array; lutOffset: number; applied: IntensityApplied; affine: AffinePrefix | undefined } | undefined {
  const { samples } = frame;
  if (frame.samplesPerPixel !== 1) return undefined;
  const found = domainOf(samples);
  if (!found) return undefined;
  const { domain, offset } = found;

  const table = storedValues({ ...frame, samples: domain, rows: 1, columns: domain.length }, module);
  // The image's range is only needed when the intensity step may end in minmax.
  const needsRange = mode === 'minmax' || (mode === 'window' && !hasUsableWindowOrLut(module));
  // domainOf() accepted the container, so it is one of the 8- or 16-bit arrays.
  const imageRange = needsRange ? rangeAfterModalityLut(samples as Uint8Array | Int8Array | Uint16Array | Int16Array, offset, table, module) : undefined;
  const applied = applyIntensity(table, module, mode, imageRange);
  const affine = samples instanceof Uint8Array || samples instanceof Uint16Array ? affinePrefix(table) : undefined;
  return { lut: table, lutOffset: offset, applied, affine };
}

/**
 * The table is a straight line `scale * sample + offset` for every sample from 0 to `last`. Steps 1 to 4 are often
 * exactly that over the range an image uses (bits, minmax, a window wider than the data, MONOCHROME1), and then the
 * resize can average raw samples and map the 50 000 averages instead of looking up millions of pixels.
 */
export interface AffinePrefix {
  readonly last: number;
  readonly scale: number;
  readonly offset: number;
}

/**
 * The longest prefix [0, 2^k - 1] of an unsigned table that is affine to within double rounding, or undefined. The
 * tolerance is far above the few ulps a double table strays from its line, and far below float32 rounding (4e-7),
 * which would let the affine path's averages land on the other side of a rounding tie of step 7 than the table's.
 */
function affinePrefix(table: Float64Array): AffinePrefix | undefined {
  for (let bits = Math.log2(table.length); bits >= 1; bits--) {
    const last = 2 ** bits - 1;
    const first = table[0] as number;
    const scale = ((table[last] as number) - first) / last;
    const tolerance = 1e-12 * Math.max(1, Math.abs(first), Math.abs(table[last] as number));
    let affine = true;
    for (let i = 1; i < last; i++) {
      if (Math.abs((table[i] as number) - (first + scale * i)) > tolerance) {
        affine = false;
        break;
      }
    }
    if (affine) return { last, scale, offset: first };
  }
  return undefined;
}

/** Every value a sample container can hold, in index order; built once per process. */
const domains = {
  u8: Uint8Array.from({ length: 256 }, (_, i) => i),
  i8: Int8Array.from({ length: 256 }, (_, i) => i - 128),
  u16: Uint16Array.from({ length: 65536 }, (_, i) => i),
  i16: Int16Array.from({ length: 65536 }, (_, i) => i - 32768),
};

function domainOf(samples: DecodedFrame['samples']): { domain: Uint8Array | Int8Array | Uint16Array | Int16Array; offset: number } | undefined {
  if (samples instanceof Uint8Array) return { domain: domains.u8, offset: 0 };
  if (samples instanceof Int8Array) return { domain: domains.i8, offset: 128 };
  if (samples instanceof Uint16Array) return { domain: domains.u16, offset: 0 };
  if (samples instanceof Int16Array) return { domain: domains.i16, offset: 32768 };
  return undefined;
}

function hasUsableWindowOrLut(module: IntensityModule): boolean {
  const width = module.windowWidths[0];
  const usableWindow = module.windowCenters[0] !== undefined && width !== undefined && (module.voiLutFunction === 'LINEAR' ? width >= 1 : width > 0);
  return usableWindow || module.voiLuts.length > 0;
}

/** Min and max of the image after step 2, from which sample values occur (the table maps them). */
function rangeAfterModalityLut(
  samples: Uint8Array | Int8Array | Uint16Array | Int16Array,
  offset: number,
  storedTable: Float64Array,
  module: IntensityModule,
): { min: number; max: number } {
  const seen = new Uint8Array(storedTable.length);
  for (let i = 0; i < samples.length; i++) seen[(samples[i] as number) + offset] = 1;
  const slope = module.rescaleSlope ?? 1;
  const intercept = module.rescaleIntercept ?? 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < seen.length; i++) {
    if (!seen[i]) continue;
    const v = (storedTable[i] as number) * slope + intercept;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  return { min, max };
}
