import type { CalibratedScore } from '../contracts/thresholds.js';
import { CxrError } from '../errors/index.js';
import { aucDeLong, operatingPoint } from './metrics.js';
import type { ScoredImage } from './score-set.js';
import { scoreValues, truthValues, type ScoreSpec } from './scores.js';

export interface CalibrationTarget {
  readonly metric: 'sensitivity' | 'specificity';
  /** In (0, 1]. */
  readonly value: number;
}

/**
 * The threshold t (an image is positive when its value >= t) that reaches the target on these values:
 * for a sensitivity target the highest such t (so the best specificity that keeps the target), for a
 * specificity target the lowest (the best sensitivity). t is one of the values themselves, so the decision
 * on this set does not depend on float rounding; `ceiling` is the largest threshold allowed.
 */
export function thresholdForTarget(values: readonly number[], truth: readonly boolean[], target: CalibrationTarget, ceiling = 1): number {
  const positives = values.filter((_, i) => truth[i]);
  const negatives = values.filter((_, i) => !truth[i]);
  if (!positives.length || !negatives.length) {
    throw new CxrError('CXR_LABELS_INVALID', `calibration needs positives and negatives (got ${positives.length} and ${negatives.length})`);
  }
  // Integer counts, so 0.95 of 260 is 247 images and not a float a hair below it.
  const needed = (total: number): number => Math.ceil(target.value * total - 1e-9);
  if (target.metric === 'sensitivity') {
    // The k-th highest positive value keeps k positives at or above it.
    const sorted = [...positives].sort((a, b) => b - a);
    return sorted[needed(positives.length) - 1] ?? Math.min(...positives);
  }
  // Specificity: the k-th lowest negative must be below t; t is the lowest value of the set above it.
  const sortedNegatives = [...negatives].sort((a, b) => a - b);
  const k = needed(negatives.length);
  const highestNegativeBelow = sortedNegatives[k - 1] ?? Number.NEGATIVE_INFINITY;
  const above = values.filter((v) => v > highestNegativeBelow);
  if (above.length) return Math.min(...above);
  // Nothing scores above it: only a threshold above every value (nothing positive) reaches the target.
  const threshold = Math.round((highestNegativeBelow + 1e-6) * 1e6) / 1e6;
  if (threshold > ceiling) {
    throw new CxrError('CXR_USAGE', `specificity ${target.value} needs a threshold above ${ceiling}: the highest-scoring negatives score ${highestNegativeBelow}`);
  }
  return threshold;
}

/**
 * The value a calibrated threshold applies to. One label: its probability. Several: they share one threshold and
 * the image is positive when any reaches it, i.e. the highest of them. That is what a station does with the
 * thresholds file (each label positive at or above its threshold), so the operating point found here is the one
 * the station gets. (A threshold on the summed score could not be written as per-label thresholds.)
 */
export function decisionValues(spec: ScoreSpec, images: readonly ScoredImage[]): number[] {
  return images.map((image) => Math.max(...spec.indices.map((i) => image.probabilities[i] ?? 0)));
}

const round6 = (v: number | null): number | null => (v === null ? null : Math.round(v * 1e6) / 1e6);
const roundInterval = (v: [number, number] | null): [number, number] | null => (v === null ? null : [round6(v[0]) ?? 0, round6(v[1]) ?? 0]);

export function calibrateScore(spec: ScoreSpec, images: readonly ScoredImage[], target: CalibrationTarget): CalibratedScore {
  const values = decisionValues(spec, images);
  const truth = truthValues(spec, images);
  const threshold = thresholdForTarget(values, truth, target);
  const point = operatingPoint(
    values.map((v) => v >= threshold),
    truth,
  );
  const sums = scoreValues(spec, images);
  const auc = aucDeLong(
    sums.filter((_, i) => truth[i]),
    sums.filter((_, i) => !truth[i]),
  );
  const positives = truth.filter(Boolean).length;
  return {
    truth: spec.truth,
    score: spec.name,
    codes: [...spec.codes],
    rule: spec.codes.length === 1 ? 'label' : 'any-component',
    threshold,
    n: images.length,
    positives,
    negatives: images.length - positives,
    tp: point.tp,
    fp: point.fp,
    tn: point.tn,
    fn: point.fn,
    sensitivity: round6(point.sensitivity),
    sensitivity95: roundInterval(point.sensitivity95),
    specificity: round6(point.specificity),
    specificity95: roundInterval(point.specificity95),
    ppv: round6(point.ppv),
    npv: round6(point.npv),
    auc: round6(auc.auc),
    auc95: roundInterval(auc.ci),
  };
}
