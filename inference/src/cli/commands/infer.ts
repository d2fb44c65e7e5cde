import path from 'node:path';
import cliProgress from 'cli-progress';
import type { ErrorResult, TriageResult } from '../../contracts/index.js';
import { analyzeFile } from '../../pipeline/index.js';
import { loadModel } from '../../runtime/index.js';
import { errorLine, writeLine, type CliIo } from '../output.js';
import { readThresholdsFile } from '../thresholds-file.js';

export interface InferOptions {
  readonly model: string;
  readonly json?: boolean;
  readonly force?: boolean;
  readonly threads?: number;
  readonly thresholds?: string;
}

/** Runs every file through the model; one bad file never stops the others. Returns how many failed. */
export async function inferCommand(files: readonly string[], options: InferOptions, io: CliIo): Promise<{ failed: number; total: number }> {
  const model = await loadModel(options.model, { intraOpThreads: options.threads });
  const thresholds = options.thresholds ? await readThresholdsFile(options.thresholds) : undefined;
  const bar =
    io.stderr.isTTY && files.length > 1
      ? new cliProgress.SingleBar(
          { stream: io.stderr, format: 'cxr infer [{bar}] {value}/{total} files | {eta_formatted} left | {failed} failed', hideCursor: true },
          cliProgress.Presets.shades_classic,
        )
      : undefined;
  bar?.start(files.length, 0, { failed: 0 });
  let failed = 0;
  try {
    for (const file of files) {
      let line: TriageResult | ErrorResult;
      try {
        line = (await analyzeFile(file, model, { force: options.force, thresholds, decode: { j2kThreads: options.threads } })).result;
      } catch (err) {
        failed += 1;
        line = { file, error: errorLine(err) };
      }
      if (options.json) writeLine(io.stdout, JSON.stringify(line));
      else writeLine('error' in line ? io.stderr : io.stdout, humanLine(line));
      bar?.increment(1, { failed });
    }
  } finally {
    bar?.stop();
    await model.close();
  }
  return { failed, total: files.length };
}

function humanLine(line: TriageResult | ErrorResult): string {
  const name = path.basename(line.file ?? '');
  if ('error' in line) return `${name}: ${line.error.code}: ${line.error.message}`;
  const took = `${Math.round(line.timingsMs.total)} ms`;
  if (!line.applicable) return `${name}: AI not applicable: ${line.reason ?? ''}${line.forced ? ' (forced run, scores not used)' : ''} [${took}]`;
  const positives = line.findings.filter((f) => f.positive);
  const found = positives.length
    ? positives.map((f) => `${f.display} ${Math.round(f.probability * 100)}% (>= ${Math.round(f.threshold * 100)}%)`).join(', ')
    : 'no finding above threshold';
  const unverified = line.applicability.verified ? '' : ` (applicability not verified: ${line.applicability.notes.join('; ')})`;
  return `${name}: ${line.priority.toUpperCase()}: ${found}${unverified} [${line.model.name}@${line.model.version}, ${took}]`;
}
