/**
 * The edge agent's model sync, against a real `cxr-edge` process and a real HTTP server that plays the gateway's
 * station routes of model-registry/PROTOCOL.md, with documents signed by real Ed25519 keys (signDocument) and the
 * shipped squeezenet model as the "registry" versions (copies whose manifest says another version).
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  analyzeBytes,
  generateRegistryKeyPair,
  loadModel,
  signDocument,
  type ModelDeployment,
  type ModelRelease,
  type RegistryKeyPair,
  type SignedEnvelope,
} from '@cxr/inference';
import { dicomDir, removeDir, repoRoot, sharedDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { launchChromium } from './support/browser.js';
import { startHospital, type Hospital } from './support/hospital.js';

const run = promisify(execFile);
const squeezenet = path.join(sharedDir, 'models', 'squeezenet-pneumonia-peds');
const NAME = 'squeezenet-pneumonia-peds';
const STATION = 'tram-1';
const TOKEN = 'cxrst_model-sync-test-token-0123456789';
const chest = path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm');
/** Put in every study sent: never to be found in the agent's log. */
const PATIENT_NAME = 'TRAN^THI^MAI';
const PATIENT_ID = 'BN-2024-778899';

interface Health {
  ready: boolean;
  model: {
    name: string;
    version: string;
    sha256: string;
    source: 'local' | 'registry';
    state: 'ok' | 'downloading' | 'verifying' | 'failed';
    lastGood?: { name: string; version: string };
    thresholds: Record<string, number>;
    deploymentId: string | null;
    error?: { code: string; message: string; name: string; version: string };
  };
}
interface StatusReport {
  running: { name: string; version: string; sha256: string } | null;
  lastGood: { name: string; version: string } | null;
  state: string;
  error?: { code: string; message: string; name: string; version: string };
  counts: { studies: number; failed: number };
  at: string;
}
interface Instance {
  sopInstanceUid: string;
  status: 'received' | 'inferred' | 'failed';
  result: { model: { name: string; version: string }; applicable: boolean; findings: { code: string; threshold: number }[] } | null;
}
interface Study {
  studyInstanceUid: string;
  instances: Instance[];
}

// ------------------------------------------------------------------------------------------------ model versions

let goldenOnce: Promise<number[]> | undefined;
/** squeezenet's probabilities for the golden image, through the whole pipeline */
function goldenProbabilities(): Promise<number[]> {
  goldenOnce ??= (async () => {
    const model = await loadModel(squeezenet, { intraOpThreads: 1 });
    const probabilities = (await analyzeBytes(readFileSync(chest), model, { force: true })).result.probabilities ?? [];
    await model.close();
    return probabilities;
  })();
  return goldenOnce;
}

/** A copy of the squeezenet folder as version `version`, with a golden case made from its own output (shifted to fail). */
function makeVersion(root: string, version: string, probabilities: readonly number[], goldenShift = 0): string {
  const dir = path.join(root, `${NAME}@${version}`);
  mkdirSync(path.join(dir, 'golden'), { recursive: true });
  const manifest = JSON.parse(readFileSync(path.join(squeezenet, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify({ ...manifest, version }, null, 1));
  copyFileSync(path.join(squeezenet, 'model.onnx'), path.join(dir, 'model.onnx'));
  copyFileSync(chest, path.join(dir, 'golden', 'chest.dcm'));
  const expected = probabilities.map((p, i) => (i === 0 ? (p < 0.5 ? p + goldenShift : p - goldenShift) : p));
  writeFileSync(path.join(dir, 'golden', 'cases.json'), JSON.stringify({ tolerance: 1e-3, cases: [{ input: 'golden/chest.dcm', probabilities: expected }] }));
  return dir;
}

function filesOf(dir: string, prefix = ''): string[] {
  return readdirSync(path.join(dir, prefix), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? filesOf(dir, path.join(prefix, e.name)) : [path.join(prefix, e.name).split(path.sep).join('/')],
  );
}

function releaseOf(dir: string, version: string): ModelRelease {
  return {
    kind: 'cxr-model-release',
    name: NAME,
    version,
    runtime: 'onnx',
    files: filesOf(dir).map((p) => {
      const bytes = readFileSync(path.join(dir, p));
      return { path: p, sha256: createHash('sha256').update(bytes).digest('hex'), size: bytes.length };
    }),
    acceptedAt: new Date().toISOString(),
  };
}

let deploymentCount = 0;
function deploymentOf(version: string, options: { thresholds?: Record<string, number>; rollback?: boolean } = {}): ModelDeployment {
  deploymentCount += 1;
  return {
    kind: 'cxr-model-deployment',
    deploymentId: `dep-${deploymentCount}`,
    target: { station: STATION },
    name: NAME,
    version,
    rollback: options.rollback ?? false,
    thresholds: options.thresholds ?? {},
    issuedAt: new Date().toISOString(),
  };
}

// ------------------------------------------------------------------------------------------------ the gateway double

interface FileRequest {
  readonly version: string;
  readonly path: string;
  readonly range: string | null;
}

/** The station routes of PROTOCOL.md on a real HTTP server, and enough of the rest for the outbox to be online. */
class GatewayDouble {
  readonly server: Server;
  url = '';
  publicKey: string;
  desired: { deployment: SignedEnvelope | null; release: SignedEnvelope | null } = { deployment: null, release: null };
  readonly folders = new Map<string, string>();
  readonly statuses: StatusReport[] = [];
  readonly fileRequests: FileRequest[] = [];
  /** the next answer for this file stops after `afterBytes`: `cut` closes the connection, `stall` keeps it open silent */
  interrupt: { version: string; path: string; afterBytes: number; how: 'cut' | 'stall' } | undefined;
  /** this file is served with one byte changed (same size) */
  tamper: { version: string; path: string } | undefined;
  /** every route answers 503 */
  down = false;
  readonly #stalled = new Set<ServerResponse>();

  constructor(publicKey: string) {
    this.publicKey = publicKey;
    this.server = createServer((req, res) => this.#handle(req, res));
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  /** Ends the silent answers (as a link that finally drops). */
  releaseStalled(): void {
    for (const res of this.#stalled) res.destroy();
    this.#stalled.clear();
  }

  async close(): Promise<void> {
    this.releaseStalled();
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  #handle(req: IncomingMessage, res: ServerResponse): void {
    const json = (status: number, body: unknown): void => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (this.down) return json(503, { error: { code: 'CXR_UNAVAILABLE', message: 'down' } });
    if (req.headers.authorization !== `Bearer ${TOKEN}`) return json(401, { error: { code: 'CXR_UNAUTHORIZED', message: 'token' } });
    const url = new URL(req.url ?? '/', 'http://x');
    const route = url.pathname;
    if (route === '/api/v1/me') return json(200, { kind: 'station', stationId: STATION });
    if (route === '/api/v1/registry/public-key') return json(200, { publicKey: this.publicKey });
    if (route === `/api/v1/stations/${STATION}/model` && req.method === 'GET') return json(200, this.desired);
    if (route === `/api/v1/stations/${STATION}/model/status` && req.method === 'POST') {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        this.statuses.push(JSON.parse(body) as StatusReport);
        res.writeHead(204).end();
      });
      return;
    }
    const file = new RegExp(`^/api/v1/stations/${STATION}/model/files/([^/]+)/([^/]+)/(.+)$`, 'u').exec(route);
    if (file && req.method === 'GET') return this.#serveFile(req, res, decodeURIComponent(file[2] ?? ''), (file[3] ?? '').split('/').map(decodeURIComponent).join('/'));
    // The outbox's deliveries: accepted and forgotten.
    req.resume();
    req.on('end', () => (req.method === 'PUT' ? res.writeHead(204).end() : json(404, { error: { code: 'CXR_NOT_FOUND', message: route } })));
  }

  #serveFile(req: IncomingMessage, res: ServerResponse, version: string, file: string): void {
    const range = req.headers.range ?? null;
    this.fileRequests.push({ version, path: file, range });
    const dir = this.folders.get(version);
    if (!dir || !existsSync(path.join(dir, file))) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'CXR_NOT_FOUND', message: 'no such file' } }));
      return;
    }
    const bytes = Buffer.from(readFileSync(path.join(dir, file)));
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (this.tamper?.version === version && this.tamper.path === file) {
      const middle = Math.floor(bytes.length / 2);
      bytes.writeUInt8((bytes.readUInt8(middle) ^ 0xff) & 0xff, middle);
    }
    const start = range ? Number(/^bytes=(\d+)-$/u.exec(range)?.[1] ?? 0) : 0;
    const body = bytes.subarray(start);
    res.writeHead(range ? 206 : 200, {
      'content-type': 'application/octet-stream',
      'content-length': String(body.length),
      etag: `"${sha256}"`,
      'accept-ranges': 'bytes',
      ...(range ? { 'content-range': `bytes ${start}-${bytes.length - 1}/${bytes.length}` } : {}),
    });
    const cut = this.interrupt;
    if (cut && cut.version === version && cut.path === file) {
      this.interrupt = undefined;
      res.write(body.subarray(0, cut.afterBytes), () => {
        if (cut.how === 'cut') setTimeout(() => res.destroy(), 50);
        else this.#stalled.add(res);
      });
      return;
    }
    res.end(body);
  }
}

// ------------------------------------------------------------------------------------------------ the tests

describe('model updates from the registry', () => {
  let root: string;
  let registry: RegistryKeyPair;
  let other: RegistryKeyPair;
  let gateway: GatewayDouble;
  let agent: AgentProcess;
  /** squeezenet's probabilities for the golden image, through the whole pipeline */
  let golden: number[];
  const studies: string[] = [];

  const health = async (): Promise<Health> => agent.api<Health>('/api/health');
  const publish = (version: string, dir: string, key: RegistryKeyPair = registry): SignedEnvelope => {
    gateway.folders.set(version, dir);
    return signDocument(releaseOf(dir, version), key.privateKeyPem);
  };
  const deploy = (release: SignedEnvelope, deployment: ModelDeployment, key: RegistryKeyPair = registry): void => {
    gateway.desired = { deployment: signDocument(deployment, key.privateKeyPem), release };
  };
  const running = async (version: string): Promise<Health> =>
    waitFor(`the station to run ${version}`, async () => {
      const h = await health();
      return h.model.version === version && h.model.state === 'ok' ? h : undefined;
    });
  const refused = async (version: string): Promise<StatusReport> =>
    waitFor(`the refusal of ${version} to be reported`, async () => gateway.statuses.find((s) => s.state === 'failed' && s.error?.version === version));
  const instances = async (): Promise<Instance[]> => (await agent.api<Study[]>('/api/studies')).flatMap((s) => s.instances);

  /** `count` copies of the small uncompressed chest, each its own study and instance. */
  const makeStudies = async (count: number): Promise<string[]> => {
    const files: string[] = [];
    for (let i = 0; i < count; i++) {
      const n = studies.length + 1;
      const file = path.join(root, `study-${n}.dcm`);
      copyFileSync(chest, file);
      await run('dcmodify', [
        '-nb',
        '-m', `(0020,000d)=1.2.826.0.1.3680043.10.543.${n}`,
        '-m', `(0008,0018)=1.2.826.0.1.3680043.10.543.${n}.1`,
        '-i', `(0010,0010)=${PATIENT_NAME}`,
        '-i', `(0010,0020)=${PATIENT_ID}`,
        file,
      ]);
      studies.push(`1.2.826.0.1.3680043.10.543.${n}.1`);
      files.push(file);
    }
    return files;
  };

  let v100: SignedEnvelope;
  let browser: Browser;
  /** the radiographer's page, open from the start and never reloaded */
  let page: Page;
  const header = async (): Promise<string> => ((await page.locator('#model-info').textContent()) ?? '').replace(/\s+/gu, ' ').trim();
  /** what the agent process wrote before the restart */
  let earlierOutput = '';

  beforeAll(async () => {
    root = tempDir('cxr-model-sync-');
    registry = generateRegistryKeyPair();
    other = generateRegistryKeyPair();
    golden = await goldenProbabilities();
    gateway = new GatewayDouble(registry.publicKey);
    await gateway.listen();
    v100 = publish('1.0.0', makeVersion(root, '1.0.0', golden));
    agent = await startAgent({
      args: ['--gateway', gateway.url, '--station-id', STATION, '--station-token', TOKEN, '--model-poll-ms', '400', '--consult-priorities', '', '--log-level', 'info'],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    browser = await launchChromium();
    page = await (await browser.newContext({ locale: 'vi-VN' })).newPage();
    await page.goto(`http://127.0.0.1:${agent.httpPort}/`);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await agent?.stop();
    await gateway?.close();
    removeDir(agent.dataDir);
    removeDir(root);
  });

  it('refuses bad settings at start, every problem at once', async () => {
    const bin = path.join(repoRoot, 'edge-agent', 'bin', 'cxr-edge.js');
    const outcome = await run(process.execPath, [bin, '--data-dir', root, '--model', squeezenet, '--registry-key', 'not-a-key', '--model-poll-ms', '5']).catch(
      (err: { code: number; stderr: string }) => err,
    );
    expect('code' in outcome ? outcome.code : 0).toBe(2);
    expect(outcome.stderr).toMatch(/registryKey: .*--registry-key/u);
    expect(outcome.stderr).toMatch(/modelPollMs: .*--model-poll-ms/u);
  });

  it('runs its own --model until a deployment arrives, and reports it', async () => {
    await expect.poll(header).toBe('Mô hình: densenet121-cxr18-random phiên bản 0.1.0');
    expect((await health()).model).toMatchObject({ name: 'densenet121-cxr18-random', version: '0.1.0', source: 'local', state: 'ok' });
    const report = await waitFor('a status report', async () => gateway.statuses.at(-1));
    expect(report).toMatchObject({ running: { name: 'densenet121-cxr18-random', version: '0.1.0' }, lastGood: null, state: 'ok', counts: { studies: 0, failed: 0 } });
  });

  it('downloads, verifies, runs the golden cases, swaps; results then name the new model and use the per-site thresholds', async () => {
    const thresholds = { bacterial_pneumonia: 0.07, viral_pneumonia: 0.93 };
    deploy(v100, deploymentOf('1.0.0', { thresholds }));
    const h = await running('1.0.0');
    expect(h.model).toMatchObject({ name: NAME, source: 'registry', thresholds });
    expect(h.model.lastGood).toBeUndefined();
    // The open page follows the swap by itself (no reload).
    await expect.poll(header, { timeout: 10_000 }).toBe('Mô hình: squeezenet-pneumonia-peds phiên bản 1.0.0');
    // The key was pinned on first use, in the data folder.
    const state = JSON.parse(readFileSync(path.join(agent.dataDir, 'models', 'state.json'), 'utf8')) as { pinnedKey: string; current: { version: string } };
    expect(state).toMatchObject({ pinnedKey: registry.publicKey, current: { version: '1.0.0' } });
    expect(readFileSync(path.join(agent.dataDir, 'models', `${NAME}@1.0.0`, 'model.onnx')).equals(readFileSync(path.join(squeezenet, 'model.onnx')))).toBe(true);
    expect(agent.output()).toMatch(/"goldenCases":1[^\n]*"msg":"model swapped"/u);
    // The gateway saw it download, verify, then run.
    const states = gateway.statuses.map((s) => s.state);
    expect(states).toContain('downloading');
    expect(states).toContain('verifying');
    await waitFor('the swap report', async () => gateway.statuses.find((s) => s.state === 'ok' && s.running?.version === '1.0.0'));

    const [file] = await makeStudies(1);
    expect((await storescu(agent.dicomPort, [file ?? ''])).code).toBe(0);
    const done = await waitFor('the result', async () => (await instances()).find((i) => i.sopInstanceUid === studies[0] && i.status !== 'received'));
    expect(done.status).toBe('inferred');
    expect(done.result?.model).toMatchObject({ name: NAME, version: '1.0.0' });
    expect(Object.fromEntries(done.result?.findings.map((f) => [f.code, f.threshold]) ?? [])).toEqual(thresholds);
    const counted = await waitFor('the study counted in a report', async () => gateway.statuses.find((s) => s.running?.version === '1.0.0' && s.counts.studies === 1));
    expect(counted.counts.failed).toBe(0);
  });

  it('resumes a download cut mid-file from the partial file', async () => {
    const release = publish('1.1.0', makeVersion(root, '1.1.0', golden));
    gateway.interrupt = { version: '1.1.0', path: 'model.onnx', afterBytes: 1_000_000, how: 'cut' };
    deploy(release, deploymentOf('1.1.0'));
    const h = await running('1.1.0');
    expect(h.model.lastGood).toEqual({ name: NAME, version: '1.0.0' });
    const asked = gateway.fileRequests.filter((r) => r.version === '1.1.0' && r.path === 'model.onnx');
    expect(asked).toHaveLength(2);
    expect(asked[0]?.range).toBeNull();
    const from = Number(/^bytes=(\d+)-$/u.exec(asked[1]?.range ?? '')?.[1]);
    expect(from).toBeGreaterThan(0);
    expect(from).toBeLessThanOrEqual(1_000_000);
    expect(agent.output()).toMatch(new RegExp(`"file":"model.onnx"[^\\n]*"resumedFrom":${from}[^\\n]*download resumed and verified`, 'u'));
  });

  it('refuses a file whose bytes differ from the signed digest, and keeps its model', async () => {
    const release = publish('1.2.0', makeVersion(root, '1.2.0', golden));
    gateway.tamper = { version: '1.2.0', path: 'model.onnx' };
    deploy(release, deploymentOf('1.2.0'));
    const report = await refused('1.2.0');
    expect(report.error?.code).toBe('CXR_MODEL_DIGEST_MISMATCH');
    expect(report.running?.version).toBe('1.1.0');
    const h = await health();
    expect(h.model).toMatchObject({ version: '1.1.0', state: 'failed', error: { code: 'CXR_MODEL_DIGEST_MISMATCH', version: '1.2.0' } });
    expect(existsSync(path.join(agent.dataDir, 'models', `${NAME}@1.2.0`, 'model.onnx'))).toBe(false);
    expect(existsSync(path.join(agent.dataDir, 'models', `${NAME}@1.2.0`, 'model.onnx.part'))).toBe(false);
    gateway.tamper = undefined;
  });

  it('refuses a deployment changed after it was signed', async () => {
    const release = publish('1.4.0', makeVersion(root, '1.4.0', golden));
    const envelope = signDocument(deploymentOf('1.4.0', { thresholds: { bacterial_pneumonia: 0.5 } }), registry.privateKeyPem);
    gateway.desired = { deployment: { ...envelope, payload: envelope.payload.replace('0.5', '0.01') }, release };
    const report = await refused('1.4.0');
    expect(report.error).toMatchObject({ code: 'CXR_SIGNATURE_INVALID', message: expect.stringMatching(/signature does not match/u) });
    expect((await health()).model.version).toBe('1.1.0');
    expect(gateway.fileRequests.some((r) => r.version === '1.4.0')).toBe(false);
  });

  it('refuses a registry key other than the pinned one, even when the gateway now offers it', async () => {
    gateway.publicKey = other.publicKey;
    const release = publish('1.4.0', path.join(root, `${NAME}@1.4.0`), other);
    deploy(release, deploymentOf('1.4.0'), other);
    const report = await waitFor('the refusal', async () => gateway.statuses.find((s) => s.error?.message.includes('another key')));
    expect(report.error).toMatchObject({ code: 'CXR_SIGNATURE_INVALID', version: '1.4.0' });
    expect((await health()).model.version).toBe('1.1.0');
    const state = JSON.parse(readFileSync(path.join(agent.dataDir, 'models', 'state.json'), 'utf8')) as { pinnedKey: string };
    expect(state.pinnedKey).toBe(registry.publicKey);
    gateway.publicKey = registry.publicKey;
  });

  it('refuses an older version unless its deployment is a signed rollback', async () => {
    deploy(v100, deploymentOf('1.0.0'));
    const report = await refused('1.0.0');
    expect(report.error?.code).toBe('CXR_MODEL_ROLLBACK_REFUSED');
    expect((await health()).model.version).toBe('1.1.0');

    deploy(v100, deploymentOf('1.0.0', { rollback: true, thresholds: { bacterial_pneumonia: 0.2 } }));
    const h = await running('1.0.0');
    expect(h.model).toMatchObject({ source: 'registry', lastGood: { name: NAME, version: '1.1.0' }, thresholds: { bacterial_pneumonia: 0.2 } });
    // 1.0.0 was still on disk as the last good version: nothing downloaded again.
    expect(gateway.fileRequests.filter((r) => r.version === '1.0.0' && r.path === 'model.onnx')).toHaveLength(1);
  });

  it('refuses a deployment issued before the one in force (an old signed document played back)', async () => {
    const release = publish('1.5.0', makeVersion(root, '1.5.0', golden));
    deploy(release, { ...deploymentOf('1.5.0'), issuedAt: new Date(Date.now() - 3_600_000).toISOString() });
    const report = await refused('1.5.0');
    expect(report.error).toMatchObject({ code: 'CXR_MODEL_ROLLBACK_REFUSED', message: expect.stringMatching(/before the one in force/u) });
    expect((await health()).model.version).toBe('1.0.0');
  });

  it('keeps its model when the new one fails its golden cases', async () => {
    const release = publish('1.3.0', makeVersion(root, '1.3.0', golden, 0.2));
    deploy(release, deploymentOf('1.3.0'));
    const report = await refused('1.3.0');
    expect(report.error).toMatchObject({ code: 'CXR_MODEL_GOLDEN_MISMATCH', message: expect.stringMatching(/golden\/chest\.dcm: differs by 0\.(19|2)/u) });
    const h = await health();
    expect(h.model).toMatchObject({ version: '1.0.0', state: 'failed' });
    await expect.poll(header, { timeout: 10_000 }).toBe('Mô hình: squeezenet-pneumonia-peds phiên bản 1.0.0 · không cập nhật được mô hình mới, vẫn dùng phiên bản này');
    await page.click('button[data-lang="en"]');
    await expect.poll(header).toBe('Model: squeezenet-pneumonia-peds version 1.0.0 · the new model could not be installed, this version stays');
    // Still serving: a study gets its result from 1.0.0.
    const [file] = await makeStudies(1);
    expect((await storescu(agent.dicomPort, [file ?? ''])).code).toBe(0);
    const done = await waitFor('the result', async () => (await instances()).find((i) => i.sopInstanceUid === studies.at(-1) && i.status !== 'received'));
    expect(done.result?.model.version).toBe('1.0.0');
  });

  it('swaps while studies arrive: every study gets a result, none fails, new ones go to the new model', async () => {
    const before = await makeStudies(8);
    const after = await makeStudies(4);
    const release = publish('1.4.0', path.join(root, `${NAME}@1.4.0`));
    expect((await storescu(agent.dicomPort, before)).code).toBe(0);
    deploy(release, deploymentOf('1.4.0', { thresholds: { viral_pneumonia: 0.44 } }));
    // Studies keep coming, one by one, while the new version downloads, loads and runs its golden cases.
    for (const file of after) expect((await storescu(agent.dicomPort, [file])).code).toBe(0);
    await running('1.4.0');
    const last = await makeStudies(2);
    expect((await storescu(agent.dicomPort, last)).code).toBe(0);

    const mine = new Set(studies.slice(-14));
    const all = await waitFor('every result', async () => {
      const list = (await instances()).filter((i) => mine.has(i.sopInstanceUid));
      return list.length === 14 && list.every((i) => i.status !== 'received') ? list : undefined;
    }, 120_000);
    expect(all.filter((i) => i.status === 'failed')).toEqual([]);
    // Queued before the deployment: the model they started on.
    for (const uid of studies.slice(-14, -6)) expect(all.find((i) => i.sopInstanceUid === uid)?.result?.model.version).toBe('1.0.0');
    // Sent after the swap: the new model, with its deployment's thresholds.
    for (const uid of studies.slice(-2)) {
      const i = all.find((x) => x.sopInstanceUid === uid);
      expect(i?.result?.model.version).toBe('1.4.0');
      expect(i?.result?.findings.find((f) => f.code === 'viral_pneumonia')?.threshold).toBe(0.44);
    }
    await waitFor('the previous model to close', async () =>
      /"model":"squeezenet-pneumonia-peds@1\.0\.0"[^\n]*previous model closed after its last study/u.test(agent.output()) ? true : undefined,
    );
  }, 180_000);

  it('restarts on the verified registry model, offline, and resumes a partial download once back', async () => {
    const release = publish('1.5.0', makeVersion(root, '1.5.0', golden));
    gateway.interrupt = { version: '1.5.0', path: 'model.onnx', afterBytes: 1_200_000, how: 'stall' };
    deploy(release, deploymentOf('1.5.0'));
    const part = path.join(agent.dataDir, 'models', `${NAME}@1.5.0`, 'model.onnx.part');
    await waitFor('part of the file on disk', async () => (existsSync(part) && statSync(part).size >= 1_000_000 ? true : undefined));
    expect(await agent.stop()).toBe(0);
    earlierOutput = agent.output();
    const partial = statSync(part).size;
    gateway.releaseStalled();
    gateway.down = true;

    agent = await startAgent({
      dataDir: agent.dataDir,
      args: ['--gateway', gateway.url, '--station-id', STATION, '--station-token', TOKEN, '--model-poll-ms', '400', '--consult-priorities', '', '--log-level', 'info'],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    // At once, with the hospital unreachable: the last verified model, with its thresholds.
    const h = await health();
    expect(h.model).toMatchObject({ name: NAME, version: '1.4.0', source: 'registry', thresholds: { viral_pneumonia: 0.44 }, lastGood: { version: '1.0.0' } });
    // Its golden case run again at start, not only at the swap.
    expect(agent.output()).toMatch(/"model":"squeezenet-pneumonia-peds@1\.4\.0"[^\n]*"goldenCases":1[^\n]*"msg":"model loaded"/u);

    const requestsBefore = gateway.fileRequests.length;
    gateway.down = false;
    await running('1.5.0');
    const resumed = gateway.fileRequests.slice(requestsBefore).filter((r) => r.version === '1.5.0' && r.path === 'model.onnx');
    expect(resumed[0]?.range).toBe(`bytes=${partial}-`);
  }, 120_000);

  it('does not download or check a refused deployment again after a restart', async () => {
    const release = publish('1.6.0', makeVersion(root, '1.6.0', golden));
    gateway.tamper = { version: '1.6.0', path: 'model.onnx' };
    deploy(release, deploymentOf('1.6.0'));
    await refused('1.6.0');
    const asked = (): number => gateway.fileRequests.filter((r) => r.version === '1.6.0').length;
    const askedBefore = asked();
    expect(askedBefore).toBeGreaterThan(0);
    const state = JSON.parse(readFileSync(path.join(agent.dataDir, 'models', 'state.json'), 'utf8')) as { refused?: { code: string; version: string }[] };
    expect(state.refused?.at(-1)).toMatchObject({ code: 'CXR_MODEL_DIGEST_MISMATCH', version: '1.6.0' });

    expect(await agent.stop()).toBe(0);
    earlierOutput += agent.output();
    const reportsBefore = gateway.statuses.length;
    agent = await startAgent({
      dataDir: agent.dataDir,
      args: ['--gateway', gateway.url, '--station-id', STATION, '--station-token', TOKEN, '--model-poll-ms', '400', '--consult-priorities', '', '--log-level', 'info'],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    const again = await waitFor('the refusal reported again after the restart', async () =>
      gateway.statuses.slice(reportsBefore).find((s) => s.state === 'failed' && s.error?.version === '1.6.0'),
    );
    expect(again.error?.code).toBe('CXR_MODEL_DIGEST_MISMATCH');
    expect(again.running?.version).toBe('1.5.0');
    expect(asked()).toBe(askedBefore);
    expect(agent.output()).toMatch(/"code":"CXR_MODEL_DIGEST_MISMATCH"[^\n]*deployment refused before: not downloaded or loaded again/u);
    expect((await health()).model).toMatchObject({ version: '1.5.0', state: 'failed', error: { code: 'CXR_MODEL_DIGEST_MISMATCH', version: '1.6.0' } });
    gateway.tamper = undefined;
  }, 120_000);

  it('refuses to download a model that would leave less free disk than the spool needs, and keeps serving', async () => {
    const second = await startAgent({
      args: ['--gateway', gateway.url, '--station-id', STATION, '--station-token', TOKEN, '--model-poll-ms', '400', '--consult-priorities', '', '--min-free-bytes', String(2 ** 50)],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    try {
      const report = await waitFor('the disk refusal to be reported', async () => gateway.statuses.find((s) => s.error?.code === 'CXR_DISK_FULL'));
      expect(report.error?.message).toMatch(/must stay free/u);
      // Below its minimum free space the agent itself is degraded (it refuses images), and serves its own model.
      const health = await fetch(`http://127.0.0.1:${second.httpPort}/api/health`);
      expect(health.status).toBe(503);
      expect(await health.json()).toMatchObject({ status: 'degraded', problems: [{ code: 'CXR_DISK_FULL' }], model: { source: 'local' } });
      expect(readdirSync(path.join(second.dataDir, 'models')).filter((f) => f.includes('@'))).toEqual([]);
    } finally {
      await second.stop();
      removeDir(second.dataDir);
    }
  });

  it('refuses every deployment when its state file is damaged (the pinned key is lost), and leaves that file as it is', async () => {
    const dataDir = tempDir('cxr-edge-lost-state-');
    const stateFile = path.join(dataDir, 'models', 'state.json');
    const damaged = '{"schemaVersion": 1, "pinnedKey": "MCowBQYDK2Vw';
    mkdirSync(path.dirname(stateFile), { recursive: true });
    writeFileSync(stateFile, damaged);
    const reportsBefore = gateway.statuses.length;
    const second = await startAgent({
      dataDir,
      args: ['--gateway', gateway.url, '--station-id', STATION, '--station-token', TOKEN, '--model-poll-ms', '400', '--consult-priorities', ''],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    try {
      const report = await waitFor('the refusal', async () => gateway.statuses.slice(reportsBefore).find((s) => s.error?.message.includes('was lost')));
      expect(report.error?.code).toBe('CXR_SIGNATURE_INVALID');
      expect((await second.api<{ model: { source: string } }>('/api/health')).model.source).toBe('local');
      // Not replaced by a fresh state (which would let the next start trust whatever key the gateway offers).
      expect(readFileSync(stateFile, 'utf8')).toBe(damaged);
    } finally {
      await second.stop();
      removeDir(dataDir);
    }
  });

  it('logs the model sync as objects, and no patient identifier anywhere', async () => {
    const listed = await agent.api<{ patient: { name: string | null; id: string | null } }[]>('/api/studies');
    expect(listed.some((s) => s.patient.id === PATIENT_ID)).toBe(true);
    const output = earlierOutput + agent.output();
    writeFileSync('/tmp/model-sync-agent.log', output);
    const lines = output.split('\n').filter((l) => l.includes('"component":"model-sync"'));
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) expect(JSON.parse(line)).toMatchObject({ service: 'cxr-edge', msg: expect.any(String) });
    // The studies carried a patient name, were processed and logged (by instance id only).
    expect(output).toMatch(/"msg":"inferred"/u);
    expect(output).not.toContain('TRAN^THI');
    expect(output).not.toContain(PATIENT_ID);
  });
});

describe('model updates end to end: cxr-registry, the real gateway and its registry, the edge', () => {
  const gatewayBin = path.join(repoRoot, 'gateway', 'bin', 'cxr-gateway.js');
  const registryBin = path.join(repoRoot, 'model-registry', 'bin', 'cxr-registry.js');
  let hospital: Hospital;
  let root: string;
  let agent: AgentProcess;
  let token: string;
  let registryKey: string;

  const registry = async (...args: string[]): Promise<string> => (await run(process.execPath, [registryBin, ...args, '--gateway', hospital.url, '--token', token])).stdout;
  const health = async (): Promise<Health> => agent.api<Health>('/api/health');
  const running = async (version: string): Promise<Health> =>
    waitFor(`the station to run ${version}`, async () => {
      const h = await health();
      return h.model.version === version && h.model.state === 'ok' ? h : undefined;
    }, 90_000);

  beforeAll(async () => {
    root = tempDir('cxr-model-sync-e2e-');
    hospital = await startHospital();
    const admin = async (...args: string[]): Promise<string> => (await run(process.execPath, [gatewayBin, 'admin', ...args, '--store', hospital.store, '--redis', hospital.redis.url])).stdout;
    registryKey = (await admin('registry-key')).trim().split('\n').at(-1) ?? '';
    await admin('add-user', 'ml.an', '--role', 'mlops', '--password', 'mat-khau-ml-dai-1');
    const login = await run(process.execPath, [registryBin, 'login', '--gateway', hospital.url, '--username', 'ml.an', '--password', 'mat-khau-ml-dai-1']);
    token = login.stdout.trim().split('\n').at(-1) ?? '';
    const station = await hospital.addStation('tram-e2e');
    await hospital.addStation('tram-khac');
    const golden = await goldenProbabilities();
    for (const version of ['1.0.0', '1.1.0']) {
      const pushed = JSON.parse(await registry('push', makeVersion(root, version, golden))) as { accepted: boolean; errors: unknown[] };
      expect(pushed, `push ${version}`).toMatchObject({ accepted: true, errors: [] });
    }
    agent = await startAgent({
      args: ['--gateway', hospital.url, '--station-id', station.stationId, '--station-token', station.token, '--registry-key', registryKey, '--model-poll-ms', '400', '--consult-priorities', ''],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
  }, 180_000);

  afterAll(async () => {
    await agent?.stop();
    await hospital?.close();
    removeDir(agent.dataDir);
    removeDir(root);
  });

  it('takes a deployment with per-site thresholds, and the fleet status shows the station running it', async () => {
    const thresholdsFile = path.join(root, 'thresholds.json');
    writeFileSync(thresholdsFile, JSON.stringify({ bacterial_pneumonia: 0.15 }));
    await registry('deploy', `${NAME}@1.0.0`, '--station', 'tram-e2e', '--thresholds', thresholdsFile);
    const h = await running('1.0.0');
    expect(h.model).toMatchObject({ name: NAME, source: 'registry', thresholds: { bacterial_pneumonia: 0.15 } });
    // The given key: nothing pinned from the gateway.
    expect(JSON.parse(readFileSync(path.join(agent.dataDir, 'models', 'state.json'), 'utf8'))).toMatchObject({ pinnedKey: null });

    expect((await storescu(agent.dicomPort, [chest])).code).toBe(0);
    const done = await waitFor('the result', async () => (await agent.api<Study[]>('/api/studies')).flatMap((s) => s.instances).find((i) => i.status !== 'received'));
    expect(done.result?.model).toMatchObject({ name: NAME, version: '1.0.0' });
    expect(done.result?.findings.find((f) => f.code === 'bacterial_pneumonia')?.threshold).toBe(0.15);

    const row = await waitFor('the station in the fleet status', async () => {
      const rows = JSON.parse(await registry('status', '--json')) as { stationId: string; running: { version: string } | null; state: string; sync: string; lastSeen: string | null; counts: { studies: number } | null }[];
      const mine = rows.find((r) => r.stationId === 'tram-e2e');
      return mine?.running?.version === '1.0.0' && mine.counts?.studies === 1 ? mine : undefined;
    });
    expect(row).toMatchObject({ state: 'ok', sync: 'in-sync', lastSeen: expect.any(String) });
  });

  it('moves to a newer version, then back with a signed rollback in one command', async () => {
    await registry('deploy', `${NAME}@1.1.0`, '--station', 'tram-e2e');
    expect((await running('1.1.0')).model.lastGood).toEqual({ name: NAME, version: '1.0.0' });
    const said = await registry('rollback', '--station', 'tram-e2e');
    expect(said).toMatch(/back from .*1\.1\.0 to squeezenet-pneumonia-peds@1\.0\.0/u);
    const h = await running('1.0.0');
    expect(h.model).toMatchObject({ source: 'registry', lastGood: { version: '1.1.0' } });
    expect(agent.output()).toMatch(/"rollback":true[^\n]*"msg":"model swapped"/u);
  });

  it('follows its cohort again after an unpin, though the cohort deployment is older than the pin', async () => {
    await registry('cohort', 'add', 'vung-1', 'tram-e2e');
    await registry('deploy', `${NAME}@1.1.0`, '--cohort', 'vung-1');
    // Pinned after the cohort's deployment was issued (the station stays on 1.0.0, now by its own deployment).
    const pin = JSON.parse(await registry('deploy', `${NAME}@1.0.0`, '--station', 'tram-e2e', '--json')) as { deploymentId: string };
    await waitFor('the pin in force', async () => ((await health()).model.deploymentId === pin.deploymentId ? true : undefined));
    expect(await registry('unpin', '--station', 'tram-e2e')).toMatch(/follows its cohort again/u);
    const h = await running('1.1.0');
    expect(h.model).toMatchObject({ source: 'registry', lastGood: { version: '1.0.0' } });
    expect(h.model.error).toBeUndefined();

    // Moved to a cohort that runs an older version, deployed before the move: it follows that one (signed anew
    // for it, as a rollback), and back.
    await registry('cohort', 'add', 'vung-2', 'tram-khac');
    await registry('deploy', `${NAME}@1.0.0`, '--cohort', 'vung-2');
    await registry('cohort', 'add', 'vung-2', 'tram-e2e');
    expect((await running('1.0.0')).model.error).toBeUndefined();
    await registry('cohort', 'add', 'vung-1', 'tram-e2e');
    expect((await running('1.1.0')).model.error).toBeUndefined();
    const rows = JSON.parse(await registry('status', '--json')) as { stationId: string; desired: { version: string; source: string } | null }[];
    expect(rows.find((r) => r.stationId === 'tram-e2e')?.desired).toMatchObject({ version: '1.1.0', source: 'cohort' });
  });
});
