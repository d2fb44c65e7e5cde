import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import type { ImageInfo } from '../dicom/image-info.js';
import { readSourceImage, type SourceImage } from '../pipeline/source-image.js';
import type { ClassActivationMaps } from '../runtime/types.js';
import { dicomDir, sharedDir } from '../test-support/shared.js';
import { TURBO, colourAt, pickHeatmapLabel, previewSize, renderHeatmap, renderPreview, turbo, type Preview } from './index.js';

const nihPngDir = path.join(sharedDir, 'eval', 'nih-chestxray14-sample');
/** Set CXR_SAVE_IMAGES to a folder to keep the rendered previews and overlays for a look. */
const saveDir = process.env.CXR_SAVE_IMAGES;

function save(name: string, png: Buffer): void {
  if (!saveDir) return;
  mkdirSync(saveDir, { recursive: true });
  writeFileSync(path.join(saveDir, name), png);
}

async function readSource(file: string): Promise<SourceImage> {
  return readSourceImage(readFileSync(file));
}

interface Grey {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
}

/** Decodes a preview PNG, checking it is one 8-bit grey channel. */
async function decodeGrey(png: Buffer): Promise<Grey> {
  const meta = await sharp(png).metadata();
  expect(meta.format).toBe('png');
  expect(meta.channels).toBe(1);
  expect(meta.depth).toBe('uchar');
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(1);
  return { data, width: info.width, height: info.height };
}

interface Rgba {
  readonly data: Buffer;
  readonly width: number;
  readonly height: number;
}

async function decodeRgba(png: Buffer): Promise<Rgba> {
  const meta = await sharp(png).metadata();
  expect(meta.format).toBe('png');
  expect(meta.channels).toBe(4);
  const { data, info } = await sharp(png).raw().toBuffer({ resolveWithObject: true });
  expect(info.channels).toBe(4);
  return { data, width: info.width, height: info.height };
}

/** Mean grey level of a box given as fractions of the image: [x0, y0, x1, y1]. */
function meanOf(image: Grey, [x0, y0, x1, y1]: readonly [number, number, number, number]): number {
  let sum = 0;
  let n = 0;
  for (let y = Math.floor(y0 * image.height); y < Math.floor(y1 * image.height); y++) {
    for (let x = Math.floor(x0 * image.width); x < Math.floor(x1 * image.width); x++) {
      sum += image.data[y * image.width + x] ?? 0;
      n++;
    }
  }
  return sum / n;
}

const MEDIASTINUM = [0.45, 0.4, 0.55, 0.6] as const;
const IMAGE_LEFT_LUNG = [0.2, 0.35, 0.3, 0.5] as const;
const IMAGE_RIGHT_LUNG = [0.7, 0.35, 0.8, 0.5] as const;

/** A PA chest the right way round: both lung fields clearly darker than the mediastinum and spine. */
function expectChestNotInverted(image: Grey): void {
  const mediastinum = meanOf(image, MEDIASTINUM);
  expect(mediastinum - meanOf(image, IMAGE_LEFT_LUNG)).toBeGreaterThan(40);
  expect(mediastinum - meanOf(image, IMAGE_RIGHT_LUNG)).toBeGreaterThan(40);
}

function syntheticDicom(
  rows: number,
  columns: number,
  samples: Uint16Array | Int16Array,
  overrides: Partial<ImageInfo> = {},
  origin: 'native' | 'decoded' = 'native',
): SourceImage {
  const info: ImageInfo = {
    transferSyntaxUid: '1.2.840.10008.1.2.1',
    transferSyntax: 'Explicit VR Little Endian',
    hasFileMeta: true,
    sopClassUid: undefined,
    sopInstanceUid: undefined,
    studyInstanceUid: undefined,
    seriesInstanceUid: undefined,
    modality: 'DX',
    bodyPartExamined: 'CHEST',
    viewPosition: 'PA',
    manufacturer: undefined,
    rows,
    columns,
    samplesPerPixel: 1,
    photometricInterpretation: 'MONOCHROME2',
    planarConfiguration: 0,
    bitsAllocated: 16,
    bitsStored: 12,
    highBit: 11,
    pixelRepresentation: 0,
    numberOfFrames: 1,
    rescaleSlope: undefined,
    rescaleIntercept: undefined,
    windowCenters: [],
    windowWidths: [],
    voiLutFunction: 'LINEAR',
    voiLuts: [],
    ...overrides,
  };
  return { kind: 'dicom', info, frame: { samples, rows, columns, samplesPerPixel: 1, origin, decoder: 'test' } };
}

/** rows x columns, each row a ramp from 0 to `top` left to right. */
function ramp(rows: number, columns: number, top: number): Uint16Array {
  const out = new Uint16Array(rows * columns);
  for (let y = 0; y < rows; y++) for (let x = 0; x < columns; x++) out[y * columns + x] = Math.round((x / (columns - 1)) * top);
  return out;
}

describe('renderPreview on real chest X-rays', () => {
  let rg1: Preview;

  beforeAll(async () => {
    rg1 = await renderPreview(await readSource(path.join(dicomDir, 'cr_chest_pa_RG1_JLSN.dcm')));
    save('preview-cr_chest_pa_RG1_JLSN.png', rg1.png);
  });

  it('shrinks the 1955 x 1841 MONOCHROME1 CR to 1024 on the long side, aspect kept, with its own window', async () => {
    expect(rg1.height).toBe(1024);
    expect(rg1.width).toBe(964); // 1841 * 1024 / 1955 = 964.3
    expect(rg1.scale).toBeCloseTo(1024 / 1955, 12);
    expect(rg1.window).toEqual({ center: 15000, width: 30000 });
    const image = await decodeGrey(rg1.png);
    expect([image.width, image.height]).toEqual([964, 1024]);
  });

  it('shows the MONOCHROME1 CR with air dark and bone bright (inverted once, not twice)', async () => {
    const image = await decodeGrey(rg1.png);
    // Air above the shoulders, in the top corners, against the mediastinum and spine.
    const mediastinum = meanOf(image, MEDIASTINUM);
    expect(mediastinum).toBeGreaterThan(180);
    expect(meanOf(image, [0, 0.03, 0.08, 0.1])).toBeLessThan(mediastinum - 100);
    expect(meanOf(image, [0.92, 0.03, 1, 0.1])).toBeLessThan(mediastinum - 100);
    expectChestNotInverted(image);
  });

  it('keeps the headerless 440 x 440 MONOCHROME1 CR at 440 (never upscaled)', async () => {
    const preview = await renderPreview(await readSource(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')));
    save('preview-cr_chest_CR-MONO1-10-chest.png', preview.png);
    expect([preview.width, preview.height, preview.scale]).toEqual([440, 440, 1]);
    expect(preview.window).toEqual({ center: 550, width: 1024 });
    const image = await decodeGrey(preview.png);
    expect([image.width, image.height]).toEqual([440, 440]);
    expectChestNotInverted(image);
    // The air beside the patient's lower left (image bottom right) is dark.
    expect(meanOf(image, [0.92, 0.92, 1, 1])).toBeLessThan(meanOf(image, MEDIASTINUM) - 100);
  });

  it('gives the 8-bit DX without a window a robust percentile window', async () => {
    const preview = await renderPreview(await readSource(path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm')));
    save('preview-dx_chest_nih_secondary_capture.png', preview.png);
    expect([preview.width, preview.height, preview.scale]).toEqual([1024, 1024, 1]);
    expect(preview.window).not.toBeNull();
    const { center, width } = preview.window ?? { center: 0, width: 0 };
    // Inside the 8-bit range, narrower than it: the darkest and brightest half percent are clipped.
    expect(center - width / 2).toBeGreaterThanOrEqual(0);
    expect(center + width / 2).toBeLessThanOrEqual(256);
    expect(width).toBeLessThan(255);
    const image = await decodeGrey(preview.png);
    expectChestNotInverted(image);
    let black = 0;
    let white = 0;
    for (const v of image.data) {
      if (v === 0) black++;
      if (v === 255) white++;
    }
    // About 0.5 % at each end (whole histogram bins, so a little more).
    expect(black / image.data.length).toBeGreaterThan(0.002);
    expect(black / image.data.length).toBeLessThan(0.03);
    expect(white / image.data.length).toBeGreaterThan(0.002);
    expect(white / image.data.length).toBeLessThan(0.03);
  });

  it('passes a 1024 x 1024 NIH PNG through unchanged', async () => {
    const file = path.join(nihPngDir, '00000129_000.png');
    const source = await readSource(file);
    const preview = await renderPreview(source);
    save('preview-nih-00000129_000.png', preview.png);
    expect([preview.width, preview.height, preview.scale, preview.window]).toEqual([1024, 1024, 1, null]);
    const image = await decodeGrey(preview.png);
    const original = await sharp(readFileSync(file)).extractChannel(0).raw().toBuffer();
    expect(image.data.equals(original)).toBe(true);
    expectChestNotInverted(image);
  });

  it('honours maxSide on a PNG, averaging when it shrinks', async () => {
    const source = await readSource(path.join(nihPngDir, '00000129_000.png'));
    const preview = await renderPreview(source, { maxSide: 256 });
    expect([preview.width, preview.height, preview.scale]).toEqual([256, 256, 0.25]);
    const full = await decodeGrey((await renderPreview(source)).png);
    const small = await decodeGrey(preview.png);
    // Same picture: each small pixel is close to the mean of its 4 x 4 block (a smooth filter, not a point sample).
    let error = 0;
    for (let y = 0; y < 256; y++) {
      for (let x = 0; x < 256; x++) {
        let sum = 0;
        for (let dy = 0; dy < 4; dy++) for (let dx = 0; dx < 4; dx++) sum += full.data[(y * 4 + dy) * 1024 + x * 4 + dx] ?? 0;
        error += Math.abs((small.data[y * 256 + x] ?? 0) - sum / 16);
      }
    }
    expect(error / (256 * 256)).toBeLessThan(3);
  });

  it('can encode smaller at some cost in time, same pixels', async () => {
    const source = await readSource(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm'));
    const fast = await renderPreview(source);
    const small = await renderPreview(source, { compression: 'small' });
    expect(small.png.length).toBeLessThan(fast.png.length);
    expect((await decodeGrey(small.png)).data.equals((await decodeGrey(fast.png)).data)).toBe(true);
  });
});

describe('renderPreview on synthetic images', () => {
  it('windows a ramp without a header window by its percentiles, full black to full white', async () => {
    const preview = await renderPreview(syntheticDicom(16, 200, ramp(16, 200, 1000)));
    const w = preview.window ?? { center: 0, width: 0 };
    expect(w.center).toBeCloseTo(500, -1);
    expect(w.width).toBeGreaterThan(970);
    expect(w.width).toBeLessThan(1000);
    const image = await decodeGrey(preview.png);
    const row = [...image.data.subarray(0, 200)];
    expect(row[0]).toBe(0);
    expect(row[199]).toBe(255);
    for (let x = 1; x < 200; x++) expect(row[x]).toBeGreaterThanOrEqual(row[x - 1] ?? 0);
  });

  it('inverts MONOCHROME1 so that the highest stored values are darkest', async () => {
    const image = await decodeGrey((await renderPreview(syntheticDicom(16, 200, ramp(16, 200, 1000), { photometricInterpretation: 'MONOCHROME1' }))).png);
    expect(image.data[0]).toBe(255);
    expect(image.data[199]).toBe(0);
  });

  it('windows in modality units (after RescaleSlope and RescaleIntercept)', async () => {
    // Stored 0..1000 become -1000..1000; the header window covers -500..500, the middle half of the ramp.
    const preview = await renderPreview(
      syntheticDicom(8, 201, ramp(8, 201, 1000), { rescaleSlope: 2, rescaleIntercept: -1000, windowCenters: [0.5], windowWidths: [1001] }),
    );
    expect(preview.window).toEqual({ center: 0.5, width: 1001 });
    const image = await decodeGrey(preview.png);
    expect(image.data[49]).toBe(0); // stored 245 -> -510
    expect(image.data[100]).toBe(128); // stored 500 -> 0, the centre
    expect(image.data[151]).toBe(255); // stored 755 -> 510
  });

  it('masks bits above BitsStored (overlay planes) before averaging', async () => {
    const clean = ramp(40, 3000, 4095);
    const dirty = clean.map((v, i) => (i % 7 === 0 ? v | 0x8000 : v));
    const a = await renderPreview(syntheticDicom(40, 3000, clean));
    const b = await renderPreview(syntheticDicom(40, 3000, dirty));
    expect([b.width, b.height]).toEqual([1024, 14]); // 40 * 1024 / 3000 = 13.65
    // The clean frame is shrunk in its own 16 bits, the masked one through floats: equal up to rounding.
    expect(b.window?.center).toBeCloseTo(a.window?.center ?? 0, -1);
    expect(b.window?.width).toBeCloseTo(a.window?.width ?? 0, -1);
    const [ga, gb] = [await decodeGrey(a.png), await decodeGrey(b.png)];
    let worst = 0;
    for (let i = 0; i < ga.data.length; i++) worst = Math.max(worst, Math.abs((gb.data[i] ?? 0) - (ga.data[i] ?? 0)));
    expect(worst).toBeLessThanOrEqual(1);
  });

  it('shows signed stored values', async () => {
    // -1000..1000 across, as Int16; the header window covers it all.
    const samples = new Int16Array(8 * 2001).map((_, i) => (i % 2001) - 1000);
    const preview = await renderPreview(
      syntheticDicom(8, 2001, samples, { pixelRepresentation: 1, bitsStored: 16, highBit: 15, windowCenters: [0.5], windowWidths: [2001] }),
    );
    expect([preview.width, preview.height]).toEqual([1024, 4]);
    const image = await decodeGrey(preview.png);
    expect(image.data[0]).toBeLessThanOrEqual(1);
    expect(Math.abs((image.data[512] ?? 0) - 128)).toBeLessThanOrEqual(1);
    expect(image.data[1023]).toBeGreaterThanOrEqual(254);
  });

  it('makes colour DICOM grey with luma', async () => {
    const rgb = new Uint8Array(4 * 4 * 3);
    for (let i = 0; i < 16; i++) rgb[i * 3 + 1] = 255; // pure green
    const base = syntheticDicom(4, 4, new Uint16Array(16), { samplesPerPixel: 3, photometricInterpretation: 'RGB', bitsAllocated: 8, bitsStored: 8, highBit: 7 });
    if (base.kind !== 'dicom') throw new Error('synthetic DICOM expected');
    const preview = await renderPreview({ ...base, frame: { ...base.frame, samples: rgb, samplesPerPixel: 3 } });
    expect(preview.window).toBeNull();
    expect([...(await decodeGrey(preview.png)).data]).toEqual(new Array(16).fill(150)); // 0.587 * 255 = 149.7
  });

  it('renders a flat image without a window', async () => {
    const preview = await renderPreview(syntheticDicom(10, 10, new Uint16Array(100).fill(300)));
    expect(preview.window).toBeNull();
    expect([...(await decodeGrey(preview.png)).data].every((v) => v === 0)).toBe(true);
  });

  it('sizes previews: long side maxSide, aspect kept, never upscaled', () => {
    expect(previewSize(1955, 1841, 1024)).toEqual({ rows: 1024, columns: 964, scale: 1024 / 1955 });
    expect(previewSize(1000, 3000, 1024)).toEqual({ rows: 341, columns: 1024, scale: 1024 / 3000 });
    expect(previewSize(440, 440, 1024)).toEqual({ rows: 440, columns: 440, scale: 1 });
    expect(previewSize(5000, 2, 1024)).toEqual({ rows: 1024, columns: 1, scale: 1024 / 5000 });
  });

  it('refuses a maxSide that is not a positive integer', async () => {
    const source = syntheticDicom(4, 4, new Uint16Array(16));
    await expect(renderPreview(source, { maxSide: 0 })).rejects.toThrow(RangeError);
    await expect(renderPreview(source, { maxSide: 10.5 })).rejects.toThrow(RangeError);
  });
});

/** One label's h x w map with a single hot cell. */
function hotCell(height: number, width: number, row: number, column: number, labels = 1, label = 0): ClassActivationMaps {
  const data = new Float32Array(labels * height * width);
  data[label * height * width + row * width + column] = 1;
  return { data, labels, height, width };
}

interface Visible {
  readonly count: number;
  readonly minX: number;
  readonly maxX: number;
  readonly minY: number;
  readonly maxY: number;
  /** Opacity-weighted centre. */
  readonly centroid: { x: number; y: number };
  /** The first most opaque pixel. */
  readonly peak: { x: number; y: number; rgba: number[] };
}

/** Where the overlay is visible (alpha above 0). */
function visible(image: Rgba): Visible {
  let count = 0;
  let [sx, sy, sa] = [0, 0, 0];
  let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
  let peak = { x: -1, y: -1, rgba: [0, 0, 0, 0] };
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < image.width; x++) {
      const o = (y * image.width + x) * 4;
      const a = image.data[o + 3] ?? 0;
      if (a === 0) continue;
      count++;
      sx += x * a;
      sy += y * a;
      sa += a;
      minX = Math.min(minX, x);
      maxX = Math.max(maxX, x);
      minY = Math.min(minY, y);
      maxY = Math.max(maxY, y);
      if (a > (peak.rgba[3] ?? 0)) peak = { x, y, rgba: [...image.data.subarray(o, o + 4)] };
    }
  }
  return { count, minX, maxX, minY, maxY, centroid: { x: sx / sa, y: sy / sa }, peak };
}

describe('renderHeatmap', () => {
  it('puts a single hot cell where the model saw it (center-square of a tall preview), coloured hot', async () => {
    const preview = { width: 964, height: 1024 };
    const png = await renderHeatmap(hotCell(7, 7, 1, 5), 0, preview, { crop: 'center-square' });
    const image = await decodeRgba(png);
    expect([image.width, image.height]).toEqual([964, 1024]);
    // The model saw the central 964 x 964 square, from row floor((1024 - 964) / 2) = 30; a cell is 964 / 7 px.
    const cell = 964 / 7;
    const cx = 5.5 * cell;
    const cy = 30 + 1.5 * cell;
    const v = visible(image);
    expect(v.count).toBeGreaterThan(10_000);
    // Bilinear spreads a cell over its neighbours; the 0.2 threshold keeps 80 % of a cell each way.
    expect(v.minX).toBeGreaterThan(cx - 0.8 * cell - 2);
    expect(v.maxX).toBeLessThan(cx + 0.8 * cell + 2);
    expect(v.minY).toBeGreaterThan(cy - 0.8 * cell - 2);
    expect(v.maxY).toBeLessThan(cy + 0.8 * cell + 2);
    // Symmetric about the cell's centre, where it is most opaque, at the default 0.6, and turbo's hot end (dark red).
    expect(Math.abs(v.centroid.x - cx)).toBeLessThan(1);
    expect(Math.abs(v.centroid.y - cy)).toBeLessThan(1);
    expect(v.peak.rgba[3]).toBe(153);
    const o = (Math.round(cy) * image.width + Math.round(cx)) * 4;
    const [r = 0, g = 0, b = 0, a = 0] = [...image.data.subarray(o, o + 4)];
    expect(a).toBeGreaterThanOrEqual(150);
    expect(a).toBeLessThanOrEqual(153);
    expect(r).toBeGreaterThan(120);
    expect(g).toBeLessThan(40);
    expect(b).toBeLessThan(40);
  });

  it('leaves the side bands of a wide preview transparent for center-square, not for none', async () => {
    // A diagonal ramp: visible almost everywhere the map is drawn.
    const data = new Float32Array(16).map((_, i) => (i % 4) + Math.floor(i / 4));
    const cam: ClassActivationMaps = { data, labels: 1, height: 4, width: 4 };
    const preview = { width: 600, height: 300 };
    const square = await decodeRgba(await renderHeatmap(cam, 0, preview, { crop: 'center-square', threshold: 0 }));
    expect([square.width, square.height]).toEqual([600, 300]);
    const sv = visible(square);
    expect(sv.minX).toBe(150);
    expect(sv.maxX).toBe(449);
    expect(sv.minY).toBe(0);
    expect(sv.maxY).toBe(299);
    const whole = visible(await decodeRgba(await renderHeatmap(cam, 0, preview, { crop: 'none', threshold: 0 })));
    expect([whole.minX, whole.maxX, whole.minY, whole.maxY]).toEqual([0, 599, 0, 299]);
  });

  it('draws the requested label only', async () => {
    const cam = hotCell(7, 7, 0, 0, 2, 1);
    const preview = { width: 700, height: 700 };
    expect(visible(await decodeRgba(await renderHeatmap(cam, 0, preview, { crop: 'none' }))).count).toBe(0); // flat
    const v = visible(await decodeRgba(await renderHeatmap(cam, 1, preview, { crop: 'none' })));
    // The top left cell (100 px, centre 50): edges clamp, so it is drawn from 0 to 80 % of the next cell.
    expect([v.minX, v.minY]).toEqual([0, 0]);
    expect(v.maxX).toBeLessThan(50 + 80 + 1);
    expect(v.maxY).toBeLessThan(50 + 80 + 1);
  });

  it('follows alpha and threshold', async () => {
    const cam = hotCell(5, 5, 2, 2);
    const preview = { width: 500, height: 500 };
    const opaque = visible(await decodeRgba(await renderHeatmap(cam, 0, preview, { crop: 'none', alpha: 1 })));
    expect(opaque.peak.rgba[3]).toBeGreaterThanOrEqual(250);
    const tight = visible(await decodeRgba(await renderHeatmap(cam, 0, preview, { crop: 'none', threshold: 0.8 })));
    const loose = visible(await decodeRgba(await renderHeatmap(cam, 0, preview, { crop: 'none', threshold: 0 })));
    expect(tight.count).toBeGreaterThan(0);
    expect(tight.count).toBeLessThan(opaque.count);
    expect(loose.count).toBeGreaterThan(opaque.count);
  });

  it('rejects a label outside the maps and malformed options', async () => {
    const cam = hotCell(7, 7, 1, 1);
    const preview = { width: 10, height: 10 };
    await expect(renderHeatmap(cam, 1, preview, { crop: 'none' })).rejects.toThrow(RangeError);
    await expect(renderHeatmap(cam, -1, preview, { crop: 'none' })).rejects.toThrow(RangeError);
    await expect(renderHeatmap(cam, 0, preview, { crop: 'none', alpha: 2 })).rejects.toThrow(RangeError);
    await expect(renderHeatmap(cam, 0, { width: 0, height: 10 }, { crop: 'none' })).rejects.toThrow(RangeError);
    await expect(renderHeatmap({ ...cam, data: new Float32Array(3) }, 0, preview, { crop: 'none' })).rejects.toThrow(RangeError);
  });

  it('composites onto a real preview at the same size', async () => {
    const preview = await renderPreview(await readSource(path.join(dicomDir, 'cr_chest_pa_RG1_JLSN.dcm')));
    // A blob over the image's right lung field (the patient's left mid zone), as a 7 x 7 map would give.
    const data = new Float32Array(49);
    for (let y = 0; y < 7; y++) for (let x = 0; x < 7; x++) data[y * 7 + x] = Math.exp(-((y - 3) ** 2 + (x - 5) ** 2) / 2);
    const heatmap = await renderHeatmap({ data, labels: 1, height: 7, width: 7 }, 0, preview, { crop: 'center-square' });
    const composite = await sharp(preview.png).composite([{ input: heatmap }]).png().toBuffer();
    save('heatmap-cr_chest_pa_RG1_JLSN.png', heatmap);
    save('overlay-cr_chest_pa_RG1_JLSN.png', composite);
    const meta = await sharp(composite).metadata();
    expect([meta.width, meta.height]).toEqual([preview.width, preview.height]);
    const { data: rgb, info } = await sharp(composite).removeAlpha().raw().toBuffer({ resolveWithObject: true });
    const at = (x: number, y: number): number[] => [...rgb.subarray((y * info.width + x) * info.channels, (y * info.width + x) * info.channels + 3)];
    // Under the blob the picture turns red; over the spine it stays grey.
    const [r = 0, g = 0, b = 0] = at(Math.round(5.5 * (964 / 7)), 30 + Math.round(3.5 * (964 / 7)));
    expect(r - b).toBeGreaterThan(60);
    expect(r - g).toBeGreaterThan(60);
    const [r2 = 0, g2 = 0, b2 = 0] = at(482, 900);
    expect(Math.max(r2, g2, b2) - Math.min(r2, g2, b2)).toBeLessThan(3);
  });
});

describe('pickHeatmapLabel', () => {
  it('prefers the most probable positive label', () => {
    expect(pickHeatmapLabel([0.9, 0.3, 0.6], [false, true, true])).toBe(2);
    expect(pickHeatmapLabel([0.9, 0.3, 0.6], [false, true, false])).toBe(1);
  });

  it('falls back to the most probable label when none is positive', () => {
    expect(pickHeatmapLabel([0.1, 0.7, 0.4], [false, false, false])).toBe(1);
    expect(pickHeatmapLabel([0.1, 0.7, 0.4], [])).toBe(1);
  });

  it('copes with ties, NaN and no labels', () => {
    expect(pickHeatmapLabel([0.5, 0.5], [true, true])).toBe(0);
    expect(pickHeatmapLabel([Number.NaN, 0.2], [true, true])).toBe(1);
    expect(pickHeatmapLabel([], [])).toBe(-1);
  });
});

describe('turbo colour map', () => {
  it('has 256 RGB entries from dark blue through green to dark red', () => {
    expect(TURBO).toHaveLength(768);
    const [r0 = 0, , b0 = 0] = colourAt(TURBO, 0);
    expect(b0).toBeGreaterThan(r0 - 10);
    const [r1 = 0, g1 = 0, b1 = 0] = colourAt(TURBO, 0.25);
    expect(b1).toBeGreaterThan(r1); // cyan-blue
    expect(g1).toBeGreaterThan(r1);
    const [r2 = 0, g2 = 0, b2 = 0] = colourAt(TURBO, 0.5);
    expect(g2).toBeGreaterThan(r2); // green
    expect(g2).toBeGreaterThan(b2);
    const [r3 = 0, g3 = 0, b3 = 0] = colourAt(TURBO, 1);
    expect(r3).toBeGreaterThan(100); // dark red
    expect(g3).toBeLessThan(40);
    expect(b3).toBeLessThan(40);
    // Matches Google's published table within the polynomial's error (turbo_srgb_bytes[128] = 164, 252, 60).
    const mid = turbo(128 / 255).map((v) => v * 255);
    expect(Math.abs((mid[0] ?? 0) - 164)).toBeLessThan(15);
    expect(Math.abs((mid[1] ?? 0) - 252)).toBeLessThan(10);
    expect(Math.abs((mid[2] ?? 0) - 60)).toBeLessThan(25);
  });

  it('clamps and tolerates NaN', () => {
    expect(colourAt(TURBO, -1)).toEqual(colourAt(TURBO, 0));
    expect(colourAt(TURBO, 2)).toEqual(colourAt(TURBO, 1));
    expect(colourAt(TURBO, Number.NaN)).toEqual(colourAt(TURBO, 0));
  });
});
