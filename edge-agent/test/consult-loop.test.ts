import { execFile, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../gateway/src/test-support/redis-server.js';
import { dicomDir, removeDir, repoRoot, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { spawnGateway } from './support/hospital.js';
import { freePort } from '../../gateway/src/test-support/free-port.js';

const run = promisify(execFile);
const gatewayBin = path.join(repoRoot, 'gateway', 'bin', 'cxr-gateway.js');


/** Everything the gateway processes logged, to look for patient data in. */
let gatewayLogs = '';

/** A real gateway process, as the hospital runs it. */
function startGateway(port: number, store: string, redis: string): Promise<ChildProcess> {
  return spawnGateway(['--port', String(port), '--store', store, '--redis', redis, '--log-level', 'info'], { onStdout: (text) => (gatewayLogs += text) });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  await new Promise<void>((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

interface Study {
  studyInstanceUid: string;
  priority: string | null;
  consult: null | { status: string; reason: string; report?: { impression: string; signedBy: string } };
}

describe('the consult loop: X-ray unit -> edge -> gateway -> radiologist -> report back at the station', () => {
  let redis: RedisServer;
  let store: string;
  let port: number;
  let gateway: ChildProcess;
  let edge: AgentProcess;
  let doctor: string;
  const gw = (route: string, init: RequestInit = {}) =>
    fetch(`http://127.0.0.1:${port}${route}`, {
      ...init,
      headers: { ...(init.body ? { 'content-type': 'application/json' } : {}), authorization: `Bearer ${doctor}`, ...(init.headers ?? {}) },
    });

  beforeAll(async () => {
    redis = await startRedis({ persistence: true });
    store = tempDir('cxr-loop-store-');
    port = await freePort();
    const station = await run(process.execPath, [gatewayBin, 'admin', 'add-station', '--store', store, '--redis', redis.url, 'tram-1']);
    const token = station.stdout.trim().split('\n').at(-1) ?? '';
    await run(process.execPath, [gatewayBin, 'admin', 'add-user', '--store', store, '--redis', redis.url, 'bs.lan', '--role', 'radiologist', '--password', 'mat-khau-dai-1']);
    gateway = await startGateway(port, store, redis.url);
    edge = await startAgent({
      args: ['--gateway', `http://127.0.0.1:${port}`, '--station-id', 'tram-1', '--station-token', token],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    const login = await fetch(`http://127.0.0.1:${port}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bs.lan', password: 'mat-khau-dai-1' }) });
    doctor = ((await login.json()) as { token: string }).token;
  });

  afterAll(async () => {
    await edge?.stop();
    await stopProcess(gateway);
    await redis?.stop();
    removeDir(store);
    removeDir(edge.dataDir);
  });

  it('shows the hospital link online', async () => {
    await waitFor('the link to be online', async () => ((await edge.api<{ state: string }>('/api/link')).state === 'online' ? true : undefined), 10_000);
  });

  it('sends an urgent study by itself, and the signed report shows at the station', async () => {
    expect((await storescu(edge.dicomPort, [path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm')])).code).toBe(0);
    const item = await waitFor('the consult on the worklist', async () => {
      const list = (await (await gw('/api/v1/worklist')).json()) as { consultId: string; stationId: string; priority: string; status: string }[];
      return list[0];
    });
    expect(item).toMatchObject({ stationId: 'tram-1', status: 'queued' });
    const view = await waitFor('the study at the gateway with its DICOM', async () => {
      const v = (await (await gw(`/api/v1/consults/${item.consultId}`)).json()) as { instances: { result: unknown; hasPreview: boolean; hasDicom: boolean }[] };
      return v.instances[0]?.hasDicom && v.instances[0].hasPreview ? v : undefined;
    });
    expect(view.instances[0]?.result).toMatchObject({ applicable: true, priority: item.priority });
    const edgeStudy = (await edge.api<Study[]>('/api/studies'))[0];
    expect(edgeStudy?.consult?.status).toMatch(/^(queued|claimed)$/u);

    expect((await gw(`/api/v1/consults/${item.consultId}/claim`, { method: 'POST' })).status).toBe(200);
    // The radiologist answers every finding the AI flagged.
    const flagged = (view.instances[0]?.result as { findings: { code: string; positive: boolean }[] }).findings.filter((f) => f.positive);
    const report = await gw(`/api/v1/consults/${item.consultId}/report`, {
      method: 'POST',
      body: JSON.stringify({ impression: 'Nhiều nốt mờ tròn hai phổi.', findings: flagged.map((f) => ({ code: f.code, agree: true })), recommendation: 'Chuyển tuyến tỉnh' }),
    });
    expect(report.status).toBe(201);
    const back = await waitFor('the report at the station', async () => {
      const s = (await edge.api<Study[]>('/api/studies'))[0];
      return s?.consult?.status === 'reported' ? s : undefined;
    });
    expect(back.consult?.report).toMatchObject({ impression: 'Nhiều nốt mờ tròn hai phổi.', signedBy: 'bs.lan' });
  });

  it('keeps working while the gateway is down, then delivers everything once', async () => {
    await stopProcess(gateway);
    expect((await storescu(edge.dicomPort, [path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm')])).code).toBe(0);
    const offline = await waitFor('the link to go offline with work waiting', async () => {
      const link = await edge.api<{ state: string; pending: number }>('/api/link');
      return link.state === 'offline' && link.pending > 0 ? link : undefined;
    });
    expect(offline.pending).toBeGreaterThan(0);
    // The station's own page still has the result.
    const studies = await edge.api<Study[]>('/api/studies');
    expect(studies.find((s) => s.studyInstanceUid.endsWith('191866964708'))?.priority).toMatch(/^(stat|urgent|routine)$/u);

    gateway = await startGateway(port, store, redis.url);
    await waitFor('the outbox to empty', async () => ((await edge.api<{ pending: number; state: string }>('/api/link')).pending === 0 ? true : undefined), 90_000);
    const list = (await (await gw('/api/v1/worklist')).json()) as { studyInstanceUid: string }[];
    expect(list.filter((c) => c.studyInstanceUid.endsWith('191866964708'))).toHaveLength(1);
    // One DICOM object per instance in the store: nothing doubled.
    const dicomObjects = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? dicomObjects(path.join(dir, e.name)) : e.name.startsWith('instance.dcm') ? [e.name] : []));
    expect(dicomObjects(path.join(store, 'objects', 'studies'))).toHaveLength(2);
  });

  it('behaves as one with two gateway processes on one Redis and one store', async () => {
    const port2 = await freePort();
    const second = await startGateway(port2, store, redis.url);
    try {
      const list = (await (await gw('/api/v1/worklist')).json()) as { consultId: string }[];
      const target = list[0]?.consultId ?? '';
      expect((await gw(`/api/v1/consults/${target}/claim`, { method: 'POST' })).status).toBe(200);
      // Another radiologist, through the other process.
      await run(process.execPath, [gatewayBin, 'admin', 'add-user', '--store', store, '--redis', redis.url, 'bs.minh', '--role', 'radiologist', '--password', 'mat-khau-dai-2']);
      const login = await fetch(`http://127.0.0.1:${port2}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bs.minh', password: 'mat-khau-dai-2' }) });
      const minh = ((await login.json()) as { token: string }).token;
      const seen = (await (await fetch(`http://127.0.0.1:${port2}/api/v1/worklist`, { headers: { authorization: `Bearer ${minh}` } })).json()) as { consultId: string; status: string }[];
      expect(seen.find((c) => c.consultId === target)?.status).toBe('claimed');
      const taken = await fetch(`http://127.0.0.1:${port2}/api/v1/consults/${target}/claim`, { method: 'POST', headers: { authorization: `Bearer ${minh}` } });
      expect(taken.status).toBe(409);
      expect((await gw(`/api/v1/consults/${target}/release`, { method: 'POST' })).status).toBe(200);
    } finally {
      await stopProcess(second);
    }
  });

  it('comes back when Redis is killed and restarted, with the queue it had', async () => {
    const before = (await (await gw('/api/v1/worklist')).json()) as { consultId: string }[];
    await redis.kill();
    const down = await gw('/api/v1/worklist').catch(() => undefined);
    expect(down === undefined || down.status >= 500).toBe(true);
    await redis.start();
    const after = await waitFor('the worklist again', async () => {
      const res = await gw('/api/v1/worklist');
      return res.ok ? ((await res.json()) as { consultId: string }[]) : undefined;
    });
    expect(after.map((c) => c.consultId)).toEqual(before.map((c) => c.consultId));
  });

  it('never logs patient identifiers at the gateway', () => {
    // The NIH image sent above carries patient name and ID "Covid0000".
    expect(gatewayLogs).toContain('signed in');
    expect(gatewayLogs).not.toContain('Covid0000');
  });

  it('rebuilds the worklist from the object store when Redis lost everything', async () => {
    const before = (await (await gw('/api/v1/worklist')).json()) as { consultId: string }[];
    expect(before.length).toBeGreaterThan(0);
    await stopProcess(gateway);
    await run('redis-cli', ['-p', String(redis.port), 'FLUSHALL']);
    gateway = await startGateway(port, store, redis.url);
    // Sessions lived in Redis too: sign in again.
    const login = await fetch(`http://127.0.0.1:${port}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username: 'bs.lan', password: 'mat-khau-dai-1' }) });
    doctor = ((await login.json()) as { token: string }).token;
    const after = (await (await gw('/api/v1/worklist')).json()) as { consultId: string }[];
    expect(after.map((c) => c.consultId)).toEqual(before.map((c) => c.consultId));
  });
});
