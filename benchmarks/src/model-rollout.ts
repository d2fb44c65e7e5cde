/**
 * Model rollout, with real processes: a fresh redis-server, a `cxr-gateway serve` (folder store), an mlops account,
 * one station, and a `cxr-edge` linked to the gateway, started on the small SqueezeNet. DenseNet-121 (27.8 MB, the
 * issue's "30 MB model") is pushed with `cxr-registry push` as several versions, each with a golden case, then
 * deployed to the station one version after another with `cxr-registry deploy`, and finally rolled back with
 * `cxr-registry rollback`. Meanwhile DCMTK's storescu sends a small chest every ~200 ms, each a new study.
 *
 * Measured: from the deploy command's return to the edge's `GET /api/health` naming the new version, split into the
 * poll wait, the download, verify + load + golden cases, and the swap (the edge's own events and log lines); and
 * every study's time from send to result, by where in a rollout it was sent, with the failed and the lost.
 * Writes results/model-rollout.json and prints Markdown for benchmarks/README.md.
 *
 *   npm run rollout -w benchmarks -- [--rounds 8] [--poll-ms 1000] [--interval-ms 200] [--quiet-ms 5000]
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { inferenceNodeFlags } from '@cxr/inference';
import { fmt, median, quantile } from './stats.js';
import { freePort } from './free-port.js';

const run = promisify(execFile);
const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const shared = path.resolve(root, '../shared');
const gatewayBin = path.join(root, 'gateway', 'bin', 'cxr-gateway.js');
const registryBin = path.join(root, 'model-registry', 'bin', 'cxr-registry.js');
const edgeBin = path.join(root, 'edge-agent', 'bin', 'cxr-edge.js');
const startModel = path.join(shared, 'models', 'squeezenet-pneumonia-peds');
const bigModel = path.join(shared, 'models', 'densenet121-cxr18-random');
const chestName = 'cr_chest_CR-MONO1-10-chest.dcm';
const chest = path.join(shared, 'dicom', chestName);
const storescuProfile = path.join(shared, 'dcmtk', 'storescu-all-ts.cfg');

const { values: args } = parseArgs({
  options: {
    rounds: { type: 'string', default: '8' },
    'poll-ms': { type: 'string', default: '1000' },
    'interval-ms': { type: 'string', default: '200' },
    'quiet-ms': { type: 'string', default: '5000' },
    out: { type: 'string', default: path.join(here, '..', 'results', 'model-rollout.json') },
  },
});
const rounds = Number(args.rounds);
const pollMs = Number(args['poll-ms']);
const intervalMs = Number(args['interval-ms']);
const quietMs = Number(args['quiet-ms']);

// ------------------------------------------------------------------------------------------------ processes

const children: ChildProcess[] = [];
let stopping = false;
const tempDirs: string[] = [];

function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}


/** Spawns a long-running process and resolves with the match of `ready` in its stdout or stderr. */
async function start(command: string, argv: readonly string[], ready: RegExp, onLine?: (line: string) => void): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(command, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(child);
  let seen = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${path.basename(argv[0] ?? command)} did not start:\n${seen.slice(-4000)}`)), 90_000);
    let pending = '';
    let up = false;
    const take = (d: Buffer): void => {
      const text = d.toString();
      if (!up) {
        seen += text;
        const m = ready.exec(seen);
        if (m) {
          up = true;
          clearTimeout(timer);
          resolve(m);
        }
      }
      if (!onLine) return;
      pending += text;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) onLine(line);
    };
    child.stdout?.on('data', take);
    child.stderr?.on('data', take);
    child.once('exit', (code) => {
      clearTimeout(timer);
      if (up && !stopping) console.error(`${path.basename(argv[0] ?? command)} exited with ${code} during the run`);
      else reject(new Error(`${path.basename(argv[0] ?? command)} exited with ${code}:\n${seen.slice(-4000)}`));
    });
  });
  return { child, match };
}

/** SIGTERM, then SIGKILL after `graceMs`; this process's own children only, by their handle. */
async function stop(child: ChildProcess, graceMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

async function cleanUp(): Promise<void> {
  stopping = true;
  // The edge first (it finishes what is in flight), then the gateway, then Redis.
  for (const child of [...children].reverse()) await stop(child);
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void cleanUp().finally(() => process.exit(130));
  });
}

// ------------------------------------------------------------------------------------------------ other people's CPU

/**
 * CPU ticks (1/100 s, Linux's USER_HZ) the machine spent busy, and those spent by this benchmark and every process
 * it started: the difference is what others ran meanwhile on this shared machine. Undefined off Linux.
 */
function cpuTicks(): { at: number; busy: number; mine: number; steal: number } | undefined {
  const times = (pid: number | 'self'): number => {
    try {
      // Fields after the command name: utime, stime, cutime, cstime are the 14th to 17th of the line.
      const after = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
      return [11, 12, 13, 14].reduce((sum, i) => sum + Number(after[i] ?? 0), 0);
    } catch {
      return 0;
    }
  };
  try {
    const [, user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/u).map(Number);
    const mine = times('self') + children.reduce((sum, c) => sum + (c.pid !== undefined && c.exitCode === null ? times(c.pid) : 0), 0);
    // Steal (the hypervisor running other machines) is apart: no process here spent it.
    return { at: Date.now(), busy: user + nice + system + irq + softirq, mine, steal };
  } catch {
    return undefined;
  }
}

/** The share of the whole machine (0..1) that other processes used between two samples, and the share stolen by the host. */
function othersShare(from: ReturnType<typeof cpuTicks>, to: ReturnType<typeof cpuTicks>): { others: number; stolen: number } {
  if (!from || !to || to.at <= from.at) return { others: NaN, stolen: NaN };
  const capacity = ((to.at - from.at) / 1000) * 100 * os.cpus().length;
  return { others: Math.max(0, (to.busy - from.busy - (to.mine - from.mine)) / capacity), stolen: (to.steal - from.steal) / capacity };
}

// ------------------------------------------------------------------------------------------------ the edge's view

interface Health {
  ready: boolean;
  model: { name: string; version: string; state: 'ok' | 'downloading' | 'verifying' | 'failed'; error?: { code: string; message: string } };
}
interface Instance {
  sopInstanceUid: string;
  status: 'received' | 'inferred' | 'failed';
  error: unknown;
  result: { model: { name: string; version: string } } | null;
}
interface SyncLine {
  time: number;
  msg: string;
  model?: string;
  previous?: string;
  file?: string;
  bytes?: number;
}
/** One model event of the edge's server-sent events, and what `/api/health` said right after it. */
interface ModelEvent {
  at: number;
  health?: Health['model'];
}
/** A health answer with the time it came back. */
interface HealthSeen {
  at: number;
  model: Health['model'];
}

const syncLines: SyncLine[] = [];
const modelEvents: ModelEvent[] = [];
const healthSeen: HealthSeen[] = [];

function onEdgeLine(line: string): void {
  if (!line.startsWith('{') || !line.includes('"component":"model-sync"')) return;
  try {
    syncLines.push(JSON.parse(line) as SyncLine);
  } catch {
    // A line cut by the process ending: not ours to judge.
  }
}

// ------------------------------------------------------------------------------------------------ setup

const machine = `${os.cpus().length} x ${os.cpus()[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
const loadAtStart = os.loadavg();
const cpuAtStart = cpuTicks();
const started = new Date();
console.error(`model rollout: ${rounds} deploys + 1 rollback, model poll ${pollMs} ms, a study every ${intervalMs} ms; load ${loadAtStart.map((l) => l.toFixed(2)).join(' ')}`);

const work = tempDir('cxr-bench-rollout-');
const storeDir = path.join(work, 'store');
const redisDir = path.join(work, 'redis');
const versionsDir = path.join(work, 'versions');
const studiesDir = path.join(work, 'studies');
const edgeDir = path.join(work, 'edge');
for (const dir of [storeDir, redisDir, versionsDir, studiesDir, edgeDir]) mkdirSync(dir, { recursive: true });

const redisPort = await freePort();
await start('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', redisDir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no'], /Ready to accept connections/u);
const redisUrl = `redis://127.0.0.1:${redisPort}`;
const gatewayPort = await freePort();
const gatewayUrl = `http://127.0.0.1:${gatewayPort}`;
await start(process.execPath, [gatewayBin, 'serve', '--host', '127.0.0.1', '--port', String(gatewayPort), '--store', storeDir, '--redis', redisUrl, '--log-level', 'warn'], /ready on/u);

const admin = async (...argv: string[]): Promise<string> =>
  (await run(process.execPath, [gatewayBin, 'admin', ...argv, '--store', storeDir, '--redis', redisUrl], { maxBuffer: 1 << 24 })).stdout;
const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';
const registryKey = lastLine(await admin('registry-key'));
const stationId = 'tram-bench';
const stationToken = lastLine(await admin('add-station', stationId));
const password = 'mat-khau-ml-benchmark-1';
await admin('add-user', 'ml.bench', '--role', 'mlops', '--password', password);
const token = lastLine((await run(process.execPath, [registryBin, 'login', '--gateway', gatewayUrl, '--username', 'ml.bench', '--password', password])).stdout);
const registry = async (...argv: string[]): Promise<string> =>
  (await run(process.execPath, [registryBin, ...argv, '--gateway', gatewayUrl, '--token', token], { maxBuffer: 1 << 26 })).stdout;

// The versions: the DenseNet folder with another `version`, and a golden case from a shared chest and its reference output.
const manifest = JSON.parse(readFileSync(path.join(bigModel, 'manifest.json'), 'utf8')) as { name: string; file: string };
const modelName = manifest.name;
const modelBytes = statSync(path.join(bigModel, manifest.file)).size;
const reference = JSON.parse(readFileSync(path.join(shared, 'reference', `${modelName}.probs.json`), 'utf8')) as Record<string, number[]>;
const goldenProbabilities = reference[chestName];
if (!goldenProbabilities) throw new Error(`no reference output for ${chestName}`);
const versions = Array.from({ length: rounds }, (_, i) => `1.${i}.0`);
const pushes: { version: string; ms: number; uploadedModel: boolean }[] = [];
for (const version of versions) {
  const dir = path.join(versionsDir, `${modelName}@${version}`);
  mkdirSync(path.join(dir, 'golden'), { recursive: true });
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, version }, null, 1));
  copyFileSync(path.join(bigModel, manifest.file), path.join(dir, manifest.file));
  copyFileSync(chest, path.join(dir, 'golden', 'chest.dcm'));
  // The reference has 6 decimals: 1e-3 leaves room for that rounding and nothing a broken model could hide in.
  writeFileSync(path.join(dir, 'golden', 'cases.json'), JSON.stringify({ tolerance: 1e-3, cases: [{ input: 'golden/chest.dcm', probabilities: goldenProbabilities }] }));
  const t = performance.now();
  let pushed: { accepted: boolean; errors: unknown[] };
  try {
    pushed = JSON.parse(await registry('push', dir)) as { accepted: boolean; errors: unknown[] };
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    throw new Error(`push ${modelName}@${version} refused: ${e.stdout ?? e.message}`);
  }
  if (!pushed.accepted) throw new Error(`push ${modelName}@${version} refused: ${JSON.stringify(pushed.errors)}`);
  pushes.push({ version, ms: performance.now() - t, uploadedModel: pushes.length === 0 });
  console.error(`pushed ${modelName}@${version} in ${fmt(performance.now() - t)} ms`);
}

const edge = await start(
  process.execPath,
  [
    ...inferenceNodeFlags,
    edgeBin,
    '--data-dir', edgeDir,
    '--dicom-port', '0',
    '--http-port', '0',
    '--http-host', '127.0.0.1',
    '--model', startModel,
    '--gateway', gatewayUrl,
    '--station-id', stationId,
    '--station-token', stationToken,
    '--registry-key', registryKey,
    '--model-poll-ms', String(pollMs),
    // Results still go to the gateway's outbox; consult requests would only add queue traffic unrelated to the swap.
    '--consult-priorities', '',
    '--log-level', 'info',
  ],
  /ready\. DICOM \S+@(\d+), page http:\/\/localhost:(\d+)\//u,
  onEdgeLine,
);
const dicomPort = Number(edge.match[1]);
const httpPort = Number(edge.match[2]);
const edgeUrl = `http://127.0.0.1:${httpPort}`;

async function health(): Promise<Health['model']> {
  const res = await fetch(`${edgeUrl}/api/health`);
  const model = ((await res.json()) as Health).model;
  healthSeen.push({ at: Date.now(), model });
  return model;
}

// ------------------------------------------------------------------------------------------------ studies

interface Sent {
  studyUid: string;
  sopUid: string;
  sentAt: number;
  ackAt: number;
  storeCode: number;
  resultAt?: number;
  status?: Instance['status'] | 'lost';
  modelVersion?: string;
}
const sent: Sent[] = [];
const byStudy = new Map<string, Sent>();

// The edge's events: results as they become visible (the event follows the database commit), and model changes.
const events = new AbortController();
const eventsDone = (async () => {
  const res = await fetch(`${edgeUrl}/api/events`, { signal: events.signal });
  const reader = res.body?.getReader();
  if (!reader) throw new Error('no event stream');
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const chunk = await reader.read();
    if (chunk.done) return;
    buffer += decoder.decode(chunk.value, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      const at = Date.now();
      const kind = /^event: (\w+)$/mu.exec(block)?.[1];
      const data = /^data: (.*)$/mu.exec(block)?.[1];
      if (kind === 'model') {
        const event: ModelEvent = { at };
        modelEvents.push(event);
        void health().then((h) => (event.health = h), () => undefined);
      } else if (kind === 'instance' && data) {
        const { studyInstanceUid, status } = JSON.parse(data) as { studyInstanceUid: string; status: string };
        const study = byStudy.get(studyInstanceUid);
        if (study && status !== 'received' && study.resultAt === undefined) study.resultAt = at;
      }
    }
  }
})().catch((err: unknown) => {
  if ((err as Error).name !== 'AbortError') throw err;
});

const chestBytes = readFileSync(chest);
let sending = true;
/** One study at a time, one association each, as an X-ray unit does; the next starts `intervalMs` after the last. */
const streamDone = (async () => {
  let next = Date.now();
  for (let i = 0; sending; i++) {
    const studyUid = `2.25.${BigInt(`0x${randomUUID().replaceAll('-', '')}`).toString()}`;
    const sopUid = `2.25.${BigInt(`0x${randomUUID().replaceAll('-', '')}`).toString()}`;
    const file = path.join(studiesDir, `study-${i}.dcm`);
    writeFileSync(file, chestBytes);
    await run('dcmodify', ['-nb', '-m', `(0020,000d)=${studyUid}`, '-m', `(0020,000e)=${studyUid}.1`, '-m', `(0008,0018)=${sopUid}`, file]);
    await new Promise((r) => setTimeout(r, Math.max(0, next - Date.now())));
    if (!sending) break;
    const study: Sent = { studyUid, sopUid, sentAt: Date.now(), ackAt: 0, storeCode: 0 };
    byStudy.set(studyUid, study);
    sent.push(study);
    try {
      await run('storescu', ['-xf', storescuProfile, 'AllTS', '-aec', 'CXR_EDGE', '127.0.0.1', String(dicomPort), file]);
    } catch (err) {
      study.storeCode = (err as { code?: number }).code ?? -1;
    }
    study.ackAt = Date.now();
    rmSync(file, { force: true });
    next = study.sentAt + intervalMs;
  }
})();

// ------------------------------------------------------------------------------------------------ rounds

interface Round {
  kind: 'deploy' | 'rollback';
  from: string;
  to: string;
  deployCommandMs: number;
  deployedAt: number;
  downloadStartAt: number;
  verifyStartAt: number;
  swappedAt: number;
  visibleAt: number;
  previousClosedAt: number;
  bytesDownloaded: number;
  loadAvg1: number;
  othersCpuShare: { others: number; stolen: number };
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function waitFor<T>(what: string, probe: () => T | undefined | Promise<T | undefined>, timeoutMs = 300_000, everyMs = 50): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const value = await probe();
    if (value !== undefined) return value;
    await sleep(everyMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function rollout(kind: Round['kind'], target: string): Promise<Round> {
  // The shipped SqueezeNet is 1.0.0 too: the name tells the versions apart.
  const isTarget = (h: Health['model']): boolean => h.name === modelName && h.version === target && h.state === 'ok';
  const before = await health();
  const from = `${before.name}@${before.version}`;
  const cpuBefore = cpuTicks();
  const eventMark = modelEvents.length;
  const lineMark = syncLines.length;
  const t = Date.now();
  const said = kind === 'deploy' ? await registry('deploy', `${modelName}@${target}`, '--station', stationId) : await registry('rollback', '--station', stationId);
  const deployedAt = Date.now();
  if (!said.includes(`${modelName}@${target}`)) throw new Error(`unexpected answer to ${kind}: ${said}`);
  // The moment /api/health names the new version, polled beside the events so neither alone sets the figure.
  const visible = await waitFor(`the edge to run ${target}`, async () => {
    const h = await health();
    if (h.state === 'failed') throw new Error(`the edge refused ${target}: ${JSON.stringify(h.error)}`);
    return isTarget(h) ? Date.now() : undefined;
  });
  const visibleAt = Math.min(visible, ...healthSeen.filter((h) => h.at >= deployedAt && isTarget(h.model)).map((h) => h.at));
  const swapped = await waitFor('the swap in the log', () => syncLines.slice(lineMark).find((l) => l.msg === 'model swapped' && l.model === `${modelName}@${target}`));
  const previous = swapped.previous ?? from;
  const closed = await waitFor('the previous model to close', () =>
    syncLines.slice(lineMark).find((l) => l.msg === 'previous model closed after its last study' && l.model === previous),
  );
  // From the command on, the sync's state changes in order: downloading, then verifying, then the swap (ok). The
  // edge may start before the command's process has exited (the gateway answered first): a poll wait of 0.
  const after = modelEvents.slice(eventMark);
  const files = syncLines.slice(lineMark).filter((l) => l.msg.startsWith('model file download') && l.model === `${modelName}@${target}`);
  if (after[0]?.health?.state === 'ok' || after[1]?.health?.state === 'downloading') {
    console.error(`warning: the edge's model events of ${target} were not downloading then verifying: ${JSON.stringify(after)}`);
  }
  const downloadStartAt = after[0]?.at ?? deployedAt;
  const verifyStartAt = after[1]?.at ?? Math.max(downloadStartAt, ...files.map((l) => l.time));
  return {
    kind,
    from,
    to: `${modelName}@${target}`,
    deployCommandMs: deployedAt - t,
    deployedAt,
    downloadStartAt,
    verifyStartAt: Math.min(verifyStartAt, swapped.time),
    swappedAt: swapped.time,
    visibleAt,
    previousClosedAt: closed.time,
    bytesDownloaded: files.reduce((sum, l) => sum + (l.bytes ?? 0), 0),
    loadAvg1: os.loadavg()[0] ?? NaN,
    othersCpuShare: othersShare(cpuBefore, cpuTicks()),
  };
}

const done: Round[] = [];
let failure: unknown;
try {
  await sleep(quietMs);
  for (const version of versions) {
    done.push(await rollout('deploy', version));
    console.error(`round ${done.length}: ${done.at(-1)?.from} -> ${done.at(-1)?.to} in ${(done.at(-1)?.visibleAt ?? 0) - (done.at(-1)?.deployedAt ?? 0)} ms`);
    await sleep(quietMs);
  }
  const back = versions.at(-2);
  if (back) {
    done.push(await rollout('rollback', back));
    await sleep(quietMs);
  }
} catch (err) {
  failure = err;
}

sending = false;
await streamDone;
// Every acknowledged study must show a result; give the queue time to drain.
const pending = (): Sent[] => sent.filter((s) => s.storeCode === 0 && s.resultAt === undefined);
await waitFor('the last results', () => (pending().length === 0 ? true : undefined), 120_000, 200).catch(() => undefined);
// Then read them back from /api/studies: what a user sees, not only what the events said.
const listed = new Map<string, Instance>();
const studies = (await (await fetch(`${edgeUrl}/api/studies?limit=1000`)).json()) as { studyInstanceUid: string; instances: Instance[] }[];
for (const s of studies) for (const i of s.instances) listed.set(i.sopInstanceUid, i);
for (const s of sent) {
  let instance = listed.get(s.sopUid);
  if (!instance) {
    const res = await fetch(`${edgeUrl}/api/studies/${encodeURIComponent(s.studyUid)}`);
    if (res.ok) instance = ((await res.json()) as { instances: Instance[] }).instances.find((i) => i.sopInstanceUid === s.sopUid);
  }
  if (s.storeCode !== 0) s.status = 'failed';
  else if (!instance || instance.status === 'received') s.status = 'lost';
  else s.status = instance.status;
  if (instance?.result) s.modelVersion = `${instance.result.model.name}@${instance.result.model.version}`;
}
events.abort();
await eventsDone;
const loadAtEnd = os.loadavg();
const othersCpuShare = othersShare(cpuAtStart, cpuTicks());
await cleanUp();
if (failure) throw failure;

// ------------------------------------------------------------------------------------------------ figures

const phaseOf = (at: number): string => {
  for (const r of done) {
    if (at < Math.min(r.deployedAt, r.downloadStartAt) || at > r.previousClosedAt) continue;
    if (at < r.downloadStartAt) return 'poll wait';
    if (at < r.verifyStartAt) return 'download';
    if (at < r.swappedAt) return 'verify, load, golden case';
    return 'swap until the old model closed';
  }
  return 'outside rollouts';
};
const duringSwap = (phase: string): boolean => phase === 'download' || phase === 'verify, load, golden case' || phase === 'swap until the old model closed';

interface Group {
  when: string;
  studies: number;
  failed: number;
  lost: number;
  latencyP50: number;
  latencyP95: number;
  latencyMax: number;
  ackMax: number;
}
function group(when: string, list: readonly Sent[]): Group {
  const latencies = list.filter((s) => s.resultAt !== undefined).map((s) => (s.resultAt ?? 0) - s.sentAt);
  return {
    when,
    studies: list.length,
    failed: list.filter((s) => s.status === 'failed').length,
    lost: list.filter((s) => s.status === 'lost').length,
    latencyP50: median(latencies),
    latencyP95: quantile(latencies, 0.95),
    latencyMax: latencies.length ? Math.max(...latencies) : NaN,
    ackMax: list.length ? Math.max(...list.map((s) => s.ackAt - s.sentAt)) : NaN,
  };
}
const withPhase = sent.map((s) => ({ s, phase: phaseOf(s.sentAt) }));
const phases = ['outside rollouts', 'poll wait', 'download', 'verify, load, golden case', 'swap until the old model closed'];
const groups = [
  ...phases.map((p) => group(p, withPhase.filter((x) => x.phase === p).map((x) => x.s))),
  group('during swaps (download to old model closed)', withPhase.filter((x) => duringSwap(x.phase)).map((x) => x.s)),
  group('outside swaps, DenseNet serving', withPhase.filter((x) => !duringSwap(x.phase) && x.s.modelVersion?.startsWith(modelName)).map((x) => x.s)),
  group('all', sent),
];

const perRound = done.map((r) => ({
  kind: r.kind,
  from: r.from,
  to: r.to,
  deployCommandMs: r.deployCommandMs,
  pollWaitMs: Math.max(0, r.downloadStartAt - r.deployedAt),
  downloadMs: r.verifyStartAt - r.downloadStartAt,
  verifyLoadGoldenMs: r.swappedAt - r.verifyStartAt,
  swapToHealthMs: r.visibleAt - r.swappedAt,
  deployToRunningMs: r.visibleAt - r.deployedAt,
  workMs: r.visibleAt - r.downloadStartAt,
  oldModelClosedAfterSwapMs: r.previousClosedAt - r.swappedAt,
  bytesDownloaded: r.bytesDownloaded,
  loadAvg1: r.loadAvg1,
  othersCpuShare: r.othersCpuShare,
}));
const deploys = perRound.filter((r) => r.kind === 'deploy');
type Column = 'pollWaitMs' | 'downloadMs' | 'verifyLoadGoldenMs' | 'swapToHealthMs' | 'deployToRunningMs' | 'workMs' | 'oldModelClosedAfterSwapMs' | 'deployCommandMs';
const columns: Column[] = ['deployCommandMs', 'pollWaitMs', 'downloadMs', 'verifyLoadGoldenMs', 'swapToHealthMs', 'deployToRunningMs', 'workMs', 'oldModelClosedAfterSwapMs'];
const summaryOf = (c: Column): { median: number; max: number } => ({ median: median(deploys.map((r) => r[c])), max: Math.max(...deploys.map((r) => r[c])) });
const outsideDense = groups.find((g) => g.when.startsWith('outside swaps'));
const during = groups.find((g) => g.when.startsWith('during swaps'));

const result = {
  date: started.toISOString(),
  machine,
  loadAvg: { start: loadAtStart, end: loadAtEnd },
  // The share of the machine other people's processes used during the run (0..1), whole run and per round below.
  othersCpuShare,
  settings: { modelPollMs: pollMs, studyIntervalMs: intervalMs, quietMs, rounds, edgeWorkers: 1, edgeThreads: 2, startModel: path.basename(startModel), study: chestName },
  model: { name: modelName, bytes: modelBytes, goldenCases: 1 },
  pushes,
  rounds: perRound,
  deploySummary: Object.fromEntries(columns.map((c) => [c, summaryOf(c)])),
  studies: groups,
  notOk: sent.filter((s) => s.status !== 'inferred').map((s) => ({ sentAt: new Date(s.sentAt).toISOString(), phase: phaseOf(s.sentAt), status: s.status, storeCode: s.storeCode })),
};
writeFileSync(args.out ?? '', JSON.stringify(result, null, 1));

const mb = (modelBytes / 1e6).toFixed(1);
const pct = (share: number): string => (Number.isFinite(share) ? `${Math.round(share * 100)} %` : '-');
console.log(`\n#### Deploy -> station running the new version (${modelName}, ${mb} MB; --model-poll-ms ${pollMs}; ${machine})\n`);
console.log('| round | from -> to | MB fetched | deploy command | poll wait | download | verify, load, golden case | swap -> /api/health | **deploy returned -> running** | of which work | old model closed after | CPU used by others (stolen by the host) |');
console.log('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
perRound.forEach((r, i) => {
  const label = r.kind === 'rollback' ? 'rollback' : String(i + 1);
  console.log(`| ${label} | ${r.from} -> ${r.to.split('@')[1] ?? r.to} | ${(r.bytesDownloaded / 1e6).toFixed(1)} | ${fmt(r.deployCommandMs)} | ${fmt(r.pollWaitMs)} | ${fmt(r.downloadMs)} | ${fmt(r.verifyLoadGoldenMs)} | ${fmt(r.swapToHealthMs)} | **${fmt(r.deployToRunningMs)}** | ${fmt(r.workMs)} | ${fmt(r.oldModelClosedAfterSwapMs)} | ${pct(r.othersCpuShare.others)} (${pct(r.othersCpuShare.stolen)}) |`);
});
for (const stat of ['median', 'max'] as const) {
  const v = (c: Column): string => fmt(summaryOf(c)[stat]);
  console.log(`| ${stat} of ${deploys.length} deploys | | | ${v('deployCommandMs')} | ${v('pollWaitMs')} | ${v('downloadMs')} | ${v('verifyLoadGoldenMs')} | ${v('swapToHealthMs')} | **${v('deployToRunningMs')}** | ${v('workMs')} | ${v('oldModelClosedAfterSwapMs')} | |`);
}
console.log(`\n#### Studies sent every ${intervalMs} ms throughout (storescu, ${chestName}): send -> result visible\n`);
console.log('| sent during | studies | failed | lost | p50 ms | p95 ms | max ms | longest C-STORE, ms |');
console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const g of groups) console.log(`| ${g.when} | ${g.studies} | ${g.failed} | ${g.lost} | ${fmt(g.latencyP50)} | ${fmt(g.latencyP95)} | ${fmt(g.latencyMax)} | ${fmt(g.ackMax)} |`);
console.log(
  `\nWorst send -> result during swaps ${fmt(during?.latencyMax ?? NaN)} ms vs ${fmt(outsideDense?.latencyMax ?? NaN)} ms outside (DenseNet serving); ${during?.failed ?? 0} failed, ${during?.lost ?? 0} lost of ${during?.studies ?? 0} sent during swaps. Load average ${loadAtStart.map((l) => l.toFixed(2)).join(' ')} at start, ${loadAtEnd.map((l) => l.toFixed(2)).join(' ')} at end; other processes used ${pct(othersCpuShare.others)} of the machine during the run (the host stole ${pct(othersCpuShare.stolen)}).`,
);
