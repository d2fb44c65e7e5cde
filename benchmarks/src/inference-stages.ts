/**
 * Per-stage latency of `cxr infer` in a warm process: every shared DICOM file, both shipped models, the median of
 * several runs. Writes results/inference-stages.json and prints a Markdown table for benchmarks/README.md.
 *
 *   npm run inference -w benchmarks -- [--runs 7] [--threads 2]
 */
import { readdirSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { analyzeBytes, loadModel, type LoadedModel } from '@cxr/inference';
import { fmt, median, quantile } from './stats.js';

const { values: args } = parseArgs({ options: { runs: { type: 'string', default: '7' }, threads: { type: 'string', default: '2' } } });
const runs = Number(args.runs);
const threads = Number(args.threads);
const here = path.dirname(fileURLToPath(import.meta.url));
const shared = path.resolve(here, '../../../shared');
const files = readdirSync(path.join(shared, 'dicom'))
  .filter((f) => f.endsWith('.dcm'))
  .map((f) => path.join(shared, 'dicom', f))
  .concat(readdirSync(path.join(shared, 'dicom', 'derived')).map((f) => path.join(shared, 'dicom', 'derived', f)))
  .sort();

interface Row {
  file: string;
  decoder: string;
  read: number;
  decode: number;
  preprocess: number;
  infer: number;
  total: number;
}

async function measure(model: LoadedModel, file: string): Promise<Row> {
  const samples: { read: number; decode: number; preprocess: number; infer: number; total: number }[] = [];
  let decoder = '';
  for (let i = 0; i <= runs; i++) {
    const t0 = performance.now();
    const bytes = await readFile(file);
    const read = performance.now() - t0;
    const { result } = await analyzeBytes(bytes, model, { force: true, decode: { j2kThreads: threads } });
    decoder = result.decoder ?? '';
    // The first run warms caches and JIT; it is not counted.
    if (i > 0) samples.push({ read, decode: result.timingsMs.decode, preprocess: result.timingsMs.preprocess, infer: result.timingsMs.infer, total: result.timingsMs.total + read });
  }
  const pick = (k: keyof (typeof samples)[number]): number => median(samples.map((s) => s[k]));
  return { file: path.basename(file), decoder, read: pick('read'), decode: pick('decode'), preprocess: pick('preprocess'), infer: pick('infer'), total: pick('total') };
}

const results: Record<string, Row[]> = {};
for (const name of ['densenet121-cxr18-random', 'squeezenet-pneumonia-peds']) {
  const model = await loadModel(path.join(shared, 'models', name), { intraOpThreads: threads });
  results[name] = [];
  for (const file of files) results[name].push(await measure(model, file));
  await model.close();
}

const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
writeFileSync(path.join(here, '..', 'results', 'inference-stages.json'), JSON.stringify({ date: new Date().toISOString(), machine, runs, threads, results }, null, 1));

for (const [name, rows] of Object.entries(results)) {
  console.log(`\n#### ${name} (median of ${runs} warm runs, ${threads} threads; ${machine})\n`);
  console.log('| file | decoder | read | decode | preprocess | infer | total ms |');
  console.log('|---|---|---:|---:|---:|---:|---:|');
  for (const r of rows) console.log(`| ${r.file} | ${r.decoder} | ${fmt(r.read)} | ${fmt(r.decode)} | ${fmt(r.preprocess)} | ${fmt(r.infer)} | ${fmt(r.total)} |`);
  const totals = rows.map((r) => r.total);
  console.log(`\np50 ${fmt(median(totals))} ms, p95 ${fmt(quantile(totals, 0.95))} ms, max ${fmt(Math.max(...totals))} ms, sum ${fmt(totals.reduce((a, b) => a + b, 0))} ms over ${rows.length} files`);
}
