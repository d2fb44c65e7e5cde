/**
 * One inference worker thread: loads the deployed model once, then turns each spooled file into a result, a
 * preview and a heatmap. Runs off the main thread, so receiving never waits behind a slow decode.
 */
import { mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { MessagePort } from 'node:worker_threads';
import {
  analyzeBytes,
  crashPoint,
  errorLine,
  loadModel,
  pickHeatmapLabel,
  renderHeatmap,
  renderPreview,
  runGoldenCases,
  stallPoint,
  type GoldenReport,
  type LoadedModel,
  type ThresholdOverrides,
  type TriageResult,
} from '@cxr/inference';
import { EdgeCrashPoint, EdgeStallPoint } from '../crash-points.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE } from '../spool/modes.js';

export interface InferenceTask {
  readonly instanceId: number;
  /** absolute path of the spooled DICOM file */
  readonly file: string;
  /** absolute folder for this instance's preview and heatmap */
  readonly derivedDir: string;
  readonly modelDir: string;
  readonly threads: number;
  /** Per-site thresholds of the deployment this model runs under; labels not named keep the manifest's. */
  readonly thresholds?: ThresholdOverrides;
  /** Told when the analysis starts, then gets the result as soon as the model has run, before the images are drawn. */
  readonly early?: MessagePort;
}

/** The model a worker runs, as the page describes it. */
export interface DeployedModel {
  readonly name: string;
  readonly version: string;
  readonly sha256: string;
  readonly description: string | null;
  readonly applicability: { readonly modalities: readonly string[]; readonly bodyParts: readonly string[]; readonly views: readonly string[] };
}

/**
 * What a worker says on the task's port while it runs: the phase it enters (`decode` once its model is ready, `model`
 * when the model runs, `images` while the preview and heatmap are drawn), and the result as soon as it has it.
 */
export type InferencePhase = 'decode' | 'model' | 'images';
export type InferenceProgress = { readonly kind: 'phase'; readonly phase: InferencePhase } | { readonly kind: 'result'; readonly result: TriageResult };

export type InferenceOutcome =
  | {
      readonly ok: true;
      readonly result: TriageResult;
      readonly preview: string | null;
      readonly heatmap: string | null;
      /** code of the label the heatmap shows */
      readonly heatmapLabel: string | null;
    }
  | {
      readonly ok: false;
      readonly error: { code: string; message: string };
      readonly preview: string | null;
      /** the disk had no room for the preview or heatmap: the image is not at fault, it is to be run again */
      readonly diskFull?: boolean;
    };

const models = new Map<string, Promise<LoadedModel>>();

function modelFor(task: Pick<InferenceTask, 'modelDir' | 'threads'>): Promise<LoadedModel> {
  let model = models.get(task.modelDir);
  if (!model) {
    model = loadModel(task.modelDir, { intraOpThreads: task.threads });
    models.set(task.modelDir, model);
    model.catch(() => models.delete(task.modelDir));
  }
  return model;
}

/** Loads the model before the first image arrives, so that the first result is as fast as the rest. */
export async function warmUp(task: Pick<InferenceTask, 'modelDir' | 'threads'>): Promise<DeployedModel> {
  const { identity, manifest } = await modelFor(task);
  return { ...identity, description: manifest.description ?? null, applicability: manifest.applicability };
}

/**
 * Loads the model and runs its golden cases here, in the worker that will serve it: what is checked is the very
 * session that then reads the radiographs.
 */
export async function verify(task: Pick<InferenceTask, 'modelDir' | 'threads'>): Promise<{ model: DeployedModel; golden: GoldenReport }> {
  const model = await warmUp(task);
  const golden = await runGoldenCases(await modelFor(task));
  return { model, golden };
}

export default async function infer(task: InferenceTask): Promise<InferenceOutcome> {
  let preview: string | null = null;
  const say = (progress: InferenceProgress): void => task.early?.postMessage(progress);
  try {
    await mkdir(task.derivedDir, { recursive: true, mode: PRIVATE_DIR_MODE });
    const model = await modelFor(task);
    say({ kind: 'phase', phase: 'decode' });
    const bytes = await readFile(task.file);
    stallPoint(EdgeStallPoint.Decoding, task.instanceId);
    // Decoded even when the model does not apply: the radiographer still sees the image.
    const analysis = await analyzeBytes(bytes, model, {
      decodeAlways: true,
      decode: { j2kThreads: task.threads },
      ...(task.thresholds ? { thresholds: task.thresholds } : {}),
      onModelRun: () => say({ kind: 'phase', phase: 'model' }),
    });
    say({ kind: 'result', result: analysis.result });
    say({ kind: 'phase', phase: 'images' });
    if (analysis.source) {
      const rendered = await renderPreview(analysis.source);
      preview = await writeAtomically(path.join(task.derivedDir, 'preview.png'), rendered.png);
      crashPoint(EdgeCrashPoint.PreviewWritten);
      let heatmap: string | null = null;
      let heatmapLabel: string | null = null;
      const { result } = analysis;
      if (analysis.cam && result.applicable && result.probabilities) {
        const label = pickHeatmapLabel(
          result.probabilities,
          model.manifest.labels.map((l) => result.findings.some((f) => f.code === l.code && f.positive)),
        );
        const png = await renderHeatmap(analysis.cam, label, rendered, { crop: model.manifest.input.crop });
        heatmap = await writeAtomically(path.join(task.derivedDir, 'heatmap.png'), png);
        heatmapLabel = model.manifest.labels[label]?.code ?? null;
      }
      return { ok: true, result, preview, heatmap, heatmapLabel };
    }
    return { ok: true, result: analysis.result, preview, heatmap: null, heatmapLabel: null };
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return { ok: false, error: errorLine(err), preview, ...(code === 'ENOSPC' || code === 'EDQUOT' ? { diskFull: true } : {}) };
  }
}

async function writeAtomically(file: string, bytes: Uint8Array): Promise<string> {
  const tmp = `${file}.tmp`;
  try {
    await writeFile(tmp, bytes, { mode: PRIVATE_FILE_MODE });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  return file;
}
