import type { ModelManifest } from '../contracts/index.js';
import { CxrError } from '../errors/index.js';
import { columnForCode, truthOf, type LabelledRow, type LabelledSet } from './labelled-set.js';
import type { ScoredImage } from './score-set.js';

/** A score to evaluate: the sum of some labels' probabilities, against one 0/1 column. */
export interface ScoreSpec {
  /** The truth column of the CSV. */
  readonly truth: string;
  /** The codes joined by "+", e.g. "bacterial_pneumonia+viral_pneumonia". */
  readonly name: string;
  readonly codes: readonly string[];
  /** Index of each code in the manifest's labels (and so in the probabilities). */
  readonly indices: readonly number[];
  /** Truth of every row of the set, checked before the model runs. */
  readonly truthByRow: ReadonlyMap<LabelledRow, boolean>;
}

export interface ScoreSelection {
  /** --truth: a 0/1 column of the CSV. */
  readonly truth?: string;
  /** --score: label codes joined by "+". */
  readonly score?: string;
}

/**
 * What to evaluate. With --score (and --truth, required when the score combines labels): that one score.
 * With --truth alone: the label of the same code. With neither: every label of the manifest that has a truth
 * column of the same name (case ignored).
 */
export function resolveScores(set: LabelledSet, manifest: ModelManifest, selection: ScoreSelection): ScoreSpec[] {
  const codes = manifest.labels.map((l) => l.code);
  const indexOf = (code: string): number => {
    const index = codes.indexOf(code);
    if (index < 0) throw new CxrError('CXR_USAGE', `--score: "${code}" is not a label of ${manifest.name} (labels: ${codes.join(', ')})`);
    return index;
  };
  const spec = (truth: string, scoreCodes: string[]): ScoreSpec => {
    const truth01 = truthOf(set, truth);
    return {
      truth,
      name: scoreCodes.join('+'),
      codes: scoreCodes,
      indices: scoreCodes.map(indexOf),
      truthByRow: new Map(set.rows.map((row, i) => [row, truth01[i] ?? false])),
    };
  };

  if (selection.score !== undefined) {
    const scoreCodes = selection.score.split('+').map((c) => c.trim());
    if (scoreCodes.some((c) => c === '')) throw new CxrError('CXR_USAGE', `--score "${selection.score}": expected CODE or CODE+CODE+...`);
    if (new Set(scoreCodes).size !== scoreCodes.length) throw new CxrError('CXR_USAGE', `--score "${selection.score}" names a label twice`);
    scoreCodes.forEach(indexOf);
    const [only] = scoreCodes;
    const truth = selection.truth ?? (scoreCodes.length === 1 && only !== undefined ? columnForCode(set, only) : undefined);
    if (truth === undefined) throw new CxrError('CXR_USAGE', `--score ${selection.score}: name the truth column with --truth`);
    return [spec(truth, scoreCodes)];
  }
  if (selection.truth !== undefined) {
    const code = codes.find((c) => c === selection.truth?.toLowerCase());
    if (code === undefined) throw new CxrError('CXR_USAGE', `--truth ${selection.truth}: no label of ${manifest.name} has this code; name the score with --score`);
    return [spec(selection.truth, [code])];
  }
  const specs = codes.flatMap((code) => {
    const column = columnForCode(set, code);
    return column === undefined ? [] : [spec(column, [code])];
  });
  if (!specs.length) {
    throw new CxrError(
      'CXR_USAGE',
      `${set.csv}: no column matches a label of ${manifest.name} (labels: ${codes.join(', ')}; columns: ${set.columns.join(', ')}); use --truth and --score`,
    );
  }
  return specs;
}

/** The summed probability of the score's labels for each image. */
export function scoreValues(spec: ScoreSpec, images: readonly ScoredImage[]): number[] {
  return images.map((image) => spec.indices.reduce((sum, i) => sum + (image.probabilities[i] ?? 0), 0));
}

export function truthValues(spec: ScoreSpec, images: readonly ScoredImage[]): boolean[] {
  return images.map((image) => spec.truthByRow.get(image.row) ?? false);
}

/**
 * How an image is called positive for sensitivity and specificity.
 * `any-component`: when any of the score's labels reaches its own threshold (the manifest's, or a site's), which
 * is exactly what a station's triage flags. `score`: when the summed score reaches one given threshold.
 */
export type DecisionRule =
  | { readonly rule: 'any-component'; readonly thresholds: Readonly<Record<string, number>> }
  | { readonly rule: 'score'; readonly threshold: number };

export function decisionRule(spec: ScoreSpec, manifest: ModelManifest, options: { threshold?: number; thresholds?: Readonly<Record<string, number>> }): DecisionRule {
  if (options.threshold !== undefined) return { rule: 'score', threshold: options.threshold };
  const thresholds: Record<string, number> = {};
  spec.codes.forEach((code, k) => {
    thresholds[code] = options.thresholds?.[code] ?? manifest.labels[spec.indices[k] ?? 0]?.threshold ?? 0.5;
  });
  return { rule: 'any-component', thresholds };
}

export function decisions(spec: ScoreSpec, rule: DecisionRule, images: readonly ScoredImage[]): boolean[] {
  if (rule.rule === 'score') return scoreValues(spec, images).map((s) => s >= rule.threshold);
  return images.map((image) => spec.codes.some((code, k) => (image.probabilities[spec.indices[k] ?? 0] ?? 0) >= (rule.thresholds[code] ?? 0.5)));
}
