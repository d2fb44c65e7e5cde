import type { ModelIdentity, ModelManifest } from '../contracts/index.js';
import { aucDeLong, operatingPoint, rocCurve, type Interval, type RocCurve } from './metrics.js';
import type { FailedImage, NotApplicableImage, ScoredSet } from './score-set.js';
import { decisionRule, decisions, scoreValues, truthValues, type DecisionRule, type ScoreSpec } from './scores.js';

/** The metrics of one score. The first eight names are the interface outside checks read; keep them. */
export interface ScoreReport {
  readonly n: number;
  readonly positives: number;
  readonly negatives: number;
  /** Null when the set has no positive or no negative. */
  readonly auc: number | null;
  readonly auc95: Interval | null;
  readonly sensitivity: number | null;
  readonly specificity: number | null;
  readonly truth: string;
  readonly score: string;
  readonly codes: readonly string[];
  readonly ciMethod: 'delong';
  readonly confidence: 0.95;
  readonly tp: number;
  readonly fp: number;
  readonly tn: number;
  readonly fn: number;
  /** Wilson score intervals. */
  readonly sensitivity95: Interval | null;
  readonly specificity95: Interval | null;
  readonly rateCiMethod: 'wilson';
  readonly ppv: number | null;
  readonly npv: number | null;
  readonly operatingPoint: DecisionRule;
  /** How many different score values the images got: 1 means a constant model (AUC 0.5 and a DeLong CI of width 0). */
  readonly distinctScores: number;
}

export interface EvaluationContext {
  readonly manifest: ModelManifest;
  readonly threshold?: number;
  readonly thresholds?: Readonly<Record<string, number>>;
}

const round6 = (v: number): number => Math.round(v * 1e6) / 1e6;
const roundOrNull = (v: number | null): number | null => (v === null ? null : round6(v));
const roundInterval = (v: Interval | null): Interval | null => (v === null ? null : [round6(v[0]), round6(v[1])]);

export function evaluateScore(spec: ScoreSpec, set: ScoredSet, context: EvaluationContext): { report: ScoreReport; roc: RocCurve; scores: number[] } {
  const images = set.scored;
  const scores = scoreValues(spec, images);
  const truth = truthValues(spec, images);
  const positives = truth.filter(Boolean).length;
  const negatives = truth.length - positives;
  const auc = positives && negatives ? aucDeLong(scores.filter((_, i) => truth[i]), scores.filter((_, i) => !truth[i])) : undefined;
  const rule = decisionRule(spec, context.manifest, context);
  const point = operatingPoint(decisions(spec, rule, images), truth);
  const report: ScoreReport = {
    n: images.length,
    positives,
    negatives,
    auc: auc ? round6(auc.auc) : null,
    auc95: roundInterval(auc?.ci ?? null),
    sensitivity: roundOrNull(point.sensitivity),
    specificity: roundOrNull(point.specificity),
    truth: spec.truth,
    score: spec.name,
    codes: spec.codes,
    ciMethod: 'delong',
    confidence: 0.95,
    tp: point.tp,
    fp: point.fp,
    tn: point.tn,
    fn: point.fn,
    sensitivity95: roundInterval(point.sensitivity95),
    specificity95: roundInterval(point.specificity95),
    rateCiMethod: 'wilson',
    ppv: roundOrNull(point.ppv),
    npv: roundOrNull(point.npv),
    operatingPoint: rule,
    distinctScores: new Set(scores).size,
  };
  return { report, roc: rocCurve(scores, truth), scores };
}

/** Counts and lists that belong to the whole run, whatever the scores. */
export interface RunSummary {
  readonly model: ModelIdentity;
  readonly labelsFile: string;
  /** Rows of the CSV: n + failed + not applicable. */
  readonly rows: number;
  readonly failed: FailedImage[];
  readonly notApplicable: NotApplicableImage[];
  /** Scored images whose body part and view the header could not confirm (every PNG and JPEG). */
  readonly unverified: number;
  /** Scored images outside the model's applicability (only with --include-not-applicable). */
  readonly forced: number;
  readonly elapsedMs: number;
}

export function runSummary(set: ScoredSet, model: ModelIdentity, labelsFile: string): RunSummary {
  return {
    model,
    labelsFile,
    rows: set.scored.length + set.failed.length + set.notApplicable.length,
    failed: set.failed,
    notApplicable: set.notApplicable,
    unverified: set.scored.filter((s) => !s.verified).length,
    forced: set.scored.filter((s) => s.forced).length,
    elapsedMs: set.elapsedMs,
  };
}
