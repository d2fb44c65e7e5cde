import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseDicom, readSourceImage } from '@cxr/inference';
import sharp from 'sharp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manifest, ManifestEntry } from '../manifest.js';
import { greyOf, readPng } from '../test-support/png-reader.js';
import { cxrInfer, dciodvfyErrors, dcmdumpProblems, installed, nihSample, repoRoot, runCli } from '../test-support/tools.js';
import { scaleValue } from './bits.js';
import { syntaxNames, syntaxUids, type SyntaxName } from './wrap.js';

let dir: string;
/** A 16-bit grey PNG made here from known values, odd sizes (odd pixel count), every value range edge. */
let png16: string;
let values16: Uint16Array;
/** A 16-bit PNG whose values fit in 12 bits, as a 12-bit detector saved as 16-bit PNG would be. */
let png16in12: string;
let values16in12: Uint16Array;
/** The real 8-bit NIH ChestX-ray14 PNG, and its grey values read by our own PNG reader. */
const nihPng = `${nihSample}00000129_000.png`;
let nihValues: Uint16Array;

/** The NIH image at 12 bits, MONOCHROME1, in each syntax, for one `cxr infer` run over all of them. */
const madeNih12BitMono1: string[] = [];

const WIDTH = 301;
const HEIGHT = 203;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cxr-wrap-test-'));
  values16 = new Uint16Array(WIDTH * HEIGHT);
  values16in12 = new Uint16Array(WIDTH * HEIGHT);
  for (let i = 0; i < values16.length; i++) {
    values16[i] = i < 4 ? [0, 1, 65534, 65535][i]! : (i * 7919 + (i >> 7) * 131) % 65536;
    values16in12[i] = (i * 37) % 4096;
  }
  png16 = join(dir, 'sixteen.png');
  png16in12 = join(dir, 'twelve-in-sixteen.png');
  await sharp(values16, { raw: { width: WIDTH, height: HEIGHT, channels: 1 } }).toColourspace('grey16').png().toFile(png16);
  await sharp(values16in12, { raw: { width: WIDTH, height: HEIGHT, channels: 1 } }).toColourspace('grey16').png().toFile(png16in12);
  // The PNGs hold exactly the values they were made from (read back without sharp).
  expect(readPng(await readFile(png16)).samples).toEqual(values16);
  nihValues = greyOf(readPng(await readFile(nihPng)));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function storedSamples(file: string): Promise<{ samples: ArrayLike<number>; parsed: ReturnType<typeof parseDicom> }> {
  const bytes = await readFile(file);
  const source = await readSourceImage(bytes);
  if (source.kind !== 'dicom') throw new Error('expected DICOM');
  return { samples: source.frame.samples, parsed: parseDicom(bytes) };
}

function firstDifference(actual: ArrayLike<number>, expected: ArrayLike<number>): string | undefined {
  if (actual.length !== expected.length) return `length ${actual.length}, expected ${expected.length}`;
  for (let i = 0; i < actual.length; i++) if (actual[i] !== expected[i]) return `pixel ${i}: ${actual[i]}, expected ${expected[i]}`;
  return undefined;
}

interface Case {
  readonly name: string;
  readonly input: () => string;
  readonly source: () => Uint16Array;
  readonly sourceBits: 8 | 16;
  readonly args: readonly string[];
  readonly bits: number;
  readonly mono1: boolean;
  readonly keep?: boolean;
}

const cases: readonly Case[] = [
  { name: 'NIH 8-bit as is', input: () => nihPng, source: () => nihValues, sourceBits: 8, args: [], bits: 8, mono1: false },
  { name: 'NIH 8-bit to 12 bits, MONOCHROME1', input: () => nihPng, source: () => nihValues, sourceBits: 8, args: ['--bits', '12', '--mono1'], bits: 12, mono1: true },
  { name: '16-bit as is', input: () => png16, source: () => values16, sourceBits: 16, args: ['--bits', '16'], bits: 16, mono1: false },
  { name: '16-bit to 15 bits, MONOCHROME1', input: () => png16, source: () => values16, sourceBits: 16, args: ['--bits', '15', '--mono1'], bits: 15, mono1: true },
  {
    name: '12 significant bits in a 16-bit PNG, kept',
    input: () => png16in12,
    source: () => values16in12,
    sourceBits: 16,
    args: ['--bits', '12', '--keep-values'],
    bits: 12,
    mono1: false,
    keep: true,
  },
];

describe.each(syntaxNames)('wrap --syntax %s', (syntax: SyntaxName) => {
  const made: string[] = [];

  it.each(cases)('$name: the stored pixels are the source pixels, mapped as documented', async (c) => {
    const out = join(dir, `${syntax}-${c.name.replace(/\W+/gu, '-')}.dcm`);
    const manifest = join(dir, `${syntax}-manifest.json`);
    const result = await runCli('wrap', c.input(), '--out', out, '--syntax', syntax, '--manifest', manifest, ...c.args);
    expect(result.stderr).not.toContain('CXR_');
    expect(result.code).toBe(0);
    made.push(out);

    const { samples, parsed } = await storedSamples(out);
    expect(parsed.transferSyntaxUid).toBe(syntaxUids[syntax]);
    expect(parsed.dataset.uint16(0x00280101)).toBe(c.bits);
    expect(parsed.dataset.string(0x00280004)).toBe(c.mono1 ? 'MONOCHROME1' : 'MONOCHROME2');

    const source = c.source();
    const max = 2 ** c.bits - 1;
    const expected = new Uint16Array(source.length);
    for (let i = 0; i < source.length; i++) {
      const v = source[i]!;
      const mapped = c.keep || c.bits === c.sourceBits ? v : Math.round((v * max) / (2 ** c.sourceBits - 1));
      expected[i] = c.mono1 ? max - mapped : mapped;
    }
    expect(firstDifference(samples, expected)).toBeUndefined();
    if (c.bits >= c.sourceBits && !c.keep) {
      // One to one: the source comes back from the stored values.
      const sourceMax = 2 ** c.sourceBits - 1;
      const back = Array.from(samples, (s) => Math.round(((c.mono1 ? max - s : s) * sourceMax) / max));
      expect(firstDifference(back, source)).toBeUndefined();
    }

    const entries = (JSON.parse(await readFile(manifest, 'utf8')) as Manifest).files;
    const entry = entries.find((e) => e.output.endsWith(out.split('/').pop()!));
    expect(entry?.sha256).toBe(createHash('sha256').update(await readFile(out)).digest('hex'));
    expect(entry?.sourceSha256).toBe(createHash('sha256').update(await readFile(c.input())).digest('hex'));
    expect(entry?.transferSyntaxUid).toBe(syntaxUids[syntax]);
  });

  it('DCMTK reads every file made', () => {
    expect(made.length).toBe(cases.length);
    for (const file of made) expect(dcmdumpProblems(file), file).toEqual([]);
  });

  it.skipIf(!installed('dciodvfy'))('dciodvfy finds no error against the DX IOD', () => {
    for (const file of made) expect(dciodvfyErrors(file), file).toEqual([]);
  });

  it('keeps the NIH file for the inference check', () => {
    expect(made[1]).toBeDefined();
    madeNih12BitMono1.push(made[1]!);
  });
});

describe('wrap', () => {
  it('cxr infer reads a file of every syntax as an applicable chest image', () => {
    expect(madeNih12BitMono1).toHaveLength(syntaxNames.length);
    const results = cxrInfer(madeNih12BitMono1);
    expect(results).toHaveLength(syntaxNames.length);
    const reference = results[0]?.probabilities as number[];
    for (const r of results) {
      expect(r.error).toBeUndefined();
      expect(r.applicable).toBe(true);
      expect(r.applicability).toMatchObject({ verified: true, modality: 'DX', bodyPart: 'CHEST', view: 'PA' });
      // The same pixels in every syntax: the same probabilities.
      expect(r.probabilities).toEqual(reference);
    }
  });

  it('the bin takes the interface the outside checks use', async () => {
    const out = join(dir, 'bin.dcm');
    const run = spawnSync(process.execPath, [`${repoRoot}datasets/bin/cxr-datasets.js`, 'wrap', nihPng, '--out', out, '--bits', '16', '--mono1', '--syntax', 'jpeg-ls'], {
      encoding: 'utf8',
    });
    expect(run.stderr).not.toContain('CXR_');
    expect(run.status).toBe(0);
    const { samples } = await storedSamples(out);
    // 8 to 16 bits is v * 257 exactly; MONOCHROME1 stores 65535 minus that.
    expect(firstDifference(samples, Array.from(nihValues, (v) => 65535 - v * 257))).toBeUndefined();
  });

  it('a colour PNG is made grey by luma, and says so', async () => {
    const colourPng = `${nihSample}00001369_000.png`;
    const png = readPng(await readFile(colourPng));
    expect(png.channels).toBe(4);
    const out = join(dir, 'colour.dcm');
    const result = await runCli('wrap', colourPng, '--out', out, '--json');
    expect(result.code).toBe(0);
    const entry = JSON.parse(result.stdout) as ManifestEntry;
    expect(entry.warnings.join(' ')).toMatch(/colour input made grey/u);
    expect(entry.warnings.join(' ')).toMatch(/alpha/u);
    const { samples } = await storedSamples(out);
    expect(firstDifference(samples, greyOf(png))).toBeUndefined();
  });

  it('a JPEG is wrapped with the samples sharp decodes', async () => {
    const jpeg = join(dir, 'grey.jpg');
    await sharp(nihPng).jpeg({ quality: 90 }).toFile(jpeg);
    const out = join(dir, 'jpeg.dcm');
    const result = await runCli('wrap', jpeg, '--out', out, '--syntax', 'rle', '--modality', 'CR');
    expect(result.code).toBe(0);
    const decoded = await sharp(jpeg).toColourspace('b-w').raw().toBuffer();
    const { samples, parsed } = await storedSamples(out);
    expect(parsed.dataset.string(0x00080060)).toBe('CR');
    expect(firstDifference(samples, decoded)).toBeUndefined();
  });

  it('CR takes a rescale and a window, DX refuses a rescale', async () => {
    const out = join(dir, 'cr.dcm');
    const ok = await runCli('wrap', nihPng, '--out', out, '--modality', 'CR', '--rescale-slope', '2', '--rescale-intercept', '-100', '--window-center', '40', '--window-width', '400', '--view', 'AP', '--body-part', 'chest');
    expect(ok.code).toBe(0);
    const { parsed } = await storedSamples(out);
    expect(parsed.dataset.string(0x00080016)).toBe('1.2.840.10008.5.1.4.1.1.1');
    expect(parsed.dataset.decimal(0x00281053)).toBe(2);
    expect(parsed.dataset.decimal(0x00281052)).toBe(-100);
    expect(parsed.dataset.decimal(0x00281050)).toBe(40);
    expect(parsed.dataset.decimal(0x00281051)).toBe(400);
    expect(parsed.dataset.string(0x00185101)).toBe('AP');
    expect(parsed.dataset.string(0x00180015)).toBe('CHEST');
    if (installed('dciodvfy')) expect(dciodvfyErrors(out)).toEqual([]);

    const refused = await runCli('wrap', nihPng, '--out', join(dir, 'dx-rescale.dcm'), '--rescale-slope', '2', '--bits', '20');
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/CXR_USAGE.*--bits must be an integer from 6 to 16.*DX requires Rescale Slope 1/u);
  });

  it('--keep-values refuses values that do not fit', async () => {
    const result = await runCli('wrap', png16, '--out', join(dir, 'nofit.dcm'), '--bits', '12', '--keep-values');
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/CXR_USAGE: .*value 65535, which needs more than 12 bits/u);
  });

  it('a file that is not an image fails with its code and writes nothing', async () => {
    const notImage = join(dir, 'not-an-image.png');
    await writeFile(notImage, 'hello');
    const out = join(dir, 'never.dcm');
    const result = await runCli('wrap', notImage, '--out', out);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('CXR_IMAGE_UNREADABLE');
    await expect(readFile(out)).rejects.toThrow();
  });

  it('wrap-dir wraps a folder, lists the failures, one study per image', async () => {
    const input = join(dir, 'batch-in');
    await mkdir(join(input, 'sub'), { recursive: true });
    await writeFile(join(input, 'a.png'), await readFile(nihPng));
    await writeFile(join(input, 'sub', 'b.png'), await readFile(png16));
    await writeFile(join(input, 'broken.jpg'), 'not a jpeg');
    const output = join(dir, 'batch-out');
    const result = await runCli('wrap-dir', input, '--out', output, '--syntax', 'rle');
    expect(result.code).toBe(0);
    const manifest = JSON.parse(await readFile(join(output, 'manifest.json'), 'utf8')) as Manifest;
    expect(manifest.files.map((f) => f.output).sort()).toEqual(['a.dcm', 'sub/b.dcm']);
    expect(manifest.failed).toEqual([{ source: join(input, 'broken.jpg'), error: expect.objectContaining({ code: 'CXR_IMAGE_UNREADABLE' }) }]);
    expect(new Set(manifest.files.map((f) => f.studyInstanceUid)).size).toBe(2);
    for (const f of manifest.files) {
      expect(f.studyInstanceUid).toMatch(/^2\.25\.\d+$/u);
      expect(f.sha256).toBe(createHash('sha256').update(await readFile(join(output, f.output))).digest('hex'));
    }
  });
});

describe('bit mapping', () => {
  it('is one to one and reversible whenever the target has at least the source bits', () => {
    for (const [from, to] of [[8, 8], [8, 10], [8, 12], [8, 15], [8, 16], [16, 16]] as const) {
      const seen = new Set<number>();
      const sourceMax = 2 ** from - 1;
      for (let v = 0; v <= sourceMax; v++) {
        const stored = scaleValue(v, from, to);
        expect(stored).toBeLessThanOrEqual(2 ** to - 1);
        seen.add(stored);
        expect(Math.round((stored * sourceMax) / (2 ** to - 1))).toBe(v);
      }
      expect(seen.size).toBe(sourceMax + 1);
      expect(scaleValue(sourceMax, from, to)).toBe(2 ** to - 1);
    }
    for (let v = 0; v < 256; v++) expect(scaleValue(v, 8, 16)).toBe(v * 257);
  });
});
