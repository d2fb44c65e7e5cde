import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { loadGraphModel, type GraphModel } from '@tensorflow/tfjs-converter';
import { loadLayersModel, type LayersModel } from '@tensorflow/tfjs-layers';
import type { ModelManifest } from '../contracts/index.js';
import { CxrError } from '../errors/index.js';
import { modelPathKey, staysInside } from './manifest.js';
import type { ClassActivationMaps, ModelOutput, RuntimeSession } from './types.js';

/**
 * TensorFlow.js runtime: `manifest.file` is a TF.js `model.json` (layers or graph model format) whose weight shards
 * sit beside it. Runs on the WebAssembly backend (`@tensorflow/tfjs-backend-wasm`), since `@tensorflow/tfjs-node`
 * downloads libtensorflow at install time and cannot install on the stations.
 */

/** Bytes of the model folder's files that `loadModel` already checked against the manifest, by normalized relative path. */
export type VerifiedFiles = ReadonlyMap<string, Uint8Array>;

/** Input layout the model takes; the pipeline always hands over NCHW, as the manifest's `[N, channels, height, width]` says. */
export type TfjsInputLayout = 'NCHW' | 'NHWC';

type Dims = readonly (number | null)[] | undefined;

interface TensorSlot {
  readonly name: string;
  readonly shape: Dims;
  readonly dtype: string | undefined;
}

/** What both TF.js model formats offer the session, so the checks and the run loop are written once. */
interface TfjsModel {
  readonly format: 'layers-model' | 'graph-model';
  readonly inputs: readonly TensorSlot[];
  readonly outputs: readonly TensorSlot[];
  predict(input: tf.Tensor, outputNames: readonly string[]): Promise<tf.Tensor[]>;
  dispose(): void;
}

export interface TfjsSession extends RuntimeSession {
  readonly format: 'layers-model' | 'graph-model';
  readonly inputLayout: TfjsInputLayout;
}

let backendReady: Promise<void> | undefined;

/** Starts the WebAssembly backend once per process (per worker thread), reading its .wasm file from node_modules. */
export function tfjsBackendReady(): Promise<void> {
  backendReady ??= startWasmBackend().catch((err: unknown) => {
    backendReady = undefined;
    throw new CxrError('CXR_MODEL_LOAD_FAILED', `TF.js WebAssembly backend: ${err instanceof Error ? err.message : String(err)}`);
  });
  return backendReady;
}

async function startWasmBackend(): Promise<void> {
  const require = createRequire(import.meta.url);
  const dist = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'dist') + path.sep;
  if (!existsSync(path.join(dist, 'tfjs-backend-wasm-simd.wasm'))) throw new Error(`no .wasm files in ${dist}`);
  // An explicit folder: Node reads the binary with fs, never fetch, whatever bundling does to __dirname.
  setWasmPaths(dist);
  // Emscripten's Node glue adds process-wide handlers that rethrow; the host process keeps its own crash handling.
  const exceptionHandlers = new Set(process.listeners('uncaughtException'));
  const rejectionHandlers = new Set(process.listeners('unhandledRejection'));
  try {
    if (!(await tf.setBackend('wasm'))) throw new Error('the wasm backend did not initialise');
    await tf.ready();
  } finally {
    for (const added of process.listeners('uncaughtException')) {
      if (!exceptionHandlers.has(added)) process.removeListener('uncaughtException', added);
    }
    for (const added of process.listeners('unhandledRejection')) {
      if (!rejectionHandlers.has(added)) process.removeListener('unhandledRejection', added);
    }
  }
}

/** Whether the wasm backend uses SIMD and threads here (Node: SIMD yes; threads never, tfjs 4.22 turns them off in Node). */
export async function tfjsBackendFeatures(): Promise<{ backend: string; simd: boolean; threads: boolean }> {
  await tfjsBackendReady();
  return {
    backend: tf.getBackend(),
    simd: Boolean(await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT')),
    threads: Boolean(await tf.env().getAsync('WASM_HAS_MULTITHREAD_SUPPORT')),
  };
}

/** Creates a TF.js model from verified bytes and checks its inputs and outputs against the manifest. */
export async function createTfjsSession(modelJsonBytes: Uint8Array, manifest: ModelManifest, verified: VerifiedFiles): Promise<TfjsSession> {
  await tfjsBackendReady();
  const artifacts = modelArtifacts(modelJsonBytes, manifest, verified);
  let model: TfjsModel;
  try {
    model = artifacts.format === 'graph-model' ? await graphModel(artifacts) : await layersModel(artifacts);
  } catch (err) {
    throw new CxrError('CXR_MODEL_LOAD_FAILED', `${manifest.file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const { problems, layout } = shapeProblems(model, manifest);
  if (problems.length > 0 || !layout) {
    model.dispose();
    throw new CxrError('CXR_MODEL_SHAPE_MISMATCH', problems.join('; '));
  }
  const { input, outputs, labels } = manifest;
  const camName = outputs.cam?.name;
  const fetches = camName ? [outputs.probabilities.name, camName] : [outputs.probabilities.name];
  let closed = false;
  return {
    format: model.format,
    inputLayout: layout,
    async run(tensor: Float32Array): Promise<ModelOutput> {
      if (closed) throw new CxrError('CXR_INFERENCE_FAILED', 'the model was closed');
      const expected = input.channels * input.height * input.width;
      if (tensor.length !== expected) throw new CxrError('CXR_INFERENCE_FAILED', `input has ${tensor.length} values, the model takes ${expected}`);
      const results: tf.Tensor[] = [];
      try {
        const feed = tf.tidy(() => {
          const nchw = tf.tensor4d(tensor, [1, input.channels, input.height, input.width], 'float32');
          return layout === 'NHWC' ? tf.transpose(nchw, [0, 2, 3, 1]) : nchw;
        });
        try {
          results.push(...(await model.predict(feed, fetches)));
        } finally {
          feed.dispose();
        }
        const [probs, camTensor] = results;
        if (!probs) throw new Error(`no output "${outputs.probabilities.name}"`);
        const raw = Float32Array.from(await probs.data<'float32'>());
        if (raw.length !== labels.length) throw new Error(`output "${outputs.probabilities.name}" gave ${raw.length} values for ${labels.length} labels`);
        let cam: ClassActivationMaps | undefined;
        if (camTensor && camTensor.rank === 4) {
          const [, camLabels = 0, height = 0, width = 0] = camTensor.shape;
          cam = { data: Float32Array.from(await camTensor.data<'float32'>()), labels: camLabels, height, width };
        }
        return { raw, cam };
      } catch (err) {
        if (err instanceof CxrError) throw err;
        throw new CxrError('CXR_INFERENCE_FAILED', err instanceof Error ? err.message : String(err));
      } finally {
        tf.dispose(results);
      }
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      model.dispose();
    },
  };
}

interface ModelJson {
  readonly format?: string;
  readonly modelTopology?: unknown;
  readonly weightsManifest?: tf.io.WeightsManifestConfig;
}

/**
 * model.json with its weights joined from the verified shard bytes. A shard path must stay inside the model folder
 * and be listed in the manifest's `files` with its sha256 (loadModel checked those digests); no URL is ever fetched.
 */
function modelArtifacts(modelJsonBytes: Uint8Array, manifest: ModelManifest, verified: VerifiedFiles): tf.io.ModelArtifacts & { format: 'layers-model' | 'graph-model' } {
  let json: ModelJson;
  try {
    json = JSON.parse(Buffer.from(modelJsonBytes).toString('utf8')) as ModelJson;
  } catch (err) {
    throw new CxrError('CXR_MODEL_LOAD_FAILED', `${manifest.file} is not JSON: ${(err as Error).message}`);
  }
  if (typeof json !== 'object' || json === null || typeof json.modelTopology !== 'object' || json.modelTopology === null) {
    throw new CxrError('CXR_MODEL_LOAD_FAILED', `${manifest.file} is not a TF.js model.json (no modelTopology)`);
  }
  const format = modelFormat(json);
  const groups = json.weightsManifest ?? [];
  if (!Array.isArray(groups)) throw new CxrError('CXR_MODEL_LOAD_FAILED', `${manifest.file}: weightsManifest is not a list`);
  const folder = path.posix.dirname(modelPathKey(manifest.file));
  const shards: Uint8Array[] = [];
  const unverified: string[] = [];
  const weightSpecs: tf.io.WeightsManifestEntry[] = [];
  for (const group of groups) {
    if (!Array.isArray(group?.paths) || !Array.isArray(group.weights) || !group.paths.every((p) => typeof p === 'string')) {
      throw new CxrError('CXR_MODEL_LOAD_FAILED', `${manifest.file}: a weightsManifest entry needs "paths" (file names) and "weights" lists`);
    }
    for (const shardPath of group.paths) {
      if (/^[a-z][a-z0-9+.-]*:/iu.test(shardPath) || !staysInside(shardPath)) {
        throw new CxrError('CXR_MODEL_LOAD_FAILED', `${manifest.file}: weight shard "${shardPath}" is not a file inside the model folder`);
      }
      const relative = modelPathKey(path.posix.join(folder, shardPath));
      const bytes = verified.get(relative);
      if (bytes) shards.push(bytes);
      else unverified.push(relative);
    }
    weightSpecs.push(...group.weights);
  }
  if (unverified.length > 0) {
    throw new CxrError('CXR_MODEL_HASH_MISMATCH', `weight shard(s) ${unverified.join(', ')} of ${manifest.file} have no sha256 in the manifest's "files"`);
  }
  const weightData = Buffer.concat(shards);
  return {
    format,
    modelTopology: json.modelTopology as tf.io.ModelArtifacts['modelTopology'],
    weightSpecs,
    // A copy that starts at offset 0: tfjs reads weights from the whole ArrayBuffer.
    weightData: weightData.buffer.slice(weightData.byteOffset, weightData.byteOffset + weightData.byteLength),
  };
}

function modelFormat(json: ModelJson): 'layers-model' | 'graph-model' {
  if (json.format === 'layers-model' || json.format === 'graph-model') return json.format;
  if (json.format !== undefined) throw new CxrError('CXR_MODEL_LOAD_FAILED', `model.json format "${json.format}" is neither layers-model nor graph-model`);
  // Older converters wrote no format: a graph model's topology is a GraphDef with nodes.
  return Array.isArray((json.modelTopology as { node?: unknown }).node) ? 'graph-model' : 'layers-model';
}

/** An IOHandler over bytes already in memory: TF.js never touches the file system or the network itself. */
function memoryHandler(artifacts: tf.io.ModelArtifacts): tf.io.IOHandler {
  return { load: async () => artifacts };
}

async function layersModel(artifacts: tf.io.ModelArtifacts): Promise<TfjsModel> {
  const model: LayersModel = await loadLayersModel(memoryHandler(artifacts), { strict: true });
  const slot = (name: string, t: { shape: (number | null)[]; dtype: string } | undefined): TensorSlot => ({ name, shape: t?.shape, dtype: t?.dtype });
  return {
    format: 'layers-model',
    inputs: model.inputNames.map((name, i) => slot(name, model.inputs[i])),
    outputs: model.outputNames.map((name, i) => slot(name, model.outputs[i])),
    async predict(input, outputNames) {
      const all = model.predict(input);
      const list = Array.isArray(all) ? all : [all];
      const picked = outputNames.map((name) => list[model.outputNames.indexOf(name)]);
      // Outputs not asked for are freed now; the caller frees the picked ones.
      tf.dispose(list.filter((t) => !picked.includes(t)));
      return picked.filter((t): t is tf.Tensor => t !== undefined);
    },
    dispose: () => void model.dispose(),
  };
}

async function graphModel(artifacts: tf.io.ModelArtifacts): Promise<TfjsModel> {
  const model: GraphModel = await loadGraphModel(memoryHandler(artifacts));
  const slot = (info: { name: string; shape?: number[]; dtype: string }): TensorSlot => ({
    name: info.name.replace(/:0$/u, ''),
    // Graph models write unknown dimensions as -1.
    shape: info.shape?.map((d) => (d < 0 ? null : d)),
    dtype: info.dtype,
  });
  const inputs = model.inputs.map(slot);
  // execute() runs plain graphs; one with control flow or dynamic shapes needs executeAsync(), learnt on first run.
  let dynamic = false;
  return {
    format: 'graph-model',
    inputs,
    outputs: model.outputs.map(slot),
    async predict(input, outputNames) {
      const feed = { [inputs[0]?.name ?? '']: input };
      if (!dynamic) {
        try {
          const out = model.execute(feed, [...outputNames]);
          return Array.isArray(out) ? out : [out];
        } catch (err) {
          if (!(err instanceof Error && err.message.includes('executeAsync'))) throw err;
          dynamic = true;
        }
      }
      const out = await model.executeAsync(feed, [...outputNames]);
      return Array.isArray(out) ? out : [out];
    },
    dispose: () => model.dispose(),
  };
}

function knownDim(d: number | null | undefined): d is number {
  return typeof d === 'number' && d >= 0;
}

function showShape(shape: Dims): string {
  return shape ? `[${shape.map((d) => (knownDim(d) ? d : 'N')).join(', ')}]` : 'unknown';
}

/**
 * Every disagreement between the model and its manifest, and the input layout. The manifest's input is
 * `[N, channels, height, width]`; a model that takes `[N, height, width, channels]` (TF's own layout) gets the
 * tensor transposed inside the runtime. When the shape leaves both open, NHWC is assumed.
 */
function shapeProblems(model: TfjsModel, manifest: ModelManifest): { problems: string[]; layout: TfjsInputLayout | undefined } {
  const problems: string[] = [];
  const { input, outputs, labels } = manifest;
  let layout: TfjsInputLayout | undefined;
  const inputSlot = model.inputs.find((s) => s.name === input.name);
  if (!inputSlot) {
    problems.push(`input "${input.name}" not in the model (it has ${model.inputs.map((s) => s.name).join(', ')})`);
  } else {
    if (model.inputs.length > 1) problems.push(`the model has ${model.inputs.length} inputs; the runtime feeds one image`);
    if (inputSlot.dtype && inputSlot.dtype !== 'float32') problems.push(`input "${input.name}" is ${inputSlot.dtype}, the runtime feeds float32`);
    const fits = (expected: readonly number[]): boolean => {
      const shape = inputSlot.shape;
      if (!shape) return true;
      const batch = shape[0];
      return shape.length === 4 && (!knownDim(batch) || batch === 1) && expected.every((e, i) => !knownDim(shape[i + 1]) || shape[i + 1] === e);
    };
    if (fits([input.height, input.width, input.channels])) layout = 'NHWC';
    else if (fits([input.channels, input.height, input.width])) layout = 'NCHW';
    else {
      problems.push(
        `input "${input.name}" has shape ${showShape(inputSlot.shape)}, the manifest says [N, ${input.channels}, ${input.height}, ${input.width}] (or NHWC [N, ${input.height}, ${input.width}, ${input.channels}])`,
      );
    }
  }
  const probs = model.outputs.find((s) => s.name === outputs.probabilities.name);
  if (!probs) {
    problems.push(`output "${outputs.probabilities.name}" not in the model (it has ${model.outputs.map((s) => s.name).join(', ')})`);
  } else if (probs.shape) {
    const last = probs.shape[probs.shape.length - 1];
    if (probs.shape.length !== 2 || (knownDim(last) && last !== labels.length)) {
      problems.push(`output "${outputs.probabilities.name}" has shape ${showShape(probs.shape)}, the manifest has ${labels.length} labels: [N, ${labels.length}]`);
    }
  }
  if (outputs.cam) {
    const cam = model.outputs.find((s) => s.name === outputs.cam?.name);
    if (!cam) problems.push(`output "${outputs.cam.name}" not in the model`);
    else if (cam.shape && (cam.shape.length !== 4 || (knownDim(cam.shape[1]) && cam.shape[1] !== labels.length))) {
      problems.push(`output "${outputs.cam.name}" has shape ${showShape(cam.shape)}, expected [N, ${labels.length}, h, w]`);
    }
  }
  for (const slot of model.outputs) {
    if ((slot.name === outputs.probabilities.name || slot.name === outputs.cam?.name) && slot.dtype && slot.dtype !== 'float32') {
      problems.push(`output "${slot.name}" is ${slot.dtype}, expected float32`);
    }
  }
  return { problems, layout };
}
