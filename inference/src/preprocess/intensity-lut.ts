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
): { lut: Float32Array; lutOffset: number; applied: IntensityApplied } | undefined {
  const { samples } = frame;
  if (frame.samplesPerPixel !== 1) return undefined;
  let domain: Uint8Array | Int8Array | Uint16Array | Int16Array;
  let offset: number;
  if (samples instanceof Uint8Array) [domain, offset] = [Uint8Array.from({ length: 256 }, (_, i) => i), 0];
  else if (samples instanceof Int8Array) [domain, offset] = [Int8Array.from({ length: 256 }, (_, i) => i - 128), 128];
  else if (samples instanceof Uint16Array) [domain, offset] = [Uint16Array.from({ length: 65536 }, (_, i) => i), 0];
  else if (samples instanceof Int16Array) [domain, offset] = [Int16Array.from({ length: 65536 }, (_, i) => i - 32768), 32768];
  else return undefined;

  const table = storedValues({ ...frame, samples: domain, rows: 1, columns: domain.length }, module);
  const imageRange = rangeAfterModalityLut(samples, offset, table, module);
  const applied = applyIntensity(table, module, mode, imageRange);
  return { lut: table, lutOffset: offset, applied };
}

/** Min and max of the image after step 2, from which sample values occur (the table maps them). */
function rangeAfterModalityLut(
  samples: Uint8Array | Int8Array | Uint16Array | Int16Array,
  offset: number,
  storedTable: Float32Array,
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
