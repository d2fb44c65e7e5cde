/**
 * Per-stage latency of `cxr infer` in a warm process: every shared DICOM file, both shipped models, the median of
 * several runs. Writes results/inference-stages.json and prints a Markdown table for benchmarks/README.md.
 *
 *   npm run inference -w benchmarks -- [--runs 7] [--threads 2] [--model densenet121-cxr18-random]
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { inferenceNodeFlags, loadModel, startedWithInferenceFlags, type LoadedModel } from '@cxr/inference';
import { machineDescription, modelDir, resultsDir, sharedDicomFiles, shippedModels } from './corpus.js';
import { medianTimes, timeOurs, type StageTimes } from './ours.js';
import { fmt, median, quantile } from './stats.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '7' }, threads: { type: 'string', default: '2' }, model: { type: 'string' } } });
const runs = Number(args.runs);
const threads = Number(args.threads);
const files = sharedDicomFiles();

interface Row extends StageTimes {
  file: string;
  decoder: string;
}

/**
 * Files take turns, round after round (one warm-up round first, not counted): these shared machines slow down for
 * seconds at a time, and a file timed in one block would carry whatever state the machine was in then.
 */
async function measureAll(model: LoadedModel): Promise<{ rows: Row[]; best: number[]; runsByFile: Record<string, StageTimes[]> }> {
  const samples = new Map<string, StageTimes[]>(files.map((file) => [file, []]));
  const decoders = new Map<string, string>();
  for (let round = 0; round <= runs; round++) {
    for (const file of files) {
      const run = await timeOurs(model, file, threads);
      decoders.set(file, run.decoder);
      if (round > 0) samples.get(file)?.push(run.times);
    }
  }
  const rows = files.map((file) => ({ file: path.basename(file), decoder: decoders.get(file) ?? '', ...medianTimes(samples.get(file) ?? []) }));
  const best = files.map((file) => Math.min(...(samples.get(file) ?? []).map((t) => t.total)));
  const runsByFile = Object.fromEntries(files.map((file) => [path.basename(file), samples.get(file) ?? []]));
  return { rows, best, runsByFile };
}

const results: Record<string, Row[]> = {};
const bestTotals: Record<string, number[]> = {};
/** Every timed run, so that a median can be taken apart later (a total's median is not the sum of the stages'). */
const everyRun: Record<string, Record<string, StageTimes[]>> = {};
for (const name of shippedModels.filter((shipped) => args.model === undefined || shipped === args.model)) {
  const model = await loadModel(modelDir(name), { intraOpThreads: threads });
  const { rows, best, runsByFile } = await measureAll(model);
  results[name] = rows;
  everyRun[name] = runsByFile;
  bestTotals[name] = best;
  await model.close();
}

const machine = machineDescription();
// As the edge agent runs (`npm run inference` gives the flags); said in the table's title either way.
const node = startedWithInferenceFlags() ? `node ${inferenceNodeFlags.join(' ')}` : 'node without --single-threaded-gc';
writeFileSync(path.join(resultsDir, 'inference-stages.json'), JSON.stringify({ date: new Date().toISOString(), machine, node, runs, threads, results, bestTotals, everyRun }, null, 1));

for (const [name, rows] of Object.entries(results)) {
  console.log(`\n#### ${name} (median of ${runs} warm runs, files taking turns, ${threads} threads, ${node}; ${machine})\n`);
  console.log('| file | decoder | read | decode | preprocess | infer | total ms |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.file} | ${r.decoder} | ${fmt(r.read)} | ${fmt(r.decode)} | ${fmt(r.preprocess)} | ${fmt(r.infer)} | ${fmt(r.total)} |`);
  const totals = rows.map((r) => r.total);
  console.log(`\np50 ${fmt(median(totals))} ms, p95 ${fmt(quantile(totals, 0.95))} ms, max ${fmt(Math.max(...totals))} ms, sum ${fmt(totals.reduce((a, b) => a + b, 0))} ms over ${rows.length} files`);
  const best = bestTotals[name] ?? [];
  console.log(`each file's fastest of the ${runs} runs: p50 ${fmt(median(best))} ms, max ${fmt(Math.max(...best))} ms, sum ${fmt(best.reduce((a, b) => a + b, 0))} ms`);
  // Which state the host was in: a pass more than 1.3 times the fast passes' time had the two threads no faster than one.
  const passes = Object.values(everyRun[name] ?? {}).flatMap((timed) => timed.map((t) => t.infer));
  const fast = quantile(passes, 0.1);
  const slowShare = passes.filter((ms) => ms > 1.3 * fast).length / Math.max(1, passes.length);
  console.log(`model passes: p10 ${fmt(fast)} ms, p50 ${fmt(median(passes))} ms, p90 ${fmt(quantile(passes, 0.9))} ms; ${(100 * slowShare).toFixed(0)} % over 1.3 x the p10 (the host's slow state)`);
}
