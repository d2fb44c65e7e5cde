import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dicomDir, modelsDir, referenceDir } from '../test-support/shared.js';
import { loadModel } from './load-model.js';
import { readGoldenCases, runGoldenCases } from './golden.js';
import type { LoadedModel } from './types.js';

const modelName = 'squeezenet-pneumonia-peds';
const goldenFile = 'cr_chest_pa_RG1_J2KI.dcm';

describe('golden cases of a model folder', () => {
  let dir: string;
  let model: LoadedModel;
  let expected: number[];

  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), 'cxr-golden-'));
    for (const f of ['manifest.json', 'model.onnx']) await copyFile(path.join(modelsDir, modelName, f), path.join(dir, f));
    await mkdir(path.join(dir, 'golden'));
    await copyFile(path.join(dicomDir, goldenFile), path.join(dir, 'golden', goldenFile));
    const reference = JSON.parse(await readFile(path.join(referenceDir, `${modelName}.probs.json`), 'utf8')) as Record<string, number[]>;
    expected = reference[goldenFile] ?? [];
    model = await loadModel(dir);
  });
  afterAll(async () => {
    await model.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('says so when a folder has none', async () => {
    expect(await runGoldenCases(model, path.join(modelsDir, modelName))).toEqual({ present: false, passed: true, tolerance: 0, cases: [] });
  });

  it('passes when the pipeline reproduces the expected probabilities', async () => {
    await writeFile(path.join(dir, 'golden/cases.json'), JSON.stringify({ cases: [{ input: `golden/${goldenFile}`, probabilities: expected }] }));
    const report = await runGoldenCases(model);
    expect(report.passed).toBe(true);
    expect(report.tolerance).toBe(1e-4);
    expect(report.cases[0]?.maxAbsDiff).toBeLessThan(1e-4);
  });

  it('fails a case whose expected outputs differ, and one whose image cannot be read, and names both', async () => {
    const wrong = expected.map((p) => p + 0.01);
    await writeFile(path.join(dir, 'golden/not-an-image.dcm'), 'hello');
    await writeFile(
      path.join(dir, 'golden/cases.json'),
      JSON.stringify({ tolerance: 1e-3, cases: [{ input: `golden/${goldenFile}`, probabilities: wrong }, { input: 'golden/not-an-image.dcm', probabilities: expected }] }),
    );
    const report = await runGoldenCases(model);
    expect(report.passed).toBe(false);
    expect(report.cases[0]).toMatchObject({ ok: false });
    expect(report.cases[0]?.maxAbsDiff).toBeCloseTo(0.01, 3);
    expect(report.cases[1]).toMatchObject({ ok: false, maxAbsDiff: null, error: { code: 'CXR_NOT_DICOM' } });
  });

  it('refuses a cases file that points outside the model folder or is malformed', async () => {
    await writeFile(path.join(dir, 'golden/cases.json'), JSON.stringify({ cases: [{ input: '../../etc/passwd', probabilities: [0.1] }] }));
    await expect(readGoldenCases(dir)).rejects.toThrow(/outside the model folder/u);
    await writeFile(path.join(dir, 'golden/cases.json'), JSON.stringify({ cases: [] }));
    await expect(readGoldenCases(dir)).rejects.toMatchObject({ code: 'CXR_MANIFEST_INVALID' });
  });
});
