import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CxrError } from '../errors/index.js';
import { ModelIdentitySchema } from './manifest.js';

/** Per-site thresholds: label code -> threshold. Labels not named keep the manifest's threshold. */
export const ThresholdMapSchema = Type.Record(Type.String({ pattern: '^[a-z0-9_]+$' }), Type.Number({ minimum: 0, maximum: 1 }));
export type ThresholdMap = Static<typeof ThresholdMapSchema>;

const Interval = Type.Tuple([Type.Number({ minimum: 0, maximum: 1 }), Type.Number({ minimum: 0, maximum: 1 })]);
const NullableRate = Type.Union([Type.Number({ minimum: 0, maximum: 1 }), Type.Null()]);

/** The operating point one calibrated score reaches on the set it was fitted on. */
export const CalibratedScoreSchema = Type.Object(
  {
    /** The CSV's 0/1 column the score was fitted against. */
    truth: Type.String({ minLength: 1 }),
    /** The label codes the score combines, joined by "+". */
    score: Type.String({ minLength: 1 }),
    codes: Type.Array(Type.String({ pattern: '^[a-z0-9_]+$' }), { minItems: 1 }),
    /**
     * `label`: one label, positive when its probability >= threshold. `any-component`: several labels share the
     * threshold and the image is positive when any of them reaches it (what a station's triage does).
     */
    rule: Type.Union([Type.Literal('label'), Type.Literal('any-component')]),
    threshold: Type.Number({ minimum: 0, maximum: 1 }),
    n: Type.Integer({ minimum: 0 }),
    positives: Type.Integer({ minimum: 0 }),
    negatives: Type.Integer({ minimum: 0 }),
    tp: Type.Integer({ minimum: 0 }),
    fp: Type.Integer({ minimum: 0 }),
    tn: Type.Integer({ minimum: 0 }),
    fn: Type.Integer({ minimum: 0 }),
    sensitivity: NullableRate,
    sensitivity95: Type.Union([Interval, Type.Null()]),
    specificity: NullableRate,
    specificity95: Type.Union([Interval, Type.Null()]),
    /** On this set, so at this set's prevalence. */
    ppv: NullableRate,
    npv: NullableRate,
    /** ROC AUC of the summed score on the set (DeLong 95% CI), for context. */
    auc: NullableRate,
    auc95: Type.Union([Interval, Type.Null()]),
  },
  { additionalProperties: true },
);
export type CalibratedScore = Static<typeof CalibratedScoreSchema>;

/**
 * What `cxr calibrate` writes. `thresholds` is the part `cxr infer --thresholds` and the registry's per-site
 * thresholds take; `calibration` says how it was fitted and what it reached on that set.
 */
export const ThresholdsFileSchema = Type.Object(
  {
    schemaVersion: Type.Literal(1),
    kind: Type.Literal('cxr-thresholds'),
    model: ModelIdentitySchema,
    thresholds: ThresholdMapSchema,
    calibration: Type.Object(
      {
        createdAt: Type.String({ minLength: 10, description: 'ISO 8601 date-time' }),
        /** The labels CSV, as given on the command line. */
        labelsFile: Type.String(),
        target: Type.Object({
          metric: Type.Union([Type.Literal('sensitivity'), Type.Literal('specificity')]),
          value: Type.Number({ exclusiveMinimum: 0, maximum: 1 }),
        }),
        /** Confidence intervals of sensitivity and specificity: Wilson score intervals. */
        ciMethod: Type.Literal('wilson'),
        confidence: Type.Number({ exclusiveMinimum: 0, exclusiveMaximum: 1 }),
        /** Images scored; unreadable and not-applicable rows are counted apart. */
        n: Type.Integer({ minimum: 0 }),
        failed: Type.Integer({ minimum: 0 }),
        notApplicable: Type.Integer({ minimum: 0 }),
        scores: Type.Array(CalibratedScoreSchema, { minItems: 1 }),
      },
      { additionalProperties: true },
    ),
  },
  { additionalProperties: true },
);
export type ThresholdsFile = Static<typeof ThresholdsFileSchema>;

/**
 * Thresholds from parsed JSON: a flat `{code: threshold}` map, a `cxr calibrate` file (checked whole), or any
 * document with a `thresholds` map (a registry deployment). Throws CXR_USAGE naming every problem.
 */
export function thresholdsFromJson(json: unknown, source: string): ThresholdMap {
  const object = typeof json === 'object' && json !== null && !Array.isArray(json) ? (json as Record<string, unknown>) : undefined;
  if (object?.kind === 'cxr-thresholds') return check(ThresholdsFileSchema, json, source, 'a cxr calibrate file').thresholds;
  const map = object && typeof object.thresholds === 'object' ? object.thresholds : json;
  return check(ThresholdMapSchema, map, source, 'an object of label code to a threshold in [0, 1]');
}

function check<T extends TSchema>(schema: T, value: unknown, source: string, expected: string): Static<T> {
  if (Value.Check(schema, value)) return value;
  const problems = [...Value.Errors(schema, value)].slice(0, 10).map((e) => `${e.path || '/'}: ${e.message}`);
  throw new CxrError('CXR_USAGE', `${source}: expected ${expected}: ${problems.join('; ')}`);
}
