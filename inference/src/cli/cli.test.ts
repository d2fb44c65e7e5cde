import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { dicomDir, modelsDir, referenceTensor, sharedDir } from '../test-support/shared.js';

const run = promisify(execFile);
/** The built `cxr` command, run as `npx cxr` runs it: the file itself, through its shebang (scripts/test.sh builds first). */
const bin = fileURLToPath(new URL('../../bin/cxr.js', import.meta.url));
const densenet = path.join(modelsDir, 'densenet121-cxr18-random');
const squeezenet = path.join(modelsDir, 'squeezenet-pneumonia-peds');
const tmp = mkdtempSync(path.join(tmpdir(), 'cxr-cli-'));

async function cxr(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(bin, args, { maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const jsonLines = (stdout: string): Record<string, unknown>[] =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('cxr --version', () => {
  it("prints the inference package's version", async () => {
    const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    expect(await cxr('--version')).toMatchObject({ code: 0, stdout: `${version}\n` });
  });
});

describe('cxr infer', () => {
  it('prints one JSON line per file; a bad file is reported and does not stop the batch', async () => {
    const bad = path.join(tmp, 'not-dicom.dcm');
    writeFileSync(bad, 'hello, this is not an image');
    const files = [path.join(dicomDir, 'cr_chest_pa_RG1_JLSN.dcm'), bad, path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')];
    const { code, stdout } = await cxr('infer', ...files, '--model', densenet, '--json');
    expect(code).toBe(0);
    const lines = jsonLines(stdout);
    expect(lines).toHaveLength(3);
    const [first, second, third] = lines;
    expect(second).toEqual({ file: bad, error: { code: 'CXR_NOT_DICOM', message: expect.any(String) } });
    for (const line of [first, third]) {
      expect(line).toMatchObject({
        applicable: true,
        priority: expect.stringMatching(/^(stat|urgent|routine)$/u),
        model: { name: 'densenet121-cxr18-random', version: '0.1.0', sha256: expect.stringMatching(/^[0-9a-f]{64}$/u) },
        timingsMs: { decode: expect.any(Number), preprocess: expect.any(Number), infer: expect.any(Number), total: expect.any(Number) },
      });
      expect(line?.probabilities).toHaveLength(18);
      expect(line?.findings).toHaveLength(18);
      expect((line?.findings as Record<string, unknown>[])[0]).toMatchObject({
        code: 'atelectasis',
        display: 'Atelectasis',
        displayVi: 'Xẹp phổi',
        probability: expect.any(Number),
        positive: expect.any(Boolean),
      });
    }
    expect(first).toMatchObject({ sopInstanceUid: expect.stringMatching(/^[0-9.]+$/u), studyInstanceUid: expect.stringMatching(/^[0-9.]+$/u) });
  });

  it('exits non-zero only when every file failed', async () => {
    const empty = path.join(tmp, 'empty.dcm');
    writeFileSync(empty, '');
    const { code, stdout } = await cxr('infer', empty, path.join(tmp, 'missing.dcm'), '--model', densenet, '--json');
    expect(code).toBe(1);
    expect(jsonLines(stdout).map((l) => (l.error as { code: string }).code)).toEqual(['CXR_EMPTY_FILE', 'CXR_FILE_NOT_FOUND']);
  });

  it('gives "not applicable" with a reason and no findings for a non-chest image; --force runs the model anyway', async () => {
    const hip = path.join(dicomDir, 'cr_hip_RG2_JPLL.dcm');
    const plain = jsonLines((await cxr('infer', hip, '--model', squeezenet, '--json')).stdout)[0];
    expect(plain).toMatchObject({ applicable: false, reason: expect.stringContaining('HIP'), findings: [], priority: 'routine' });
    expect(plain?.probabilities).toBeUndefined();
    const forced = jsonLines((await cxr('infer', hip, '--model', squeezenet, '--json', '--force')).stdout)[0];
    expect(forced).toMatchObject({ applicable: false, forced: true, findings: [], reason: expect.stringContaining('HIP') });
    expect(forced?.probabilities).toHaveLength(3);
  });

  it('reads PNG and JPEG files too', async () => {
    const png = path.join(sharedDir, 'eval', 'nih-chestxray14-sample');
    const pngFile = readFileSync(path.join(png, 'labels.csv'), 'utf8').split('\n')[1]?.split(',')[0] ?? '';
    const kermany = path.join(sharedDir, 'eval', 'kermany-pediatric-test');
    const jpegFile = readFileSync(path.join(kermany, 'labels.csv'), 'utf8').split('\n')[1]?.split(',')[0] ?? '';
    const { stdout } = await cxr('infer', path.join(png, pngFile), path.join(kermany, jpegFile), '--model', squeezenet, '--json');
    const lines = jsonLines(stdout);
    for (const line of lines) {
      expect(line).toMatchObject({ applicable: true, applicability: { verified: false }, sopInstanceUid: null });
      expect(line.probabilities).toHaveLength(3);
    }
  });

  it('prints a readable line per file without --json', async () => {
    const { stdout } = await cxr('infer', path.join(dicomDir, 'cr_extremity_RG3_RLE.dcm'), '--model', densenet);
    expect(stdout).toContain('cr_extremity_RG3_RLE.dcm: AI not applicable: body part EXTREMITY');
  });
});

describe('cxr preprocess', () => {
  it('writes the float32 C x H x W tensor equal to the reference, to the bit', async () => {
    const file = path.join(dicomDir, 'cr_extremity_RG3_UNC.dcm');
    const out = path.join(tmp, 'unc.f32');
    const { code } = await cxr('preprocess', file, '--model', squeezenet, '--out', out);
    expect(code).toBe(0);
    const bytes = readFileSync(out);
    expect(bytes.length).toBe(3 * 224 * 224 * 4);
    const ours = new Float32Array(Uint8Array.from(bytes).buffer);
    const ref = referenceTensor('squeezenet-pneumonia-peds', file);
    expect(ours.length).toBe(ref.length);
    let differing = 0;
    for (let i = 0; i < ref.length; i++) if (ours[i] !== ref[i]) differing++;
    expect(differing).toBe(0);
  });

  it('fails with one clear line and a code', async () => {
    const bad = path.join(tmp, 'truncated.dcm');
    writeFileSync(bad, readFileSync(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')).subarray(0, 5000));
    const { code, stderr } = await cxr('preprocess', bad, '--model', densenet, '--out', path.join(tmp, 'x.f32'));
    expect(code).toBe(1);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toMatch(/^cxr: CXR_PIXEL_DATA_SHORT: /u);
  });
});

describe('cxr info', () => {
  it('prints the header fields the pipeline uses and no patient identifiers', async () => {
    const file = path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm');
    const { code, stdout } = await cxr('info', file, '--json');
    expect(code).toBe(0);
    const info = JSON.parse(stdout) as Record<string, unknown>;
    expect(info).toMatchObject({ modality: 'DX', rows: 1024, columns: 1024, bitsStored: 8, transferSyntax: 'ImplicitVRLittleEndian', decodable: true });
    // The NIH file's PatientID / PatientName are "Covid0000": they must not appear.
    expect(stdout).not.toContain('Covid0000');
    expect(Object.keys(info).some((k) => /patient/iu.test(k))).toBe(false);
  });
});

describe('cxr --help', () => {
  it.each([[], ['infer'], ['preprocess'], ['info']])('works for %j', async (...cmd) => {
    const { code, stdout } = await cxr(...cmd, '--help');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^Usage: cxr/u);
  });

  it('exits 2 on a usage error', async () => {
    const { code, stderr } = await cxr('infer', 'x.dcm');
    expect(code).toBe(2);
    expect(stderr).toContain("required option '-m, --model <dir>' not specified");
  });
});
