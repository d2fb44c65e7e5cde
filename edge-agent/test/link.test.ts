/**
 * The station's link to the hospital over real processes: mTLS (each station presents its own certificate), and a
 * big DICOM file whose upload is cut mid-file and resumes where the gateway stands.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../../gateway/src/test-support/redis-server.js';
import { makeTestPki, type TestPki } from '../../gateway/src/test-support/test-pki.js';
import { createFsObjectStore } from '../../gateway/src/store/index.js';
import { dicomDir, removeDir, repoRoot, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { endProcess, freePort, spawnGateway } from './support/hospital.js';
import { runEdge, squeezenet } from './support/lan.js';

const run = promisify(execFile);
const gatewayBin = path.join(repoRoot, 'gateway', 'bin', 'cxr-gateway.js');

const startGateway = (args: string[]): Promise<ChildProcess> => spawnGateway(['--log-level', 'warn', ...args]);

/** Every file under the folder store's objects whose path contains `part`. */
function storedFiles(store: string, part: string): string[] {
  const walk = (dir: string): string[] =>
    existsSync(dir) ? readdirSync(dir, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(path.join(dir, e.name)) : [path.join(dir, e.name)])) : [];
  return walk(path.join(store, 'objects')).filter((f) => f.includes(part));
}

describe('mTLS between station and gateway', () => {
  let pki: TestPki;
  let redis: RedisServer;
  let store: string;
  let port: number;
  let gateway: ChildProcess;
  let edge: AgentProcess | undefined;
  let token = '';

  const call = async (route: string, client?: { cert: string; key: string }, bearer = token) => {
    const dispatcher = new Agent({ connect: { ca: readFileSync(pki.caCert), ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}) } });
    try {
      const res = await undiciFetch(`https://127.0.0.1:${port}${route}`, { headers: bearer ? { authorization: `Bearer ${bearer}` } : {}, dispatcher });
      return { status: res.status, body: (await res.json()) as { error?: { code: string } } };
    } finally {
      await dispatcher.close();
    }
  };

  beforeAll(async () => {
    pki = makeTestPki();
    redis = await startRedis();
    store = tempDir('cxr-mtls-store-');
    port = await freePort();
    const station = await run(process.execPath, [gatewayBin, 'admin', 'add-station', '--store', store, '--redis', redis.url, 'tram-1']);
    token = station.stdout.trim().split('\n').at(-1) ?? '';
    gateway = await startGateway(['--port', String(port), '--store', store, '--redis', redis.url, '--tls-cert', pki.serverCert, '--tls-key', pki.serverKey, '--tls-ca', pki.caCert]);
  });

  afterAll(async () => {
    await edge?.stop();
    await endProcess(gateway);
    await redis.stop();
    removeDir(store);
    removeDir(pki.dir);
    if (edge) removeDir(edge.dataDir);
  });

  it("takes a station's token only with that station's own certificate", async () => {
    expect((await call('/api/health', undefined, '')).status).toBe(200);
    expect(await call('/api/v1/me')).toMatchObject({ status: 403, body: { error: { code: 'CXR_CLIENT_CERT_REQUIRED' } } });
    expect(await call('/api/v1/me', pki.client('tram-2'))).toMatchObject({ status: 403, body: { error: { code: 'CXR_CLIENT_CERT_REQUIRED' } } });
    expect((await call('/api/v1/me', pki.client('tram-1'))).status).toBe(200);
  });

  it('refuses to start with half a TLS configuration, naming every problem', async () => {
    const failed = await run(process.execPath, [gatewayBin, 'serve', '--port', '0', '--store', store, '--redis', redis.url, '--tls-ca', pki.caCert, '--tls-key', '/nonexistent.pem']).catch((err: { code: number; stderr: string }) => err);
    expect('code' in failed && failed.code).toBe(1);
    expect((failed as { stderr: string }).stderr).toMatch(/--tls-cert and --tls-key go together[\s\S]*\/nonexistent\.pem: ENOENT/u);
  });

  it('links an edge agent that presents its certificate, and delivers its study', async () => {
    const client = pki.client('tram-1');
    // The token from a private file, so that `ps` never shows it.
    const tokenFile = path.join(pki.dir, 'station-token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    edge = await startAgent({
      args: ['--gateway', `https://127.0.0.1:${port}`, '--station-id', 'tram-1', '--station-token-file', tokenFile, '--gateway-ca', pki.caCert, '--client-cert', client.cert, '--client-key', client.key],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    expect(readFileSync(`/proc/${edge.child.pid}/cmdline`, 'utf8')).not.toContain(token);
    expect(edge.output()).not.toContain(token);
    await waitFor('the link to be online', async () => ((await edge?.api<{ state: string }>('/api/link'))?.state === 'online' ? true : undefined), 20_000);
    expect((await storescu(edge.dicomPort, [path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm')])).code).toBe(0);
    const delivered = await waitFor('the DICOM file at the gateway', async () => {
      const files = storedFiles(store, `${path.sep}studies${path.sep}tram-1${path.sep}`).filter((f) => f.includes(`${path.sep}instance.dcm`));
      return files.length > 0 ? files : undefined;
    });
    expect(delivered).toHaveLength(1);
    expect(edge.output()).not.toContain(token);
  });

  it('takes the token from one place only, and says which file it cannot read (every problem at once)', async () => {
    const tokenFile = path.join(pki.dir, 'station-token');
    const both = await runEdge(['--data-dir', '/tmp/unused', '--model', squeezenet, '--gateway', `https://127.0.0.1:${port}`, '--station-id', 'tram-1', '--station-token', token, '--station-token-file', tokenFile]);
    expect(both.code).toBe(2);
    expect(both.stderr).toContain('stationToken and stationTokenFile: give the token one way only');
    const missing = await runEdge(['--data-dir', '/tmp/unused', '--model', squeezenet, '--gateway', `https://127.0.0.1:${port}`, '--station-id', 'tram-1', '--station-token-file', '/nonexistent/token', '--dicom-port', '99999']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('stationTokenFile: cannot read /nonexistent/token: ENOENT');
    expect(missing.stderr).toContain('dicomPort:');
    expect(missing.stderr).not.toContain('go together');
    // A token of the wrong shape is not echoed back.
    const short = await runEdge(['--data-dir', '/tmp/unused', '--model', squeezenet, '--gateway', `https://127.0.0.1:${port}`, '--station-id', 'tram-1', '--station-token', 'short-secret']);
    expect(short.code).toBe(2);
    expect(short.stderr).not.toContain('short-secret');
  });
});

describe('a big DICOM upload cut mid-file', () => {
  let redis: RedisServer;
  let store: string;
  let port: number;
  let gateway: ChildProcess;
  let edge: AgentProcess | undefined;

  beforeAll(async () => {
    redis = await startRedis();
    store = tempDir('cxr-resume-store-');
    port = await freePort();
  });

  afterAll(async () => {
    await edge?.stop();
    await endProcess(gateway);
    await redis.stop();
    removeDir(store);
    if (edge) removeDir(edge.dataDir);
  });

  it('resumes where the gateway stands after the gateway dies, and stores the file once, whole', async () => {
    const station = await run(process.execPath, [gatewayBin, 'admin', 'add-station', '--store', store, '--redis', redis.url, 'tram-1']);
    const token = station.stdout.trim().split('\n').at(-1) ?? '';
    const serve = ['--port', String(port), '--store', store, '--redis', redis.url];
    gateway = await startGateway(serve);
    edge = await startAgent({
      args: ['--gateway', `http://127.0.0.1:${port}`, '--station-id', 'tram-1', '--station-token', token, '--upload-chunk-bytes', String(64 * 1024), '--consult-priorities', ''],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300' },
    });
    const file = path.join(dicomDir, 'derived', 'derived_cr_chest_pa_RG1_explicitLE.dcm');
    expect((await storescu(edge.dicomPort, [file])).code).toBe(0);
    // The gateway dies (frozen at once, then killed) as soon as the first chunks are stored.
    await waitFor('the first chunks at the gateway', async () => (storedFiles(store, `${path.sep}uploads${path.sep}`).length >= 2 ? true : undefined), 60_000, 2);
    gateway.kill('SIGSTOP');
    const stored = storedFiles(store, `${path.sep}uploads${path.sep}`).length;
    gateway.kill('SIGKILL');
    await new Promise((resolve) => gateway.once('exit', resolve));
    expect(storedFiles(store, 'instance.dcm')).toHaveLength(0);

    gateway = await startGateway(serve);
    await waitFor('the file at the gateway', async () => (storedFiles(store, 'instance.dcm').length > 0 ? true : undefined), 90_000);
    // The gateway answers the join once the chunks are gone too: then the station's outbox is empty.
    await waitFor('the outbox to empty', async () => ((await edge?.api<{ pending: number }>('/api/link'))?.pending === 0 ? true : undefined), 30_000);
    const [instance = '', ...others] = storedFiles(store, 'instance.dcm');
    expect(others).toHaveLength(0);
    // The very bytes the station spooled (named by their content hash, as the gateway's key is).
    const contentSha = path.basename(path.dirname(instance));
    const objects = await createFsObjectStore({ root: store });
    const key = path.relative(path.join(store, 'objects'), instance).replace(/~obj$/u, '').split(path.sep).join('/');
    const atGateway = Buffer.from(await objects.getBytes(key));
    await objects.close();
    expect(atGateway.equals(readFileSync(path.join(edge.dataDir, 'objects', contentSha.slice(0, 2), `${contentSha}.dcm`)))).toBe(true);
    expect(storedFiles(store, `${path.sep}uploads${path.sep}`)).toHaveLength(0);
    const resumed = /"offset":(\d+),"size":(\d+),"msg":"resuming a DICOM upload"/u.exec(edge.output());
    expect(Number(resumed?.[1])).toBeGreaterThanOrEqual(stored * 64 * 1024 - 64 * 1024);
    expect(Number(resumed?.[1])).toBeGreaterThan(0);
  });
});
