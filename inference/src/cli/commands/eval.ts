import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { evaluateModel, rocSvg, type Evaluation, type RunSummary, type ScoreReport } from '../../eval/index.js';
import { imageProgress, type Progress } from '../progress.js';
import { readThresholdsFile } from '../thresholds-file.js';
import { writeLine, type CliIo } from '../output.js';

export interface EvalOptions {
  readonly model: string;
  readonly labels: string;
  readonly truth?: string;
  readonly score?: string;
  readonly imageColumn?: string;
  readonly threshold?: number;
  readonly thresholds?: string;
  readonly includeNotApplicable?: boolean;
  readonly threads?: number;
  readonly json?: boolean;
  readonly out?: string;
}

/** Evaluates a model on a labelled set; returns the exit code (1 when no image could be scored). */
export async function evalCommand(options: EvalOptions, io: CliIo): Promise<number> {
  const thresholds = options.thresholds ? await readThresholdsFile(options.thresholds) : undefined;
  let progress: Progress | undefined;
  let evaluation: Evaluation;
  try {
    evaluation = await evaluateModel({
      modelDir: options.model,
      labelsFile: options.labels,
      imageColumn: options.imageColumn,
      truth: options.truth,
      score: options.score,
      threshold: options.threshold,
      thresholds,
      includeNotApplicable: options.includeNotApplicable,
      threads: options.threads,
      onStart: (total) => (progress = imageProgress(io, 'cxr eval', total)),
      onProgress: (done, failed) => progress?.update(done, failed),
    });
  } finally {
    progress?.stop();
  }
  // One score asked for by name gives its metrics at the top level (the interface outside checks read);
  // the per-label run gives them under `scores`.
  const single = options.score !== undefined || options.truth !== undefined;
  const report = evaluationJson(evaluation, single);
  if (options.out) await writeReport(options.out, evaluation, report);
  if (options.json) writeLine(io.stdout, JSON.stringify(report));
  else writeHuman(io, evaluation, options.out);
  return (evaluation.reports[0]?.n ?? 0) === 0 ? 1 : 0;
}

function evaluationJson({ summary, reports }: Evaluation, single: boolean): Record<string, unknown> {
  const { failed, notApplicable, ...rest } = summary;
  const [first] = reports;
  if (single && first) {
    const { n, positives, negatives, auc, auc95, sensitivity, specificity, ...more } = first;
    return { n, positives, negatives, auc, auc95, sensitivity, specificity, failed, ...more, notApplicable, ...rest };
  }
  return { n: first?.n ?? 0, failed, notApplicable, ...rest, scores: reports };
}

async function writeReport(dir: string, evaluation: Evaluation, report: Record<string, unknown>): Promise<void> {
  await mkdir(dir, { recursive: true });
  const rocs = evaluation.rocs.map((roc, k) => ({
    score: evaluation.reports[k]?.score,
    fpr: roc.fpr.map(round6),
    tpr: roc.tpr.map(round6),
    // thresholds[0] is +Infinity (nothing positive), which JSON writes as null.
    thresholds: roc.thresholds,
  }));
  await writeFile(path.join(dir, 'report.json'), `${JSON.stringify({ ...report, roc: rocs, images: evaluation.images }, null, 1)}\n`);
  const { summary } = evaluation;
  const svg = rocSvg({
    title: `ROC: ${summary.model.name}@${summary.model.version}`,
    subtitle: `${summary.labelsFile}: ${evaluation.reports[0]?.n ?? 0} images scored, ${summary.failed.length} unreadable, ${summary.notApplicable.length} not applicable`,
    curves: evaluation.reports.map((r, k) => ({
      name: scoreName(r),
      roc: evaluation.rocs[k] ?? { fpr: [], tpr: [], thresholds: [] },
      auc: r.auc,
      auc95: r.auc95,
      sensitivity: r.sensitivity,
      specificity: r.specificity,
      pointRule: r.operatingPoint.rule === 'score' ? `score ≥ ${r.operatingPoint.threshold}` : r.codes.length > 1 ? 'any label ≥ its threshold' : 'at its threshold',
    })),
  });
  await writeFile(path.join(dir, 'roc.svg'), svg);
}

const round6 = (v: number): number => Math.round(v * 1e6) / 1e6;
const f3 = (v: number | null): string => (v === null ? '-' : v.toFixed(3));
const ci = (v: [number, number] | null): string => (v === null ? '' : ` (95% CI ${v[0].toFixed(3)}-${v[1].toFixed(3)})`);

function writeHuman(io: CliIo, { summary, reports }: Evaluation, out: string | undefined): void {
  writeLine(io.stdout, runLine(summary, reports[0]?.n ?? 0));
  for (const r of reports) {
    writeLine(io.stdout, `${scoreName(r)}: n ${r.n} (${r.positives} positive, ${r.negatives} negative)`);
    writeLine(io.stdout, `  AUC ${r.auc === null ? '-' : r.auc.toFixed(4)}${r.auc95 ? ` (95% CI ${r.auc95[0].toFixed(4)}-${r.auc95[1].toFixed(4)}, DeLong)` : ''}`);
    writeLine(io.stdout, `  at ${ruleText(r)}:`);
    writeLine(io.stdout, `    sensitivity ${f3(r.sensitivity)}${ci(r.sensitivity95)}, specificity ${f3(r.specificity)}${ci(r.specificity95)} (Wilson)`);
    writeLine(io.stdout, `    PPV ${f3(r.ppv)}, NPV ${f3(r.npv)}; tp ${r.tp}, fp ${r.fp}, tn ${r.tn}, fn ${r.fn}`);
  }
  for (const f of summary.failed) writeLine(io.stderr, `failed: ${f.image}: ${f.code}: ${f.message}`);
  for (const f of summary.notApplicable) writeLine(io.stderr, `not applicable: ${f.image}: ${f.reason}`);
  if (out) writeLine(io.stdout, `wrote ${path.join(out, 'report.json')} and ${path.join(out, 'roc.svg')}`);
}

function runLine(summary: RunSummary, n: number): string {
  const { model } = summary;
  const unverified = summary.unverified ? ` (${summary.unverified} with applicability not verified)` : '';
  const forced = summary.forced ? `, ${summary.forced} of them outside applicability (--include-not-applicable)` : '';
  return (
    `${model.name}@${model.version} on ${summary.labelsFile}: ${n} images scored${unverified}${forced}, ` +
    `${summary.failed.length} unreadable, ${summary.notApplicable.length} not applicable, in ${(summary.elapsedMs / 1000).toFixed(1)} s`
  );
}

/** "pneumonia = bacterial_pneumonia+viral_pneumonia", or just the code when the column is named after it. */
function scoreName(r: ScoreReport): string {
  return r.truth.toLowerCase() === r.score ? r.score : `${r.truth} = ${r.score}`;
}

function ruleText(r: ScoreReport): string {
  const op = r.operatingPoint;
  if (op.rule === 'score') return `${r.score} >= ${op.threshold}`;
  const each = Object.entries(op.thresholds).map(([code, t]) => `${code} >= ${t}`);
  return each.length > 1 ? `any of ${each.join(', ')}` : (each[0] ?? '');
}
