/**
 * The consult loop with the gateway's object store on S3 (a real S3-protocol server, s3rver, started here) and two
 * gateway processes: the station's studies, the report and the rebuild of the queue all go through S3.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../gateway/src/test-support/redis-server.js';
import { S3RVER_KEYS, startS3rver, type TestS3 } from '../../gateway/src/test-support/s3rver.js';
import { dicomDir, removeDir, repoRoot, startAgent, storescu, waitFor, type AgentProcess } from './harness/agent-process.js';
import { endProcess, freePort, spawnGateway } from './support/hospital.js';

const run = promisify(execFile);
const gatewayBin = path.join(repoRoot, 'gateway', 'bin', 'cxr-gateway.js');

interface Study {
  studyInstanceUid: string;
  consult: null | { status: string; report?: { impression: string; signedBy: string } };
}

describe('the consult loop on an S3 object store, with two gateway processes', () => {
  let s3: TestS3;
  let redis: RedisServer;
  let env: NodeJS.ProcessEnv;
  const store = 's3://cxr-loop';
  const gateways: { port: number; child: ChildProcess }[] = [];
  let edge: AgentProcess | undefined;
  let reportedConsult = '';

  const startGateway = (port: number): Promise<ChildProcess> =>
    spawnGateway(['--port', String(port), '--store', store, '--redis', redis.url, '--log-level', 'warn'], { env });
  const signIn = async (port: number, username: string, password: string): Promise<string> => {
    const res = await fetch(`http://127.0.0.1:${port}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
    return ((await res.json()) as { token: string }).token;
  };
  const api = async <T>(port: number, token: string, route: string, init: { method?: string; body?: unknown } = {}): Promise<{ status: number; body: T }> => {
    const res = await fetch(`http://127.0.0.1:${port}${route}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${token}`, ...(init.body ? { 'content-type': 'application/json' } : {}) },
      ...(init.body ? { body: JSON.stringify(init.body) } : {}),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
  };

  beforeAll(async () => {
    s3 = await startS3rver();
    redis = await startRedis();
    env = { ...process.env, CXR_S3_ENDPOINT: `http://127.0.0.1:${s3.port}`, CXR_S3_ACCESS_KEY: S3RVER_KEYS.accessKey, CXR_S3_SECRET_KEY: S3RVER_KEYS.secretKey };
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      gateways.push({ port, child: await startGateway(port) });
    }
  });

  afterAll(async () => {
    await edge?.stop();
    for (const g of gateways) await endProcess(g.child);
    await redis?.stop();
    await s3?.stop();
    if (edge) removeDir(edge.dataDir);
  });

  it('carries a study from the X-ray unit through S3 to a radiologist on the other process, and the report back', async () => {
    const [first, second] = gateways;
    if (!first || !second) throw new Error('two gateways');
    const admin = (...args: string[]) => run(process.execPath, [gatewayBin, 'admin', ...args, '--store', store, '--redis', redis.url], { env });
    const token = (await admin('add-station', 'tram-s3')).stdout.trim().split('\n').at(-1) ?? '';
    await admin('add-user', 'bs.thu', '--role', 'radiologist', '--password', 'mat-khau-s3-thu');
    edge = await startAgent({
      args: ['--gateway', `http://127.0.0.1:${first.port}`, '--station-id', 'tram-s3', '--station-token', token, '--upload-chunk-bytes', String(1024 * 1024)],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    // Two instances of one chest study: the J2K one is sent by policy (its AI priority), the explicit-LE one (7 MB)
    // goes up in 1 MiB chunks.
    expect((await storescu(edge.dicomPort, [path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm'), path.join(dicomDir, 'derived', 'derived_cr_chest_pa_RG1_explicitLE.dcm')])).code).toBe(0);
    const doctor = await signIn(second.port, 'bs.thu', 'mat-khau-s3-thu');
    const list = await waitFor('consults on the worklist', async () => {
      const body = (await api<{ consultId: string; stationId: string }[]>(second.port, doctor, '/api/v1/worklist')).body;
      return body.length > 0 ? body : undefined;
    });
    expect(list.every((c) => c.stationId === 'tram-s3')).toBe(true);
    await waitFor('the outbox to empty', async () => ((await edge?.api<{ pending: number }>('/api/link'))?.pending === 0 ? true : undefined), 90_000);
    const consult = list[0]?.consultId ?? '';
    reportedConsult = consult;
    type View = { instances: { hasDicom: boolean; hasPreview: boolean; result: { findings: { code: string; positive: boolean }[] } }[] };
    const view = (await api<View>(second.port, doctor, `/api/v1/consults/${consult}`)).body;
    expect(view.instances.length).toBeGreaterThan(0);
    expect(view.instances.every((i) => i.hasDicom && i.hasPreview)).toBe(true);
    expect((await api(second.port, doctor, `/api/v1/consults/${consult}/claim`, { method: 'POST' })).status).toBe(200);
    const findings = (view.instances[0]?.result.findings ?? []).filter((f) => f.positive).map((f) => ({ code: f.code, agree: true }));
    expect((await api(second.port, doctor, `/api/v1/consults/${consult}/report`, { method: 'POST', body: { impression: 'Đông đặc thùy dưới phổi phải.', findings } })).status).toBe(201);
    const reported = await waitFor('the report at the station', async () => {
      const studies = await edge?.api<Study[]>('/api/studies');
      return studies?.find((s) => s.consult?.status === 'reported');
    });
    expect(reported.consult?.report).toMatchObject({ impression: 'Đông đặc thùy dưới phổi phải.', signedBy: 'bs.thu' });
  });

  it('rebuilds the worklist from S3 when Redis lost everything: open consults back, reported ones not', async () => {
    const [first] = gateways;
    if (!first) throw new Error('gateway');
    const doctor = await signIn(first.port, 'bs.thu', 'mat-khau-s3-thu');
    // Another study, and the radiographer asks for a consult on it with the button, so one consult is open.
    if (!edge) throw new Error('edge');
    expect((await storescu(edge.dicomPort, [path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm')])).code).toBe(0);
    const unasked = await waitFor('the new study at the station', async () => (await edge?.api<Study[]>('/api/studies'))?.find((s) => s.consult === null));
    const asked = await fetch(`http://127.0.0.1:${edge.httpPort}/api/studies/${unasked.studyInstanceUid}/consult`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ note: 'Xin ý kiến' }) });
    expect(asked.status).toBeLessThan(300);
    const before = await waitFor('an open consult', async () => {
      const ids = (await api<{ consultId: string }[]>(first.port, doctor, '/api/v1/worklist')).body.map((c) => c.consultId);
      return ids.length > 0 ? ids : undefined;
    });
    expect(before).not.toContain(reportedConsult);
    for (const g of gateways) await endProcess(g.child);
    await run('redis-cli', ['-p', String(redis.port), 'FLUSHALL']);
    first.child = await startGateway(first.port);
    const again = await signIn(first.port, 'bs.thu', 'mat-khau-s3-thu');
    const after = (await api<{ consultId: string }[]>(first.port, again, '/api/v1/worklist')).body.map((c) => c.consultId);
    expect(after).toEqual(before);
    expect(after).not.toContain(reportedConsult);
  });
});
