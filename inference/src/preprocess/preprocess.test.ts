import sharp from 'sharp';
import { describe, expect, it } from 'vitest';
import type { DecodedFrame } from '../codecs/index.js';
import type { ModelInput } from '../contracts/index.js';
import type { IntensityModule } from './intensity.js';
import { readRasterGrey } from '../images/raster.js';
import { applyIntensity, crop, resize, storedValues, toInputTensor } from './index.js';
import { roundHalfEven } from './tensor.js';
import { intensityByLookup } from './intensity-lut.js';
import { cropRegion, resizeRegion } from './resize.js';

const frame = (samples: DecodedFrame['samples'], origin: DecodedFrame['origin']): DecodedFrame => ({
  samples,
  rows: 1,
  columns: samples.length,
  samplesPerPixel: 1,
  origin,
  decoder: 'test',
});

describe('step 1: stored values', () => {
  it('masks native words above HighBit (overlay bits) and honours a HighBit that is not BitsStored - 1', () => {
    const module = { bitsAllocated: 16, bitsStored: 10, highBit: 9, pixelRepresentation: 0 as const };
    expect(Array.from(storedValues(frame(new Uint16Array([0xfc00 | 5, 1023]), 'native'), module))).toEqual([5, 1023]);
    const shifted = { bitsAllocated: 16, bitsStored: 12, highBit: 15, pixelRepresentation: 0 as const };
    expect(Array.from(storedValues(frame(new Uint16Array([0xabc0]), 'native'), shifted))).toEqual([0xabc]);
  });

  it('sign-extends signed native values from BitsStored', () => {
    const module = { bitsAllocated: 16, bitsStored: 12, highBit: 11, pixelRepresentation: 1 as const };
    expect(Array.from(storedValues(frame(new Int16Array([0x0fff, 0x0800, 0x07ff]), 'native'), module))).toEqual([-1, -2048, 2047]);
  });

  it('clamps decoded values to the BitsStored range instead of masking (1024 must not wrap to 0)', () => {
    const module = { bitsAllocated: 16, bitsStored: 10, highBit: 9, pixelRepresentation: 0 as const };
    expect(Array.from(storedValues(frame(new Uint16Array([1024, 1023, 0]), 'decoded'), module))).toEqual([1023, 1023, 0]);
  });
});

const module = (over: Partial<IntensityModule>): IntensityModule => ({
  bitsStored: 10,
  rescaleSlope: undefined,
  rescaleIntercept: undefined,
  windowCenters: [],
  windowWidths: [],
  voiLutFunction: 'LINEAR',
  voiLuts: [],
  photometricInterpretation: 'MONOCHROME2',
  ...over,
});

describe('steps 2 to 4: modality LUT, intensity, MONOCHROME1', () => {
  it('bits: v / (2^BitsStored - 1) after the modality LUT, clamped', () => {
    const v = Float64Array.from([0, 256, 512, 2000]);
    applyIntensity(v, module({ rescaleSlope: 2, rescaleIntercept: -1 }), 'bits');
    expect(Array.from(v)).toEqual([0, 511 / 1023, 1, 1]);
    const w = Float64Array.from([0, 1023]);
    applyIntensity(w, module({}), 'bits');
    expect(Array.from(w)).toEqual([0, 1]);
  });

  it('window LINEAR follows PS3.3 C.11.2.1.2.1 exactly', () => {
    const c = 100;
    const w = 21;
    const v = Float64Array.from([89.5, 89.6, 100, 110.5, 110.6]);
    applyIntensity(v, module({ windowCenters: [c], windowWidths: [w] }), 'window');
    // In double precision, so to the bit.
    expect(Array.from(v)).toEqual([0, (89.6 - (c - 0.5)) / (w - 1) + 0.5, (100 - 99.5) / 20 + 0.5, 1, 1]);
  });

  it('window LINEAR_EXACT and SIGMOID', () => {
    const exact = Float64Array.from([90, 95, 110]);
    applyIntensity(exact, module({ windowCenters: [100], windowWidths: [20], voiLutFunction: 'LINEAR_EXACT' }), 'window');
    expect(Array.from(exact)).toEqual([0, 0.25, 1]);
    const sigmoid = Float64Array.from([100, 110]);
    applyIntensity(sigmoid, module({ windowCenters: [100], windowWidths: [20], voiLutFunction: 'SIGMOID' }), 'window');
    expect(Array.from(sigmoid)).toEqual([0.5, 1 / (1 + Math.exp(-2))]);
  });

  it('window without a window uses the VOI LUT, rounding and clamping to its input range', () => {
    const lut = { entries: 3, firstValue: 10, bits: 8, data: Uint16Array.from([0, 128, 255]) };
    const v = Float64Array.from([5, 10.4, 10.6, 12, 99]);
    const applied = applyIntensity(v, module({ voiLuts: [lut] }), 'window');
    expect(applied.mode).toBe('voi-lut');
    expect(Array.from(v)).toEqual([0, 0, 128 / 255, 1, 1]);
  });

  it('window with neither window nor LUT falls back to minmax; minmax of a flat image is 0', () => {
    const v = Float64Array.from([10, 20, 30]);
    expect(applyIntensity(v, module({}), 'window').mode).toBe('minmax');
    expect(Array.from(v)).toEqual([0, 0.5, 1]);
    const flat = Float64Array.from([7, 7]);
    applyIntensity(flat, module({}), 'minmax');
    expect(Array.from(flat)).toEqual([0, 0]);
  });

  it('inverts MONOCHROME1 so that air is dark', () => {
    const v = Float64Array.from([0, 1023]);
    applyIntensity(v, module({ photometricInterpretation: 'MONOCHROME1' }), 'bits');
    expect(Array.from(v)).toEqual([1, 0]);
  });
});

describe('steps 5 and 6: crop and resize', () => {
  const ramp = (rows: number, columns: number) => ({ data: Float64Array.from({ length: rows * columns }, (_, i) => i), rows, columns });

  it('center-square keeps the central square, offset floor((L - S) / 2)', () => {
    const out = crop(ramp(2, 5), 'center-square');
    expect(out).toMatchObject({ rows: 2, columns: 2 });
    expect(Array.from(out.data)).toEqual([1, 2, 6, 7]);
  });

  it('area averages whole blocks on an integer ratio', () => {
    const out = resize(ramp(4, 4), 2, 2, 'area');
    expect(Array.from(out.data)).toEqual([2.5, 4.5, 10.5, 12.5]);
  });

  it('area weights pixels by their overlap on a fractional ratio (3 -> 2)', () => {
    // Output pixel 0 covers source [0, 1.5): 1 x p0 + 0.5 x p1, over 1.5.
    const out = resize({ data: Float64Array.from([0, 3, 6]), rows: 1, columns: 3 }, 1, 2, 'area');
    expect(out.data[0]).toBeCloseTo((0 + 0.5 * 3) / 1.5, 14);
    expect(out.data[1]).toBeCloseTo((0.5 * 3 + 6) / 1.5, 14);
  });

  it('bilinear uses half-pixel centres with clamped edges, and area falls back to it when enlarging', () => {
    const src = { data: Float64Array.from([0, 10]), rows: 1, columns: 2 };
    const expected = [0, 2.5, 7.5, 10];
    expect(Array.from(resize(src, 1, 4, 'bilinear').data)).toEqual(expected);
    expect(Array.from(resize(src, 1, 4, 'area').data)).toEqual(expected);
  });
});

describe('steps 7 and 8: quantize and normalize', () => {
  const input = (over: Partial<ModelInput>): ModelInput => ({
    name: 'input',
    channels: 1,
    height: 1,
    width: 2,
    intensity: 'bits',
    crop: 'none',
    resize: 'area',
    quantize: null,
    normalize: { scale: 2, offset: -1 },
    ...over,
  });
  const image = { data: Float64Array.from([0.25, 1]), rows: 1, columns: 2 };

  it('scale/offset', () => {
    expect(Array.from(toInputTensor(image, input({})))).toEqual([-0.5, 1]);
  });

  it('repeats grey into 3 channels with per-channel mean/std', () => {
    const t = toInputTensor(image, input({ channels: 3, normalize: { mean: [0.5, 0, 0.25], std: [0.5, 1, 0.25] } }));
    expect(Array.from(t)).toEqual([-0.5, 1, 0.25, 1, 0, 3]);
  });

  it('quantize 8 rounds to 8-bit steps, ties to even', () => {
    const t = toInputTensor({ data: Float64Array.from([0.1, 0.5]), rows: 1, columns: 2 }, input({ quantize: 8, normalize: { scale: 1, offset: 0 } }));
    expect(t[0]).toBeCloseTo(Math.round(0.1 * 255) / 255, 7);
    expect(t[1]).toBeCloseTo(128 / 255, 7);
    expect([roundHalfEven(0.5), roundHalfEven(1.5), roundHalfEven(2.5), roundHalfEven(-0.5), roundHalfEven(2.4)]).toEqual([0, 2, 2, -0, 2]);
  });
});

describe('PNG and JPEG enter at step 3', () => {
  it('reads 16-bit PNG as v / 65535 and makes colour grey like PIL convert("L")', async () => {
    const grey16 = await sharp(new Uint16Array([0, 65535, 32768, 1000]), { raw: { width: 2, height: 2, channels: 1 } })
      .toColourspace('grey16')
      .png()
      .toBuffer();
    const g = await readRasterGrey(grey16, 'png');
    expect(g.bitDepth).toBe(16);
    expect(Array.from(g.data)).toEqual([0, 1, 32768 / 65535, 1000 / 65535]);

    const rgb = await sharp(Buffer.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 200, 30]), { raw: { width: 2, height: 2, channels: 3 } })
      .png()
      .toBuffer();
    const c = await readRasterGrey(rgb, 'png');
    const pil = (r: number, gr: number, b: number): number => ((r * 19595 + gr * 38470 + b * 7471 + 0x8000) >> 16) / 255;
    expect(c.colour).toBe(true);
    expect(Array.from(c.data)).toEqual([pil(255, 0, 0), pil(0, 255, 0), pil(0, 0, 255), pil(10, 200, 30)]);
  });
});

describe('the affine shortcut of steps 1 to 6', () => {
  const module = {
    bitsAllocated: 16,
    bitsStored: 12,
    highBit: 11,
    pixelRepresentation: 0 as const,
    rescaleSlope: undefined,
    rescaleIntercept: undefined,
    windowCenters: [],
    windowWidths: [],
    voiLutFunction: 'LINEAR' as const,
    voiLuts: [],
    photometricInterpretation: 'MONOCHROME1',
  };
  const image = (rows: number, columns: number, at: (i: number) => number): DecodedFrame => ({
    samples: Uint16Array.from({ length: rows * columns }, (_, i) => at(i)),
    rows,
    columns,
    samplesPerPixel: 1,
    origin: 'native',
    decoder: 'test',
  });
  const viaLookup = (f: DecodedFrame, withAffine: boolean) => {
    const fast = intensityByLookup(f, module, 'bits');
    if (!fast) throw new Error('no table');
    const source = { samples: f.samples, lut: fast.lut, lutOffset: fast.lutOffset, rows: f.rows, columns: f.columns, ...(withAffine && fast.affine ? { affine: fast.affine } : {}) };
    return { affine: fast.affine, out: resizeRegion(source, cropRegion(f.rows, f.columns, 'center-square'), 37, 37, 'area').data };
  };

  it('averages raw samples and maps the averages, equal to looking every pixel up', () => {
    const f = image(301, 257, (i) => (i * 7919) % 4096);
    const shortcut = viaLookup(f, true);
    expect(shortcut.affine).toMatchObject({ last: 4095 });
    const lookup = viaLookup(f, false).out;
    // Within double rounding (a float32 step on the way would be 1e-7 off).
    for (let i = 0; i < lookup.length; i++) expect(Math.abs((shortcut.out[i] ?? 0) - (lookup[i] ?? 0))).toBeLessThan(1e-14);
  });

  it('falls back to the lookup when a sample carries bits beyond BitsStored (an overlay), which masking removes', () => {
    const f = image(64, 64, (i) => (i === 100 ? 0xf000 | 5 : i % 4096));
    const withShortcut = viaLookup(f, true).out;
    const lookup = viaLookup(f, false).out;
    expect(Array.from(withShortcut)).toEqual(Array.from(lookup));
  });
});
