import * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../contracts/index.js';
import { CxrError } from '../errors/index.js';
import type { ClassActivationMaps, ModelOutput, RuntimeOptions } from './types.js';

export interface OnnxSession {
  run(tensor: Float32Array): Promise<ModelOutput>;
  close(): Promise<void>;
}

/** Creates the ONNX Runtime session and checks its inputs and outputs against the manifest. */
export async function createOnnxSession(modelBytes: Uint8Array, manifest: ModelManifest, options: RuntimeOptions): Promise<OnnxSession> {
  let session: ort.InferenceSession;
  try {
    session = await ort.InferenceSession.create(modelBytes, {
      intraOpNumThreads: options.intraOpThreads ?? 2,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      extra: { session: { intra_op: { allow_spinning: options.spinWait === false ? '0' : '1' } } },
    });
  } catch (err) {
    throw new CxrError('CXR_MODEL_LOAD_FAILED', err instanceof Error ? err.message : String(err));
  }
  const problems = shapeProblems(session, manifest);
  if (problems.length > 0) {
    await session.release();
    throw new CxrError('CXR_MODEL_SHAPE_MISMATCH', problems.join('; '));
  }
  const { input, outputs } = manifest;
  const camName = outputs.cam?.name;
  const fetches = camName ? [outputs.probabilities.name, camName] : [outputs.probabilities.name];
  return {
    async run(tensor: Float32Array): Promise<ModelOutput> {
      const feed = { [input.name]: new ort.Tensor('float32', tensor, [1, input.channels, input.height, input.width]) };
      let result: ort.InferenceSession.ReturnType;
      try {
        result = await session.run(feed, fetches);
      } catch (err) {
        throw new CxrError('CXR_INFERENCE_FAILED', err instanceof Error ? err.message : String(err));
      }
      const probs = result[outputs.probabilities.name];
      if (!probs) throw new CxrError('CXR_INFERENCE_FAILED', `no output "${outputs.probabilities.name}"`);
      const raw = Float32Array.from(probs.data as Float32Array);
      let cam: ClassActivationMaps | undefined;
      const camTensor = camName ? result[camName] : undefined;
      if (camTensor && camTensor.dims.length === 4) {
        const [, labels = 0, height = 0, width = 0] = camTensor.dims;
        cam = { data: Float32Array.from(camTensor.data as Float32Array), labels, height, width };
      }
      return { raw, cam };
    },
    async close(): Promise<void> {
      await session.release();
    },
  };
}

function shapeProblems(session: ort.InferenceSession, manifest: ModelManifest): string[] {
  const problems: string[] = [];
  const { input, outputs, labels } = manifest;
  const inputMeta = session.inputMetadata.find((m) => m.name === input.name);
  if (!inputMeta) problems.push(`input "${input.name}" not in the model (it has ${session.inputNames.join(', ')})`);
  else if (inputMeta.isTensor) {
    const expected = [input.channels, input.height, input.width];
    const dims = inputMeta.shape.slice(1);
    if (inputMeta.shape.length !== 4 || dims.some((d, i) => typeof d === 'number' && d !== expected[i])) {
      problems.push(`input "${input.name}" has shape [${inputMeta.shape.join(', ')}], the manifest says [N, ${expected.join(', ')}]`);
    }
  }
  const probsMeta = session.outputMetadata.find((m) => m.name === outputs.probabilities.name);
  if (!probsMeta) problems.push(`output "${outputs.probabilities.name}" not in the model (it has ${session.outputNames.join(', ')})`);
  else if (probsMeta.isTensor) {
    const last = probsMeta.shape[probsMeta.shape.length - 1];
    if (typeof last === 'number' && last !== labels.length) {
      problems.push(`output "${outputs.probabilities.name}" has ${last} values, the manifest has ${labels.length} labels`);
    }
  }
  if (outputs.cam) {
    const camMeta = session.outputMetadata.find((m) => m.name === outputs.cam?.name);
    if (!camMeta) problems.push(`output "${outputs.cam.name}" not in the model`);
    else if (camMeta.isTensor) {
      const n = camMeta.shape[1];
      if (camMeta.shape.length !== 4 || (typeof n === 'number' && n !== labels.length)) {
        problems.push(`output "${outputs.cam.name}" has shape [${camMeta.shape.join(', ')}], expected [N, ${labels.length}, h, w]`);
      }
    }
  }
  return problems;
}
