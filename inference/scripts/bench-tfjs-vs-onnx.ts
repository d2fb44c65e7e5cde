/**
 * Speed of the TF.js runtime against ONNX Runtime on the same network:
 *
 *   cd /work/main && npx tsx inference/scripts/bench-tfjs-vs-onnx.ts [RUNS]
 *
 * Two networks: model-registry/models/tiny-cxr-tfjs as committed (128x128, 8-16-32 filters), and a wider one made
 * here (224x224, 32-64-128-256 filters, about 0.2 GFLOP). Each gets an ONNX twin (same weights, NCHW, the same
 * `probs` and `cam` outputs) in a temporary folder; the script checks that both runtimes give the same outputs, then
 * times `LoadedModel.run` on one tensor after a warm-up and prints JSON. A measurement, not a test.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import type { ModelManifest } from '../src/contracts/index.js';
import { loadModel, sha256Hex, type LoadedModel } from '../src/runtime/index.js';
import { tfjsBackendFeatures } from '../src/runtime/tfjs.js';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const tinyDir = path.join(root, 'model-registry/models/tiny-cxr-tfjs');
const runs = Number(process.argv[2] ?? 300);

// --- a minimal protobuf writer, enough for an ONNX ModelProto (onnx.proto3 field numbers) ---
type Field = Uint8Array;
function varint(n: number | bigint): number[] {
  let v = BigInt.asUintN(64, BigInt(n));
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) byte |= 0x80;
    out.push(byte);
  } while (v > 0n);
  return out;
}
const int = (field: number, n: number): Field => Uint8Array.from([...varint(field << 3), ...varint(n)]);
const bytes = (field: number, data: Uint8Array): Field => Uint8Array.from([...varint((field << 3) | 2), ...varint(data.length), ...data]);
const str = (field: number, s: string): Field => bytes(field, new TextEncoder().encode(s));
const msg = (field: number, ...parts: Field[]): Field => bytes(field, Buffer.concat(parts));

const FLOAT = 1;
const INT64 = 7;
const attrInts = (name: string, values: number[]): Field => msg(5, str(1, name), int(20, 7), ...values.map((v) => int(8, v)));
const node = (op: string, inputs: string[], outputs: string[], ...attrs: Field[]): Field =>
  msg(1, ...inputs.map((i) => str(1, i)), ...outputs.map((o) => str(2, o)), str(3, outputs[0] ?? op), str(4, op), ...attrs);
const initializer = (name: string, dims: number[], type: number, raw: Uint8Array): Field => msg(5, ...dims.map((d) => int(1, d)), int(2, type), str(8, name), bytes(9, raw));
const valueInfo = (field: number, name: string, dims: (number | string)[]): Field =>
  msg(field, str(1, name), msg(2, msg(1, int(1, FLOAT), msg(2, ...dims.map((d) => (typeof d === 'number' ? msg(1, int(1, d)) : msg(1, str(2, d))))))));

interface Weight {
  readonly name: string;
  readonly shape: number[];
  readonly values: Float32Array;
}

async function readTfjsWeights(tfjsDir: string): Promise<Map<string, Weight>> {
  const modelJson = JSON.parse(await readFile(path.join(tfjsDir, 'model.json'), 'utf8')) as {
    weightsManifest: { paths: string[]; weights: { name: string; shape: number[]; dtype: string }[] }[];
  };
  const weights = new Map<string, Weight>();
  for (const group of modelJson.weightsManifest) {
    const data = Buffer.concat(await Promise.all(group.paths.map((p) => readFile(path.join(tfjsDir, p)))));
    const floats = new Float32Array(data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength));
    let offset = 0;
    for (const w of group.weights) {
      const size = w.shape.reduce((a, b) => a * b, 1);
      weights.set(w.name, { name: w.name, shape: w.shape, values: floats.slice(offset, offset + size) });
      offset += size;
    }
  }
  return weights;
}

/** TF's HWIO kernel as ONNX's OIHW. */
function oihw(w: Weight): { dims: number[]; raw: Uint8Array } {
  const [h = 1, wd = 1, i = 1, o = 1] = w.shape;
  const out = new Float32Array(w.values.length);
  for (let a = 0; a < h; a++) for (let b = 0; b < wd; b++) for (let c = 0; c < i; c++) for (let d = 0; d < o; d++) out[((d * i + c) * h + a) * wd + b] = w.values[((a * wd + b) * i + c) * o + d] ?? 0;
  return { dims: [o, i, h, wd], raw: new Uint8Array(out.buffer) };
}

/** The ONNX twin of a TF.js folder made of strided 3x3 `conv1..convK` (ReLU), a 1x1 `class_map`, mean, sigmoid. */
async function writeOnnxTwin(tfjsDir: string, dir: string): Promise<void> {
  const weights = await readTfjsWeights(tfjsDir);
  const manifest = JSON.parse(await readFile(path.join(tfjsDir, 'manifest.json'), 'utf8')) as ModelManifest;
  const get = (name: string): Weight => {
    const w = weights.get(name);
    if (!w) throw new Error(`no weight ${name} in model.json`);
    return w;
  };
  const convs = [...weights.keys()].filter((k) => /^conv\d+\/kernel$/u.test(k)).map((k) => k.split('/')[0] ?? '');
  const nodes: Field[] = [];
  const inits: Field[] = [];
  let x = 'input';
  for (const layer of [...convs, 'class_map']) {
    const kernel = oihw(get(`${layer}/kernel`));
    const bias = get(`${layer}/bias`);
    inits.push(initializer(`${layer}_w`, kernel.dims, FLOAT, kernel.raw), initializer(`${layer}_b`, bias.shape, FLOAT, new Uint8Array(bias.values.buffer)));
    const strided = layer !== 'class_map';
    // TF's "same" padding with stride 2 on an even size pads one row and column at the end only.
    const attrs = strided ? [attrInts('strides', [2, 2]), attrInts('pads', [0, 0, 1, 1]), attrInts('kernel_shape', [3, 3])] : [attrInts('kernel_shape', [1, 1])];
    const out = strided ? `${layer}_conv` : 'cam';
    nodes.push(node('Conv', [x, `${layer}_w`, `${layer}_b`], [out], ...attrs));
    if (strided) nodes.push(node('Relu', [out], [`${layer}_relu`]));
    x = strided ? `${layer}_relu` : 'cam';
  }
  inits.push(initializer('flat_shape', [2], INT64, new Uint8Array(new BigInt64Array([0n, -1n]).buffer)));
  nodes.push(node('GlobalAveragePool', ['cam'], ['pooled']), node('Reshape', ['pooled', 'flat_shape'], ['logits']), node('Sigmoid', ['logits'], ['probs']));
  const { height, width } = manifest.input;
  const labels = manifest.labels.length;
  const graph = msg(7, ...nodes, str(2, 'twin'), ...inits, valueInfo(11, 'input', ['N', 1, height, width]), valueInfo(12, 'probs', ['N', labels]), valueInfo(12, 'cam', ['N', labels, 'h', 'w']));
  const model = Buffer.concat([int(1, 8), str(2, 'bench-tfjs-vs-onnx'), graph, msg(8, str(1, ''), int(2, 13))]);
  await writeFile(path.join(dir, 'model.onnx'), model);
  const { files: _shards, ...rest } = manifest;
  const twin: ModelManifest = { ...rest, name: `${manifest.name}-onnx-twin`, runtime: 'onnx', file: 'model.onnx', sha256: sha256Hex(model) };
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(twin));
}

/** A wider network of the same shape as a TF.js folder (random weights, one shard: speed only). */
async function writeWideTfjs(dir: string, size: number, filters: number[]): Promise<void> {
  const input = tfl.input({ shape: [size, size, 1], name: 'input' });
  let x: tfl.SymbolicTensor = input;
  filters.forEach((f, i) => {
    x = tfl.layers.conv2d({ filters: f, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: `conv${i + 1}`, kernelInitializer: 'heUniform' }).apply(x) as tfl.SymbolicTensor;
  });
  const classMap = tfl.layers.conv2d({ filters: 3, kernelSize: 1, name: 'class_map' }).apply(x) as tfl.SymbolicTensor;
  const probs = tfl.layers.activation({ activation: 'sigmoid', name: 'probs' }).apply(tfl.layers.globalAveragePooling2d({ name: 'pool' }).apply(classMap)) as tfl.SymbolicTensor;
  const cam = tfl.layers.permute({ dims: [3, 1, 2], name: 'cam' }).apply(classMap) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: [probs, cam] });
  let modelJson = '';
  let shard = new Uint8Array();
  await model.save(
    tf.io.withSaveHandler(async (a) => {
      const data = a.weightData;
      shard = new Uint8Array(Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : (data ?? new ArrayBuffer(0)));
      modelJson = JSON.stringify({ format: 'layers-model', modelTopology: a.modelTopology, weightsManifest: [{ paths: ['weights.bin'], weights: a.weightSpecs ?? [] }] });
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(a) };
    }),
  );
  model.dispose();
  const tiny = JSON.parse(await readFile(path.join(tinyDir, 'manifest.json'), 'utf8')) as ModelManifest;
  const manifest: ModelManifest = {
    ...tiny,
    name: 'wide-cxr-tfjs',
    sha256: sha256Hex(Buffer.from(modelJson)),
    files: [{ path: 'weights.bin', sha256: sha256Hex(shard) }],
    input: { ...tiny.input, height: size, width: size },
  };
  await writeFile(path.join(dir, 'model.json'), modelJson);
  await writeFile(path.join(dir, 'weights.bin'), shard);
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest));
}

async function time(model: LoadedModel, input: Float32Array): Promise<{ medianMs: number; p95Ms: number }> {
  for (let i = 0; i < 20; i++) await model.run(input);
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    await model.run(input);
    ms.push(performance.now() - t);
  }
  ms.sort((a, b) => a - b);
  const at = (q: number): number => Math.round((ms[Math.min(ms.length - 1, Math.floor(q * ms.length))] ?? 0) * 1000) / 1000;
  return { medianMs: at(0.5), p95Ms: at(0.95) };
}

async function compare(tfjsDir: string, twinDir: string): Promise<Record<string, unknown>> {
  await writeOnnxTwin(tfjsDir, twinDir);
  let t = performance.now();
  const tfjs = await loadModel(tfjsDir);
  const tfjsLoadMs = Math.round(performance.now() - t);
  t = performance.now();
  const onnx1 = await loadModel(twinDir, { intraOpThreads: 1 });
  const onnxLoadMs = Math.round(performance.now() - t);
  const onnx2 = await loadModel(twinDir, { intraOpThreads: 2 });
  const { height, width } = tfjs.manifest.input;
  const input = Float32Array.from({ length: height * width }, (_, i) => Math.sin(i / 37) * 0.8);
  const [a, b] = [await tfjs.run(input), await onnx1.run(input)];
  const maxDiff = (x: Float32Array, y: Float32Array | undefined): number => Math.max(...x.map((v, i) => Math.abs(v - (y?.[i] ?? Number.NaN))));
  const agreement = { probs: maxDiff(a.raw, b.raw), cam: maxDiff(a.cam?.data ?? new Float32Array(), b.cam?.data) };
  const result = {
    model: `${tfjs.manifest.name} ${height}x${width}`,
    agreementMaxAbsDiff: agreement,
    tfjsWasm: { loadMs: tfjsLoadMs, ...(await time(tfjs, input)) },
    onnxRuntime1Thread: { loadMs: onnxLoadMs, ...(await time(onnx1, input)) },
    onnxRuntime2Threads: await time(onnx2, input),
  };
  await Promise.all([tfjs.close(), onnx1.close(), onnx2.close()]);
  if (agreement.probs > 1e-5 || agreement.cam > 1e-3) {
    console.error(`${result.model}: the two runtimes disagree`);
    process.exitCode = 1;
  }
  return result;
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(tmpdir(), 'cxr-bench-tfjs-'));
  try {
    const folder = async (name: string): Promise<string> => {
      const d = path.join(dir, name);
      await mkdir(d);
      return d;
    };
    const features = await tfjsBackendFeatures();
    const tiny = await compare(tinyDir, await folder('tiny-onnx'));
    const wideDir = await folder('wide-tfjs');
    await writeWideTfjs(wideDir, 224, [32, 64, 128, 256]);
    const wide = await compare(wideDir, await folder('wide-onnx'));
    console.log(JSON.stringify({ runs, tfjsBackend: features, results: [tiny, wide] }, null, 2));
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
