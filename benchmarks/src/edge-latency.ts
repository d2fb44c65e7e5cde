/**
 * The edge loop as the radiographer lives it: DCMTK's storescu sends a file; we time from the moment storescu
 * returns (C-STORE acknowledged, the image durable) to the moment the result is visible through the agent's API
 * (its server-sent event, then `/api/studies`). Then a burst of 50 studies in one association: throughput and the
 * longest wait. Writes results/edge-latency.json and prints Markdown for benchmarks/README.md.
 *
 *   npm run edge -w benchmarks -- [--model DIR] [--burst 50]
 */
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { inferenceNodeFlags } from '@cxr/inference';
import { fmt, median, quantile } from './stats.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const shared = path.resolve(root, '../shared');
const { values: args } = parseArgs({
  options: { model: { type: 'string', default: path.join(shared, 'models', 'densenet121-cxr18-random') }, burst: { type: 'string', default: '50' } },
});

interface Instance {
  id: number;
  sopInstanceUid: string;
  status: string;
  receivedAt: string;
  processedAt: string | null;
  result: { timingsMs: { decode: number; preprocess: number; infer: number; total: number } } | null;
}

async function startAgent(dataDir: string): Promise<{ dicomPort: number; httpPort: number; stop: () => void }> {
  const child = spawn(process.execPath, [...inferenceNodeFlags, path.join(root, 'edge-agent/bin/cxr-edge.js'), '--data-dir', dataDir, '--dicom-port', '0', '--http-port', '0', '--http-host', '127.0.0.1', '--model', args.model ?? '', '--log-level', 'warn'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const ports = await new Promise<{ dicomPort: number; httpPort: number }>((resolve, reject) => {
    child.stderr.on('data', (d: Buffer) => {
      err += d.toString();
      const m = /ready\. DICOM \S+@(\d+), page http:\/\/localhost:(\d+)\//u.exec(err);
      if (m) resolve({ dicomPort: Number(m[1]), httpPort: Number(m[2]) });
    });
    child.once('exit', () => reject(new Error(err)));
  });
  return { ...ports, stop: () => child.kill('SIGTERM') };
}

async function instances(httpPort: number): Promise<Instance[]> {
  const res = await fetch(`http://127.0.0.1:${httpPort}/api/studies?limit=1000`);
  return ((await res.json()) as { instances: Instance[] }[]).flatMap((s) => s.instances);
}

/** Resolves with the time the next `instance` event with a finished status arrives. */
function nextResult(httpPort: number, known: Set<number>): Promise<{ at: number; id: number }> {
  return new Promise((resolve, reject) => {
    const controller = new AbortController();
    setTimeout(() => {
      controller.abort();
      reject(new Error('no result within 60 s'));
    }, 60_000).unref();
    void fetch(`http://127.0.0.1:${httpPort}/api/events`, { signal: controller.signal })
      .then(async (res) => {
        const reader = res.body?.getReader();
        const decoder = new TextDecoder();
        let buffer = '';
        for (;;) {
          const chunk = await reader?.read();
          if (!chunk || chunk.done) return;
          buffer += decoder.decode(chunk.value);
          for (const m of buffer.matchAll(/data: (\{[^\n]*\})/gu)) {
            const event = JSON.parse(m[1] ?? '{}') as { id: number; status: string };
            if (event.status !== 'received' && !known.has(event.id)) {
              const at = performance.now();
              controller.abort();
              resolve({ at, id: event.id });
              return;
            }
          }
        }
      })
      .catch((e: unknown) => {
        if ((e as Error).name !== 'AbortError') reject(e as Error);
      });
  });
}

const dataDir = mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-edge-'));
const agent = await startAgent(dataDir);
const profile = path.join(shared, 'dcmtk', 'storescu-all-ts.cfg');
const files = [
  ...readdirSync(path.join(shared, 'dicom')).filter((f) => f.endsWith('.dcm')).map((f) => path.join(shared, 'dicom', f)),
  // The Part 10 twin of the headerless chest is the same dataset: the agent stores it once and shows no new result.
  ...readdirSync(path.join(shared, 'dicom', 'derived')).filter((f) => !f.includes('MONO1')).map((f) => path.join(shared, 'dicom', 'derived', f)),
].sort();

// One warm-up send of a copy with new UIDs (the real files must each be new to the agent), not counted.
const warmDir = mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-warm-'));
const warmFile = path.join(warmDir, 'warm.dcm');
copyFileSync(path.join(shared, 'dicom', 'cr_chest_CR-MONO1-10-chest.dcm'), warmFile);
await run('dcmodify', ['-nb', '-m', '(0020,000d)=1.2.826.0.1.3680043.10.1417.8.1', '-m', '(0008,0018)=1.2.826.0.1.3680043.10.1417.8.1.1', warmFile]);
await run('storescu', ['-xf', profile, 'AllTS', '-aec', 'CXR_EDGE', '127.0.0.1', String(agent.dicomPort), warmFile]);
await new Promise((r) => setTimeout(r, 1500));
rmSync(warmDir, { recursive: true, force: true });

// Each file goes as a new instance of its own (new UIDs, the pixels and syntax as they are): the RG1 chest's lossless
// re-encodings are one instance to the agent, which would show no new result for the second one.
const singlesDir = mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-singles-'));
const singles: string[] = [];
for (const [i, file] of files.entries()) {
  const target = path.join(singlesDir, path.basename(file));
  copyFileSync(file, target);
  await run('dcmodify', ['-nb', '-m', `(0020,000d)=1.2.826.0.1.3680043.10.1417.7.${i}`, '-m', `(0008,0018)=1.2.826.0.1.3680043.10.1417.7.${i}.1`, target]);
  singles.push(target);
}

const rows: { file: string; visibleMs: number; decode: number; preprocess: number; infer: number; other: number }[] = [];
for (const file of singles) {
  const known = new Set((await instances(agent.httpPort)).map((i) => i.id));
  const result = nextResult(agent.httpPort, known);
  await new Promise((r) => setTimeout(r, 50));
  await run('storescu', ['-xf', profile, 'AllTS', '-aec', 'CXR_EDGE', '127.0.0.1', String(agent.dicomPort), file]);
  const acked = performance.now();
  const { at, id } = await result;
  const instance = (await instances(agent.httpPort)).find((i) => i.id === id);
  const t = instance?.result?.timingsMs ?? { decode: 0, preprocess: 0, infer: 0, total: 0 };
  const visibleMs = at - acked;
  rows.push({ file: path.basename(file), visibleMs, decode: t.decode, preprocess: t.preprocess, infer: t.infer, other: Math.max(0, visibleMs - t.total) });
}

// Burst: 50 distinct studies (new UIDs by DCMTK's dcmodify) in one association.
const burstN = Number(args.burst);
const burstDir = mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-burst-'));
const sources = ['cr_chest_pa_RG1_J2KI.dcm', 'dx_chest_nih_secondary_capture.dcm', 'cr_chest_CR-MONO1-10-chest.dcm'].map((f) => path.join(shared, 'dicom', f));
const burstFiles: string[] = [];
for (let i = 0; i < burstN; i++) {
  const target = path.join(burstDir, `burst-${i}.dcm`);
  copyFileSync(sources[i % sources.length] ?? '', target);
  await run('dcmodify', ['-nb', '-m', `(0020,000d)=1.2.826.0.1.3680043.10.1417.9.${i}`, '-m', `(0008,0018)=1.2.826.0.1.3680043.10.1417.9.${i}.1`, target]);
  burstFiles.push(target);
}
const before = new Set((await instances(agent.httpPort)).map((i) => i.id));
const burstStart = performance.now();
await run('storescu', ['-xf', profile, 'AllTS', '-aec', 'CXR_EDGE', '127.0.0.1', String(agent.dicomPort), ...burstFiles], { maxBuffer: 1 << 24 });
const sendMs = performance.now() - burstStart;
let burst: Instance[] = [];
for (;;) {
  burst = (await instances(agent.httpPort)).filter((i) => !before.has(i.id));
  if (burst.length >= burstN && burst.every((i) => i.status !== 'received')) break;
  await new Promise((r) => setTimeout(r, 100));
}
const waits = burst.map((i) => Date.parse(i.processedAt ?? '') - Date.parse(i.receivedAt));
const first = Math.min(...burst.map((i) => Date.parse(i.receivedAt)));
const last = Math.max(...burst.map((i) => Date.parse(i.processedAt ?? '')));
agent.stop();
rmSync(burstDir, { recursive: true, force: true });
rmSync(singlesDir, { recursive: true, force: true });

const visible = rows.map((r) => r.visibleMs);
const machine = `${os.cpus().length} x ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}`;
const summary = {
  date: new Date().toISOString(),
  machine,
  model: path.basename(args.model ?? ''),
  visible: { p50: median(visible), p95: quantile(visible, 0.95), max: Math.max(...visible) },
  rows,
  burst: { n: burstN, sendMs, throughputPerS: burstN / ((last - first) / 1000), waitP50: median(waits), waitP95: quantile(waits, 0.95), waitMax: Math.max(...waits) },
};
writeFileSync(path.join(here, '..', 'results', 'edge-latency.json'), JSON.stringify(summary, null, 1));
setTimeout(() => rmSync(dataDir, { recursive: true, force: true }), 2000).unref();

console.log(`\n#### C-STORE acknowledged -> result visible (${summary.model}; ${machine})\n`);
console.log('| file | visible after ack, ms | decode | preprocess | infer | store, queue, events |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const r of rows) console.log(`| ${r.file} | ${fmt(r.visibleMs)} | ${fmt(r.decode)} | ${fmt(r.preprocess)} | ${fmt(r.infer)} | ${fmt(r.other)} |`);
console.log(`\np50 ${fmt(summary.visible.p50)} ms, p95 ${fmt(summary.visible.p95)} ms, max ${fmt(summary.visible.max)} ms over ${rows.length} files`);
console.log(`\nBurst of ${burstN} studies in one association: sent in ${fmt(sendMs)} ms; ${summary.burst.throughputPerS.toFixed(1)} studies/s from first receipt to last result; wait from receipt to result p50 ${fmt(summary.burst.waitP50)} ms, p95 ${fmt(summary.burst.waitP95)} ms, longest ${fmt(summary.burst.waitMax)} ms`);
