import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { firstFrame } from '../dicom/frames.js';
import { readImageInfo, type ImageInfo } from '../dicom/image-info.js';
import { parseDicom } from '../dicom/parse.js';
import { TransferSyntax } from '../dicom/uids.js';
import { CxrError } from '../errors/index.js';
import { dicomDir, sharedDicomFiles } from '../test-support/shared.js';
import { decodeWithCharls } from './charls.js';
import {
  decodeWithNativeCharls,
  loadNativeCharls,
  nativeCharlsAddonPath,
  nativeCharlsForDispatch,
  NATIVE_JLS_DISABLE_ENV,
  NATIVE_JLS_PREFER_ENV,
  type NativeCharls,
} from './charls-native.js';
import { decodeFrame } from './index.js';

interface JlsFile {
  readonly name: string;
  readonly info: ImageInfo;
  readonly codestream: Uint8Array;
}

function load(file: string): { info: ImageInfo; frame: ReturnType<typeof firstFrame> } {
  const parsed = parseDicom(readFileSync(file));
  const info = readImageInfo(parsed);
  return { info, frame: firstFrame(parsed, info) };
}

/** Every JPEG-LS file of the shared corpus (top level and derived/), found by transfer syntax, not by name. */
function sharedJpegLsFiles(): JlsFile[] {
  const jpegLs = new Set<string>([TransferSyntax.JPEGLSLossless, TransferSyntax.JPEGLSNearLossless]);
  const found: JlsFile[] = [];
  for (const file of sharedDicomFiles()) {
    const { info, frame } = load(file);
    if (!jpegLs.has(info.transferSyntaxUid) || !frame.encapsulated) continue;
    // A plain copy: the parser's views are Node Buffers, whose slice() shares memory instead of copying.
    found.push({ name: path.basename(file), info, codestream: Uint8Array.from(frame.codestream) });
  }
  return found;
}

function jlsFile(files: readonly JlsFile[], name: string): JlsFile {
  const file = files.find((f) => f.name === name);
  if (!file) throw new Error(`${name} is not among the shared JPEG-LS files`);
  return file;
}

/** Samples of an uncompressed shared file, through the project's own reader. */
async function uncompressedSamples(relative: string): Promise<ArrayLike<number>> {
  const { info, frame } = load(path.join(dicomDir, relative));
  return (await decodeFrame(info.transferSyntaxUid, frame, info)).samples;
}

/** Index of the first differing sample, or -1 (readable on failure, unlike toEqual on 3.6 M samples). */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Math.min(a.length, b.length);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

async function rejectionOf(promise: Promise<unknown>): Promise<Error & { code?: unknown }> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof Error) return err;
    throw new Error(`rejected with a non-Error: ${String(err)}`);
  }
  throw new Error('expected the promise to reject');
}

async function cxrCodeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (err) {
    return err instanceof CxrError ? err.code : `not a CxrError: ${String(err)}`;
  }
}

/** Offset of the JPEG-LS frame header's marker (SOF55, FF F7). */
function sof55Offset(codestream: Uint8Array): number {
  for (let i = 2; i + 1 < codestream.length; i++) if (codestream[i] === 0xff && codestream[i + 1] === 0xf7) return i;
  throw new Error('no SOF55 marker');
}

/** A copy whose frame header claims another size (Y and X are big-endian 16-bit at +5 and +7 from the marker). */
function withFrameSize(codestream: Uint8Array, width: number, height: number): Uint8Array {
  const copy = codestream.slice();
  const view = new DataView(copy.buffer);
  const sof = sof55Offset(copy);
  view.setUint16(sof + 5, height);
  view.setUint16(sof + 7, width);
  return copy;
}

/**
 * Headers only: a 4x4 three-component frame whose scan holds one component (interleave mode "none", i.e. planar
 * colour), two bytes of scan data and the end-of-image marker.
 */
function planarColourCodestream(): Uint8Array {
  const soi = [0xff, 0xd8];
  const sof55 = [0xff, 0xf7, 0x00, 0x11, 0x08, 0x00, 0x04, 0x00, 0x04, 0x03, 0x01, 0x11, 0x00, 0x02, 0x11, 0x00, 0x03, 0x11, 0x00];
  const sos = [0xff, 0xda, 0x00, 0x08, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00];
  return Uint8Array.from([...soi, ...sof55, ...sos, 0x00, 0x00, 0xff, 0xd9]);
}

const BIG = 64 * 1024 * 1024;

describe('loadNativeCharls and the dispatcher switches', () => {
  const saved = { disable: process.env[NATIVE_JLS_DISABLE_ENV], prefer: process.env[NATIVE_JLS_PREFER_ENV] };
  afterEach(() => {
    for (const [name, value] of [
      [NATIVE_JLS_DISABLE_ENV, saved.disable],
      [NATIVE_JLS_PREFER_ENV, saved.prefer],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('returns null when CXR_DISABLE_NATIVE_JLS=1', () => {
    process.env[NATIVE_JLS_DISABLE_ENV] = '1';
    expect(loadNativeCharls()).toBeNull();
  });

  it('never throws, and loads whenever the addon has been built', () => {
    delete process.env[NATIVE_JLS_DISABLE_ENV];
    const native = loadNativeCharls();
    if (existsSync(nativeCharlsAddonPath())) expect(native?.charlsVersion).toMatch(/^2\.\d+\.\d+/);
    else expect(native).toBeNull();
  });

  it.skipIf(!existsSync(nativeCharlsAddonPath()))('decodeFrame uses the WebAssembly CharLS unless CXR_NATIVE_JLS=1, and CXR_DISABLE_NATIVE_JLS=1 wins', async () => {
    const { info, frame } = load(path.join(dicomDir, 'cr_extremity_RG3_JLSL.dcm'));
    const decoderWith = async (prefer: string | undefined, disable: string | undefined): Promise<string> => {
      if (prefer === undefined) delete process.env[NATIVE_JLS_PREFER_ENV];
      else process.env[NATIVE_JLS_PREFER_ENV] = prefer;
      if (disable === undefined) delete process.env[NATIVE_JLS_DISABLE_ENV];
      else process.env[NATIVE_JLS_DISABLE_ENV] = disable;
      return (await decodeFrame(info.transferSyntaxUid, frame, info)).decoder;
    };
    expect(await decoderWith(undefined, undefined)).toBe('charls (@cornerstonejs/codec-charls)');
    expect(await decoderWith('1', undefined)).toMatch(/^charls 2\.\d+\.\d+ \(native\)$/);
    expect(await decoderWith('1', '1')).toBe('charls (@cornerstonejs/codec-charls)');
    expect(nativeCharlsForDispatch()).toBeNull();
  });
});

const maybeNative = loadNativeCharls();
if (!maybeNative) {
  const why = process.env[NATIVE_JLS_DISABLE_ENV] === '1' ? `${NATIVE_JLS_DISABLE_ENV}=1` : `addon not built or not loadable (${nativeCharlsAddonPath()})`;
  console.warn(`[charls-native.test] ${why}: native decode tests skipped`);
}

describe.skipIf(!maybeNative)('native CharLS decode', () => {
  const native = (): NativeCharls => {
    if (!maybeNative) throw new Error('native addon not loaded');
    return maybeNative;
  };
  const files = sharedJpegLsFiles();
  const rg3 = (): JlsFile => jlsFile(files, 'cr_extremity_RG3_JLSL.dcm');

  it('finds the four JPEG-LS files of the shared corpus', () => {
    expect(files.map((f) => f.name).sort()).toEqual([
      'cr_chest_pa_RG1_JLSN.dcm',
      'cr_extremity_RG3_JLSL.dcm',
      'cr_hip_RG2_JLSL.dcm',
      'derived_cr_chest_pa_RG1_JLSL.dcm',
    ]);
  });

  it('equals the WebAssembly CharLS sample for sample, with the same array type, on every shared JPEG-LS file', async () => {
    for (const file of files) {
      const ours = await decodeWithNativeCharls(native(), file.codestream, file.info);
      const wasm = await decodeWithCharls(file.codestream, file.info);
      expect(ours.samples.constructor, file.name).toBe(wasm.samples.constructor);
      expect({ rows: ours.rows, columns: ours.columns, spp: ours.samplesPerPixel, origin: ours.origin }, file.name).toEqual({
        rows: wasm.rows,
        columns: wasm.columns,
        spp: wasm.samplesPerPixel,
        origin: wasm.origin,
      });
      expect(firstDifference(ours.samples, wasm.samples), file.name).toBe(-1);
    }
  });

  it('decodes the lossless files bit for bit equal to the uncompressed ones, and the near-lossless one as GDCM and DCMTK do', async () => {
    const pairs = [
      ['cr_extremity_RG3_JLSL.dcm', 'cr_extremity_RG3_UNC.dcm'],
      ['derived_cr_chest_pa_RG1_JLSL.dcm', 'derived/derived_cr_chest_pa_RG1_explicitLE.dcm'],
      // ../shared/dicom/README.md: the derived RG1 files are bit-identical to the decoded RG1_JLSN (GDCM and DCMTK agree).
      ['cr_chest_pa_RG1_JLSN.dcm', 'derived/derived_cr_chest_pa_RG1_explicitLE.dcm'],
    ] as const;
    for (const [compressed, uncompressed] of pairs) {
      const file = jlsFile(files, compressed);
      const ours = await decodeWithNativeCharls(native(), file.codestream, file.info);
      expect(firstDifference(ours.samples, await uncompressedSamples(uncompressed)), compressed).toBe(-1);
    }
    const near = await native().decode(jlsFile(files, 'cr_chest_pa_RG1_JLSN.dcm').codestream, { maxPixels: BIG });
    expect(near).toMatchObject({ width: 1841, height: 1955, components: 1, bitsPerSample: 15, nearLossless: 4 });
    const lossless = await native().decode(rg3().codestream, { maxPixels: BIG });
    expect(lossless).toMatchObject({ width: 1760, height: 1760, components: 1, bitsPerSample: 10, nearLossless: 0 });
    expect(lossless.data).toBeInstanceOf(Uint16Array);
  });

  it('returns Int16Array for signed data, the same words as the WebAssembly path', async () => {
    const file = rg3();
    const signed = { ...file.info, pixelRepresentation: 1 as const };
    const ours = await decodeWithNativeCharls(native(), file.codestream, signed);
    const wasm = await decodeWithCharls(file.codestream, signed);
    expect(ours.samples).toBeInstanceOf(Int16Array);
    expect(firstDifference(ours.samples, wasm.samples)).toBe(-1);
  });

  it('refuses a cut-off codestream (no end-of-image marker) before CharLS runs, at several offsets', async () => {
    for (const file of files) {
      for (const fraction of [0.001, 0.1, 0.5, 0.999]) {
        const cut = file.codestream.subarray(0, Math.max(4, Math.floor(file.codestream.length * fraction)));
        const err = await rejectionOf(native().decode(cut, { maxPixels: BIG }));
        expect(err.code, `${file.name} cut at ${fraction}`).toBe('ERR_JLS_TRUNCATED');
        expect(await cxrCodeOf(decodeWithNativeCharls(native(), cut, file.info))).toBe('CXR_DECODE_FAILED');
      }
    }
  });

  it('rejects scan data that ends early although an end-of-image marker follows, and data with a piece missing', async () => {
    const file = rg3();
    const cs = file.codestream;
    for (const fraction of [0.1, 0.5, 0.99]) {
      const cut = cs.subarray(0, Math.floor(cs.length * fraction));
      const withEoi = new Uint8Array(cut.length + 2);
      withEoi.set(cut);
      withEoi.set([0xff, 0xd9], cut.length);
      const err = await rejectionOf(native().decode(withEoi, { maxPixels: BIG }));
      expect(err.code, `cut at ${fraction} + EOI`).toBe('ERR_JLS_DECODE');
      expect(err.message).toMatch(/CharLS error \d+/);
    }
    const half = cs.length >> 1;
    const holed = new Uint8Array(cs.length - 10_000);
    holed.set(cs.subarray(0, half));
    holed.set(cs.subarray(half + 10_000), half);
    expect((await rejectionOf(native().decode(holed, { maxPixels: BIG }))).code).toBe('ERR_JLS_DECODE');
    expect(await cxrCodeOf(decodeWithNativeCharls(native(), holed, file.info))).toBe('CXR_DECODE_FAILED');
  });

  it('rejects corrupted scan data with ERR_JLS_DECODE, and decodes correctly afterwards', async () => {
    for (const file of files) {
      const middle = file.codestream.length >> 1;
      for (const fill of [0xff, 0x00]) {
        const corrupt = file.codestream.slice();
        corrupt.fill(fill, middle, middle + 4000);
        const err = await rejectionOf(native().decode(corrupt, { maxPixels: BIG }));
        expect(err.code, `${file.name} filled with ${fill}`).toBe('ERR_JLS_DECODE');
        expect(await cxrCodeOf(decodeWithNativeCharls(native(), corrupt, file.info))).toBe('CXR_DECODE_FAILED');
      }
    }
    const again = await decodeWithNativeCharls(native(), rg3().codestream, rg3().info);
    expect(firstDifference(again.samples, await uncompressedSamples('cr_extremity_RG3_UNC.dcm'))).toBe(-1);
  });

  it('rejects what is not JPEG-LS: empty input, random bytes, a JPEG 2000 codestream', async () => {
    const random = Uint8Array.from({ length: 50_000 }, (_, i) => (i * 2654435761) >>> 24);
    const j2k = load(path.join(dicomDir, 'cr_extremity_RG3_J2KR.dcm')).frame;
    if (!j2k.encapsulated) throw new Error('expected a compressed file');
    for (const input of [new Uint8Array(0), random, j2k.codestream]) {
      expect((await rejectionOf(native().decode(input, { maxPixels: BIG }))).code).toBe('ERR_JLS_INVALID_INPUT');
    }
    // The start-of-image marker alone, then garbage ending in an end-of-image marker: the header is invalid.
    const fake = Uint8Array.from([0xff, 0xd8, 0x12, 0x34, 0x56, 0x78, 0xff, 0xd9]);
    expect((await rejectionOf(native().decode(fake, { maxPixels: BIG }))).code).toBe('ERR_JLS_INVALID_INPUT');
  });

  it('refuses images above maxPixels from the header, with the frame size on the error', async () => {
    const file = jlsFile(files, 'derived_cr_chest_pa_RG1_JLSL.dcm');
    const pixels = 1841 * 1955;
    const err = await rejectionOf(native().decode(file.codestream, { maxPixels: pixels - 1 }));
    expect(err.code).toBe('ERR_JLS_TOO_LARGE');
    expect(err).toMatchObject({ frameWidth: 1841, frameHeight: 1955, frameComponents: 1 });
    // Only the headers and the first bytes of the scan: still refused by size, not by truncation.
    const headerOnly = file.codestream.subarray(0, 200);
    const withEoi = Uint8Array.from([...headerOnly, 0xff, 0xd9]);
    expect((await rejectionOf(native().decode(withEoi, { maxPixels: pixels - 1 }))).code).toBe('ERR_JLS_TOO_LARGE');
    const exactly = await native().decode(file.codestream, { maxPixels: pixels });
    expect(exactly.data.length).toBe(pixels);
  });

  it('maps a frame larger than the DICOM header to CXR_DECODE_FAILED, and one beyond the pixel limit to CXR_LIMIT_EXCEEDED', async () => {
    const file = rg3();
    const wider = withFrameSize(file.codestream, 1761, 1760);
    expect(await cxrCodeOf(decodeWithNativeCharls(native(), wider, file.info))).toBe('CXR_DECODE_FAILED');
    expect(await cxrCodeOf(decodeWithCharls(wider, file.info))).toBe('CXR_DECODE_FAILED');
    const hostile = withFrameSize(file.codestream, 65535, 65535);
    const err = await rejectionOf(native().decode(hostile, { maxPixels: file.info.rows * file.info.columns }));
    expect(err).toMatchObject({ code: 'ERR_JLS_TOO_LARGE', frameWidth: 65535, frameHeight: 65535 });
    expect(await cxrCodeOf(decodeWithNativeCharls(native(), hostile, file.info))).toBe('CXR_LIMIT_EXCEEDED');
    // Smaller than the header: decoded, then refused for disagreeing with it, as the WebAssembly path does.
    const smaller = load(path.join(dicomDir, 'cr_hip_RG2_JLSL.dcm'));
    expect(await cxrCodeOf(decodeWithNativeCharls(native(), file.codestream, smaller.info))).toBe('CXR_DECODE_FAILED');
  });

  it('refuses planar colour as unsupported, and the dispatcher then gets the WebAssembly answer', async () => {
    const planar = planarColourCodestream();
    const err = await rejectionOf(native().decode(planar, { maxPixels: BIG }));
    expect(err.code).toBe('ERR_JLS_UNSUPPORTED');
    const geometry = { ...rg3().info, rows: 4, columns: 4, samplesPerPixel: 3, bitsAllocated: 8, bitsStored: 8, photometricInterpretation: 'RGB' };
    expect(await cxrCodeOf(decodeWithNativeCharls(native(), planar, geometry))).toBe(await cxrCodeOf(decodeWithCharls(planar, geometry)));
  });

  it('lets timers run while it decodes (the WebAssembly decoder does not)', async () => {
    const file = jlsFile(files, 'derived_cr_chest_pa_RG1_JLSL.dcm');
    const ticksDuring = async (decode: () => Promise<unknown>): Promise<number> => {
      let pending = true;
      let ticks = 0;
      const timer = setInterval(() => {
        if (pending) ticks++;
      }, 1);
      try {
        await decode();
      } finally {
        pending = false;
        clearInterval(timer);
      }
      return ticks;
    };
    expect(await ticksDuring(() => native().decode(file.codestream, { maxPixels: BIG }))).toBeGreaterThan(0);
    // Once its module is loaded (after a failure it is re-created, which is asynchronous), it decodes in one go.
    await decodeWithCharls(file.codestream, file.info);
    expect(await ticksDuring(() => decodeWithCharls(file.codestream, file.info))).toBe(0);
  });

  it('copies its input, honours a view into a larger buffer, and runs concurrent decodes independently', async () => {
    const file = rg3();
    const reference = await native().decode(file.codestream, { maxPixels: BIG });
    const mutated = file.codestream.slice();
    const pending = native().decode(mutated, { maxPixels: BIG });
    mutated.fill(0);
    expect(firstDifference((await pending).data, reference.data)).toBe(-1);

    const backing = new Uint8Array(file.codestream.length + 13).fill(0xaa);
    backing.set(file.codestream, 7);
    const view = backing.subarray(7, 7 + file.codestream.length);
    const results = await Promise.allSettled([
      native().decode(view, { maxPixels: BIG }),
      native().decode(file.codestream.subarray(0, file.codestream.length >> 1), { maxPixels: BIG }),
      native().decode(file.codestream, { maxPixels: 1000 }),
      native().decode(file.codestream, { maxPixels: BIG }),
    ]);
    const [fromView, cut, limited, plain] = results;
    expect(fromView?.status === 'fulfilled' && firstDifference(fromView.value.data, reference.data)).toBe(-1);
    expect(cut?.status === 'rejected' && (cut.reason as { code?: unknown }).code).toBe('ERR_JLS_TRUNCATED');
    expect(limited?.status === 'rejected' && (limited.reason as { code?: unknown }).code).toBe('ERR_JLS_TOO_LARGE');
    expect(plain?.status === 'fulfilled' && firstDifference(plain.value.data, reference.data)).toBe(-1);
  });

  it('validates its arguments', async () => {
    const cs = rg3().codestream;
    await expect(native().decode(cs, { maxPixels: 0 })).rejects.toThrow(RangeError);
    await expect(native().decode(cs, { maxPixels: 1.5 })).rejects.toThrow(RangeError);
    const notBytes: unknown = new Uint16Array(8);
    await expect(native().decode(notBytes as Uint8Array, { maxPixels: BIG })).rejects.toThrow(TypeError);
    // A Node Buffer is a Uint8Array and is accepted.
    expect((await native().decode(Buffer.from(cs), { maxPixels: BIG })).width).toBe(1760);
  });
});
