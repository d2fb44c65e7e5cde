/**
 * How close the model runs to what this machine can do, and which of its two speeds the machine is in.
 *
 * Block after block: the FP32 probe (ceiling/fma.c) on one core, then on both cores at once, then DenseNet-121 through our runtime
 * with 2 intra-op threads, then with 1. Each block prints the probe's GFLOP/s over both cores and the model's median
 * time, so a slow model block can be matched to a slow machine. Writes results/model-ceiling.json.
 *
 *   npm run ceiling -w benchmarks -- [--blocks 12] [--runs 10]
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadModel, type LoadedModel } from '@cxr/inference';
import { benchmarksDir, machineDescription, modelDir, resultsDir } from './corpus.js';
import { fmt, median } from './stats.js';

const { values: args } = parseArgs({ options: { blocks: { type: 'string', default: '12' }, runs: { type: 'string', default: '10' } } });
const blocks = Number(args.blocks);
const runs = Number(args.runs);
const modelName = 'densenet121-cxr18-random';

function buildProbe(): string {
  const binary = path.join(mkdtempSync(path.join(tmpdir(), 'cxr-ceiling-')), 'fma');
  execFileSync('gcc', ['-O3', '-march=native', '-o', binary, path.join(benchmarksDir, 'ceiling', 'fma.c')], { stdio: 'inherit' });
  return binary;
}

function runProbe(binary: string, core: number, rounds: number): Promise<number[]> {
  return new Promise((resolve, reject) => {
    const child = spawn('taskset', ['-c', String(core), binary, String(rounds)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(out.trim().split('\n').map(Number)) : reject(new Error(`fma probe exited with ${String(code)}`))));
  });
}

/** GFLOP/s of both cores together: one probe per core, started at once. */
async function probeBothCores(binary: string): Promise<number> {
  const [first, second] = await Promise.all([runProbe(binary, 0, 3), runProbe(binary, 1, 3)]);
  return median(first) + median(second);
}

function modelGflop(): number | undefined {
  try {
    const out = execFileSync('/usr/bin/python3', [path.join(benchmarksDir, 'ceiling', 'model_macs.py'), path.join(modelDir(modelName), 'model.onnx')], { encoding: 'utf8' });
    return (JSON.parse(out) as { gflop: number }).gflop;
  } catch {
    return undefined; // python3-onnx missing: `bash benchmarks/peer/setup.sh` installs it
  }
}

async function timeModel(model: LoadedModel, input: Float32Array): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    await model.run(input);
    times.push(performance.now() - start);
  }
  return median(times);
}

const probe = buildProbe();
const gflop = modelGflop();
const twoThreads = await loadModel(modelDir(modelName), { intraOpThreads: 2 });
const oneThread = await loadModel(modelDir(modelName), { intraOpThreads: 1 });
const { height, width, channels } = twoThreads.manifest.input;
const input = new Float32Array(channels * height * width).fill(0.25);
for (let i = 0; i < 3; i++) await Promise.all([twoThreads.run(input), oneThread.run(input)]).catch(() => undefined);
await timeModel(twoThreads, input);
await timeModel(oneThread, input);

interface Block {
  probeOneCoreGflops: number;
  probeGflops: number;
  twoThreadsMs: number;
  oneThreadMs: number;
}
const rows: Block[] = [];
for (let block = 0; block < blocks; block++) {
  const probeOneCoreGflops = median(await runProbe(probe, 0, 3));
  const probeGflops = await probeBothCores(probe);
  rows.push({ probeOneCoreGflops, probeGflops, twoThreadsMs: await timeModel(twoThreads, input), oneThreadMs: await timeModel(oneThread, input) });
}
await twoThreads.close();
await oneThread.close();

const machine = machineDescription();
writeFileSync(path.join(resultsDir, 'model-ceiling.json'), JSON.stringify({ date: new Date().toISOString(), machine, model: modelName, gflop, runs, rows }, null, 1));

console.log(`\n#### ${modelName}${gflop === undefined ? '' : ` (${fmt(gflop)} GFLOP a pass)`}: FP32 probe on both cores, then the model (median of ${runs}), block by block; ${machine}\n`);
const share = (ms: number, ceiling: number): string => (gflop === undefined ? '' : `${fmt((100 * gflop) / (ms / 1000) / ceiling)} %`);
console.log('| block | probe, one core, GFLOP/s | probe, both cores at once | model, 2 threads, ms | of both cores | model, 1 thread, ms | of one core |');
console.log('|---:|---:|---:|---:|---:|---:|---:|');
rows.forEach((row, i) => {
  const cells = [fmt(row.probeOneCoreGflops), fmt(row.probeGflops), fmt(row.twoThreadsMs), share(row.twoThreadsMs, row.probeGflops), fmt(row.oneThreadMs), share(row.oneThreadMs, row.probeOneCoreGflops)];
  console.log(`| ${i + 1} | ${cells.join(' | ')} |`);
});
if (gflop !== undefined) {
  const best = Math.max(...rows.map((row) => row.probeGflops));
  console.log(`\nAt the best probe figure (${fmt(best)} GFLOP/s) one pass cannot take less than ${fmt((1000 * gflop) / best)} ms.`);
}
