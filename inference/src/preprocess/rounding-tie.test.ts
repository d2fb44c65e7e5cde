import sharp from 'sharp';
import { afterEach, describe, expect, it } from 'vitest';
import type { DecodedFrame } from '../codecs/index.js';
import type { ModelInput } from '../contracts/index.js';
import { readRasterGrey } from '../images/raster.js';
import { applyIntensity } from './intensity.js';
import { intensityByLookup } from './intensity-lut.js';
import { loadNativeResize, NATIVE_RESIZE_DISABLE_ENV } from './native-resize.js';
import type { PixelSource } from './resize.js';
import { storedValues } from './stored-values.js';
import { roundHalfEven, toInputTensor } from './tensor.js';

/**
 * An image built to sit next to a rounding tie of step 7. 64 x 64 16-bit samples, 2047 of them 26086 and the rest
 * 26085, shrunk by `area` to one pixel: the average is S / 4096 / 65535 with S = 106 846 207, and 255 times that is
 * 101.5 - 9.5e-7. In double precision it rounds to 101; rounded to float32 first (1e-8 up), it lands above 101.5
 * and rounds to 102. The contract computes steps 1 to 7 in double, so every path must give 101.
 */
const SIDE = 64;
const HIGH = 26086;
const HIGH_COUNT = 2047;
const samples = Uint16Array.from({ length: SIDE * SIDE }, (_, i) => ((i * 37) % (SIDE * SIDE) < HIGH_COUNT ? HIGH : HIGH - 1));
const average = (HIGH_COUNT * HIGH + (SIDE * SIDE - HIGH_COUNT) * (HIGH - 1)) / (SIDE * SIDE) / 65535;

const frame: DecodedFrame = { samples, rows: SIDE, columns: SIDE, samplesPerPixel: 1, origin: 'native', decoder: 'test' };
const module = {
  bitsAllocated: 16,
  bitsStored: 16,
  highBit: 15,
  pixelRepresentation: 0 as const,
  rescaleSlope: undefined,
  rescaleIntercept: undefined,
  windowCenters: [],
  windowWidths: [],
  voiLutFunction: 'LINEAR' as const,
  voiLuts: [],
  photometricInterpretation: 'MONOCHROME2',
};
const input: ModelInput = {
  name: 'input',
  channels: 1,
  height: 1,
  width: 1,
  intensity: 'bits',
  crop: 'none',
  resize: 'area',
  quantize: 8,
  normalize: { scale: 1, offset: 0 },
};

function sources(): Record<string, PixelSource> {
  const table = intensityByLookup(frame, module, 'bits');
  if (!table?.affine) throw new Error('a 16-bit bits table is expected to be affine');
  const perPixel = storedValues(frame, module);
  applyIntensity(perPixel, module, 'bits');
  const lookup = { samples, lut: table.lut, lutOffset: table.lutOffset, rows: SIDE, columns: SIDE };
  return {
    'raw samples averaged, then mapped (the affine shortcut)': { ...lookup, affine: table.affine },
    'samples looked up in the table, then averaged': lookup,
    'per-pixel intensities (32-bit and colour frames)': { data: perPixel, rows: SIDE, columns: SIDE },
  };
}

const loops = loadNativeResize() ? (['native', 'TypeScript'] as const) : (['TypeScript'] as const);

afterEach(() => {
  delete process.env[NATIVE_RESIZE_DISABLE_ENV];
});

describe('step 7 on a value 1e-6 from a rounding tie: steps 1 to 7 in double precision', () => {
  it('the image is a real trap: float32 rounds the average to the other side of the tie', () => {
    expect(average * 255 - 101.5).toBeCloseTo(-9.5e-7, 8);
    expect(roundHalfEven(average * 255)).toBe(101);
    expect(roundHalfEven(Math.fround(average) * 255)).toBe(102);
  });

  for (const loop of loops) {
    it.each(Object.entries(sources()))(`%s, ${loop} loops: 101 / 255`, (_name, source) => {
      if (loop === 'TypeScript') process.env[NATIVE_RESIZE_DISABLE_ENV] = '1';
      expect(Array.from(toInputTensor(source, input))).toEqual([Math.fround(101 / 255)]);
    });
  }

  it('a 16-bit PNG of the same samples (the raster entry at step 3): 101 / 255', async () => {
    const png = await sharp(samples, { raw: { width: SIDE, height: SIDE, channels: 1 } }).toColourspace('grey16').png().toBuffer();
    const raster = await readRasterGrey(png, 'png');
    expect(raster.bitDepth).toBe(16);
    for (const loop of loops) {
      process.env[NATIVE_RESIZE_DISABLE_ENV] = loop === 'TypeScript' ? '1' : '0';
      expect(Array.from(toInputTensor(raster, input)), loop).toEqual([Math.fround(101 / 255)]);
    }
  });
});
