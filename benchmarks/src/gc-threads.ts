/**
 * Why the processes that run models start with `--single-threaded-gc` (inference/src/runtime/node-flags.ts).
 *
 * The same warm pipeline as `npm run inference` (22 shared files, DenseNet-121, 2 threads) in one process started with
 * Node's default flags and one started with `inferenceNodeFlags`, one after the other, round after round, the order
 * swapped each round. During every model pass the process's threads are read from /proc/self/task/N/schedstat: the
 * main thread and ONNX Runtime's worker run the model, so CPU time on any other thread of the process during a pass
 * is V8's (libuv's threads are idle then: decoding is over). Writes results/gc-threads.json.
 *
 *   npm run gc-threads -w benchmarks -- [--rounds 3] [--runs 5]
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { analyzeBytes, inferenceNodeFlags, loadModel, startedWithInferenceFlags } from '@cxr/inference';
import { machineDescription, modelDir, resultsDir, sharedDicomFiles } from './corpus.js';
import { fmt, median, quantile } from './stats.js';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, runs: { type: 'string', default: '5' }, child: { type: 'boolean', default: false } } });
const modelName = 'densenet121-cxr18-random';

interface Pass {
  /** The model pass, ms. */
  infer: number;
  /** CPU time of the process's threads other than the main thread and ONNX Runtime's worker during the pass, ms. */
  otherThreadsMs: number;
}
interface ChildReport {
  singleThreadedGc: boolean;
  passes: Pass[];
  /** Each file's median DICOM -> result time, ms. */
  fileTotals: number[];
}

/** CPU time of each thread of this process so far, ns. */
function threadCpuNs(): Map<string, number> {
  const times = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      times.set(tid, Number(readFileSync(`/proc/self/task/${tid}/schedstat`, 'utf8').split(' ')[0]));
    } catch {
      // the thread ended between the listing and the read
    }
  }
  return times;
}

async function runChild(): Promise<void> {
  const model = await loadModel(modelDir(modelName), { intraOpThreads: 2 });
  const passes: Pass[] = [];
  const realRun = model.run.bind(model);
  let counting = false;
  const watched = {
    ...model,
    async run(tensor: Float32Array) {
      const before = threadCpuNs();
      const start = performance.now();
      const output = await realRun(tensor);
      const infer = performance.now() - start;
      const used = [...threadCpuNs()].filter(([tid]) => tid !== String(process.pid)).map(([tid, ns]) => (ns - (before.get(tid) ?? 0)) / 1e6);
      used.sort((a, b) => b - a);
      // The busiest thread besides the main one is ONNX Runtime's worker.
      if (counting) passes.push({ infer, otherThreadsMs: used.slice(1).reduce((a, b) => a + b, 0) });
      return output;
    },
  };
  const files = sharedDicomFiles();
  const totals = files.map((): number[] => []);
  const runs = Number(args.runs);
  for (let round = 0; round <= runs; round++) {
    counting = round > 0;
    for (const [i, file] of files.entries()) {
      const start = performance.now();
      await analyzeBytes(await readFile(file), watched, { force: true, decode: { j2kThreads: 2 } });
      if (counting) totals[i]?.push(performance.now() - start);
    }
  }
  await model.close();
  const report: ChildReport = { singleThreadedGc: startedWithInferenceFlags(), passes, fileTotals: totals.map((t) => median(t)) };
  process.stdout.write(JSON.stringify(report));
}

function runVariant(flags: readonly string[]): Promise<ChildReport> {
  const self = fileURLToPath(import.meta.url);
  const loader = path.extname(self) === '.ts' ? ['--import', 'tsx'] : [];
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...flags, ...loader, self, '--child', '--runs', String(args.runs)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out) as ChildReport) : reject(new Error(`child exited with ${String(code)}`))));
  });
}

if (args.child) {
  await runChild();
} else {
  const variants = [
    { label: 'node (default flags)', flags: [] as readonly string[] },
    { label: `node ${inferenceNodeFlags.join(' ')}`, flags: inferenceNodeFlags },
  ];
  const reports = variants.map((): ChildReport[] => []);
  for (let round = 0; round < Number(args.rounds); round++) {
    const order = round % 2 === 0 ? [0, 1] : [1, 0];
    for (const v of order) {
      const variant = variants[v];
      if (!variant) continue;
      const report = await runVariant(variant.flags);
      reports[v]?.push(report);
      console.error(`round ${round + 1}, ${variant.label}: p50 ${fmt(median(report.fileTotals))} ms`);
    }
  }
  const machine = machineDescription();
  writeFileSync(path.join(resultsDir, 'gc-threads.json'), JSON.stringify({ date: new Date().toISOString(), machine, model: modelName, rounds: Number(args.rounds), runs: Number(args.runs), variants: variants.map((v, i) => ({ ...v, reports: reports[i] })) }, null, 1));

  console.log(`\n#### ${modelName}, 2 threads: ${args.rounds} rounds of ${args.runs} warm runs of the 22 files per process; ${machine}\n`);
  console.log('| process | passes | pass p50 ms | pass p90 ms | passes with other threads running (> 1 ms) | their CPU in such a pass, median ms | DICOM -> result p50 of each round, ms |');
  console.log('|---|---:|---:|---:|---:|---:|---|');
  variants.forEach((variant, i) => {
    const rounds = reports[i] ?? [];
    const passes = rounds.flatMap((r) => r.passes);
    const infers = passes.map((p) => p.infer);
    const shared = passes.filter((p) => p.otherThreadsMs > 1);
    const share = `${((100 * shared.length) / Math.max(1, passes.length)).toFixed(0)} %`;
    const p50s = rounds.map((r) => fmt(median(r.fileTotals))).join(', ');
    console.log(`| ${variant.label} | ${passes.length} | ${fmt(median(infers))} | ${fmt(quantile(infers, 0.9))} | ${share} | ${shared.length > 0 ? fmt(median(shared.map((p) => p.otherThreadsMs))) : '-'} | ${p50s} |`);
  });
}
