import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { ThresholdsFile } from '../../contracts/index.js';
import { CxrError } from '../../errors/index.js';
import { calibrateModel, type CalibrationTarget } from '../../eval/index.js';
import { imageProgress, type Progress } from '../progress.js';
import { writeLine, type CliIo } from '../output.js';

export interface CalibrateCommandOptions {
  readonly model: string;
  readonly labels: string;
  readonly out: string;
  readonly targetSensitivity?: number;
  readonly targetSpecificity?: number;
  readonly truth?: string;
  readonly score?: string;
  readonly imageColumn?: string;
  readonly includeNotApplicable?: boolean;
  readonly threads?: number;
  readonly json?: boolean;
}

/** Fits thresholds on a labelled set and writes the thresholds file. */
export async function calibrateCommand(options: CalibrateCommandOptions, io: CliIo): Promise<void> {
  const target = targetOf(options);
  let progress: Progress | undefined;
  let result: Awaited<ReturnType<typeof calibrateModel>>;
  try {
    result = await calibrateModel({
      modelDir: options.model,
      labelsFile: options.labels,
      imageColumn: options.imageColumn,
      truth: options.truth,
      score: options.score,
      target,
      includeNotApplicable: options.includeNotApplicable,
      threads: options.threads,
      onStart: (total) => (progress = imageProgress(io, 'cxr calibrate', total)),
      onProgress: (done, failed) => progress?.update(done, failed),
    });
  } finally {
    progress?.stop();
  }
  const { file, summary } = result;
  await mkdir(path.dirname(path.resolve(options.out)), { recursive: true });
  await writeFile(options.out, `${JSON.stringify(file, null, 1)}\n`);
  for (const f of summary.failed) writeLine(io.stderr, `failed: ${f.image}: ${f.code}: ${f.message}`);
  for (const f of summary.notApplicable) writeLine(io.stderr, `not applicable: ${f.image}: ${f.reason}`);
  if (options.json) writeLine(io.stdout, JSON.stringify(file));
  else writeHuman(io, file, options.out);
}

function targetOf(options: CalibrateCommandOptions): CalibrationTarget {
  const { targetSensitivity, targetSpecificity } = options;
  if ((targetSensitivity === undefined) === (targetSpecificity === undefined)) {
    throw new CxrError('CXR_USAGE', 'give exactly one of --target-sensitivity and --target-specificity');
  }
  return targetSensitivity !== undefined ? { metric: 'sensitivity', value: targetSensitivity } : { metric: 'specificity', value: targetSpecificity ?? 0 };
}

const f3 = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
const ci = (v: [number, number] | null): string => (v === null ? '' : ` (95% CI ${v[0].toFixed(3)}-${v[1].toFixed(3)})`);

function writeHuman(io: CliIo, file: ThresholdsFile, out: string): void {
  const { calibration: c } = file;
  writeLine(
    io.stdout,
    `${file.model.name}@${file.model.version} on ${c.labelsFile}: ${c.n} images scored, ${c.failed} unreadable, ${c.notApplicable} not applicable; target ${c.target.metric} >= ${c.target.value}`,
  );
  for (const s of c.scores) {
    const rule = s.rule === 'any-component' ? `each of ${s.codes.join(', ')} >= ${s.threshold} (positive when any is)` : `${s.score} >= ${s.threshold}`;
    writeLine(io.stdout, `${s.truth} = ${s.score}: threshold ${s.threshold}: ${rule}`);
    writeLine(io.stdout, `  on this set: sensitivity ${f3(s.sensitivity)}${ci(s.sensitivity95)}, specificity ${f3(s.specificity)}${ci(s.specificity95)} (Wilson)`);
    writeLine(io.stdout, `  PPV ${f3(s.ppv)}, NPV ${f3(s.npv)} at this set's prevalence (${s.positives}/${s.n}); tp ${s.tp}, fp ${s.fp}, tn ${s.tn}, fn ${s.fn}`);
  }
  writeLine(io.stdout, `wrote ${out} (use it with: cxr infer --thresholds ${out})`);
}
