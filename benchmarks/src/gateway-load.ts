/**
 * The gateway under load, with real processes: a fresh redis-server, N `cxr-gateway serve` processes (the built
 * bin, folder store in a temp dir) on one Redis and one store, 200 stations and 50 radiologists made with the
 * gateway's own AccountStore. autocannon then drives, at the same time:
 *   - every station on its own connection with its own token, study after study: PUT result (a real TriageResult
 *     of a shared radiograph), PUT preview (its real ~115 KB PNG), [PUT dicom with --dicom], POST consult for a share;
 *   - every radiologist on its own connection with their own session: GET worklist, GET a consult picked from it,
 *     GET its preview, and for a share POST claim then POST report.
 * Then the queue is filled to 100,000 consults (the gateway's ConsultQueue.enqueueMany) and GET /api/v1/worklist is
 * timed alone (one radiologist) and under concurrency (50), next to the Redis read alone, the gateway's against
 * BullMQ's getJobs (what the gateway used before). Writes results/gateway-load.json and prints Markdown for
 * benchmarks/README.md.
 *
 *   npm run gateway -w benchmarks -- [--gateways 2] [--duration 30] [--warmup 3] [--stations 200] [--radiologists 50]
 *     [--consult-share 0.3] [--report-share 0.2] [--queued 100000] [--dicom] [--log-level info]
 *     [--phases alone,mixed,worklist] [--threadpool N] [--cpu-prof DIR] [--out FILE] [--serve FILE]
 * "alone" is one station and one radiologist; "mixed" all of them; "worklist" the 100,000.
 * --threadpool sets the gateways' UV_THREADPOOL_SIZE; with --cpu-prof each gateway writes a V8 CPU profile when it stops.
 * --serve FILE sets everything up, writes FILE (gateway URLs, station tokens, radiologists, the study) for
 * benchmarks/k6/gateway.js, and keeps serving until Ctrl-C.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import autocannon from 'autocannon';
import { Queue } from 'bullmq';
import { createLogger, openContext, type ConsultJob, type GatewayContext } from '@cxr/gateway';
import { analyzeBytes, loadModel, renderPreview, type Priority, type TriageResult } from '@cxr/inference';
import { freePort } from './free-port.js';
import { fmt, median, quantile } from './stats.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, '../..');
const shared = path.resolve(root, '../shared');
const { values: args } = parseArgs({
  options: {
    gateways: { type: 'string', default: '2' },
    duration: { type: 'string', default: '30' },
    warmup: { type: 'string', default: '3' },
    stations: { type: 'string', default: '200' },
    radiologists: { type: 'string', default: '50' },
    'consult-share': { type: 'string', default: '0.3' },
    'report-share': { type: 'string', default: '0.2' },
    queued: { type: 'string', default: '100000' },
    dicom: { type: 'boolean', default: false },
    file: { type: 'string', default: path.join(shared, 'dicom', 'cr_chest_CR-MONO1-10-chest.dcm') },
    model: { type: 'string', default: path.join(shared, 'models', 'squeezenet-pneumonia-peds') },
    'log-level': { type: 'string', default: 'info' },
    'cpu-prof': { type: 'string' },
    phases: { type: 'string', default: 'alone,mixed,worklist' },
    threadpool: { type: 'string' },
    serve: { type: 'string' },
    out: { type: 'string' },
  },
});
const positive = (name: string, value: string | undefined, integer = true): number => {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0 || (integer && !Number.isInteger(n))) throw new Error(`--${name} must be a ${integer ? 'whole ' : ''}number >= 0, got ${value}`);
  return n;
};
const options = {
  gateways: Math.max(1, positive('gateways', args.gateways)),
  durationS: positive('duration', args.duration),
  warmupS: positive('warmup', args.warmup),
  stations: Math.max(1, positive('stations', args.stations)),
  radiologists: Math.max(1, positive('radiologists', args.radiologists)),
  consultShare: Math.min(1, positive('consult-share', args['consult-share'], false)),
  reportShare: Math.min(1, positive('report-share', args['report-share'], false)),
  queued: positive('queued', args.queued),
  dicom: args.dicom ?? false,
  logLevel: args['log-level'] ?? 'info',
  phases: (args.phases ?? '').split(',').map((p) => p.trim()),
  /** UV_THREADPOOL_SIZE of the gateways: the folder store's reads, writes and fsyncs run on libuv's pool (default 4) */
  threadpool: (args.threadpool ?? process.env.UV_THREADPOOL_SIZE) === undefined ? null : Math.max(1, positive('threadpool', args.threadpool ?? process.env.UV_THREADPOOL_SIZE)),
};
for (const phase of options.phases) if (!['alone', 'mixed', 'worklist'].includes(phase)) throw new Error(`--phases: some of alone, mixed, worklist; not "${phase}"`);

const sha256 = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');
const loadNow = (): number => Number((os.loadavg()[0] ?? 0).toFixed(2));
/** A path given on the command line, from where npm was run (npm -w runs the script in benchmarks/). */
const given = (file: string): string => path.resolve(process.env.INIT_CWD ?? process.cwd(), file);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// ------------------------------------------------------------------------------------------------ processes


/** Resolves with the first match of `pattern` in what `stream` prints; rejects when the process ends first. */
function waitForOutput(child: ChildProcess, stream: Readable | null, pattern: RegExp, what: string): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => reject(new Error(`${what} not ready within 30 s:\n${seen}`)), 30_000);
    stream?.on('data', (chunk: Buffer) => {
      if (seen.length < 100_000) seen += chunk.toString();
      const m = pattern.exec(seen);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited with ${code}:\n${seen}`));
    });
  });
}

function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

// ---------------------------------------------------------------------------------------------- measurement

interface GroupStats {
  readonly group: string;
  readonly requests: number;
  readonly perSecond: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
  readonly non2xx: number;
  readonly statuses: Record<string, number>;
}

/**
 * Latency per route group. autocannon reports one histogram per run; its per-request `onResponse` (which knows the
 * route) is called synchronously just before the client's 'response' event (which carries the time), so the group
 * named by the first is the one the second belongs to (autocannon lib/httpClient.js, kOnMessageComplete).
 */
class Recorder {
  #pending = '';
  readonly #groups = new Map<string, { latencies: number[]; statuses: Map<number, number> }>();

  named(group: string): void {
    this.#pending = group;
  }

  record(status: number, ms: number): void {
    const g = this.#groups.get(this.#pending) ?? { latencies: [], statuses: new Map<number, number>() };
    this.#groups.set(this.#pending, g);
    g.latencies.push(ms);
    g.statuses.set(status, (g.statuses.get(status) ?? 0) + 1);
  }

  stats(seconds: number): GroupStats[] {
    return [...this.#groups].map(([group, g]) => ({
      group,
      requests: g.latencies.length,
      perSecond: g.latencies.length / seconds,
      p50: median(g.latencies),
      p99: quantile(g.latencies, 0.99),
      max: Math.max(...g.latencies),
      non2xx: [...g.statuses].filter(([s]) => s < 200 || s > 299).reduce((n, [, c]) => n + c, 0),
      statuses: Object.fromEntries([...g.statuses].sort(([a], [b]) => a - b).map(([s, c]) => [String(s), c])),
    }));
  }
}

interface ScenarioStats {
  readonly name: string;
  readonly connections: number;
  readonly seconds: number;
  readonly responses: number;
  readonly perSecond: number;
  readonly non2xx: number;
  /** connection errors and timeouts (autocannon counts a timeout as an error too) */
  readonly errors: number;
  readonly timeouts: number;
}

type Step = autocannon.Request & { readonly group: string };

/**
 * One scenario: `connections` clients spread over the gateways (one autocannon instance per gateway), client i
 * running the request sequence `sequenceFor(i)` over and over on its own keep-alive connection.
 */
async function scenario(
  name: string,
  urls: readonly string[],
  connections: number,
  seconds: number,
  recorder: Recorder,
  sequenceFor: (client: number) => Step[],
): Promise<ScenarioStats> {
  let nextClient = 0;
  const started = performance.now();
  const runs = urls.map((url, u) => {
    const share = Math.floor(connections / urls.length) + (u < connections % urls.length ? 1 : 0);
    if (share === 0) return undefined;
    return new Promise<autocannon.Result>((resolve, reject) => {
      const instance = autocannon(
        {
          url,
          connections: share,
          duration: seconds,
          timeout: 10,
          setupClient: (client) => {
            const steps = sequenceFor(nextClient++);
            client.setRequests(
              steps.map(({ group, onResponse, ...request }) => ({
                ...request,
                onResponse: (status, body, context, headers) => {
                  recorder.named(group);
                  if (typeof onResponse === 'function') onResponse(status, body, context, headers);
                },
              })),
            );
          },
        },
        (err: unknown, result) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(result)),
      );
      instance.on('response', (_client, status, _bytes, ms) => recorder.record(status, ms));
    });
  });
  const results = (await Promise.all(runs)).filter((r): r is autocannon.Result => r !== undefined);
  const elapsed = (performance.now() - started) / 1000;
  const sum = (pick: (r: autocannon.Result) => number): number => results.reduce((n, r) => n + pick(r), 0);
  const responses = sum((r) => r['1xx'] + r['2xx'] + r['3xx'] + r['4xx'] + r['5xx']);
  return { name, connections, seconds: elapsed, responses, perSecond: responses / elapsed, non2xx: sum((r) => r.non2xx), errors: sum((r) => r.errors), timeouts: sum((r) => r.timeouts) };
}

// ------------------------------------------------------------------------------------------------ the data

/** One real study as a station holds it after the AI ran: the result, the preview, the DICOM. */
async function realStudy(): Promise<{ result: TriageResult; preview: Buffer; dicom: Buffer }> {
  const dicom = readFileSync(args.file ?? '');
  const model = await loadModel(args.model ?? '');
  const analysis = await analyzeBytes(new Uint8Array(dicom), model, { decodeAlways: true });
  if (!analysis.source) throw new Error(`${args.file}: no image to preview`);
  const preview = Buffer.from((await renderPreview(analysis.source)).png);
  return { result: analysis.result, preview, dicom };
}

const studyUid = (station: number, n: number): string => `1.2.826.0.1.3680043.10.1417.8.${station + 1}.${n}`;
const stationId = (i: number): string => `tram-${String(i + 1).padStart(3, '0')}`;
const username = (i: number): string => `bs.tai-${String(i + 1).padStart(2, '0')}`;
/** The share of a cycle of 10 that does something: items j with floor((j + 1) * share) > floor(j * share). */
const chosen = (j: number, share: number): boolean => Math.floor((j + 1) * share + 1e-9) > Math.floor(j * share + 1e-9);
const consultPriorities: readonly Priority[] = ['urgent', 'urgent', 'stat', 'urgent', 'routine'];

interface Station {
  readonly id: string;
  readonly token: string;
}

/** A station's cycle of 10 studies: result, preview, [dicom], and a consult for the chosen share. */
/** Studies each station has begun, across runs: a study is new every time, never a replay of an earlier run's. */
const studiesBegun = new Map<number, number>();

function stationSequence(station: Station, index: number, study: { result: TriageResult; preview: Buffer; dicom: Buffer }): Step[] {
  let consults = 0;
  const auth = { authorization: `Bearer ${station.token}` };
  const previewSha = sha256(study.preview);
  const dicomSha = sha256(study.dicom);
  // the study the current requests are about; the result request starts the next one
  let uid = '';
  const instancePath = (): string => `/api/v1/stations/${station.id}/studies/${uid}/instances/${uid}.1/${sha256(uid)}`;
  const steps: Step[] = [];
  for (let j = 0; j < 10; j++) {
    steps.push({
      group: 'station: PUT result',
      method: 'PUT',
      setupRequest: (request) => {
        const n = (studiesBegun.get(index) ?? 0) + 1;
        studiesBegun.set(index, n);
        uid = studyUid(index, n);
        const result: TriageResult = { ...study.result, studyInstanceUid: uid, sopInstanceUid: `${uid}.1` };
        return { ...request, path: `${instancePath()}/result`, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify({ result }) };
      },
    });
    steps.push({
      group: 'station: PUT preview',
      method: 'PUT',
      setupRequest: (request) => ({ ...request, path: `${instancePath()}/preview`, headers: { ...auth, 'content-type': 'image/png', 'x-content-sha256': previewSha }, body: study.preview }),
    });
    if (options.dicom) {
      steps.push({
        group: 'station: PUT dicom',
        method: 'PUT',
        setupRequest: (request) => ({ ...request, path: `${instancePath()}/dicom`, headers: { ...auth, 'content-type': 'application/dicom', 'x-content-sha256': dicomSha }, body: study.dicom }),
      });
    }
    if (chosen(j, options.consultShare)) {
      steps.push({
        group: 'station: POST consult',
        method: 'POST',
        setupRequest: (request) => {
          const priority = consultPriorities[consults++ % consultPriorities.length] ?? 'urgent';
          const body = { studyInstanceUid: uid, priority, reason: priority === 'routine' ? 'requested' : 'policy', ...(priority === 'routine' ? { note: 'Xin ý kiến bác sĩ' } : {}) };
          return { ...request, path: `/api/v1/stations/${station.id}/consults`, headers: { ...auth, 'content-type': 'application/json' }, body: JSON.stringify(body) };
        },
      });
    }
  }
  return steps;
}

interface WorklistEntry {
  readonly consultId: string;
  readonly status: 'queued' | 'claimed';
}

interface ConsultView {
  readonly instances: { readonly previewUrl: string | null; readonly result: TriageResult | null }[];
}

/**
 * A radiologist's cycle of 10 readings: the worklist, one consult picked from its first unclaimed ones, the
 * consult's preview; for the chosen share, claim it and sign a report that answers every AI finding. Everyone picks
 * among the first 100 unclaimed consults, so claims race now and then (409), as they do in a reading room.
 */
function radiologistSequence(token: string, fallbackConsults: readonly string[]): Step[] {
  const auth = { authorization: `Bearer ${token}` };
  let consultId = fallbackConsults[0] ?? '';
  let previewUrl: string | null = null;
  let flagged: string[] = [];
  const steps: Step[] = [];
  for (let j = 0; j < 10; j++) {
    steps.push({
      group: 'radiologist: GET worklist',
      method: 'GET',
      path: '/api/v1/worklist',
      headers: auth,
      onResponse: (status, body) => {
        const open = status === 200 ? (JSON.parse(body) as WorklistEntry[]).filter((c) => c.status === 'queued').slice(0, 100) : [];
        const pick = open[Math.floor(Math.random() * open.length)]?.consultId;
        consultId = pick ?? fallbackConsults[Math.floor(Math.random() * fallbackConsults.length)] ?? consultId;
      },
    });
    steps.push({
      group: 'radiologist: GET consult',
      method: 'GET',
      setupRequest: (request) => ({ ...request, path: `/api/v1/consults/${consultId}`, headers: auth }),
      onResponse: (status, body) => {
        const view = status === 200 ? (JSON.parse(body) as ConsultView) : { instances: [] };
        previewUrl = view.instances.find((i) => i.previewUrl)?.previewUrl ?? null;
        flagged = [...new Set(view.instances.flatMap((i) => (i.result?.applicable ? i.result.findings.filter((f) => f.positive).map((f) => f.code) : [])))];
      },
    });
    steps.push({
      group: 'radiologist: GET preview',
      method: 'GET',
      // A consult without a preview yet (its station has not sent it) is read again instead.
      setupRequest: (request) => ({ ...request, path: previewUrl ?? `/api/v1/consults/${consultId}`, headers: auth }),
    });
    if (chosen(j, options.reportShare)) {
      steps.push({ group: 'radiologist: POST claim', method: 'POST', setupRequest: (request) => ({ ...request, path: `/api/v1/consults/${consultId}/claim`, headers: auth }) });
      steps.push({
        group: 'radiologist: POST report',
        method: 'POST',
        setupRequest: (request) => ({
          ...request,
          path: `/api/v1/consults/${consultId}/report`,
          headers: { ...auth, 'content-type': 'application/json' },
          body: JSON.stringify({ impression: 'Đồng ý với kết quả AI. Agree with the AI reading.', findings: flagged.map((code) => ({ code, agree: true })), recommendation: 'Theo dõi tại trạm' }),
        }),
      });
    }
  }
  return steps;
}

interface MixedPhase {
  readonly seconds: number;
  readonly loadBefore: number;
  readonly loadAfter: number;
  readonly queuedBefore: number;
  readonly queuedAfter: number;
  readonly scenarios: ScenarioStats[];
  readonly groups: GroupStats[];
}

interface WorklistPhase {
  readonly queued: number;
  readonly fillSeconds: number;
  readonly pageBytes: number;
  readonly redisRead: { readonly items: number; readonly gateway: { p50: number; p99: number }; readonly bullmqGetJobs: { p50: number; p99: number } };
  readonly http: { who: string; connections: number; query: string; loadBefore: number; stats: ScenarioStats; latency: GroupStats | undefined }[];
}

function printMarkdown(summary: {
  command: string;
  machine: { cores: number; cpu: string; memoryGiB: number; node: string; loadAtStart: number[] };
  setup: { gateways: number; stations: number; radiologists: number };
  alone: MixedPhase | null;
  mixed: MixedPhase | null;
  worklist: WorklistPhase | null;
  gatewayErrorLines: number;
  uploadsCutAtEnd: number;
}): void {
  const { machine, setup, alone, mixed, worklist } = summary;
  const machineLine = `${machine.cores} x ${machine.cpu}, ${machine.memoryGiB} GiB, Node ${machine.node}; 1-min load ${machine.loadAtStart[0] ?? '?'} at the start`;
  const notOk = (statuses: Record<string, number>): string =>
    Object.entries(statuses)
      .filter(([code]) => !code.startsWith('2'))
      .map(([code, n]) => `${n} x ${code}`)
      .join(', ') || '0';
  if (mixed) {
    const order = ['PUT result', 'PUT preview', 'PUT dicom', 'POST consult', 'GET worklist', 'GET consult', 'GET preview', 'POST claim', 'POST report'];
    const rank = (group: string): number => order.findIndex((route) => group.endsWith(route));
    console.log(`\n#### ${setup.stations} stations sending, ${setup.radiologists} radiologists reading, ${setup.gateways} gateways, ${fmt(mixed.seconds)} s (${machineLine})\n`);
    console.log('| route | alone: p50 ms | alone: p99 ms | under load: requests | req/s | p50 ms | p99 ms | max ms | not 2xx |');
    console.log('|---|---:|---:|---:|---:|---:|---:|---:|---|');
    for (const g of [...mixed.groups].sort((a, b) => rank(a.group) - rank(b.group))) {
      const a = alone?.groups.find((x) => x.group === g.group);
      console.log(`| ${g.group} | ${a ? fmt(a.p50) : ''} | ${a ? fmt(a.p99) : ''} | ${g.requests} | ${g.perSecond.toFixed(1)} | ${fmt(g.p50)} | ${fmt(g.p99)} | ${fmt(g.max)} | ${notOk(g.statuses)} |`);
    }
    for (const s of mixed.scenarios) console.log(`| **${s.name}** | | | ${s.responses} | ${s.perSecond.toFixed(1)} | | | | ${s.non2xx} not 2xx; ${s.errors} errors (${s.timeouts} timeouts) |`);
    console.log(`\nQueue ${mixed.queuedBefore} -> ${mixed.queuedAfter} consults; ${summary.gatewayErrorLines} error lines in the gateways' logs (and ${summary.uploadsCutAtEnd} uploads cut off when the load stopped).`);
  }
  if (worklist) {
    console.log(`\n#### GET /api/v1/worklist with ${worklist.queued} queued consults, ${setup.gateways} gateways (${machineLine})\n`);
    console.log('| who | page | requests | req/s | p50 ms | p99 ms | max ms | not 2xx; errors |');
    console.log('|---|---|---:|---:|---:|---:|---:|---|');
    for (const r of worklist.http) {
      const l = r.latency;
      const page = r.query ? `${r.query.replace('?limit=', '')} items (\`${r.query}\`)` : `500 items (default, ${Math.round(worklist.pageBytes / 1024)} KB)`;
      console.log(`| ${r.who} | ${page} | ${l?.requests ?? 0} | ${(l?.perSecond ?? 0).toFixed(1)} | ${fmt(l?.p50 ?? NaN)} | ${fmt(l?.p99 ?? NaN)} | ${fmt(l?.max ?? NaN)} | ${r.stats.non2xx}; ${r.stats.errors} |`);
    }
    const { gateway, bullmqGetJobs } = worklist.redisRead;
    console.log(`\nThe Redis read of a 500-item page alone (in process, 40 times each): the gateway's p50 ${fmt(gateway.p50)} ms, p99 ${fmt(gateway.p99)} ms; BullMQ getJobs() p50 ${fmt(bullmqGetJobs.p50)} ms, p99 ${fmt(bullmqGetJobs.p99)} ms. Queue filled in ${worklist.fillSeconds.toFixed(1)} s.`);
  }
  console.log(`\n${summary.command}`);
}

// ------------------------------------------------------------------------------------------------- the run

const machine = {
  cpu: /model name\s*:\s*(.+)/u.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1]?.trim() ?? os.cpus()[0]?.model ?? 'unknown',
  cores: os.cpus().length,
  memoryGiB: Math.round(os.totalmem() / 2 ** 30),
  node: process.version,
  loadAtStart: os.loadavg().map((l) => Number(l.toFixed(2))),
};
const command = `npm run gateway -w benchmarks${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
if (machine.loadAtStart[0] !== undefined && machine.loadAtStart[0] > 1) {
  console.warn(`gateway-load: the 1-minute load is ${machine.loadAtStart[0]} on ${machine.cores} cores: the figures will be noisy`);
}

const work = mkdtempSync(path.join(os.tmpdir(), 'cxr-bench-gateway-'));
const storeDir = path.join(work, 'store');
mkdirSync(storeDir);
const children: ChildProcess[] = [];
let context: GatewayContext | undefined;
const cleanUp = async (): Promise<void> => {
  await context?.close();
  await Promise.all(children.map(stop));
  rmSync(work, { recursive: true, force: true });
};
for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void cleanUp().finally(() => process.exit(args.serve ? 0 : 130)));

try {
  const study = await realStudy();
  console.error(`study: ${path.basename(args.file ?? '')}, ${study.result.priority}, result ${JSON.stringify(study.result).length} B, preview ${study.preview.length} B, dicom ${study.dicom.length} B`);

  const redisPort = await freePort();
  const redisServer = spawn('redis-server', ['--port', String(redisPort), '--bind', '127.0.0.1', '--dir', work, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(redisServer);
  await waitForOutput(redisServer, redisServer.stdout, /Ready to accept connections/u, 'redis-server');
  const redisUrl = `redis://127.0.0.1:${redisPort}`;

  // Accounts straight through the gateway's AccountStore on the same store: the admin CLI would start a process each.
  const setupStart = performance.now();
  context = await openContext({ store: storeDir, redis: redisUrl, log: createLogger({ level: 'warn', destination: process.stderr }) });
  const accounts = context.accounts;
  const stations: Station[] = await Promise.all(Array.from({ length: options.stations }, async (_, i) => ({ id: stationId(i), token: (await accounts.addStation({ stationId: stationId(i), name: `Trạm y tế ${i + 1}` })).token })));
  const password = 'mat-khau-doc-phim';
  for (let i = 0; i < options.radiologists; i += 4) {
    await Promise.all(Array.from({ length: Math.min(4, options.radiologists - i) }, (_, k) => accounts.addUser({ username: username(i + k), password, role: 'radiologist' })));
  }
  const setupS = (performance.now() - setupStart) / 1000;

  const bin = path.join(root, 'gateway', 'bin', 'cxr-gateway.js');
  const urls: string[] = [];
  for (let g = 0; g < options.gateways; g++) {
    const log = openSync(path.join(work, `gateway-${g}.log`), 'w');
    const profile = args['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', given(args['cpu-prof'])] : [];
    const child = spawn(process.execPath, [...profile, bin, 'serve', '--port', '0', '--host', '127.0.0.1', '--store', storeDir, '--redis', redisUrl, '--log-level', options.logLevel], {
      stdio: ['ignore', log, 'pipe'],
      env: { ...process.env, ...(options.threadpool ? { UV_THREADPOOL_SIZE: String(options.threadpool) } : {}) },
    });
    children.push(child);
    const m = await waitForOutput(child, child.stderr, /ready on http:\/\/localhost:(\d+)\//u, `gateway ${g}`);
    urls.push(`http://127.0.0.1:${m[1]}`);
  }
  const base = urls[0] ?? '';
  const stationAt = (i: number): Station => {
    const station = stations[i];
    if (!station) throw new Error(`no station ${i}`);
    return station;
  };

  const tokens: string[] = [];
  for (let i = 0; i < options.radiologists; i++) {
    const res = await fetch(`${base}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: username(i), password }) });
    if (res.status !== 200) throw new Error(`login ${username(i)}: ${res.status} ${await res.text()}`);
    tokens.push(((await res.json()) as { token: string }).token);
  }

  // Each station sends one study and asks a consult, through the same routes, so that the worklist is not empty
  // when the readers start; any refusal here is a bug in this script, not load.
  const seeded: string[] = [];
  const send = async (url: string, init: RequestInit): Promise<unknown> => {
    const res = await fetch(url, init);
    if (res.status >= 300) throw new Error(`${init.method ?? 'GET'} ${url}: ${res.status} ${await res.text()}`);
    return res.json();
  };
  for (let i = 0; i < stations.length; i += 20) {
    await Promise.all(
      stations.slice(i, i + 20).map(async (station, k) => {
        const index = i + k;
        const uid = studyUid(index, 0);
        const at = `${urls[index % urls.length]}/api/v1/stations/${station.id}/studies/${uid}/instances/${uid}.1/${sha256(uid)}`;
        const headers = { authorization: `Bearer ${station.token}` };
        const result: TriageResult = { ...study.result, studyInstanceUid: uid, sopInstanceUid: `${uid}.1` };
        await send(`${at}/result`, { method: 'PUT', headers: { ...headers, 'content-type': 'application/json' }, body: JSON.stringify({ result }) });
        await send(`${at}/preview`, { method: 'PUT', headers: { ...headers, 'content-type': 'image/png', 'x-content-sha256': sha256(study.preview) }, body: study.preview });
        const consult = (await send(`${urls[index % urls.length]}/api/v1/stations/${station.id}/consults`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: JSON.stringify({ studyInstanceUid: uid, priority: 'urgent', reason: 'policy' }),
        })) as { consultId: string };
        seeded.push(consult.consultId);
      }),
    );
  }
  console.error(`ready: redis ${redisUrl}, ${urls.length} gateways (${urls.join(', ')}), ${stations.length} stations and ${tokens.length} radiologists in ${setupS.toFixed(1)} s, ${seeded.length} consults seeded; load ${loadNow()}`);

  if (args.serve) {
    // For k6 (benchmarks/k6/gateway.js): the same gateways, accounts and study, kept up until Ctrl-C.
    const previewFile = path.join(work, 'preview.png');
    writeFileSync(previewFile, study.preview);
    const radiologists = Array.from({ length: tokens.length }, (_, i) => ({ username: username(i), password }));
    writeFileSync(given(args.serve), `${JSON.stringify({ urls, stations, radiologists, result: study.result, previewFile, consultShare: options.consultShare, reportShare: options.reportShare }, null, 1)}\n`);
    console.error(`wrote ${args.serve} for k6; serving until Ctrl-C`);
    await new Promise<never>(() => setInterval(() => undefined, 60_000));
  }

  // ----------------------------------------------------------------------------- phase 1: stations and readers
  const { queue, redis } = context;
  const mixed = async (seconds: number, recorder: Recorder, stationCount: number, radiologistCount: number): Promise<ScenarioStats[]> => {
    const runs = await Promise.all([
      scenario(`${stationCount} station${stationCount === 1 ? '' : 's'} sending`, urls.slice(0, stationCount), stationCount, seconds, recorder, (i) => stationSequence(stationAt(i), i, study)),
      scenario(`${radiologistCount} radiologist${radiologistCount === 1 ? '' : 's'} reading`, urls.slice(0, radiologistCount), radiologistCount, seconds, recorder, (i) => radiologistSequence(tokens[i % tokens.length] ?? '', seeded)),
    ]);
    // autocannon stops sending at the deadline; let the gateways finish what is in flight before anything is counted.
    await sleep(1000);
    return runs;
  };
  const mixedPhase = async (stationCount: number, radiologistCount: number): Promise<MixedPhase> => {
    if (options.warmupS > 0) await mixed(options.warmupS, new Recorder(), stationCount, radiologistCount);
    const queuedBefore = await queue.count();
    const loadBefore = loadNow();
    const recorder = new Recorder();
    const scenarios = await mixed(options.durationS, recorder, stationCount, radiologistCount);
    const seconds = Math.max(...scenarios.map((s) => s.seconds));
    const queuedAfter = await queue.count();
    console.error(`${scenarios.map((s) => `${s.name} ${s.perSecond.toFixed(0)} req/s`).join(', ')}; queue ${queuedBefore} -> ${queuedAfter}`);
    return { seconds, loadBefore, loadAfter: loadNow(), queuedBefore, queuedAfter, scenarios, groups: recorder.stats(seconds) };
  };

  // ------------------------------------------------------------------------ phase 2: 100,000 queued consults
  const worklistPhase = async (): Promise<WorklistPhase> => {
    const fillStart = performance.now();
    // 5% stat, 40% urgent, 55% routine, one a second from `queued` seconds ago
    const priorities: readonly Priority[] = ['routine', 'urgent', 'routine', 'urgent', 'routine', 'routine', 'urgent', 'routine', 'urgent', 'routine', 'routine', 'urgent', 'routine', 'urgent', 'routine', 'routine', 'urgent', 'routine', 'urgent', 'stat'];
    const t0 = Date.now() - options.queued * 1000;
    let k = 0;
    for (let missing = options.queued - (await queue.count()); missing > 0; missing = options.queued - (await queue.count())) {
      const batch: ConsultJob[] = [];
      for (const end = k + Math.min(missing, 1000); k < end; k++) {
        const station = stationId(k % stations.length);
        const uid = `1.2.826.0.1.3680043.10.1417.7.${k}`;
        batch.push({ consultId: `${station}-${sha256(`${station}/${uid}`).slice(0, 20)}`, stationId: station, studyInstanceUid: uid, priority: priorities[k % priorities.length] ?? 'routine', receivedAt: new Date(t0 + k * 1000).toISOString() });
      }
      await queue.enqueueMany(batch);
    }
    const queued = await queue.count();
    const fillSeconds = (performance.now() - fillStart) / 1000;
    console.error(`queue filled to ${queued} in ${fillSeconds.toFixed(1)} s`);

    // The Redis read alone, in this process, gateways idle: the gateway's page read against BullMQ's getJobs().
    const bull = new Queue('consults', { connection: redis, prefix: 'cxr:bull' });
    const ours: number[] = [];
    const getJobs: number[] = [];
    for (let i = 0; i < 40; i++) {
      let t = performance.now();
      const page = await queue.worklist(500);
      ours.push(performance.now() - t);
      t = performance.now();
      const jobs = await bull.getJobs(['prioritized', 'waiting'], 0, 499, true);
      await redis.mget(jobs.map((j) => `cxr:claim:${j.id ?? ''}`));
      getJobs.push(performance.now() - t);
      if (page.length !== Math.min(500, queued) || page.at(-1)?.consultId !== jobs.at(-1)?.id) throw new Error('the two reads disagree');
    }
    await bull.close();
    const redisRead = { items: 500, gateway: { p50: median(ours), p99: quantile(ours, 0.99) }, bullmqGetJobs: { p50: median(getJobs), p99: quantile(getJobs, 0.99) } };
    const pageBytes = (await (await fetch(`${base}/api/v1/worklist`, { headers: { authorization: `Bearer ${tokens[0] ?? ''}` } })).arrayBuffer()).byteLength;

    const http: WorklistPhase['http'] = [];
    for (const [who, connections, query] of [
      ['one radiologist, one request at a time', 1, ''],
      [`${tokens.length} radiologists at once`, tokens.length, ''],
      [`${tokens.length} radiologists at once`, tokens.length, '?limit=50'],
    ] as const) {
      const recorder = new Recorder();
      const loadBefore = loadNow();
      const stats = await scenario(who, connections === 1 ? urls.slice(0, 1) : urls, connections, options.durationS, recorder, (i) => [
        { group: 'GET worklist', method: 'GET', path: `/api/v1/worklist${query}`, headers: { authorization: `Bearer ${tokens[i % tokens.length] ?? ''}` } },
      ]);
      const latency = recorder.stats(stats.seconds)[0];
      http.push({ who, connections, query, loadBefore, stats, latency });
      console.error(`worklist, ${who}${query}: p50 ${fmt(latency?.p50 ?? NaN)} ms`);
    }
    return { queued, fillSeconds, pageBytes, redisRead, http };
  };

  // Alone first: one station and one radiologist, each request served with nothing else waiting.
  const aloneResult = options.phases.includes('alone') ? await mixedPhase(1, 1) : null;
  const mixedResult = options.phases.includes('mixed') ? await mixedPhase(stations.length, tokens.length) : null;
  const worklistResult = options.phases.includes('worklist') && options.queued > 0 ? await worklistPhase() : null;

  // Errors the gateways logged (pino level 50 and up), over the whole run, with the first few as they are. An upload
  // cut off because autocannon closed its connections at the end of a run is logged as "aborted": counted apart.
  let gatewayErrorLines = 0;
  let uploadsCutAtEnd = 0;
  const gatewayErrorSamples: string[] = [];
  for (let g = 0; g < urls.length; g++) {
    for await (const line of createInterface({ input: createReadStream(path.join(work, `gateway-${g}.log`)) })) {
      if (!/"level":(5|6)\d/u.test(line)) continue;
      if (line.includes('"err":"aborted"')) {
        uploadsCutAtEnd += 1;
        continue;
      }
      gatewayErrorLines += 1;
      if (gatewayErrorSamples.length < 5) gatewayErrorSamples.push(line.slice(0, 500));
    }
  }
  for (const line of gatewayErrorSamples) console.error(`gateway error: ${line}`);

  const summary = {
    date: new Date().toISOString(),
    command,
    machine: { ...machine, loadAtEnd: os.loadavg().map((l) => Number(l.toFixed(2))) },
    options,
    study: { file: path.basename(args.file ?? ''), priority: study.result.priority, resultBytes: JSON.stringify(study.result).length, previewBytes: study.preview.length, dicomBytes: study.dicom.length },
    setup: { gateways: urls.length, stations: stations.length, radiologists: tokens.length, seconds: setupS, seededConsults: seeded.length, store: storeDir },
    alone: aloneResult,
    mixed: mixedResult,
    worklist: worklistResult,
    gatewayErrorLines,
    gatewayErrorSamples,
    uploadsCutAtEnd,
  };
  const out = args.out ? given(args.out) : path.join(here, '..', 'results', 'gateway-load.json');
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, `${JSON.stringify(summary, null, 1)}\n`);
  printMarkdown(summary);
} finally {
  await cleanUp();
}
