import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Value } from '@sinclair/typebox/value';
import sharp from 'sharp';
import { beforeAll, describe, expect, it } from 'vitest';
import { ThresholdsFileSchema, type ThresholdsFile } from '../contracts/index.js';
import { dicomDir, modelsDir, referenceDir, sharedDir } from '../test-support/shared.js';

const run = promisify(execFile);
/** The built `cxr` command, as a user runs it (scripts/test.sh builds before testing). */
const bin = fileURLToPath(new URL('../../bin/cxr.js', import.meta.url));
const squeezenet = path.join(modelsDir, 'squeezenet-pneumonia-peds');
const kermanyDir = path.join(sharedDir, 'eval', 'kermany-pediatric-test');
const kermanyCsv = path.join(kermanyDir, 'labels.csv');
const tmp = mkdtempSync(path.join(tmpdir(), 'cxr-eval-'));
const pneumonia = ['--truth', 'pneumonia', '--score', 'bacterial_pneumonia+viral_pneumonia'];

async function cxr(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { maxBuffer: 1 << 26 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** The independent reference: probabilities per labels.csv path, from ../shared/reference. */
const reference = JSON.parse(readFileSync(path.join(referenceDir, 'kermany-public.squeezenet-pneumonia-peds.probs.json'), 'utf8')) as Record<
  string,
  [number, number, number]
>;
const kermanyRows = readFileSync(kermanyCsv, 'utf8')
  .trim()
  .split(/\r?\n/u)
  .slice(1)
  .map((line) => {
    const [image = '', truth = '', subtype = ''] = line.split(',');
    return { image, positive: truth === '1', subtype };
  });

describe('cxr eval on the Kermany pediatric test set', () => {
  const out = path.join(tmp, 'kermany');
  let result: Record<string, unknown>;
  let report: Record<string, unknown>;

  beforeAll(async () => {
    const { code, stdout, stderr } = await cxr('eval', '--model', squeezenet, '--labels', kermanyCsv, ...pneumonia, '--json', '--out', out);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout.trim().split('\n')).toHaveLength(1);
    result = JSON.parse(stdout) as Record<string, unknown>;
    report = JSON.parse(readFileSync(path.join(out, 'report.json'), 'utf8')) as Record<string, unknown>;
  }, 180_000);

  it('reproduces the reference AUC 0.9005 and the operating point of ../shared/README.md', () => {
    expect(result).toMatchObject({ n: 416, positives: 260, negatives: 156, failed: [], notApplicable: [], ciMethod: 'delong' });
    expect(Math.abs((result.auc as number) - 0.9005)).toBeLessThan(1e-4);
    // README: either pneumonia class at or above 0.25 gives sensitivity 0.731 and specificity 0.859.
    expect(result.sensitivity as number).toBeCloseTo(0.731, 3);
    expect(result.specificity as number).toBeCloseTo(0.859, 3);
    expect(result).toMatchObject({ tp: 190, fn: 70, tn: 134, fp: 22 });
    expect(result.operatingPoint).toEqual({ rule: 'any-component', thresholds: { bacterial_pneumonia: 0.25, viral_pneumonia: 0.25 } });
  });

  it('scores every image as the reference does, within 1e-4', () => {
    const images = report.images as { image: string; probabilities: Record<string, number>; scores: Record<string, number> }[];
    expect(images).toHaveLength(416);
    for (const { image, probabilities, scores } of images) {
      const [bacterial = NaN, normal = NaN, viral = NaN] = reference[image] ?? [];
      expect(probabilities.bacterial_pneumonia).toBeCloseTo(bacterial, 4);
      expect(probabilities.normal).toBeCloseTo(normal, 4);
      expect(probabilities.viral_pneumonia).toBeCloseTo(viral, 4);
      expect(Math.abs((scores['bacterial_pneumonia+viral_pneumonia'] ?? NaN) - (bacterial + viral))).toBeLessThan(1e-4);
    }
  });

  it('gives a DeLong interval around the AUC as wide as Hanley and McNeil expect for 260 + 156 images', () => {
    const auc = result.auc as number;
    const [lo = NaN, hi = NaN] = result.auc95 as number[];
    expect(lo).toBeLessThan(auc);
    expect(hi).toBeGreaterThan(auc);
    // Hanley & McNeil (Radiology 1982) approximate the standard error from the AUC and the class sizes alone.
    const [m, n] = [260, 156];
    const q1 = auc / (2 - auc);
    const q2 = (2 * auc * auc) / (1 + auc);
    const se = Math.sqrt((auc * (1 - auc) + (m - 1) * (q1 - auc * auc) + (n - 1) * (q2 - auc * auc)) / (m * n));
    const ratio = (hi - lo) / (2 * 1.96 * se);
    expect(ratio).toBeGreaterThan(0.7);
    expect(ratio).toBeLessThan(1.4);
  });

  it('writes a ROC plot with axes, the diagonal, the AUC with its CI and the operating point', async () => {
    const svg = readFileSync(path.join(out, 'roc.svg'), 'utf8');
    expect(svg).toContain('AUC 0.9005 (95% CI 0.868–0.933, DeLong)');
    expect(svg).toContain('sensitivity (true positive rate)');
    expect(svg).toContain('1 − specificity (false positive rate)');
    expect(svg).toContain('any label ≥ its threshold: sensitivity 0.731, specificity 0.859');
    expect(svg).toMatch(/<circle /u);
    // librsvg (through sharp) parses and renders it.
    const { width, height } = await sharp(Buffer.from(svg)).png().toBuffer({ resolveWithObject: true }).then((r) => r.info);
    expect(width).toBeGreaterThan(400);
    expect(height).toBeGreaterThan(400);
  });

  it('keeps the ROC points in report.json', () => {
    const [roc] = report.roc as { fpr: number[]; tpr: number[]; thresholds: (number | null)[] }[];
    expect(roc?.fpr[0]).toBe(0);
    expect(roc?.tpr.at(-1)).toBe(1);
    expect(roc?.thresholds[0]).toBeNull();
  });
});

describe('cxr eval on a set with unreadable and not-applicable images', () => {
  // Two of each subtype by absolute path, a missing file, a text file and a hip radiograph (DICOM, BodyPart HIP).
  const picks = ['bacteria', 'virus', 'normal'].flatMap((s) => kermanyRows.filter((r) => r.subtype === s).slice(0, 2));
  const csv = path.join(tmp, 'mixed', 'labels.csv');
  beforeAll(() => {
    const dir = path.dirname(csv);
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, 'notes.txt'), 'not an image');
    const lines = ['image,bacterial_pneumonia,viral_pneumonia,other'];
    for (const r of picks) lines.push(`${path.join(kermanyDir, r.image)},${r.subtype === 'bacteria' ? 1 : 0},${r.subtype === 'virus' ? 1 : 0},x`);
    lines.push('missing.jpeg,1,0,x', 'notes.txt,0,1,x', `${path.join(dicomDir, 'cr_hip_RG2_JPLL.dcm')},0,0,x`);
    writeFileSync(csv, `${lines.join('\n')}\n`);
  });

  it('lists unreadable images in failed with their codes, keeps them out of n, and reports each label', async () => {
    const { code, stdout } = await cxr('eval', '--model', squeezenet, '--labels', csv, '--json');
    expect(code).toBe(0);
    const result = JSON.parse(stdout) as Record<string, unknown>;
    expect(result).toMatchObject({ n: 6, rows: 9 });
    expect(result.failed).toEqual([
      { image: 'missing.jpeg', code: 'CXR_FILE_NOT_FOUND', message: expect.any(String) },
      { image: 'notes.txt', code: 'CXR_NOT_DICOM', message: expect.any(String) },
    ]);
    expect(result.notApplicable).toEqual([{ image: path.join(dicomDir, 'cr_hip_RG2_JPLL.dcm'), reason: expect.stringContaining('HIP') }]);
    // Without --truth/--score: every label with a same-named column, each against its own.
    const scores = result.scores as Record<string, unknown>[];
    expect(scores.map((s) => [s.truth, s.score, s.n, s.positives, s.negatives])).toEqual([
      ['bacterial_pneumonia', 'bacterial_pneumonia', 6, 2, 4],
      ['viral_pneumonia', 'viral_pneumonia', 6, 2, 4],
    ]);
    for (const s of scores) {
      expect(s.tp as number).toBe(Math.round((s.sensitivity as number) * 2));
      expect((s.tp as number) + (s.fn as number)).toBe(2);
      expect((s.tn as number) + (s.fp as number)).toBe(4);
    }
  });

  it('shows a progress bar on a terminal, on stderr', async () => {
    // util-linux's script gives the command a terminal; stdout goes to a file so only stderr reaches the terminal.
    const json = path.join(tmp, 'tty.json');
    const command = [process.execPath, bin, 'eval', '--model', squeezenet, '--labels', csv, '--json'].map((a) => `'${a}'`).join(' ');
    const { stdout: terminal } = await run('script', ['-qec', `${command} > '${json}'`, '/dev/null']);
    expect(terminal).toContain('cxr eval [');
    expect(terminal).toContain('9/9 images');
    expect(terminal).toContain('2 failed');
    expect(JSON.parse(readFileSync(json, 'utf8'))).toMatchObject({ n: 6 });
  });

  it('scores not-applicable images with --include-not-applicable', async () => {
    const { stdout } = await cxr('eval', '--model', squeezenet, '--labels', csv, '--json', '--include-not-applicable');
    expect(JSON.parse(stdout)).toMatchObject({ n: 7, notApplicable: [], forced: 1 });
  });

  it('prints a readable report and the failures without --json', async () => {
    const { code, stdout, stderr } = await cxr('eval', '--model', squeezenet, '--labels', csv, '--score', 'viral_pneumonia');
    expect(code).toBe(0);
    expect(stdout).toMatch(/6 images scored \(6 with applicability not verified\), 2 unreadable, 1 not applicable/u);
    expect(stdout).toMatch(/viral_pneumonia: n 6 \(2 positive, 4 negative\)\n {2}AUC [01]\.\d{4}/u);
    expect(stderr).toContain('failed: missing.jpeg: CXR_FILE_NOT_FOUND');
    expect(stderr).toContain('failed: notes.txt: CXR_NOT_DICOM');
  });

  it('refuses a truth column that is not 0/1, an unknown label and a missing column, before scoring any image', async () => {
    const other = await cxr('eval', '--model', squeezenet, '--labels', csv, '--truth', 'other', '--score', 'viral_pneumonia');
    expect(other.code).toBe(1);
    // Every bad row at once (all 9 here), each with its image.
    expect(other.stderr).toMatch(/^cxr: CXR_LABELS_INVALID: .*row 1 \(\/.*\.jpeg\): other is "x", expected 0 or 1; .*row 9 \(.*cr_hip_RG2_JPLL\.dcm\): other is "x"/u);
    expect(other.stderr.trim().split('\n')).toHaveLength(1);
    const unknown = await cxr('eval', '--model', squeezenet, '--labels', csv, '--score', 'bacterial_pneumonia+edema');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('"edema" is not a label of squeezenet-pneumonia-peds');
    const column = await cxr('eval', '--model', squeezenet, '--labels', kermanyCsv, '--truth', 'nope', '--score', 'viral_pneumonia');
    expect(column.code).toBe(2);
    expect(column.stderr).toContain('no truth column "nope" (columns: image, pneumonia, subtype)');
  });

  it('calibrates each label to its target', async () => {
    const file = path.join(tmp, 'mixed-thresholds.json');
    const { code } = await cxr('calibrate', '--model', squeezenet, '--labels', csv, '--target-specificity', '1', '--out', file);
    expect(code).toBe(0);
    const written = JSON.parse(readFileSync(file, 'utf8')) as ThresholdsFile;
    expect(Value.Check(ThresholdsFileSchema, written)).toBe(true);
    expect(Object.keys(written.thresholds)).toEqual(['bacterial_pneumonia', 'viral_pneumonia']);
    for (const s of written.calibration.scores) {
      expect(s.rule).toBe('label');
      expect(s.specificity).toBe(1);
      expect(s.fp).toBe(0);
    }
  });
});

/** Sensitivity and specificity of "max(bacterial, viral) >= t" recomputed from the shared reference, not our code. */
function referenceOperatingPoint(threshold: number): { sensitivity: number; specificity: number } {
  let tp = 0;
  let tn = 0;
  let positives = 0;
  for (const { image, positive } of kermanyRows) {
    const [bacterial = 0, , viral = 0] = reference[image] ?? [];
    const called = Math.max(bacterial, viral) >= threshold;
    if (positive) {
      positives++;
      if (called) tp++;
    } else if (!called) tn++;
  }
  return { sensitivity: tp / positives, specificity: tn / (kermanyRows.length - positives) };
}

describe('cxr calibrate on the Kermany set', () => {
  it.each([
    ['--target-sensitivity', 0.95, 'sensitivity'],
    ['--target-specificity', 0.9, 'specificity'],
  ] as const)('%s %f reaches its target on the set it was fitted on', async (flag, target, metric) => {
    const file = path.join(tmp, `thresholds-${metric}.json`);
    const { code, stdout } = await cxr('calibrate', '--model', squeezenet, '--labels', kermanyCsv, ...pneumonia, flag, String(target), '--out', file);
    expect(code).toBe(0);
    expect(stdout).toContain(`wrote ${file}`);
    const written = JSON.parse(readFileSync(file, 'utf8')) as ThresholdsFile;
    expect(Value.Check(ThresholdsFileSchema, written)).toBe(true);
    const [score] = written.calibration.scores;
    const threshold = written.thresholds.bacterial_pneumonia ?? NaN;
    expect(written.thresholds.viral_pneumonia).toBe(threshold);
    expect(score).toMatchObject({ rule: 'any-component', threshold, n: 416, positives: 260, negatives: 156 });
    expect(score?.[metric]).toBeGreaterThanOrEqual(target);
    // The independent check: the reference probabilities at this threshold reach the target too.
    const point = referenceOperatingPoint(threshold);
    expect(point[metric]).toBeGreaterThanOrEqual(target);
    expect(point.sensitivity).toBeCloseTo(score?.sensitivity ?? NaN, 6);
    expect(point.specificity).toBeCloseTo(score?.specificity ?? NaN, 6);
    // The Wilson interval holds the point estimate.
    const [lo = NaN, hi = NaN] = score?.[`${metric}95`] ?? [];
    expect(lo).toBeLessThan(score?.[metric] ?? NaN);
    expect(hi).toBeGreaterThan(score?.[metric] ?? NaN);

    // cxr infer takes the file: each image's findings use the calibrated threshold.
    const sample = kermanyRows.slice(0, 3).map((r) => path.join(kermanyDir, r.image));
    const infer = await cxr('infer', ...sample, '--model', squeezenet, '--json', '--thresholds', file);
    expect(infer.code).toBe(0);
    for (const line of infer.stdout.trim().split('\n')) {
      const findings = (JSON.parse(line) as { findings: { threshold: number; probability: number; positive: boolean }[] }).findings;
      expect(findings.map((f) => f.threshold)).toEqual([threshold, threshold]);
      for (const f of findings) expect(f.positive).toBe(f.probability >= threshold);
    }
  });

  it('needs exactly one target', async () => {
    const { code, stderr } = await cxr('calibrate', '--model', squeezenet, '--labels', kermanyCsv, '--out', path.join(tmp, 'x.json'));
    expect(code).toBe(2);
    expect(stderr).toContain('give exactly one of --target-sensitivity and --target-specificity');
    const bad = await cxr('calibrate', '--model', squeezenet, '--labels', kermanyCsv, '--target-sensitivity', '1.5', '--out', path.join(tmp, 'x.json'));
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('expected a number in (0, 1]');
  });
});

describe('cxr infer --thresholds', () => {
  const image = path.join(kermanyDir, kermanyRows[0]?.image ?? '');

  it('takes a flat {code: threshold} object', async () => {
    const file = path.join(tmp, 'flat.json');
    writeFileSync(file, JSON.stringify({ viral_pneumonia: 0.01 }));
    const { stdout } = await cxr('infer', image, '--model', squeezenet, '--json', '--thresholds', file);
    const findings = (JSON.parse(stdout) as { findings: { code: string; threshold: number }[] }).findings;
    expect(findings.map((f) => [f.code, f.threshold])).toEqual([
      ['bacterial_pneumonia', 0.25],
      ['viral_pneumonia', 0.01],
    ]);
  });

  it('refuses a threshold outside [0, 1] with a usage error', async () => {
    const file = path.join(tmp, 'bad.json');
    writeFileSync(file, JSON.stringify({ viral_pneumonia: 2 }));
    const { code, stderr } = await cxr('infer', image, '--model', squeezenet, '--json', '--thresholds', file);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^cxr: CXR_USAGE: .*--thresholds .*bad\.json: expected an object of label code to a threshold in \[0, 1\]: \/viral_pneumonia/u);
  });
});

describe('cxr eval and cxr calibrate --help', () => {
  it.each([['eval'], ['calibrate']])('%s --help shows the usage and an example', async (command) => {
    const { code, stdout } = await cxr(command, '--help');
    expect(code).toBe(0);
    expect(stdout).toMatch(new RegExp(`^Usage: cxr ${command} \\[options\\]`, 'u'));
    expect(stdout).toContain('--labels <csv>');
    expect(stdout).toContain('Example:');
  });
});
