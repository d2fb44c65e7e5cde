import { CxrError } from '@cxr/inference';

/**
 * How source samples (8 or 16 bit) become stored values of `bits` bits.
 *
 * - `scale` (the default): `v' = round(v * (2^bits - 1) / (2^source - 1))`, so 0 stays 0 and the source maximum
 *   becomes the new maximum, and `v' / (2^bits - 1)` is the PNG's `v / (2^source - 1)` within half a step. When
 *   `bits >= source` the map is one to one and `v = round(v' * (2^source - 1) / (2^bits - 1))` gives the source
 *   back exactly (8 to 16 bits is exactly `v * 257`). With fewer bits than the source it is not reversible.
 * - `keep`: `v' = v`, for 16-bit files that hold fewer significant bits (a 12-bit detector saved as 16-bit PNG);
 *   a value that does not fit in `bits` bits is an error.
 *
 * MONOCHROME1 then stores `(2^bits - 1) - v'`, so the image looks the same after the viewer's inversion.
 */
export type BitMapping = 'scale' | 'keep';

export interface MappedSamples {
  readonly stored: Uint8Array | Uint16Array;
  /** What was done, in words, for the manifest. */
  readonly description: string;
  readonly reversible: boolean;
}

export function scaleValue(value: number, sourceBits: number, bits: number): number {
  const sourceMax = 2 ** sourceBits - 1;
  const max = 2 ** bits - 1;
  // Integer form of round-half-up(value * max / sourceMax): exact in doubles for 16-bit values.
  return Math.floor((2 * value * max + sourceMax) / (2 * sourceMax));
}

export function mapSamples(
  samples: Uint8Array | Uint16Array,
  sourceBits: 8 | 16,
  bits: number,
  mapping: BitMapping,
  monochrome1: boolean,
): MappedSamples {
  const max = 2 ** bits - 1;
  const table = new Uint16Array(2 ** sourceBits);
  let description: string;
  let reversible: boolean;
  if (mapping === 'keep' || bits === sourceBits) {
    for (let v = 0; v < table.length; v++) table[v] = v;
    description = `${sourceBits}-bit values stored unchanged in ${bits} bits`;
    reversible = true;
  } else {
    for (let v = 0; v < table.length; v++) table[v] = scaleValue(v, sourceBits, bits);
    description = `${sourceBits}-bit values scaled to ${bits} bits: v' = round(v * ${max} / ${2 ** sourceBits - 1})`;
    reversible = bits >= sourceBits;
    description += reversible ? ` (one to one: v = round(v' * ${2 ** sourceBits - 1} / ${max}))` : ' (not reversible: fewer bits than the source)';
  }
  if (mapping === 'keep' && bits < sourceBits) {
    let highest = 0;
    for (const v of samples) if (v > highest) highest = v;
    if (highest > max) {
      throw new CxrError('CXR_USAGE', `--keep-values: the image has the value ${highest}, which needs more than ${bits} bits`);
    }
  }
  if (monochrome1) {
    for (let v = 0; v < table.length; v++) table[v] = max - (table[v] ?? 0);
    description += `; MONOCHROME1: stored = ${max} - v'`;
  }
  const stored = bits <= 8 ? new Uint8Array(samples.length) : new Uint16Array(samples.length);
  for (let i = 0; i < samples.length; i++) stored[i] = table[samples[i] ?? 0] ?? 0;
  return { stored, description, reversible };
}
