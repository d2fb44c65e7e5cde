import { cpSync, mkdtempSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CxrError } from '../errors/index.js';
import { modelsDir } from '../test-support/shared.js';
import { loadModel } from './load-model.js';
import { manifestProblems } from './manifest.js';

const squeezenet = path.join(modelsDir, 'squeezenet-pneumonia-peds');
const manifest = JSON.parse(readFileSync(path.join(squeezenet, 'manifest.json'), 'utf8')) as Record<string, unknown>;

/** A model folder whose manifest is edited; the model file is linked, not copied. */
function modelWith(edit: (m: Record<string, unknown>) => void, modelFile = path.join(squeezenet, 'model.onnx')): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cxr-model-'));
  const copy = structuredClone(manifest);
  edit(copy);
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(copy));
  symlinkSync(modelFile, path.join(dir, 'model.onnx'));
  return dir;
}

async function codeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CxrError) return err.code;
    throw err;
  }
  return 'no error';
}

describe('loadModel', () => {
  it('loads a valid model and names it', async () => {
    const model = await loadModel(squeezenet);
    expect(model.identity).toEqual({ name: 'squeezenet-pneumonia-peds', version: '1.0.0', sha256: manifest.sha256 });
    const out = await model.run(new Float32Array(3 * 224 * 224));
    expect(out.raw).toHaveLength(3);
    expect(out.cam).toMatchObject({ labels: 3, height: 13, width: 13 });
    await model.close();
  });

  it('lists every manifest problem at once', () => {
    const problems = manifestProblems({ ...manifest, schemaVersion: 2, sha256: 'xyz', input: { ...(manifest.input as object), channels: 2 } });
    expect(problems.some((p) => p.startsWith('/schemaVersion'))).toBe(true);
    expect(problems.some((p) => p.startsWith('/sha256'))).toBe(true);
    expect(problems.some((p) => p.startsWith('/input/channels'))).toBe(true);
  });

  it('refuses a model whose file does not match its sha256', async () => {
    const tampered = mkdtempSync(path.join(tmpdir(), 'cxr-tampered-'));
    cpSync(squeezenet, tampered, { recursive: true });
    const bytes = readFileSync(path.join(tampered, 'model.onnx'));
    bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    writeFileSync(path.join(tampered, 'model.onnx'), bytes);
    expect(await codeOf(loadModel(tampered))).toBe('CXR_MODEL_HASH_MISMATCH');
  });

  it('refuses a manifest whose labels or input names disagree with the model', async () => {
    const labels = manifest.labels as unknown[];
    expect(await codeOf(loadModel(modelWith((m) => (m.labels = labels.slice(0, 2)))))).toBe('CXR_MODEL_SHAPE_MISMATCH');
    expect(await codeOf(loadModel(modelWith((m) => (m.input = { ...(m.input as object), name: 'pixels' }))))).toBe('CXR_MODEL_SHAPE_MISMATCH');
    expect(await codeOf(loadModel(modelWith((m) => (m.input = { ...(m.input as object), height: 256 }))))).toBe('CXR_MODEL_SHAPE_MISMATCH');
  });

  it('refuses an invalid manifest and a missing folder with their codes', async () => {
    expect(await codeOf(loadModel(modelWith((m) => delete m.labels)))).toBe('CXR_MANIFEST_INVALID');
    expect(await codeOf(loadModel(path.join(tmpdir(), 'no-such-model')))).toBe('CXR_FILE_NOT_FOUND');
  });
});
