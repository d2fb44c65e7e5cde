import path from 'node:path';
import { evaluateModel, type LoadedModel } from '@cxr/inference';
import type { PushError } from './validate.js';

/** Which score to evaluate on a labelled set: as `cxr eval --truth --score --image-column` take them. */
export interface LabelledSelection {
  readonly truth?: string;
  readonly score?: string;
  readonly imageColumn?: string;
}

/**
 * The metrics step of a push: `cxr eval` (ROC AUC with its DeLong 95% CI, and the operating point at the
 * manifest's thresholds with Wilson CIs) on the labelled set sent with the push, run on the registry with the
 * version's own files. A set that cannot be read refuses the push with its reason; the figures are recorded with
 * the version, not judged.
 */
export function labelledSetMetrics(csvPath: string, selection: LabelledSelection, threads: number) {
  return async (model: LoadedModel): Promise<{ errors: PushError[]; report: Record<string, unknown> }> => {
    const evaluation = await evaluateModel({
      modelDir: model.directory,
      labelsFile: csvPath,
      imageColumn: selection.imageColumn,
      truth: selection.truth,
      score: selection.score,
      threads,
    });
    const { summary } = evaluation;
    return {
      errors: [],
      report: {
        labelsFile: path.basename(csvPath),
        rows: summary.rows,
        failed: summary.failed.length,
        notApplicable: summary.notApplicable.length,
        elapsedMs: Math.round(summary.elapsedMs),
        scores: evaluation.reports,
      },
    };
  };
}
