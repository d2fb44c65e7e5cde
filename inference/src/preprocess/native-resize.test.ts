import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadModel } from '../runtime/index.js';
import { decodeSourceImage, intensitySource, readSourceHeader } from '../pipeline/source-image.js';
import { loadNativeResize, nativeResizeAddonPath, NATIVE_RESIZE_DISABLE_ENV } from './native-resize.js';
import { cropRegion, resizeRegion, type PixelSource, type ResizeMode } from './resize.js';
import { toInputTensor } from './tensor.js';

const SHARED = '/work/shared';
const DICOM_DIR = join(SHARED, 'dicom');
const haveFixtures = existsSync(DICOM_DIR);
const native = loadNativeResize();
if (!native) console.warn(`[native-resize.test] addon not built or not loadable (${nativeResizeAddonPath()}): native resize tests skipped`);

/** Runs `work` with the native loops switched off, then restores the environment. */
function withTypeScriptLoops<T>(work: () => T): T {
  const before = process.env[NATIVE_RESIZE_DISABLE_ENV];
  process.env[NATIVE_RESIZE_DISABLE_ENV] = '1';
  try {
    return work();
  } finally {
    if (before === undefined) delete process.env[NATIVE_RESIZE_DISABLE_ENV];
    else process.env[NATIVE_RESIZE_DISABLE_ENV] = before;
  }
}

/** Indices where two tensors differ as bits (NaN equals NaN). */
function differences(a: Float32Array | Float64Array, b: Float32Array | Float64Array): number[] {
  expect(a.length).toBe(b.length);
  const out: number[] = [];
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) out.push(i);
  return out;
}

function bothWays(source: PixelSource, rows: number, columns: number, mode: ResizeMode, crop: 'none' | 'center-square' = 'none'): [Float64Array, Float64Array] {
  const run = (): Float64Array => resizeRegion(source, cropRegion(source.rows, source.columns, crop), rows, columns, mode).data;
  return [run(), withTypeScriptLoops(run)];
}

afterEach(() => {
  delete process.env[NATIVE_RESIZE_DISABLE_ENV];
});

describe('loading the native resize loops', () => {
  it('never throws, and is off when CXR_DISABLE_NATIVE_RESIZE=1', () => {
    process.env[NATIVE_RESIZE_DISABLE_ENV] = '1';
    expect(loadNativeResize()).toBeNull();
    delete process.env[NATIVE_RESIZE_DISABLE_ENV];
    expect(loadNativeResize() !== null).toBe(existsSync(nativeResizeAddonPath()));
  });
});

describe.skipIf(!native)('native resize loops: the same bits as the TypeScript ones', () => {
  const lut = Float64Array.from({ length: 4096 }, (_, i) => Math.sqrt(i) / 64);

  it('through a table, for each integer sample type, area and bilinear, with and without a crop', () => {
    const rows = 301;
    const columns = 257;
    const pattern = (i: number): number => (i * 7919) % 4096;
    const kinds = [
      { samples: Uint16Array.from({ length: rows * columns }, (_, i) => pattern(i)), lutOffset: 0 },
      { samples: Uint8Array.from({ length: rows * columns }, (_, i) => pattern(i) % 256), lutOffset: 0 },
      { samples: Int16Array.from({ length: rows * columns }, (_, i) => pattern(i) - 2048), lutOffset: 2048 },
      { samples: Int32Array.from({ length: rows * columns }, (_, i) => pattern(i) - 1000), lutOffset: 1000 },
    ];
    for (const { samples, lutOffset } of kinds) {
      const source = { samples, lut, lutOffset, rows, columns };
      for (const [mode, crop, size] of [['area', 'none', 37], ['area', 'center-square', 224], ['bilinear', 'center-square', 50]] as const) {
        const [viaNative, viaTypeScript] = bothWays(source, size, size, mode, crop);
        expect(differences(viaNative, viaTypeScript), `${samples.constructor.name} ${mode} ${crop}`).toEqual([]);
        expect(viaNative.every(Number.isFinite)).toBe(true);
      }
    }
  });

  it('on double images (PNG and JPEG, and the full-resolution path)', () => {
    const image = { data: Float64Array.from({ length: 640 * 480 }, (_, i) => ((i * 31) % 1000) / 999), rows: 480, columns: 640 };
    for (const mode of ['area', 'bilinear'] as const) {
      const [viaNative, viaTypeScript] = bothWays(image, 224, 224, mode);
      expect(differences(viaNative, viaTypeScript)).toEqual([]);
    }
  });

  it('the affine shortcut, and its fallback when a sample lies beyond the straight part of the table', () => {
    const rows = 500;
    const columns = 420;
    const samples = Uint16Array.from({ length: rows * columns }, (_, i) => (i * 7919) % 4096);
    const straight = Float64Array.from({ length: 4096 }, (_, i) => i / 4095);
    const affine = { last: 4095, scale: 1 / 4095, offset: 0 };
    const source = { samples, lut: straight, lutOffset: 0, rows, columns, affine };
    const [viaNative, viaTypeScript] = bothWays(source, 224, 224, 'area', 'center-square');
    expect(differences(viaNative, viaTypeScript)).toEqual([]);
    const clipped = { ...source, affine: { ...affine, last: 2047 } };
    const [nativeFallback, typeScriptFallback] = bothWays(clipped, 224, 224, 'area', 'center-square');
    expect(differences(nativeFallback, typeScriptFallback)).toEqual([]);
    // The lookup path rounds differently from the shortcut, within double precision (float32 would be 1e-7 off).
    for (let i = 0; i < viaNative.length; i++) expect(Math.abs((nativeFallback[i] ?? 0) - (viaNative[i] ?? 0))).toBeLessThan(1e-14);
  });

  it('a sample outside the table is left to the TypeScript loop (NaN there, never a read out of bounds)', () => {
    const samples = Uint16Array.from({ length: 64 * 64 }, (_, i) => (i === 2000 ? 5000 : i % 4096));
    const [viaNative, viaTypeScript] = bothWays({ samples, lut, lutOffset: 0, rows: 64, columns: 64 }, 16, 16, 'area');
    expect(differences(viaNative, viaTypeScript)).toEqual([]);
    expect(viaNative.some(Number.isNaN)).toBe(true);
  });

  it.skipIf(!haveFixtures)('every shared DICOM file, both shipped models: the input tensor is the same to the bit', async () => {
    const files = [
      ...readdirSync(DICOM_DIR).filter((f) => f.endsWith('.dcm')).map((f) => join(DICOM_DIR, f)),
      ...readdirSync(join(DICOM_DIR, 'derived')).map((f) => join(DICOM_DIR, 'derived', f)),
    ];
    expect(files.length).toBe(22);
    for (const name of ['densenet121-cxr18-random', 'squeezenet-pneumonia-peds']) {
      const model = await loadModel(join(SHARED, 'models', name));
      try {
        const { input } = model.manifest;
        for (const file of files) {
          const header = readSourceHeader(readFileSync(file));
          if (header.kind !== 'dicom') throw new Error(`${file} is not DICOM`);
          const source = await decodeSourceImage(header);
          const tensor = (): Float32Array => toInputTensor(intensitySource(source, input.intensity).pixels, input);
          expect(differences(tensor(), withTypeScriptLoops(tensor)), `${name} ${file}`).toEqual([]);
        }
      } finally {
        await model.close();
      }
    }
  }, 60_000);
});

describe.skipIf(!native)('native resize loops: arguments are checked before any read', () => {
  const taps = { start: Int32Array.from([0, 1]), index: Int32Array.from([0]), weight: Float64Array.from([1]) };

  it('refuses taps that reach past the samples', () => {
    if (!native) throw new Error('not loaded');
    const samples = new Uint16Array(16);
    const farRow = { ...taps, index: Int32Array.from([4]) };
    expect(() => native.verticalLookup(samples, 4, 0, 0, 4, new Float64Array(16), 0, farRow.start, farRow.index, farRow.weight, new Float64Array(4))).toThrow(RangeError);
    expect(() => native.verticalLookup(samples, 4, 0, 1, 4, new Float64Array(16), 0, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(RangeError);
    const first = Int32Array.from([3]);
    const count = Int32Array.from([2]);
    const one = Float64Array.from([1]);
    expect(() => native.sumAffine(samples, 4, 0, 0, first, count, one, one, one, taps.start, taps.index, taps.weight, new Float64Array(1), 65535)).toThrow(RangeError);
    expect(() => native.horizontal(new Float64Array(4), 4, Int32Array.from([0, 1]), Int32Array.from([4]), one, new Float64Array(1))).toThrow(RangeError);
  });

  it('refuses the wrong kinds of arrays', () => {
    if (!native) throw new Error('not loaded');
    const call = native.verticalLookup as unknown as (...args: unknown[]) => unknown;
    expect(() => call([1, 2, 3, 4], 4, 0, 0, 4, new Float64Array(16), 0, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(TypeError);
    // Float32 anywhere between the intensities and the result would break the contract's double precision.
    expect(() => call(new Float32Array(4), 4, 0, 0, 4, new Float64Array(0), 0, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(TypeError);
    expect(() => call(new Uint16Array(4), 4, 0, 0, 4, new Float32Array(16), 0, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(TypeError);
    const horizontal = native.horizontal as unknown as (...args: unknown[]) => unknown;
    expect(() => horizontal(new Float64Array(4), 4, taps.start, taps.index, taps.weight, new Float32Array(1))).toThrow(TypeError);
    // A table with double samples, or none with integer samples, is a caller's mistake.
    expect(() => call(new Float64Array(4), 4, 0, 0, 4, new Float64Array(16), 0, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(TypeError);
    expect(() => call(new Uint16Array(4), 4, 0, 0, 4, new Float64Array(0), 0, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(TypeError);
    expect(() => call(new Uint16Array(4), 4, 0, 0, 4, new Float64Array(16), 0.5, taps.start, taps.index, taps.weight, new Float64Array(4))).toThrow(TypeError);
  });
});
