import type { ModelInput } from '../contracts/index.js';
import { cropRegion, resizeRegion, type PixelSource } from './resize.js';

/**
 * Contract steps 5 to 8: crop, resize, quantize, normalize (a grey image repeated into 3 channels). C x H x W. Each
 * value is rounded to float32 once, at the end of step 8.
 */
export function toInputTensor(image: PixelSource, input: ModelInput): Float32Array {
  const region = cropRegion(image.rows, image.columns, input.crop);
  const resized = resizeRegion(image, region, input.height, input.width, input.resize);
  // Step 7 in double precision like steps 1 to 6 (the contract's words): only the tensor below is float32.
  const grey = input.quantize === 8 ? resized.data.map((v) => roundHalfEven(v * 255) / 255) : resized.data;
  const plane = input.height * input.width;
  const tensor = new Float32Array(plane * input.channels);
  const normalize = input.normalize;
  for (let c = 0; c < input.channels; c++) {
    const base = c * plane;
    if ('scale' in normalize) {
      for (let i = 0; i < plane; i++) tensor[base + i] = (grey[i] ?? 0) * normalize.scale + normalize.offset;
    } else {
      const mean = normalize.mean[c] ?? normalize.mean[0] ?? 0;
      const std = normalize.std[c] ?? normalize.std[0] ?? 1;
      for (let i = 0; i < plane; i++) tensor[base + i] = ((grey[i] ?? 0) - mean) / std;
    }
  }
  return tensor;
}

/** NumPy's rounding (ties to even), which the reference implementation and most training code use. */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}
