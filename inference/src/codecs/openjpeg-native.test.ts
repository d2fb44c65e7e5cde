import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  loadNativeOpenJpeg,
  nativeOpenJpegAddonPath,
  NATIVE_J2K_DISABLE_ENV,
  type J2kDecodedFrame,
  type NativeOpenJpeg,
} from './openjpeg-native.js';

const DICOM_DIR = '/work/shared/dicom';
const file = (name: string): string => join(DICOM_DIR, name);
const FILES = {
  rg3J2kr: file('cr_extremity_RG3_J2KR.dcm'),
  rg3Unc: file('cr_extremity_RG3_UNC.dcm'),
  rg2J2kr: file('cr_hip_RG2_J2KR.dcm'),
  rg1J2ki: file('cr_chest_pa_RG1_J2KI.dcm'),
  rg1J2kr: file('derived/derived_cr_chest_pa_RG1_J2KR.dcm'),
  rg1Explicit: file('derived/derived_cr_chest_pa_RG1_explicitLE.dcm'),
} as const;

/* ------------------------------------------------------------------------ */
/* Tiny DICOM helpers (deliberately independent of the real parser)          */
/* ------------------------------------------------------------------------ */

const PIXEL_DATA_TAG = [0xe0, 0x7f, 0x10, 0x00] as const;

function byteAt(buf: Uint8Array, i: number): number {
  const b = buf[i];
  if (b === undefined) throw new RangeError(`offset ${i} is outside the ${buf.length}-byte buffer`);
  return b;
}

function u32le(buf: Uint8Array, i: number): number {
  return (byteAt(buf, i) | (byteAt(buf, i + 1) << 8) | (byteAt(buf, i + 2) << 16) | (byteAt(buf, i + 3) << 24)) >>> 0;
}

function isPixelDataTagAt(buf: Uint8Array, i: number): boolean {
  return PIXEL_DATA_TAG.every((b, k) => buf[i + k] === b);
}

function isAscii(buf: Uint8Array, i: number, text: string): boolean {
  return [...text].every((ch, k) => buf[i + k] === ch.charCodeAt(0));
}

/** Concatenated fragments of the encapsulated Pixel Data (single-frame files). */
function extractCodestream(dicom: Uint8Array): Uint8Array {
  for (let i = 0; i + 12 <= dicom.length; i++) {
    if (!isPixelDataTagAt(dicom, i)) continue;
    let p: number;
    if (isAscii(dicom, i + 4, 'OB') && u32le(dicom, i + 8) === 0xffffffff) p = i + 12;
    else if (u32le(dicom, i + 4) === 0xffffffff) p = i + 8;
    else continue;
    const fragments: Uint8Array[] = [];
    let first = true;
    for (;;) {
      const group = byteAt(dicom, p) | (byteAt(dicom, p + 1) << 8);
      const element = byteAt(dicom, p + 2) | (byteAt(dicom, p + 3) << 8);
      const length = u32le(dicom, p + 4);
      p += 8;
      if (group !== 0xfffe) throw new Error(`unexpected tag in pixel data sequence at ${p - 8}`);
      if (element === 0xe0dd) break;
      if (element !== 0xe000) throw new Error(`unexpected item tag ${element.toString(16)}`);
      if (p + length > dicom.length) throw new Error('fragment runs past the end of the file');
      if (!first) fragments.push(dicom.subarray(p, p + length));
      first = false;
      p += length;
    }
    const total = fragments.reduce((n, f) => n + f.length, 0);
    const out = new Uint8Array(total);
    let o = 0;
    for (const f of fragments) {
      out.set(f, o);
      o += f.length;
    }
    return out;
  }
  throw new Error('no encapsulated Pixel Data found');
}

/** Native Pixel Data (explicit VR OW/OB) of an uncompressed file, as 16-bit little-endian samples. */
function extractUncompressed16(dicom: Uint8Array): Uint16Array {
  for (let i = dicom.length - 12; i >= 0; i--) {
    if (!isPixelDataTagAt(dicom, i)) continue;
    if (!isAscii(dicom, i + 4, 'OW') && !isAscii(dicom, i + 4, 'OB')) continue;
    const length = u32le(dicom, i + 8);
    const start = i + 12;
    if (length === 0xffffffff || start + length > dicom.length || length % 2 !== 0) continue;
    const out = new Uint16Array(length / 2);
    for (let k = 0; k < out.length; k++) out[k] = byteAt(dicom, start + 2 * k) | (byteAt(dicom, start + 2 * k + 1) << 8);
    return out;
  }
  throw new Error('no native Pixel Data found');
}

const codestreamCache = new Map<string, Uint8Array>();
function codestreamOf(path: string): Uint8Array {
  let cs = codestreamCache.get(path);
  if (!cs) {
    cs = extractCodestream(new Uint8Array(readFileSync(path)));
    codestreamCache.set(path, cs);
  }
  return cs;
}

/** Wraps a raw codestream in a minimal JP2 file (signature, ftyp, jp2h{ihdr, colr}, jp2c). */
function wrapInJp2(cs: Uint8Array, f: Pick<J2kDecodedFrame, 'width' | 'height' | 'components' | 'precision' | 'signed'>): Uint8Array {
  const box = (type: string, payload: number[] | Uint8Array): Uint8Array => {
    const out = new Uint8Array(8 + payload.length);
    new DataView(out.buffer).setUint32(0, out.length);
    for (let k = 0; k < 4; k++) out[4 + k] = type.charCodeAt(k);
    out.set(payload, 8);
    return out;
  };
  const be32 = (v: number): number[] => [(v >>> 24) & 255, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));
  const signature = box('jP  ', [0x0d, 0x0a, 0x87, 0x0a]);
  const ftyp = box('ftyp', [...ascii('jp2 '), ...be32(0), ...ascii('jp2 ')]);
  const ihdr = box('ihdr', [...be32(f.height), ...be32(f.width), 0, f.components, (f.precision - 1) | (f.signed ? 0x80 : 0), 7, 0, 0]);
  const colr = box('colr', [1, 0, 0, ...be32(f.components === 1 ? 17 : 16)]);
  const jp2h = box('jp2h', new Uint8Array([...ihdr, ...colr]));
  const jp2c = box('jp2c', cs);
  const parts = [signature, ftyp, jp2h, jp2c];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** Offset of the SIZ marker segment's Lsiz field in a raw codestream. */
const SIZ = 4;
function setBe32(buf: Uint8Array, offset: number, value: number): void {
  new DataView(buf.buffer, buf.byteOffset, buf.byteLength).setUint32(offset, value);
}

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function minMax(data: ArrayLike<number>): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < data.length; i++) {
    const v = data[i] ?? 0;
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

/** Index of the first differing sample, or -1 (faster and far more readable on failure than toEqual). */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function rejectionOf(p: Promise<unknown>): Promise<Error & { code?: unknown }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`rejected with a non-Error: ${String(err)}`);
  }
  throw new Error('expected the promise to reject');
}

const BIG = 64 * 1024 * 1024;

/** The slice of dcmjs-codecs (WebAssembly OpenJPEG) used as a second oracle. */
interface WasmCodecs {
  NativeCodecs: {
    initializeAsync(opts: { logCodecsInfo: boolean; logCodecsTrace: boolean }): Promise<void>;
    isInitialized(): boolean;
    decodeJpeg2000(ctx: object, params: Record<string, unknown>): { getDecodedBuffer(): Uint8Array };
  };
  Context: new (attrs: Record<string, unknown>) => object;
}

async function loadWasmOpenJpeg(): Promise<WasmCodecs> {
  const mod = createRequire(import.meta.url)('dcmjs-codecs') as WasmCodecs;
  if (!mod.NativeCodecs.isInitialized()) await mod.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
  return mod;
}

/* ------------------------------------------------------------------------ */

describe('loadNativeOpenJpeg', () => {
  const saved = process.env[NATIVE_J2K_DISABLE_ENV];
  afterEach(() => {
    if (saved === undefined) delete process.env[NATIVE_J2K_DISABLE_ENV];
    else process.env[NATIVE_J2K_DISABLE_ENV] = saved;
  });

  it('returns null when CXR_DISABLE_NATIVE_J2K=1', () => {
    process.env[NATIVE_J2K_DISABLE_ENV] = '1';
    expect(loadNativeOpenJpeg()).toBeNull();
  });

  it('never throws, and loads whenever the addon has been built', () => {
    delete process.env[NATIVE_J2K_DISABLE_ENV];
    const native = loadNativeOpenJpeg();
    if (existsSync(nativeOpenJpegAddonPath())) {
      expect(native).not.toBeNull();
      expect(native?.openjpegVersion).toMatch(/^2\.\d+\.\d+/);
    } else {
      expect(native).toBeNull();
    }
  });
});

const maybeNative = loadNativeOpenJpeg();
const haveFixtures = Object.values(FILES).every((p) => existsSync(p));
if (!maybeNative) {
  const why = process.env[NATIVE_J2K_DISABLE_ENV] === '1' ? `${NATIVE_J2K_DISABLE_ENV}=1` : `addon not built or not loadable (${nativeOpenJpegAddonPath()})`;
  console.warn(`[openjpeg-native.test] ${why}: native decode tests skipped`);
}
if (!haveFixtures) console.warn(`[openjpeg-native.test] DICOM fixtures missing under ${DICOM_DIR}: native decode tests skipped`);

describe.skipIf(!maybeNative || !haveFixtures)('native OpenJPEG decode', () => {
  const getNative = (): NativeOpenJpeg => {
    if (!maybeNative) throw new Error('native addon not loaded');
    return maybeNative;
  };
  let rg1Reference: J2kDecodedFrame | undefined;
  const decodeRg1 = async (threads: number): Promise<J2kDecodedFrame> =>
    getNative().decode(codestreamOf(FILES.rg1J2kr), { threads, maxPixels: BIG });

  it('RG3 J2KR (lossless, 10-bit) equals the uncompressed RG3 reference exactly', async () => {
    const cs = codestreamOf(FILES.rg3J2kr);
    expect([...cs.subarray(0, 4)]).toEqual([0xff, 0x4f, 0xff, 0x51]);
    const frame = await getNative().decode(cs, { threads: 2, maxPixels: BIG });
    expect(frame).toMatchObject({ width: 1760, height: 1760, components: 1, signed: false });
    expect(frame.precision).toBe(10);
    expect(frame.data).toBeInstanceOf(Uint16Array);
    const reference = extractUncompressed16(new Uint8Array(readFileSync(FILES.rg3Unc)));
    expect(reference.length).toBe(1760 * 1760);
    expect(firstDifference(frame.data, reference)).toBe(-1);
    expect(minMax(frame.data)).toEqual([0, 1023]);
  });

  it('derived RG1 J2KR (1955x1841, 15-bit stored) equals the explicit VR LE reference exactly', async () => {
    const frame = await decodeRg1(2);
    rg1Reference = frame;
    // GDCM wrote this codestream with Ssiz = 16 bits although DICOM Bits Stored is 15: precision is the
    // codestream's, not the DICOM header's.
    expect(frame).toMatchObject({ width: 1841, height: 1955, components: 1, precision: 16, signed: false });
    expect(frame.data).toBeInstanceOf(Uint16Array);
    const reference = extractUncompressed16(new Uint8Array(readFileSync(FILES.rg1Explicit)));
    expect(reference.length).toBe(1841 * 1955);
    expect(firstDifference(frame.data, reference)).toBe(-1);
    expect(minMax(frame.data)).toEqual([871, 26481]);
  });

  it('RG2 J2KR hip (2140 rows x 1760 columns) decodes with the documented range', async () => {
    const frame = await getNative().decode(codestreamOf(FILES.rg2J2kr), { threads: 2, maxPixels: BIG });
    expect(frame).toMatchObject({ width: 1760, height: 2140, components: 1, signed: false });
    expect(frame.data).toBeInstanceOf(Uint16Array);
    expect(frame.data.length).toBe(1760 * 2140);
    expect(minMax(frame.data)).toEqual([0, 893]);
  });

  it('RG1 J2KI (lossy) decodes to the documented range and is thread-count independent', async () => {
    const cs = codestreamOf(FILES.rg1J2ki);
    const one = await getNative().decode(cs, { threads: 1, maxPixels: BIG });
    const two = await getNative().decode(cs, { threads: 2, maxPixels: BIG });
    expect(one).toMatchObject({ width: 1841, height: 1955, components: 1, signed: false });
    expect(one.data).toBeInstanceOf(Uint16Array);
    expect(minMax(one.data)).toEqual([803, 26512]);
    expect(firstDifference(one.data, two.data)).toBe(-1);
  });

  it('agrees sample for sample with the WebAssembly OpenJPEG (dcmjs-codecs) on all four files', async () => {
    const wasm = await loadWasmOpenJpeg();
    for (const path of [FILES.rg3J2kr, FILES.rg2J2kr, FILES.rg1J2ki, FILES.rg1J2kr]) {
      const cs = codestreamOf(path);
      const frame = await getNative().decode(cs, { threads: 2, maxPixels: BIG });
      const ctx = new wasm.Context({
        width: frame.width,
        height: frame.height,
        bitsAllocated: 16,
        bitsStored: frame.precision,
        samplesPerPixel: 1,
        pixelRepresentation: 0,
        planarConfiguration: 0,
        photometricInterpretation: 'MONOCHROME2',
        encodedBuffer: cs,
      });
      const bytes = wasm.NativeCodecs.decodeJpeg2000(ctx, {}).getDecodedBuffer();
      const other = new Uint16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
      expect(firstDifference(frame.data, other), path).toBe(-1);
    }
  });

  it('threads 1, 2 and 16 (clamped from 99) give identical output', async () => {
    const one = await decodeRg1(1);
    const two = rg1Reference ?? (await decodeRg1(2));
    const many = await decodeRg1(99);
    expect(firstDifference(one.data, two.data)).toBe(-1);
    expect(firstDifference(many.data, two.data)).toBe(-1);
  });

  it('keeps the event loop running during a decode', async () => {
    let ticks = 0;
    let maxGap = 0;
    let last = performance.now();
    const timer = setInterval(() => {
      const now = performance.now();
      maxGap = Math.max(maxGap, now - last);
      last = now;
      ticks++;
    }, 5);
    try {
      const started = performance.now();
      const frame = await decodeRg1(1);
      const elapsed = performance.now() - started;
      expect(frame.width).toBe(1841);
      expect(elapsed).toBeGreaterThan(50);
      expect(ticks).toBeGreaterThanOrEqual(5);
      expect(maxGap).toBeLessThan(Math.max(100, elapsed / 2));
    } finally {
      clearInterval(timer);
    }
  });

  it('copies its input: mutating the buffer after calling decode does not change the result', async () => {
    const cs = codestreamOf(FILES.rg1J2kr).slice();
    const pending = getNative().decode(cs, { threads: 2, maxPixels: BIG });
    cs.fill(0);
    const frame = await pending;
    const reference = rg1Reference ?? (await decodeRg1(2));
    expect(firstDifference(frame.data, reference.data)).toBe(-1);
  });

  it('honours the byteOffset of a view into a larger buffer', async () => {
    const cs = codestreamOf(FILES.rg3J2kr);
    const backing = new Uint8Array(cs.length + 13).fill(0xaa);
    backing.set(cs, 7);
    const view = backing.subarray(7, 7 + cs.length);
    const [a, b] = await Promise.all([
      getNative().decode(view, { threads: 2, maxPixels: BIG }),
      getNative().decode(cs, { threads: 2, maxPixels: BIG }),
    ]);
    expect(firstDifference(a.data, b.data)).toBe(-1);
  });

  it('runs concurrent decodes independently', async () => {
    const rg3 = codestreamOf(FILES.rg3J2kr);
    const results = await Promise.allSettled([
      getNative().decode(rg3, { threads: 2, maxPixels: BIG }),
      getNative().decode(rg3.subarray(0, rg3.length >> 1), { threads: 2, maxPixels: BIG }),
      getNative().decode(rg3, { threads: 1, maxPixels: BIG }),
      getNative().decode(rg3, { threads: 2, maxPixels: 1000 }),
    ]);
    const [a, b, c, d] = results;
    expect(a?.status).toBe('fulfilled');
    expect(b?.status).toBe('rejected');
    expect(c?.status).toBe('fulfilled');
    expect(d?.status).toBe('rejected');
    if (a?.status === 'fulfilled' && c?.status === 'fulfilled') expect(firstDifference(a.value.data, c.value.data)).toBe(-1);
    if (d?.status === 'rejected') expect((d.reason as { code?: unknown }).code).toBe('ERR_J2K_TOO_LARGE');
  });

  it('accepts a JP2 file (boxes) and decodes it identically to the raw codestream', async () => {
    const cs = codestreamOf(FILES.rg3J2kr);
    const raw = await getNative().decode(cs, { threads: 2, maxPixels: BIG });
    const jp2 = wrapInJp2(cs, raw);
    const frame = await getNative().decode(jp2, { threads: 2, maxPixels: BIG });
    expect(frame).toMatchObject({ width: raw.width, height: raw.height, components: 1, precision: raw.precision, signed: false });
    expect(firstDifference(frame.data, raw.data)).toBe(-1);
    const tooSmall = await rejectionOf(getNative().decode(jp2, { threads: 2, maxPixels: 1760 * 1760 - 1 }));
    expect(tooSmall.code).toBe('ERR_J2K_TOO_LARGE');
    const truncated = await rejectionOf(getNative().decode(jp2.subarray(0, jp2.length >> 1), { threads: 2, maxPixels: BIG }));
    expect(truncated.code).toBe('ERR_J2K_INVALID_INPUT');
  });

  it('rejects a truncated codestream (first half) with an Error', async () => {
    for (const path of [FILES.rg3J2kr, FILES.rg1J2kr, FILES.rg1J2ki]) {
      const cs = codestreamOf(path);
      const err = await rejectionOf(getNative().decode(cs.subarray(0, cs.length >> 1), { threads: 2, maxPixels: BIG }));
      expect(err).toBeInstanceOf(Error);
      expect(err.code).toBe('ERR_J2K_DECODE');
      expect(err.message).toMatch(/JPEG 2000/);
    }
  });

  it('rejects random bytes, empty input and a bare SOC+SIZ prefix', async () => {
    const rand = mulberry32(12345);
    const noise = Uint8Array.from({ length: 100_000 }, () => Math.floor(rand() * 256));
    const e1 = await rejectionOf(getNative().decode(noise, { threads: 2, maxPixels: BIG }));
    expect(e1.code).toBe('ERR_J2K_INVALID_INPUT');
    noise.set([0xff, 0x4f, 0xff, 0x51], 0);
    const e2 = await rejectionOf(getNative().decode(noise, { threads: 2, maxPixels: BIG }));
    expect(e2).toBeInstanceOf(Error);
    const e3 = await rejectionOf(getNative().decode(new Uint8Array(0), { threads: 2, maxPixels: BIG }));
    expect(e3.code).toBe('ERR_J2K_INVALID_INPUT');
    const e4 = await rejectionOf(getNative().decode(new Uint8Array([0xff, 0x4f, 0xff, 0x51, 0x00]), { threads: 2, maxPixels: BIG }));
    expect(e4.code).toBe('ERR_J2K_INVALID_INPUT');
  });

  it('refuses images above maxPixels from the main header, before any tile is decoded', async () => {
    const cs = codestreamOf(FILES.rg1J2kr);
    const pixels = 1841 * 1955;
    const started = performance.now();
    const err = await rejectionOf(getNative().decode(cs, { threads: 2, maxPixels: pixels - 1 }));
    expect(performance.now() - started).toBeLessThan(100);
    expect(err.code).toBe('ERR_J2K_TOO_LARGE');
    expect(err.message).toMatch(/1841x1955/);
    // Only the main header (no tile data at all): the limit is still enforced...
    const headerOnly = cs.subarray(0, 300);
    const e2 = await rejectionOf(getNative().decode(headerOnly, { threads: 2, maxPixels: pixels - 1 }));
    expect(e2.code).toBe('ERR_J2K_TOO_LARGE');
    // ...while with a sufficient limit the same bytes fail as a decode error.
    const e3 = await rejectionOf(getNative().decode(headerOnly, { threads: 2, maxPixels: pixels }));
    expect(e3.code).toBe('ERR_J2K_DECODE');
    // Exactly at the limit decodes.
    const ok = await getNative().decode(cs, { threads: 2, maxPixels: pixels });
    expect(ok.data.length).toBe(pixels);
  });

  it('refuses subsampled components, excessive tiling and oversized SIZ values', async () => {
    const base = codestreamOf(FILES.rg3J2kr);
    // SIZ layout: FF51 Lsiz Rsiz Xsiz Ysiz XOsiz YOsiz XTsiz YTsiz XTOsiz YTOsiz Csiz {Ssiz XRsiz YRsiz}
    const subsampled = base.slice();
    subsampled[SIZ + 38 + 1] = 2;
    const e1 = await rejectionOf(getNative().decode(subsampled, { threads: 2, maxPixels: BIG }));
    expect(e1.code).toBe('ERR_J2K_UNSUPPORTED');
    expect(e1.message).toMatch(/unsupported subsampled components/);

    const tiny = base.slice();
    setBe32(tiny, SIZ + 20, 16);
    setBe32(tiny, SIZ + 24, 16);
    const e2 = await rejectionOf(getNative().decode(tiny, { threads: 2, maxPixels: BIG }));
    expect(e2.code).toBe('ERR_J2K_UNSUPPORTED');
    expect(e2.message).toMatch(/tiles/);

    const huge = base.slice();
    setBe32(huge, SIZ + 4, 0xffffffff);
    setBe32(huge, SIZ + 8, 0xffffffff);
    setBe32(huge, SIZ + 20, 0xffffffff);
    setBe32(huge, SIZ + 24, 0xffffffff);
    const e3 = await rejectionOf(getNative().decode(huge, { threads: 2, maxPixels: Number.MAX_SAFE_INTEGER }));
    expect(e3.code).toBe('ERR_J2K_TOO_LARGE');
  });

  it('validates its arguments', async () => {
    const cs = codestreamOf(FILES.rg3J2kr);
    await expect(getNative().decode(cs, { threads: 2, maxPixels: 0 })).rejects.toThrow(RangeError);
    await expect(getNative().decode(cs, { threads: 2, maxPixels: 1.5 })).rejects.toThrow(RangeError);
    await expect(getNative().decode(cs, { threads: 2, maxPixels: Number.NaN })).rejects.toThrow(RangeError);
    const notBytes: unknown = new Uint16Array(cs.buffer, cs.byteOffset, cs.length >> 1);
    await expect(getNative().decode(notBytes as Uint8Array, { threads: 2, maxPixels: BIG })).rejects.toThrow(TypeError);
    // A Node Buffer is a Uint8Array and is accepted; non-finite thread counts fall back to 1.
    const frame = await getNative().decode(Buffer.from(cs), { threads: Number.NaN, maxPixels: BIG });
    expect(frame.width).toBe(1760);
  });

  it('survives corrupted headers and tile data without crashing (seeded mutations)', async () => {
    const base = codestreamOf(FILES.rg3J2kr);
    const rand = mulberry32(0xc0ffee);
    let resolved = 0;
    let rejected = 0;
    for (let round = 0; round < 60; round++) {
      const cs = base.slice();
      const headerOnly = round < 40;
      const flips = 1 + Math.floor(rand() * 8);
      for (let k = 0; k < flips; k++) {
        const at = headerOnly ? 4 + Math.floor(rand() * 250) : 300 + Math.floor(rand() * (cs.length - 300));
        cs[at] = Math.floor(rand() * 256);
      }
      try {
        const frame = await getNative().decode(cs, { threads: 2, maxPixels: 1760 * 1760 * 2 });
        expect(frame.data.length).toBe(frame.width * frame.height * frame.components);
        resolved++;
      } catch (err) {
        expect(err).toBeInstanceOf(Error);
        rejected++;
      }
    }
    expect(resolved + rejected).toBe(60);
  });
});
