import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { firstFrame } from '../dicom/frames.js';
import { readImageInfo } from '../dicom/image-info.js';
import { parseDicom } from '../dicom/parse.js';
import { CxrError } from '../errors/index.js';
import { encapsulated, imageModule, writePart10 } from '../test-support/dicom-writer.js';
import { dicomDir } from '../test-support/shared.js';
import { decodeWithCharls } from './charls.js';
import { decodeWithDcmjs } from './dcmjs-native-codecs.js';
import { decodeFrame } from './index.js';

function load(name: string) {
  const parsed = parseDicom(readFileSync(path.join(dicomDir, name)));
  const info = readImageInfo(parsed);
  const frame = firstFrame(parsed, info);
  if (!frame.encapsulated) throw new Error('expected a compressed file');
  return { info, codestream: frame.codestream };
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'no error';
  } catch (err) {
    return err instanceof CxrError ? err.code : `not a CxrError: ${String(err)}`;
  }
}

const sum = (a: ArrayLike<number>): number => {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] ?? 0;
  return s;
};

describe('WebAssembly codecs after failures', () => {
  it('dcmjs-codecs still decodes valid images correctly after 60 failed decodes (it used to break, then hang)', async () => {
    const { info, codestream } = load('cr_hip_RG2_JPLL.dcm');
    const good = await decodeWithDcmjs('jpeg', codestream, info);
    const broken = Uint8Array.from(codestream);
    for (let i = 0; i < 4; i++) broken[i] = (broken[i] ?? 0) ^ 0xff;
    for (let i = 0; i < 60; i++) expect(await codeOf(decodeWithDcmjs('jpeg', broken, info))).toBe('CXR_DECODE_FAILED');
    const again = await decodeWithDcmjs('jpeg', codestream, info);
    expect(sum(again.samples)).toBe(sum(good.samples));
  });

  it('CharLS still decodes valid images correctly after 20 failed decodes, and refuses a cut-off codestream at once', async () => {
    const { info, codestream } = load('cr_hip_RG2_JLSL.dcm');
    const good = await decodeWithCharls(codestream, info);
    const cut = codestream.subarray(0, Math.floor(codestream.length * 0.4));
    const started = performance.now();
    expect(await codeOf(decodeWithCharls(cut, info))).toBe('CXR_DECODE_FAILED');
    expect(performance.now() - started).toBeLessThan(1000);
    const garbage = Uint8Array.from(codestream);
    garbage.fill(0xff, Math.floor(garbage.length / 2), Math.floor(garbage.length / 2) + 4000);
    for (let i = 0; i < 20; i++) {
      const code = await codeOf(decodeWithCharls(garbage, info));
      expect(code).toBe('CXR_DECODE_FAILED');
    }
    const again = await decodeWithCharls(codestream, info);
    expect(sum(again.samples)).toBe(sum(good.samples));
  });
});

describe("decoded pixels are the caller's own", () => {
  it('an image keeps its pixels while the next images are decoded by the same WebAssembly codecs', async () => {
    const decoders = [
      (file: string) => decodeWithDcmjs('rle', load(file).codestream, load(file).info),
      (file: string) => decodeWithDcmjs('jpeg', load(file).codestream, load(file).info),
      (file: string) => decodeWithCharls(load(file).codestream, load(file).info),
    ];
    const pairs = [
      ['cr_extremity_RG3_RLE.dcm', 'cr_hip_RG2_RLE.dcm'],
      ['cr_extremity_RG3_JPLY.dcm', 'cr_hip_RG2_JPLY.dcm'],
      ['cr_extremity_RG3_JLSL.dcm', 'cr_hip_RG2_JLSL.dcm'],
    ] as const;
    for (const [i, [first, second]] of pairs.entries()) {
      const decode = decoders[i];
      if (!decode) continue;
      const kept = await decode(first);
      const before = sum(kept.samples);
      expect(kept.samples.length).toBe(kept.rows * kept.columns);
      await decode(second);
      await decode(first);
      expect(sum(kept.samples)).toBe(before);
    }
  });
});

describe('decoders check what they return against the header', () => {
  it('refuses a JPEG whose size differs from Rows x Columns instead of cropping it', async () => {
    const { info, codestream } = load('cr_hip_RG2_JPLY.dcm');
    expect(await codeOf(decodeWithDcmjs('jpeg', codestream, { ...info, rows: info.rows - 256 }))).toBe('CXR_DECODE_FAILED');
  });

  it('refuses an RLE fragment whose header does not fit the image', async () => {
    const { info, codestream } = load('cr_hip_RG2_RLE.dcm');
    const bad = Uint8Array.from(codestream);
    new DataView(bad.buffer).setUint32(0, 7, true);
    expect(await codeOf(decodeFrame(info.transferSyntaxUid, { encapsulated: true, codestream: bad }, info))).toBe('CXR_DECODE_FAILED');
    expect(await codeOf(decodeFrame(info.transferSyntaxUid, { encapsulated: true, codestream: bad.subarray(0, 30) }, info))).toBe('CXR_DECODE_FAILED');
  });
});

describe('a JPEG codestream that would stop dcmjs-codecs for ever', () => {
  /**
   * Found by the fuzz drill: 11 bytes of 0xFF over the start of a baseline JPEG's fragment (FF .. FF 01 ...) kept
   * `cxr infer` and the edge's worker busy until they were killed. The decode runs in a child process so that a
   * spin fails the test by its time limit instead of stopping the test run.
   */
  async function decodeInChild(file: string): Promise<string> {
    const sourceImage = new URL('../pipeline/source-image.ts', import.meta.url).href;
    const code = `
      import { readFileSync } from 'node:fs';
      const { readSourceImage } = await import(${JSON.stringify(sourceImage)});
      try {
        await readSourceImage(readFileSync(${JSON.stringify(file)}));
        console.log('decoded');
      } catch (err) {
        console.log(err.code ?? 'uncoded');
      }`;
    try {
      const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { timeout: 20_000, killSignal: 'SIGKILL' });
      return stdout.trim();
    } catch (err) {
      const e = err as { killed?: boolean; signal?: string; stderr?: string };
      return e.killed ? 'still decoding after 20 s' : `failed: ${e.signal ?? ''} ${e.stderr ?? ''}`;
    }
  }

  it.each([
    ['JPEG Baseline, 8 bits', '1.2.840.10008.1.2.4.50', 8],
    // The native DCMTK decoder refuses a codestream without SOI and hands it to the WebAssembly one.
    ['JPEG Lossless SV1, 16 bits', '1.2.840.10008.1.2.4.70', 16],
  ])('%s: a TEM marker (FF 01) before the frame header is CXR_DECODE_FAILED at once', async (_name, transferSyntaxUid, bitsAllocated) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'cxr-jpeg-tem-'));
    try {
      const file = path.join(dir, 'tem.dcm');
      const fragment = Uint8Array.from([0xff, 0x01, 0x00, 0x00, 0x00, 0x00]);
      writeFileSync(file, writePart10([...imageModule({ rows: 8, columns: 8, bitsAllocated }), encapsulated([fragment])], { transferSyntaxUid }));
      const started = performance.now();
      expect(await decodeInChild(file)).toBe('CXR_DECODE_FAILED');
      expect(performance.now() - started).toBeLessThan(15_000);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
