/**
 * Makes the small TF.js chest X-ray model of model-registry/models/tiny-cxr-tfjs, deterministically:
 *
 *   cd /work/main && npx tsx inference/scripts/make-tfjs-model.ts [OUT_DIR]
 *
 * A layers model (three strided 3x3 convolutions, a 1x1 convolution to one map per label, global average pooling,
 * sigmoid), 1 channel 128x128 NHWC, 3 labels, with a `cam` output [N, labels, 16, 16]. Its weights come from a fixed
 * seed, so it is NOT DIAGNOSTIC: it exists to check the TF.js runtime, the registry's validation and the edge's sync.
 * Writes model.json, the weight shards, manifest.json (v1, runtime "tfjs", every shard's sha256 in `files`), and
 * golden/ with three NIH ChestX-ray14 images shrunk to 256x256 and the probabilities the whole pipeline gives them.
 * Rerunning it writes the same bytes.
 */
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as tf from '@tensorflow/tfjs-core';
import * as tfl from '@tensorflow/tfjs-layers';
import sharp from 'sharp';
import type { Label, ModelManifest } from '../src/contracts/index.js';
import { analyzeBytes } from '../src/pipeline/index.js';
import { GOLDEN_CASES_FILE, loadModel, sha256Hex, type GoldenCases } from '../src/runtime/index.js';
import { tfjsBackendReady } from '../src/runtime/tfjs.js';

const root = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));
const outDir = path.resolve(process.argv[2] ?? path.join(root, 'model-registry/models/tiny-cxr-tfjs'));
const nihDir = path.resolve(root, '../shared/eval/nih-chestxray14-sample');

const SEED = 20_260_601;
const SIZE = 128;
/** Small on purpose so the model has two shards and the multi-shard path is used (tfjs's converter cuts at 4 MB). */
const SHARD_BYTES = 16 * 1024;
const GOLDEN_SIZE = 256;

/** No finding; pneumothorax; effusion with cardiomegaly (labels.csv of the NIH sample). */
const GOLDEN_IMAGES = ['00000129_000.png', '00000920_000.png', '00020537_000.png'];

/** Codes, names and priorities as in the 18-label shared model (densenet121-cxr18-random). */
const LABELS: Label[] = [
  { code: 'pneumothorax', display: 'Pneumothorax', displayVi: 'Tràn khí màng phổi', threshold: 0.5, priority: 'stat', role: 'finding' },
  { code: 'effusion', display: 'Effusion', displayVi: 'Tràn dịch màng phổi', threshold: 0.5, priority: 'urgent', role: 'finding' },
  { code: 'cardiomegaly', display: 'Cardiomegaly', displayVi: 'Bóng tim to', threshold: 0.5, priority: 'routine', role: 'finding' },
];

/** mulberry32: a tiny PRNG whose stream depends only on the seed (Math.random cannot be seeded). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function buildModel(): tfl.LayersModel {
  const input = tfl.input({ shape: [SIZE, SIZE, 1], name: 'input', dtype: 'float32' });
  let x: tfl.SymbolicTensor = input;
  for (const [i, filters] of [8, 16, 32].entries()) {
    x = tfl.layers.conv2d({ filters, kernelSize: 3, strides: 2, padding: 'same', activation: 'relu', name: `conv${i + 1}` }).apply(x) as tfl.SymbolicTensor;
  }
  // One logit map per label: its spatial mean is the label's logit, so the map is the class activation map itself.
  const classMap = tfl.layers.conv2d({ filters: LABELS.length, kernelSize: 1, name: 'class_map' }).apply(x) as tfl.SymbolicTensor;
  const pooled = tfl.layers.globalAveragePooling2d({ name: 'pool' }).apply(classMap) as tfl.SymbolicTensor;
  const probs = tfl.layers.activation({ activation: 'sigmoid', name: 'probs' }).apply(pooled) as tfl.SymbolicTensor;
  const cam = tfl.layers.permute({ dims: [3, 1, 2], name: 'cam' }).apply(classMap) as tfl.SymbolicTensor;
  const model = tfl.model({ inputs: input, outputs: [probs, cam], name: 'tiny_cxr' });

  // He-uniform kernels from the seeded stream; zero biases except the last, which centres the logits.
  const random = prng(SEED);
  const weights = model.weights.map((w) => {
    // A weight's shape is always known; the type allows null for symbolic batch dimensions.
    const shape = w.shape.map((d) => d ?? 1);
    const size = shape.reduce((a, b) => a * b, 1);
    const values = new Float32Array(size);
    if (shape.length === 4) {
      const [kh = 1, kw = 1, inChannels = 1] = shape;
      // The class map's kernel is scaled up so that images differ in their outputs by more than a rounding step.
      const gain = w.originalName.startsWith('class_map/') ? 4 : 1;
      const limit = gain * Math.sqrt(6 / (kh * kw * inChannels));
      for (let i = 0; i < size; i++) values[i] = (random() * 2 - 1) * limit;
    } else if (w.originalName.startsWith('class_map/')) {
      values.set([-0.5, 0.63, 1.2]);
    }
    return tf.tensor(values, shape, 'float32');
  });
  model.setWeights(weights);
  tf.dispose(weights);
  return model;
}

interface SavedLayers {
  readonly modelTopology: object;
  readonly weightSpecs: tf.io.WeightsManifestEntry[];
  readonly weightData: Uint8Array;
}

async function saveToMemory(model: tfl.LayersModel): Promise<SavedLayers> {
  let saved: SavedLayers | undefined;
  await model.save(
    tf.io.withSaveHandler(async (artifacts) => {
      const data = artifacts.weightData;
      if (!artifacts.modelTopology || !artifacts.weightSpecs || !data) throw new Error('tfjs-layers saved no topology or weights');
      const buffer = Array.isArray(data) ? tf.io.concatenateArrayBuffers(data) : data;
      saved = { modelTopology: artifacts.modelTopology, weightSpecs: artifacts.weightSpecs, weightData: new Uint8Array(buffer) };
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    }),
  );
  if (!saved) throw new Error('tfjs-layers did not call the save handler');
  return saved;
}

async function writeFileMade(relative: string, bytes: Uint8Array | string): Promise<void> {
  const file = path.join(outDir, relative);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, bytes);
}

async function main(): Promise<void> {
  await tfjsBackendReady();
  const model = buildModel();
  const saved = await saveToMemory(model);
  model.dispose();

  await rm(outDir, { recursive: true, force: true });
  const count = Math.ceil(saved.weightData.length / SHARD_BYTES);
  const shards = Array.from({ length: count }, (_, i) => ({
    path: `group1-shard${i + 1}of${count}.bin`,
    bytes: saved.weightData.subarray(i * SHARD_BYTES, (i + 1) * SHARD_BYTES),
  }));
  const modelJson = {
    format: 'layers-model',
    generatedBy: `TensorFlow.js tfjs-layers v${tfl.version_layers}`,
    convertedBy: null,
    modelTopology: saved.modelTopology,
    weightsManifest: [{ paths: shards.map((s) => s.path), weights: saved.weightSpecs }],
  };
  const modelJsonText = JSON.stringify(modelJson);
  await writeFileMade('model.json', modelJsonText);
  for (const shard of shards) await writeFileMade(shard.path, shard.bytes);

  const manifest: ModelManifest = {
    schemaVersion: 1,
    name: 'tiny-cxr-tfjs',
    version: '1.0.0',
    description: `TF.js layers model, 1 channel 128x128 (NHWC inside the model), 3 sigmoid outputs and a 16x16 cam. RANDOM WEIGHTS (seed ${SEED}), made by inference/scripts/make-tfjs-model.ts to check the TF.js runtime. NOT DIAGNOSTIC.`,
    runtime: 'tfjs',
    file: 'model.json',
    sha256: sha256Hex(Buffer.from(modelJsonText)),
    files: shards.map((s) => ({ path: s.path, sha256: sha256Hex(s.bytes) })),
    input: {
      name: 'input',
      channels: 1,
      height: SIZE,
      width: SIZE,
      intensity: 'window',
      crop: 'center-square',
      resize: 'area',
      quantize: null,
      normalize: { scale: 2, offset: -1 },
    },
    outputs: { probabilities: { name: 'probs', activation: 'none' }, cam: { name: 'cam' } },
    labels: LABELS,
    applicability: { modalities: ['CR', 'DX'], bodyParts: ['CHEST'], views: ['PA', 'AP'] },
  };
  await writeFileMade('manifest.json', `${JSON.stringify(manifest, null, 2)}\n`);

  const inputs: string[] = [];
  for (const image of GOLDEN_IMAGES) {
    const png = await sharp(await readFile(path.join(nihDir, image)))
      .resize(GOLDEN_SIZE, GOLDEN_SIZE, { kernel: 'lanczos3' })
      .greyscale()
      .png({ compressionLevel: 9 })
      .toBuffer();
    const relative = `golden/${image}`;
    await writeFileMade(relative, png);
    inputs.push(relative);
  }
  // Expected outputs come from the whole pipeline (PNG decode, preprocessing, this runtime), as runGoldenCases checks them.
  const loaded = await loadModel(outDir);
  const golden: GoldenCases = { tolerance: 1e-4, cases: [] };
  try {
    for (const input of inputs) {
      const { result } = await analyzeBytes(await readFile(path.join(outDir, input)), loaded, { force: true });
      golden.cases.push({ input, probabilities: result.probabilities ?? [] });
    }
  } finally {
    await loaded.close();
  }
  await writeFileMade(GOLDEN_CASES_FILE, `${JSON.stringify(golden, null, 2)}\n`);
  console.log(JSON.stringify({ outDir, sha256: manifest.sha256, shards: manifest.files, golden: golden.cases }, null, 2));
}

await main();
