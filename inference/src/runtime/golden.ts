import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CxrError, toCxrError } from '../errors/index.js';
import { analyzeBytes } from '../pipeline/analyze.js';
import type { LoadedModel } from './types.js';

/**
 * `golden/cases.json` in a model folder: images with the probabilities the model must give for them, through the
 * whole pipeline (decode, preprocessing, runtime), so a model is checked where it will run, not only in isolation.
 */
export const GoldenCasesSchema = Type.Object(
  {
    tolerance: Type.Number({ exclusiveMinimum: 0, maximum: 0.1, default: 1e-4, description: 'largest absolute difference per probability' }),
    cases: Type.Array(
      Type.Object(
        {
          input: Type.String({ minLength: 1, description: 'image file, relative to the model folder' }),
          probabilities: Type.Array(Type.Number(), { minItems: 1 }),
        },
        { additionalProperties: false },
      ),
      { minItems: 1 },
    ),
  },
  { additionalProperties: false },
);
export type GoldenCases = Static<typeof GoldenCasesSchema>;

export const GOLDEN_CASES_FILE = 'golden/cases.json';

export interface GoldenCaseResult {
  readonly input: string;
  readonly ok: boolean;
  /** largest absolute difference between expected and actual probabilities; null when the case did not run */
  readonly maxAbsDiff: number | null;
  readonly error?: { readonly code: string; readonly message: string };
}

export interface GoldenReport {
  /** false when the folder has no golden cases (nothing was checked) */
  readonly present: boolean;
  readonly passed: boolean;
  readonly tolerance: number;
  readonly cases: readonly GoldenCaseResult[];
}

/** Reads `golden/cases.json` of a model folder; undefined when there is none. Throws CXR_MANIFEST_INVALID when it is malformed. */
export async function readGoldenCases(modelDir: string): Promise<GoldenCases | undefined> {
  let text: string;
  try {
    text = await readFile(path.join(modelDir, GOLDEN_CASES_FILE), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw toCxrError(err, 'CXR_IO');
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CxrError('CXR_MANIFEST_INVALID', `${GOLDEN_CASES_FILE} is not JSON`);
  }
  const withDefaults = Value.Default(GoldenCasesSchema, parsed);
  if (!Value.Check(GoldenCasesSchema, withDefaults)) {
    const problems = [...Value.Errors(GoldenCasesSchema, withDefaults)].map((e) => `${e.path || '/'} ${e.message}`);
    throw new CxrError('CXR_MANIFEST_INVALID', `${GOLDEN_CASES_FILE}: ${problems.join('; ')}`);
  }
  for (const c of withDefaults.cases) {
    const resolved = path.resolve(modelDir, c.input);
    if (!resolved.startsWith(path.resolve(modelDir) + path.sep)) throw new CxrError('CXR_MANIFEST_INVALID', `${GOLDEN_CASES_FILE}: ${c.input} is outside the model folder`);
  }
  return withDefaults;
}

/** Runs every golden case of the model's folder through the whole pipeline (forced: applicability does not skip it). */
export async function runGoldenCases(model: LoadedModel, modelDir: string = model.directory): Promise<GoldenReport> {
  const golden = await readGoldenCases(modelDir);
  if (!golden) return { present: false, passed: true, tolerance: 0, cases: [] };
  const cases: GoldenCaseResult[] = [];
  for (const c of golden.cases) {
    try {
      const bytes = await readFile(path.resolve(modelDir, c.input));
      const { result } = await analyzeBytes(bytes, model, { force: true });
      const actual = result.probabilities ?? [];
      if (actual.length !== c.probabilities.length) {
        cases.push({ input: c.input, ok: false, maxAbsDiff: null, error: { code: 'CXR_MODEL_SHAPE_MISMATCH', message: `expected ${c.probabilities.length} probabilities, the model gave ${actual.length}` } });
        continue;
      }
      const maxAbsDiff = Math.max(...c.probabilities.map((p, i) => Math.abs(p - (actual[i] ?? Number.NaN))));
      cases.push({ input: c.input, ok: maxAbsDiff <= golden.tolerance, maxAbsDiff });
    } catch (err) {
      const e = toCxrError(err, 'CXR_INFERENCE_FAILED');
      cases.push({ input: c.input, ok: false, maxAbsDiff: null, error: { code: e.code, message: e.message } });
    }
  }
  return { present: true, passed: cases.every((c) => c.ok), tolerance: golden.tolerance, cases };
}
