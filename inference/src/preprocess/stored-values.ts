import type { DecodedFrame } from '../codecs/index.js';

export interface StoredValueModule {
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly highBit: number;
  readonly pixelRepresentation: 0 | 1;
}

/**
 * Contract step 1: stored values as numbers. Native words are masked to the BitsStored bits that end at HighBit
 * (other bits may carry overlays); decoded samples are clamped instead, since a lossy decoder can overshoot by a
 * step and masking would wrap 1024 to 0 in a 10-bit image. Signed values are sign-extended from BitsStored.
 */
export function storedValues(frame: DecodedFrame, module: StoredValueModule): Float64Array {
  const { samples } = frame;
  const n = samples.length;
  const out = new Float64Array(n);
  const bits = module.bitsStored;
  const signed = module.pixelRepresentation === 1;
  const range = 2 ** bits;
  const min = signed ? -(range / 2) : 0;
  const max = signed ? range / 2 - 1 : range - 1;
  if (frame.origin === 'native' && module.bitsAllocated <= 16) {
    // Words of 16 bits or fewer fit JavaScript's 32-bit integer operators.
    const shift = module.highBit + 1 - bits;
    const mask = range - 1;
    const half = range / 2;
    const containerMask = 2 ** module.bitsAllocated - 1;
    for (let i = 0; i < n; i++) {
      let v = (((samples[i] as number) & containerMask) >>> shift) & mask;
      if (signed && v >= half) v -= range;
      out[i] = v;
    }
    return out;
  }
  if (frame.origin === 'native') {
    const shift = module.highBit + 1 - bits;
    const containerMask = module.bitsAllocated >= 32 ? 0xffffffff : 2 ** module.bitsAllocated - 1;
    const half = range / 2;
    for (let i = 0; i < n; i++) {
      // Arithmetic in doubles: JavaScript's bitwise operators are 32-bit signed.
      const word = ((samples[i] ?? 0) >>> 0) & containerMask;
      let v = Math.floor((word >>> 0) / 2 ** shift) % range;
      if (signed && v >= half) v -= range;
      out[i] = v;
    }
    return out;
  }
  for (let i = 0; i < n; i++) {
    let v = samples[i] ?? 0;
    // Some codecs return a signed image's bit patterns unsigned.
    if (signed && v > max && v < range) v -= range;
    out[i] = v < min ? min : v > max ? max : v;
  }
  return out;
}
