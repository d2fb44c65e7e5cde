/** Times our pipeline (`@cxr/inference` in this warm process) on one file, stage by stage. */
import { readFile } from 'node:fs/promises';
import { analyzeBytes, type LoadedModel } from '@cxr/inference';
import { median } from './stats.js';

export const stages = ['read', 'decode', 'preprocess', 'infer'] as const;
export type Stage = (typeof stages)[number];

/** Milliseconds per stage; `total` is the wall time of the whole file. */
export type StageTimes = Record<Stage | 'total', number>;

export interface TimedRun {
  readonly times: StageTimes;
  readonly decoder: string;
}

/**
 * One file once: read its bytes, then decode (parse included), preprocess and infer through `analyzeBytes`, `force`d
 * so that images outside the model's applicability are timed too. `threads` goes to the J2K decoder; the model's
 * intra-op threads are set when it is loaded.
 */
export async function timeOurs(model: LoadedModel, file: string, threads: number): Promise<TimedRun> {
  const t0 = performance.now();
  const bytes = await readFile(file);
  const read = performance.now() - t0;
  const { result } = await analyzeBytes(bytes, model, { force: true, decode: { j2kThreads: threads } });
  const { decode, preprocess, infer, total } = result.timingsMs;
  return { times: { read, decode, preprocess, infer, total: total + read }, decoder: result.decoder ?? '' };
}

/** The median of each stage over several runs (each stage's own median, and the median of the totals). */
export function medianTimes(samples: readonly StageTimes[]): StageTimes {
  const pick = (key: keyof StageTimes): number => median(samples.map((s) => s[key]));
  return { read: pick('read'), decode: pick('decode'), preprocess: pick('preprocess'), infer: pick('infer'), total: pick('total') };
}
