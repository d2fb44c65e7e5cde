import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { firstFrame } from '../dicom/frames.js';
import { readImageInfo } from '../dicom/image-info.js';
import { parseDicom } from '../dicom/parse.js';
import { CxrError } from '../errors/index.js';
import { dicomDir } from '../test-support/shared.js';
import { decodeWithDcmjs } from './dcmjs-native-codecs.js';
import { loadNativeDcmjpeg, nativeDcmjpegAddonPath, NATIVE_JPEG_DISABLE_ENV } from './dcmjpeg-native.js';
import { decodeFrame } from './index.js';

function load(name: string) {
  const parsed = parseDicom(readFileSync(path.join(dicomDir, name)));
  const info = readImageInfo(parsed);
  const frame = firstFrame(parsed, info);
  return { info, frame };
}

function codestreamOf(name: string) {
  const { info, frame } = load(name);
  if (!frame.encapsulated) throw new Error(`${name} is not compressed`);
  return { info, frame, codestream: frame.codestream };
}

/** The uncompressed file with the same pixels (shared/dicom/README.md). */
const losslessPairs = [
  ['cr_extremity_RG3_JPLL.dcm', 'cr_extremity_RG3_UNC.dcm'],
  ['derived/derived_cr_chest_pa_RG1_JPLL.dcm', 'derived/derived_cr_chest_pa_RG1_explicitLE.dcm'],
] as const;

const native = loadNativeDcmjpeg();
if (!native) console.warn(`[dcmjpeg-native.test] addon not built or not loadable (${nativeDcmjpegAddonPath()}): native JPEG tests skipped`);

async function errorCode(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (err) {
    return (err as { code?: string }).code ?? `no code: ${String(err)}`;
  }
}

afterEach(() => {
  delete process.env[NATIVE_JPEG_DISABLE_ENV];
});

describe('loading the native JPEG lossless decoder', () => {
  it('never throws, and is off when CXR_DISABLE_NATIVE_JPEG=1', () => {
    process.env[NATIVE_JPEG_DISABLE_ENV] = '1';
    expect(loadNativeDcmjpeg()).toBeNull();
    delete process.env[NATIVE_JPEG_DISABLE_ENV];
    expect(loadNativeDcmjpeg() !== null).toBe(existsSync(nativeDcmjpegAddonPath()));
  });
});

describe.skipIf(!native)('native JPEG lossless (DCMTK)', () => {
  it.each(losslessPairs)('%s decodes bit-exact to %s, through the dispatcher, and equals the WebAssembly build', async (compressed, uncompressed) => {
    const { info, frame } = codestreamOf(compressed);
    const decoded = await decodeFrame(info.transferSyntaxUid, frame, info);
    expect(decoded.decoder).toMatch(/^dcmtk .* \(native, jpeg lossless\)$/);
    const reference = load(uncompressed);
    const plain = await decodeFrame(reference.info.transferSyntaxUid, reference.frame, reference.info);
    expect(decoded.samples.length).toBe(plain.samples.length);
    expect(Buffer.from(decoded.samples.buffer, decoded.samples.byteOffset, decoded.samples.byteLength).equals(
      Buffer.from(plain.samples.buffer, plain.samples.byteOffset, plain.samples.byteLength),
    )).toBe(true);
    if (!frame.encapsulated) throw new Error('expected a compressed file');
    const wasm = await decodeWithDcmjs('jpeg', frame.codestream, info);
    expect(Array.from(wasm.samples.subarray(0, 5000))).toEqual(Array.from(decoded.samples.subarray(0, 5000)));
  });

  it('leaves what it does not take to the WebAssembly build: the 12-bit lossy trap, and a size unlike the header', async () => {
    if (!native) throw new Error('not loaded');
    const lossy = codestreamOf('cr_extremity_RG3_JPLY.dcm');
    expect(await errorCode(native.decodeLossless(lossy.codestream, lossy.info.columns, lossy.info.rows, false))).toBe('ERR_JPEG_UNSUPPORTED');
    const { info, codestream } = codestreamOf('cr_extremity_RG3_JPLL.dcm');
    expect(await errorCode(native.decodeLossless(codestream, info.columns, info.rows - 1, false))).toBe('ERR_JPEG_UNSUPPORTED');
    // Through the dispatcher the WebAssembly build then gives its own verdict on the size.
    const liar = { ...info, rows: info.rows - 1 };
    const frame = load('cr_extremity_RG3_JPLL.dcm').frame;
    await expect(decodeFrame(info.transferSyntaxUid, frame, liar)).rejects.toMatchObject({ code: 'CXR_DECODE_FAILED' });
  });

  it('refuses truncated and damaged codestreams with CXR_DECODE_FAILED, and decodes the next good one', async () => {
    const { info, frame, codestream } = codestreamOf('cr_extremity_RG3_JPLL.dcm');
    for (const cut of [10, 100, Math.floor(codestream.length / 2), codestream.length - 2]) {
      const truncated = { ...frame, codestream: codestream.subarray(0, cut) };
      const err = await decodeFrame(info.transferSyntaxUid, truncated, info).catch((e: unknown) => e);
      expect(err, `cut at ${cut}`).toBeInstanceOf(CxrError);
      expect((err as CxrError).code).toBe('CXR_DECODE_FAILED');
    }
    const damaged = Uint8Array.from(codestream);
    for (let i = 2000; i < 40000; i += 7) damaged[i] = ((damaged[i] ?? 0) * 31 + 7) & 0xff;
    await expect(decodeFrame(info.transferSyntaxUid, { ...frame, codestream: damaged }, info)).rejects.toMatchObject({ code: 'CXR_DECODE_FAILED' });
    const good = await decodeFrame(info.transferSyntaxUid, frame, info);
    expect(good.samples.length).toBe(info.rows * info.columns);
  });

  it('copies its input: the caller may overwrite the buffer while the thread pool decodes', async () => {
    if (!native) throw new Error('not loaded');
    const { info, codestream } = codestreamOf('cr_extremity_RG3_JPLL.dcm');
    const mine = Uint8Array.from(codestream);
    const pending = native.decodeLossless(mine, info.columns, info.rows, false);
    mine.fill(0);
    const decoded = await pending;
    const wasm = await decodeWithDcmjs('jpeg', codestream, info);
    expect(Buffer.from(decoded.buffer).equals(Buffer.from(wasm.samples.buffer, wasm.samples.byteOffset, wasm.samples.byteLength))).toBe(true);
  });

  it('with CXR_DISABLE_NATIVE_JPEG=1 the WebAssembly build decodes the same file', async () => {
    process.env[NATIVE_JPEG_DISABLE_ENV] = '1';
    const { info, frame } = codestreamOf('cr_extremity_RG3_JPLL.dcm');
    const decoded = await decodeFrame(info.transferSyntaxUid, frame, info);
    expect(decoded.decoder).toMatch(/^dcmjs-codecs /);
  });
});
