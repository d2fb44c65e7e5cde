/**
 * Per-stage latency of `cxr infer` in a warm process: every shared DICOM file, both shipped models, the median of
 * several runs. Writes results/inference-stages.json and prints a Markdown table for benchmarks/README.md.
 *
 *   npm run inference -w benchmarks -- [--runs 7] [--threads 2] [--model densenet121-cxr18-random]
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, type LoadedModel } from '@cxr/inference';
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

async function measure(model: LoadedModel, file: string): Promise<Row> {
  const samples: StageTimes[] = [];
  let decoder = '';
  for (let i = 0; i <= runs; i++) {
    const run = await timeOurs(model, file, threads);
    decoder = run.decoder;
    // The first run warms caches and JIT; it is not counted.
    if (i > 0) samples.push(run.times);
  }
  return { file: path.basename(file), decoder, ...medianTimes(samples) };
}

const results: Record<string, Row[]> = {};
for (const name of shippedModels.filter((shipped) => args.model === undefined || shipped === args.model)) {
  const model = await loadModel(modelDir(name), { intraOpThreads: threads });
  results[name] = [];
  for (const file of files) results[name].push(await measure(model, file));
  await model.close();
}

const machine = machineDescription();
writeFileSync(path.join(resultsDir, 'inference-stages.json'), JSON.stringify({ date: new Date().toISOString(), machine, runs, threads, results }, null, 1));

for (const [name, rows] of Object.entries(results)) {
  console.log(`\n#### ${name} (median of ${runs} warm runs, ${threads} threads; ${machine})\n`);
  console.log('| file | decoder | read | decode | preprocess | infer | total ms |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.file} | ${r.decoder} | ${fmt(r.read)} | ${fmt(r.decode)} | ${fmt(r.preprocess)} | ${fmt(r.infer)} | ${fmt(r.total)} |`);
  const totals = rows.map((r) => r.total);
  console.log(`\np50 ${fmt(median(totals))} ms, p95 ${fmt(quantile(totals, 0.95))} ms, max ${fmt(Math.max(...totals))} ms, sum ${fmt(totals.reduce((a, b) => a + b, 0))} ms over ${rows.length} files`);
}
