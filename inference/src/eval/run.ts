import { Value } from '@sinclair/typebox/value';
import { ThresholdsFileSchema, type ModelManifest, type ThresholdMap, type ThresholdsFile } from '../contracts/index.js';
import { CxrError } from '../errors/index.js';
import { loadModel } from '../runtime/index.js';
import { calibrateScore, type CalibrationTarget } from './calibrate.js';
import { evaluateScore, runSummary, type RunSummary, type ScoreReport } from './evaluate.js';
import { readLabelledSet } from './labelled-set.js';
import type { RocCurve } from './metrics.js';
import { scoreSet, type ScoredSet } from './score-set.js';
import { resolveScores, type ScoreSelection, type ScoreSpec } from './scores.js';

export interface LabelledRunOptions extends ScoreSelection {
  readonly modelDir: string;
  readonly labelsFile: string;
  readonly imageColumn?: string;
  /** Score images outside the model's applicability too (default: list them apart, out of the metrics). */
  readonly includeNotApplicable?: boolean;
  /** ONNX Runtime intra-op threads and JPEG 2000 decoder threads. */
  readonly threads?: number;
  /** Told the number of rows once the CSV is read, then after each image. */
  readonly onStart?: (total: number) => void;
  readonly onProgress?: (done: number, failed: number) => void;
}

interface LabelledRun {
  readonly manifest: ModelManifest;
  readonly specs: ScoreSpec[];
  readonly set: ScoredSet;
  readonly summary: RunSummary;
}

/** Reads the set, checks the selection and every truth value, then loads the model once and scores every image. */
async function runLabelled(options: LabelledRunOptions): Promise<LabelledRun> {
  const labelled = await readLabelledSet(options.labelsFile, options.imageColumn);
  const model = await loadModel(options.modelDir, { intraOpThreads: options.threads });
  try {
    const specs = resolveScores(labelled, model.manifest, options);
    options.onStart?.(labelled.rows.length);
    const set = await scoreSet(labelled, model, {
      includeNotApplicable: options.includeNotApplicable,
      decodeThreads: options.threads,
      onProgress: options.onProgress,
    });
    return { manifest: model.manifest, specs, set, summary: runSummary(set, model.identity, options.labelsFile) };
  } finally {
    await model.close();
  }
}

export interface EvaluateOptions extends LabelledRunOptions {
  /** Call the summed score positive at or above this; default: any component label at or above its threshold. */
  readonly threshold?: number;
  /** Per-site thresholds overriding the manifest's for the any-component rule. */
  readonly thresholds?: ThresholdMap;
}

export interface ImageScores {
  readonly image: string;
  readonly truth: Record<string, 0 | 1>;
  readonly probabilities: Record<string, number>;
  readonly scores: Record<string, number>;
}

export interface Evaluation {
  readonly summary: RunSummary;
  readonly reports: ScoreReport[];
  readonly rocs: RocCurve[];
  readonly images: ImageScores[];
}

export async function evaluateModel(options: EvaluateOptions): Promise<Evaluation> {
  const { manifest, specs, set, summary } = await runLabelled(options);
  if (options.thresholds) checkCodes(options.thresholds, manifest);
  const results = specs.map((spec) => evaluateScore(spec, set, { manifest, threshold: options.threshold, thresholds: options.thresholds }));
  const images = set.scored.map((image, i): ImageScores => ({
    image: image.row.image,
    truth: Object.fromEntries(specs.map((s) => [s.truth, s.truthByRow.get(image.row) ? 1 : 0])),
    probabilities: Object.fromEntries(manifest.labels.map((l, k) => [l.code, image.probabilities[k] ?? 0])),
    scores: Object.fromEntries(results.map((r, k) => [specs[k]?.name ?? '', Math.round((r.scores[i] ?? 0) * 1e6) / 1e6])),
  }));
  return { summary, reports: results.map((r) => r.report), rocs: results.map((r) => r.roc), images };
}

export interface CalibrateOptions extends LabelledRunOptions {
  readonly target: CalibrationTarget;
}

/** Per-label thresholds reaching the target on the set, in the file `cxr infer --thresholds` and the registry take. */
export async function calibrateModel(options: CalibrateOptions): Promise<{ file: ThresholdsFile; summary: RunSummary }> {
  const { value } = options.target;
  if (!(value > 0 && value <= 1)) throw new CxrError('CXR_USAGE', `the target ${options.target.metric} must be in (0, 1], got ${value}`);
  const { specs, set, summary } = await runLabelled(options);
  const scores = specs.map((spec) => calibrateScore(spec, set.scored, options.target));
  const thresholds: Record<string, number> = {};
  for (const score of scores) for (const code of score.codes) thresholds[code] = score.threshold;
  const file: ThresholdsFile = {
    schemaVersion: 1,
    kind: 'cxr-thresholds',
    model: summary.model,
    thresholds,
    calibration: {
      createdAt: new Date().toISOString(),
      labelsFile: options.labelsFile,
      target: options.target,
      ciMethod: 'wilson',
      confidence: 0.95,
      n: set.scored.length,
      failed: set.failed.length,
      notApplicable: set.notApplicable.length,
      scores,
    },
  };
  // The file is a contract with the registry: never write one that does not satisfy its own schema.
  const problem = [...Value.Errors(ThresholdsFileSchema, file)][0];
  if (problem) throw new Error(`calibration produced an invalid thresholds file: ${problem.path}: ${problem.message}`);
  return { file, summary };
}

function checkCodes(thresholds: ThresholdMap, manifest: ModelManifest): void {
  const codes = manifest.labels.map((l) => l.code);
  const unknown = Object.keys(thresholds).filter((c) => !codes.includes(c));
  if (unknown.length) throw new CxrError('CXR_USAGE', `--thresholds: ${unknown.join(', ')} not a label of ${manifest.name} (labels: ${codes.join(', ')})`);
}
