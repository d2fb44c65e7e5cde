import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ModelInput } from '../contracts/index.js';
import { loadModel, readManifest, type LoadedModel } from '../runtime/index.js';
import { isLossy, modelNames, modelsDir, referenceProbabilities, referenceTensor, sharedDicomFiles } from '../test-support/shared.js';
import { analyzeFile, preprocessBytes } from './index.js';

/** Back to the [0, 1] intensity space the tolerances of ../shared/README.md are stated in. */
function toUnit(tensor: Float32Array, input: ModelInput): Float64Array {
  const plane = input.height * input.width;
  const out = new Float64Array(tensor.length);
  const n = input.normalize;
  for (let i = 0; i < tensor.length; i++) {
    const c = Math.floor(i / plane);
    const v = tensor[i] ?? 0;
    out[i] = 'scale' in n ? (v - n.offset) / n.scale : v * (n.std[c] ?? n.std[0] ?? 1) + (n.mean[c] ?? n.mean[0] ?? 0);
  }
  return out;
}

const files = sharedDicomFiles();

describe.each(modelNames)('preprocessing for %s equals the reference tensors', (modelName) => {
  const modelDir = path.join(modelsDir, modelName);

  it('covers all 22 shared files', () => {
    expect(files).toHaveLength(22);
  });

  it.each(files.map((f) => [path.basename(f), f]))('%s', async (_name, file) => {
    const manifest = await readManifest(modelDir);
    const tensor = await preprocessBytes(readFileSync(file), manifest.input);
    const reference = referenceTensor(modelName, file);
    expect(tensor.length).toBe(reference.length);
    if (!isLossy(file)) {
      // Steps 1 to 7 in double precision, as the reference computes them: the same float32 tensor to the bit, so no
      // value near a rounding tie of `quantize: 8` may round the other way.
      let differing = 0;
      for (let i = 0; i < reference.length; i++) if (!Object.is(tensor[i], reference[i])) differing++;
      expect(differing).toBe(0);
      return;
    }
    // A lossy codestream may decode a step apart from the reference's decoder: ../shared/README.md's tolerance.
    const ours = toUnit(tensor, manifest.input);
    const ref = toUnit(reference, manifest.input);
    let max = 0;
    let sum = 0;
    for (let i = 0; i < ref.length; i++) {
      const d = Math.abs((ours[i] ?? 0) - (ref[i] ?? 0));
      sum += d;
      max = Math.max(max, d);
    }
    expect(max).toBeLessThanOrEqual(0.01);
    expect(sum / ref.length).toBeLessThanOrEqual(0.001);
  });
});

describe.each(modelNames)('probabilities of %s reproduce the reference', (modelName) => {
  let model: LoadedModel;
  beforeAll(async () => {
    model = await loadModel(path.join(modelsDir, modelName), { intraOpThreads: 2 });
  });
  afterAll(async () => {
    await model.close();
  });

  it.each(files.map((f) => [path.basename(f), f]))('%s', async (name, file) => {
    const expected = referenceProbabilities(modelName)[name];
    expect(expected).toBeDefined();
    const { result } = await analyzeFile(file, model, { force: true });
    expect(result.probabilities).toHaveLength(expected?.length ?? -1);
    (expected ?? []).forEach((p, i) => {
      expect(Math.abs((result.probabilities?.[i] ?? NaN) - p)).toBeLessThanOrEqual(1e-4);
    });
    expect(result.model).toEqual({ name: model.manifest.name, version: model.manifest.version, sha256: model.manifest.sha256 });
  });
});
