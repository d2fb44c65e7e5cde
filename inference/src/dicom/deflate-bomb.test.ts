/**
 * Decompression bombs and oversized frames (issue 15, defect 9). A 522 KB deflated DICOM that inflated to 512 MiB
 * passed every limit; the edge's memory went to 3 GB and stayed, and the instance failed late with CXR_INTERNAL.
 * The sizes the header declares now bound the inflate before it runs, and a frame larger than any radiograph is
 * refused before a pixel buffer is allocated. Memory is measured in a child process of its own (started with
 * --expose-gc): its peak resident size while reading the file, and what is left once collected.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CxrError } from '../errors/index.js';
import { readSourceImage } from '../pipeline/source-image.js';
import * as W from '../test-support/dicom-writer.js';

const MiB = 1 << 20;

interface Measured {
  /** the error code, or 'decoded' */
  readonly outcome: string;
  readonly message: string;
  /** growth of the peak resident set size while the file was read, bytes */
  readonly peakGrowth: number;
  /** ArrayBuffer bytes after a full collection, before and after reading the file */
  readonly arrayBuffersBefore: number;
  readonly arrayBuffersAfter: number;
}

/** Reads `file` with `readSourceImage` (parse, header checks, decode) in a fresh process and measures its memory. */
async function readInChild(file: string): Promise<Measured> {
  const sourceImage = new URL('../pipeline/source-image.ts', import.meta.url).href;
  const code = `
    import { readFileSync } from 'node:fs';
    const { readSourceImage } = await import(${JSON.stringify(sourceImage)});
    let bytes = readFileSync(${JSON.stringify(file)});
    globalThis.gc();
    const before = process.memoryUsage().arrayBuffers;
    const peakBefore = process.resourceUsage().maxRSS * 1024;
    let outcome = 'decoded', message = '';
    try {
      await readSourceImage(bytes);
    } catch (err) {
      outcome = err.code ?? 'uncoded';
      message = err.message;
    }
    const peakGrowth = process.resourceUsage().maxRSS * 1024 - peakBefore;
    bytes = undefined;
    // ArrayBuffers are swept after a collection, off the main thread: two collections, a turn of the loop between.
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setImmediate(resolve));
      globalThis.gc();
    }
    const after = process.memoryUsage().arrayBuffers;
    console.log(JSON.stringify({ outcome, message, peakGrowth, arrayBuffersBefore: before, arrayBuffersAfter: after }));`;
  const { stdout } = await promisify(execFile)(process.execPath, ['--expose-gc', '--import', 'tsx', '--input-type=module', '-e', code], {
    timeout: 120_000,
    killSignal: 'SIGKILL',
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as Measured;
}

describe('deflate bombs and oversized frames', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'cxr-deflate-bomb-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a deflated file that declares a 16384 x 16384 16-bit frame (512 MiB) before inflating it; memory goes back', async () => {
    const file = path.join(dir, 'bomb-512mib.dcm');
    await W.writeDeflateBomb(file, W.imageModule({ rows: 16384, columns: 16384, bitsAllocated: 16 }), { zeroBytes: 512 * MiB });
    // The file of the issue: about half a megabyte.
    expect(statSync(file).size).toBeLessThan(MiB);
    const measured = await readInChild(file);
    expect(measured.outcome, measured.message).toBe('CXR_LIMIT_EXCEEDED');
    expect(measured.message).toMatch(/bytes/u);
    // The inflate never ran past the header: the process grew by a few MiB, not by the 512 MiB the file holds.
    expect(measured.peakGrowth).toBeLessThan(64 * MiB);
    expect(measured.arrayBuffersAfter - measured.arrayBuffersBefore).toBeLessThan(4 * MiB);
  }, 180_000);

  it('stops the inflate of a small image followed by 200 MiB more than its header declares', async () => {
    const file = path.join(dir, 'bomb-trailing.dcm');
    // A 64 x 64 image whose Pixel Data is what the header says, then a padding element of 200 MiB of zeros.
    await W.writeDeflateBomb(file, W.imageModule({ rows: 64, columns: 64, bitsAllocated: 16 }), { zeroBytes: 64 * 64 * 2, trailingZeroBytes: 200 * MiB });
    const measured = await readInChild(file);
    expect(measured.outcome, measured.message).toBe('CXR_LIMIT_EXCEEDED');
    expect(measured.peakGrowth).toBeLessThan(96 * MiB);
    expect(measured.arrayBuffersAfter - measured.arrayBuffersBefore).toBeLessThan(4 * MiB);
  }, 180_000);

  it('still reads a deflated radiograph of ordinary size', async () => {
    const file = path.join(dir, 'ordinary.dcm');
    await W.writeDeflateBomb(file, W.imageModule({ rows: 3000, columns: 2500, bitsAllocated: 16 }), { zeroBytes: 3000 * 2500 * 2 });
    const measured = await readInChild(file);
    expect(measured.outcome, measured.message).toBe('decoded');
  }, 180_000);

  it('reads a deflated dataset its writer encoded in Implicit VR (a writer bug the parser allows)', async () => {
    const bytes = W.writePart10([...W.imageModule({ rows: 4, columns: 4, bitsAllocated: 16 }), W.pixelWords(new Array(16).fill(7))], {
      transferSyntaxUid: W.Syntax.DeflatedLE,
      encoding: W.implicitLE,
    });
    const source = await readSourceImage(bytes);
    expect(source.kind === 'dicom' ? Array.from(source.frame.samples) : []).toEqual(new Array(16).fill(7));
  });

  it('refuses a frame larger than any radiograph before allocating it, in every encoding', async () => {
    const jpeg = W.encapsulated([Uint8Array.of(0xff, 0xd8, 0xff, 0xd9)]);
    const cases: [string, Uint8Array][] = [
      // 16384 x 16384 fits MAX_PIXELS; at 16 bits it is 512 MiB of samples.
      ['native, 16 bits', W.writePart10([...W.imageModule({ rows: 16384, columns: 16384, bitsAllocated: 16 }), W.pixelWords([1, 2, 3])], { transferSyntaxUid: W.Syntax.ExplicitLE })],
      ['JPEG 2000, 3 samples of 16 bits', W.writePart10([...W.imageModule({ rows: 16384, columns: 16384, bitsAllocated: 16, samplesPerPixel: 3, photometric: 'RGB' }), jpeg], { transferSyntaxUid: '1.2.840.10008.1.2.4.90' })],
    ];
    for (const [name, bytes] of cases) {
      let thrown: unknown;
      try {
        await readSourceImage(bytes);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, name).toBeInstanceOf(CxrError);
      expect((thrown as CxrError).code, `${name}: ${(thrown as Error).message}`).toBe('CXR_LIMIT_EXCEEDED');
    }
  });
});
