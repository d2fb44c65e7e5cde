import { errorLine } from '../errors/index.js';
import { analyzeFile } from '../pipeline/index.js';
import type { LoadedModel } from '../runtime/index.js';
import type { LabelledRow, LabelledSet } from './labelled-set.js';

/** An image the model scored. */
export interface ScoredImage {
  readonly row: LabelledRow;
  /** After the manifest's activation, one per label, in the manifest's order. */
  readonly probabilities: readonly number[];
  /** False when the header could not confirm the body part or view (every PNG and JPEG). */
  readonly verified: boolean;
  /** Outside the model's applicability but scored because of `includeNotApplicable`. */
  readonly forced: boolean;
}

/** An image that could not be read, decoded or run. */
export interface FailedImage {
  readonly image: string;
  readonly code: string;
  readonly message: string;
}

/** An image outside the model's applicability (e.g. a DICOM whose body part is HIP), left out of the metrics. */
export interface NotApplicableImage {
  readonly image: string;
  readonly reason: string;
}

export interface ScoredSet {
  readonly scored: ScoredImage[];
  readonly failed: FailedImage[];
  readonly notApplicable: NotApplicableImage[];
  readonly elapsedMs: number;
}

export interface ScoreSetOptions {
  /** Score images outside the model's applicability too, as `cxr infer --force` does. */
  readonly includeNotApplicable?: boolean;
  /** Threads of the JPEG 2000 decoder. */
  readonly decodeThreads?: number;
  /** Called after each image with how many are done and how many failed. */
  readonly onProgress?: (done: number, failed: number) => void;
}

/**
 * Runs every image of the set through the same pipeline as `cxr infer` (header, applicability gate, decode,
 * manifest preprocessing, model), the model loaded once by the caller. One bad image never stops the others.
 */
export async function scoreSet(set: LabelledSet, model: LoadedModel, options: ScoreSetOptions = {}): Promise<ScoredSet> {
  const start = performance.now();
  const scored: ScoredImage[] = [];
  const failed: FailedImage[] = [];
  const notApplicable: NotApplicableImage[] = [];
  for (const row of set.rows) {
    try {
      const { result } = await analyzeFile(row.file, model, { force: options.includeNotApplicable, decode: { j2kThreads: options.decodeThreads } });
      if (result.probabilities) {
        scored.push({ row, probabilities: result.probabilities, verified: result.applicability.verified, forced: result.forced === true });
      } else {
        notApplicable.push({ image: row.image, reason: result.reason ?? 'not applicable' });
      }
    } catch (err) {
      failed.push({ image: row.image, ...errorLine(err) });
    }
    options.onProgress?.(scored.length + failed.length + notApplicable.length, failed.length);
  }
  return { scored, failed, notApplicable, elapsedMs: Math.round(performance.now() - start) };
}
