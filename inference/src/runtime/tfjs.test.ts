import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import { afterAll, describe, expect, it } from 'vitest';
import type { ModelManifest } from '../contracts/index.js';
import { CxrError } from '../errors/index.js';
import { analyzeFile } from '../pipeline/index.js';
import { dicomDir } from '../test-support/shared.js';
import { runGoldenCases } from './golden.js';
import { loadModel, sha256Hex } from './load-model.js';
import { tfjsBackendFeatures, tfjsBackendReady } from './tfjs.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../../', import.meta.url));
const tiny = path.join(root, 'model-registry/models/tiny-cxr-tfjs');
const bin = path.join(root, 'inference/bin/cxr.js');
const dicom = path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm');
const tiniesManifest = JSON.parse(readFileSync(path.join(tiny, 'manifest.json'), 'utf8')) as ModelManifest;
const tmp = mkdtempSync(path.join(tmpdir(), 'cxr-tfjs-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

let folders = 0;
/** A copy of the tiny model's folder, changed by `edit` (which gets the folder path). */
function tinyCopy(edit: (dir: string) => void = () => {}): string {
  const dir = path.join(tmp, `tiny-${++folders}`);
  cpSync(tiny, dir, { recursive: true });
  edit(dir);
  return dir;
}

function editJson<T>(file: string, edit: (json: T) => void): void {
  const json = JSON.parse(readFileSync(file, 'utf8')) as T;
  edit(json);
  writeFileSync(file, JSON.stringify(json));
}

async function failure(promise: Promise<unknown>): Promise<CxrError> {
  try {
    await promise;
  } catch (err) {
    if (err instanceof CxrError) return err;
    throw err;
  }
  throw new Error('expected the promise to fail');
}

describe('TF.js runtime (tfjs + WebAssembly backend)', () => {
  it('loads the tiny model through loadModel and gives probabilities and a [labels, h, w] cam', async () => {
    const handlers = [process.listeners('uncaughtException').length, process.listeners('unhandledRejection').length];
    const model = await loadModel(tiny);
    // The first load starts the WebAssembly module; Emscripten's process-wide handlers are taken off again.
    expect([process.listeners('uncaughtException').length, process.listeners('unhandledRejection').length]).toEqual(handlers);
    try {
      expect(model.identity).toEqual({ name: 'tiny-cxr-tfjs', version: '1.0.0', sha256: tiniesManifest.sha256 });
      expect(model.manifest.runtime).toBe('tfjs');
      const out = await model.run(new Float32Array(128 * 128).fill(0.25));
      expect(out.raw).toHaveLength(3);
      expect([...out.raw].every((p) => p > 0 && p < 1)).toBe(true);
      expect(out.cam).toMatchObject({ labels: 3, height: 16, width: 16 });
      expect(out.cam?.data).toHaveLength(3 * 16 * 16);
    } finally {
      await model.close();
    }
    expect(await tfjsBackendFeatures()).toEqual({ backend: 'wasm', simd: true, threads: false });
  });

  it('reproduces its golden cases through the whole pipeline', async () => {
    const model = await loadModel(tiny);
    try {
      const report = await runGoldenCases(model);
      expect(report.present).toBe(true);
      expect(report.cases).toHaveLength(3);
      expect(report.cases.map((c) => c.ok)).toEqual([true, true, true]);
      expect(report.passed).toBe(true);
    } finally {
      await model.close();
    }
  });

  it('fails a golden case when the weights change (re-signed shard), so the cases really check the model', async () => {
    const dir = tinyCopy((d) => {
      const shard = path.join(d, 'group1-shard2of2.bin');
      const bytes = readFileSync(shard);
      new DataView(bytes.buffer, bytes.byteOffset).setFloat32(bytes.length - 4, 3); // the last class_map bias
      writeFileSync(shard, bytes);
      editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => {
        m.files = (m.files ?? []).map((f) => (f.path === 'group1-shard2of2.bin' ? { ...f, sha256: sha256Hex(bytes) } : f));
      });
    });
    const model = await loadModel(dir);
    try {
      const report = await runGoldenCases(model);
      expect(report.passed).toBe(false);
      expect(report.cases.every((c) => !c.ok && (c.maxAbsDiff ?? 0) > 0.1)).toBe(true);
    } finally {
      await model.close();
    }
  });

  it('`cxr infer` runs it on a shared DICOM and prints the same result as the library', async () => {
    const { stdout } = await run(process.execPath, [bin, 'infer', dicom, '--model', tiny, '--json'], { cwd: root });
    const lines = stdout.trim().split('\n');
    expect(lines).toHaveLength(1); // nothing but the result: TF.js logs nothing on stdout
    const result = JSON.parse(lines[0] ?? '') as { model: unknown; applicable: boolean; probabilities: number[]; findings: { code: string }[] };
    expect(result.model).toEqual({ name: 'tiny-cxr-tfjs', version: '1.0.0', sha256: tiniesManifest.sha256 });
    expect(result.applicable).toBe(true);
    expect(result.findings.map((f) => f.code)).toEqual(['pneumothorax', 'effusion', 'cardiomegaly']);
    const model = await loadModel(tiny);
    try {
      const { result: library } = await analyzeFile(dicom, model);
      expect(result.probabilities).toEqual(library.probabilities);
    } finally {
      await model.close();
    }
  });

  it('refuses a tampered weight shard, naming it', async () => {
    const dir = tinyCopy((d) => {
      const shard = path.join(d, 'group1-shard1of2.bin');
      const bytes = readFileSync(shard);
      bytes[100] = (bytes[100] ?? 0) ^ 0x01;
      writeFileSync(shard, bytes);
    });
    const err = await failure(loadModel(dir));
    expect(err.code).toBe('CXR_MODEL_HASH_MISMATCH');
    expect(err.message).toContain('group1-shard1of2.bin has sha256');
    expect(err.message).not.toContain('group1-shard2of2.bin');
  });

  it('refuses a shard the manifest gives no digest for, and a shard outside the folder or behind a URL', async () => {
    const unlisted = tinyCopy((d) => editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => (m.files = m.files?.slice(0, 1))));
    const err = await failure(loadModel(unlisted));
    expect(err.code).toBe('CXR_MODEL_HASH_MISMATCH');
    expect(err.message).toContain('group1-shard2of2.bin');
    expect(err.message).toContain('no sha256');

    for (const shardPath of ['../elsewhere.bin', 'https://example.org/group1-shard2of2.bin']) {
      const dir = tinyCopy((d) => {
        editJson<{ weightsManifest: { paths: string[] }[] }>(path.join(d, 'model.json'), (j) => {
          const group = j.weightsManifest[0];
          if (group) group.paths[1] = shardPath;
        });
        const modelJson = readFileSync(path.join(d, 'model.json'));
        editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => (m.sha256 = sha256Hex(modelJson)));
      });
      const outside = await failure(loadModel(dir));
      expect(outside.code).toBe('CXR_MODEL_LOAD_FAILED');
      expect(outside.message).toContain(`"${shardPath}" is not a file inside the model folder`);
    }
  });

  it('refuses a manifest whose shapes disagree with the model, listing every reason', async () => {
    const dir = tinyCopy((d) =>
      editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => {
        m.input.height = 224;
        m.labels = m.labels.slice(0, 2);
        m.outputs.cam = { name: 'heatmap' };
      }),
    );
    const err = await failure(loadModel(dir));
    expect(err.code).toBe('CXR_MODEL_SHAPE_MISMATCH');
    expect(err.message).toContain('input "input" has shape [N, 128, 128, 1], the manifest says [N, 1, 224, 128]');
    expect(err.message).toContain('output "probs" has shape [N, 3], the manifest has 2 labels');
    expect(err.message).toContain('output "heatmap" not in the model');

    const renamed = tinyCopy((d) => editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => (m.input.name = 'pixels')));
    const nameErr = await failure(loadModel(renamed));
    expect(nameErr.code).toBe('CXR_MODEL_SHAPE_MISMATCH');
    expect(nameErr.message).toContain('input "pixels" not in the model (it has input)');
  });

  it('lists the problems of the manifest "files" with the others', async () => {
    const dir = tinyCopy((d) =>
      editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => {
        const [first] = m.files ?? [];
        if (first) m.files = [first, first, { path: '../outside.bin', sha256: first.sha256 }, { path: 'model.json', sha256: first.sha256 }];
      }),
    );
    const err = await failure(loadModel(dir));
    expect(err.code).toBe('CXR_MANIFEST_INVALID');
    expect(err.message).toContain('/files/1/path: "group1-shard1of2.bin" is listed twice');
    expect(err.message).toContain('/files/2/path: must be a file inside the model folder');
    expect(err.message).toContain('/files/3/path: "model.json" is listed twice (or is the model file)');
  });

  it('refuses a model.json that is not a TF.js model', async () => {
    const dir = tinyCopy((d) => {
      writeFileSync(path.join(d, 'model.json'), '{"hello": "world"}');
      editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => (m.sha256 = sha256Hex(Buffer.from('{"hello": "world"}'))));
    });
    const err = await failure(loadModel(dir));
    expect(err.code).toBe('CXR_MODEL_LOAD_FAILED');
    expect(err.message).toContain('no modelTopology');

    const badShards = tinyCopy((d) => {
      editJson<{ weightsManifest: unknown }>(path.join(d, 'model.json'), (j) => (j.weightsManifest = [{ paths: 'group1-shard1of2.bin' }]));
      editJson<ModelManifest>(path.join(d, 'manifest.json'), (m) => (m.sha256 = sha256Hex(readFileSync(path.join(d, 'model.json')))));
    });
    const shardsErr = await failure(loadModel(badShards));
    expect(shardsErr.code).toBe('CXR_MODEL_LOAD_FAILED');
    expect(shardsErr.message).toContain('a weightsManifest entry needs "paths"');
  });

  it('frees every tensor: the count is the same after each run, and back to where it was after close', async () => {
    const before = tf.memory().numTensors;
    const model = await loadModel(tiny);
    const loaded = tf.memory().numTensors;
    expect(loaded).toBeGreaterThan(before); // the weights
    const input = new Float32Array(128 * 128).map((_, i) => (i % 97) / 97);
    for (let i = 0; i < 5; i++) {
      await model.run(input);
      expect(tf.memory().numTensors).toBe(loaded);
    }
    await expect(model.run(new Float32Array(10))).rejects.toMatchObject({ code: 'CXR_INFERENCE_FAILED' });
    expect(tf.memory().numTensors).toBe(loaded);
    await model.close();
    expect(tf.memory().numTensors).toBe(before);
  });
});

/**
 * Models whose outputs are known exactly: a 1x1 convolution with kernel [1, 2] makes the cam the image itself (label 0)
 * and twice the image (label 1), and the probabilities the sigmoid of their means. The image is 8 rows by 16
 * columns, so a transposition or layout mistake shows.
 */
describe('TF.js input layouts and model formats', () => {
  const height = 8;
  const width = 16;
  const image = Float32Array.from({ length: height * width }, (_, i) => Math.sin(i * 1.7) * (1 + i / 50));
  const mean = image.reduce((a, b) => a + b, 0) / image.length;
  const sigmoid = (x: number): number => 1 / (1 + Math.exp(-x));

  function manifestFor(modelJson: string, shard: Uint8Array): ModelManifest {
    return {
      ...tiniesManifest,
      name: 'identity-cam',
      sha256: sha256Hex(Buffer.from(modelJson)),
      files: [{ path: 'weights.bin', sha256: sha256Hex(shard) }],
      input: { ...tiniesManifest.input, height, width },
      labels: tiniesManifest.labels.slice(0, 2),
    };
  }

  function writeFolder(name: string, modelJson: string, shard: Uint8Array): string {
    const dir = path.join(tmp, name);
    cpSync(tiny, dir, { recursive: true, filter: (src) => src === tiny || src.endsWith('manifest.json') });
    writeFileSync(path.join(dir, 'model.json'), modelJson);
    writeFileSync(path.join(dir, 'weights.bin'), shard);
    writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifestFor(modelJson, shard)));
    return dir;
  }

  async function layersFolder(name: string, layout: 'NHWC' | 'NCHW'): Promise<string> {
    await tfjsBackendReady();
    const channelsFirst = layout === 'NCHW';
    const input = tfl.input({ shape: channelsFirst ? [1, height, width] : [height, width, 1], name: 'input' });
    const dataFormat = channelsFirst ? 'channelsFirst' : 'channelsLast';
    const classMap = tfl.layers.conv2d({ filters: 2, kernelSize: 1, useBias: false, dataFormat, name: 'class_map' }).apply(input) as tfl.SymbolicTensor;
    const probs = tfl.layers
      .activation({ activation: 'sigmoid', name: 'probs' })
      .apply(tfl.layers.globalAveragePooling2d({ dataFormat, name: 'pool' }).apply(classMap)) as tfl.SymbolicTensor;
    const cam = channelsFirst ? tfl.layers.activation({ activation: 'linear', name: 'cam' }).apply(classMap) : tfl.layers.permute({ dims: [3, 1, 2], name: 'cam' }).apply(classMap);
    const model = tfl.model({ inputs: input, outputs: [probs, cam as tfl.SymbolicTensor] });
    const kernel = tf.tensor4d([1, 2], [1, 1, 1, 2]);
    model.setWeights([kernel]);
    kernel.dispose();
    let files: { modelJson: string; shard: Uint8Array } | undefined;
    await model.save(
      tf.io.withSaveHandler(async (a) => {
        const data = a.weightData;
        const shard = new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : (data ?? new ArrayBuffer(0)));
        const weightsManifest = [{ paths: ['weights.bin'], weights: a.weightSpecs ?? [] }];
        files = { modelJson: JSON.stringify({ format: 'layers-model', modelTopology: a.modelTopology, weightsManifest }), shard };
        return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
      }),
    );
    model.dispose();
    if (!files) throw new Error('not saved');
    return writeFolder(name, files.modelJson, files.shard);
  }

  /** The same network as a graph model (the tensorflowjs_converter format), written by hand: NHWC, batch unknown. */
  function graphFolder(name: string): string {
    const float = { type: 'DT_FLOAT' };
    const int = { type: 'DT_INT32' };
    const dims = (...sizes: number[]): { dim: { size: string }[] } => ({ dim: sizes.map((s) => ({ size: String(s) })) });
    const constant = (nodeName: string, dtype: typeof float, shape: number[]): object => ({
      name: nodeName,
      op: 'Const',
      attr: { dtype, value: { tensor: { dtype: dtype.type, tensorShape: dims(...shape) } } },
    });
    const text = (s: string): string => Buffer.from(s).toString('base64');
    const node = [
      { name: 'input', op: 'Placeholder', attr: { dtype: float, shape: { shape: dims(-1, height, width, 1) } } },
      constant('kernel', float, [1, 1, 1, 2]),
      constant('axes', int, [2]),
      constant('perm', int, [4]),
      {
        name: 'class_map',
        op: 'Conv2D',
        input: ['input', 'kernel'],
        attr: { T: float, strides: { list: { i: ['1', '1', '1', '1'] } }, padding: { s: text('VALID') }, data_format: { s: text('NHWC') }, dilations: { list: { i: ['1', '1', '1', '1'] } } },
      },
      { name: 'mean', op: 'Mean', input: ['class_map', 'axes'], attr: { T: float, Tidx: int, keep_dims: { b: false } } },
      { name: 'probs', op: 'Sigmoid', input: ['mean'], attr: { T: float } },
      { name: 'cam', op: 'Transpose', input: ['class_map', 'perm'], attr: { T: float, Tperm: int } },
    ];
    const weights = [
      { name: 'kernel', shape: [1, 1, 1, 2], dtype: 'float32' },
      { name: 'axes', shape: [2], dtype: 'int32' },
      { name: 'perm', shape: [4], dtype: 'int32' },
    ];
    const shard = Buffer.concat([Buffer.from(new Float32Array([1, 2]).buffer), Buffer.from(new Int32Array([1, 2, 0, 3, 1, 2]).buffer)]);
    const modelJson = JSON.stringify({ format: 'graph-model', generatedBy: 'hand', convertedBy: null, modelTopology: { node, versions: { producer: 1 } }, weightsManifest: [{ paths: ['weights.bin'], weights }] });
    return writeFolder(name, modelJson, shard);
  }

  it.each([
    ['layers model, NHWC (transposed by the runtime)', () => layersFolder('layers-nhwc', 'NHWC')],
    ['layers model, NCHW (fed as is)', () => layersFolder('layers-nchw', 'NCHW')],
    ['graph model, NHWC', async () => graphFolder('graph-nhwc')],
  ])('%s: the cam is the image and the probabilities its mean', async (_name, make) => {
    const before = tf.memory().numTensors;
    const model = await loadModel(await make());
    try {
      const out = await model.run(image);
      expect(out.cam).toMatchObject({ labels: 2, height, width });
      const cam = out.cam?.data ?? new Float32Array();
      for (let i = 0; i < image.length; i++) {
        expect(cam[i]).toBeCloseTo(image[i] ?? Number.NaN, 5);
        expect(cam[image.length + i]).toBeCloseTo(2 * (image[i] ?? Number.NaN), 5);
      }
      expect(out.raw[0]).toBeCloseTo(sigmoid(mean), 5);
      expect(out.raw[1]).toBeCloseTo(sigmoid(2 * mean), 5);
      await model.run(image);
    } finally {
      await model.close();
    }
    expect(tf.memory().numTensors).toBe(before);
  });
});
