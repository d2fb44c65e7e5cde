/**
 * Revocation with the real `cxr-gateway` binary (issue 15, defect 5, and the gateway's half of 11): two `serve`
 * processes over one redis-server and one folder store; the admin commands run as an administrator would run them,
 * and each takes effect at once on both processes. Also: passwords never on the command line for set-password, the
 * store's file modes, and the default listening address.
 */
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { networkInterfaces, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../src/test-support/redis-server.js';
import { buildGateway, gatewayCli, gatewayCliRun, spawnServe, type ServeProcess } from './support/gateway.js';

let redis: RedisServer;
let workDir: string;
let storeDir: string;
let a: ServeProcess;
let b: ServeProcess;
let common: string[];

const lastLine = (text: string): string => text.trim().split('\n').at(-1)?.trim() ?? '';

async function status(baseUrl: string, route: string, token: string): Promise<number> {
  return (await fetch(`${baseUrl}${route}`, { headers: { authorization: `Bearer ${token}` } })).status;
}

async function signIn(baseUrl: string, username: string, password: string): Promise<{ status: number; token: string }> {
  const res = await fetch(`${baseUrl}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
  const body = (await res.json()) as { token?: string };
  return { status: res.status, token: body.token ?? '' };
}

/** The worklist through both processes: what a radiologist's session gets on each. */
const onBoth = async (token: string): Promise<number[]> => Promise.all([a, b].map((g) => status(g.baseUrl, '/api/v1/worklist', token)));
const stationOnBoth = async (token: string): Promise<number[]> => Promise.all([a, b].map((g) => status(g.baseUrl, '/api/v1/stations/tram-1/model', token)));

beforeAll(async () => {
  await buildGateway();
  redis = await startRedis();
  workDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-revoke-'));
  // A store folder the gateway makes itself (its mode is the gateway's, not mkdtemp's).
  storeDir = path.join(workDir, 'store');
  common = ['--store', storeDir, '--redis', redis.url];
}, 120_000);

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  rmSync(workDir, { recursive: true, force: true });
});

describe('cxr-gateway admin', () => {
  it('takes a password from a file, the environment or standard input; set-password refuses one on the command line', async () => {
    const file = path.join(workDir, 'lan.password');
    writeFileSync(file, 'mat-khau-tu-tep-1\n', { mode: 0o600 });
    // Side by side: each account is its own object.
    const [fromFile, fromStdin, fromEnv, , empty, inArgv] = await Promise.all([
      gatewayCliRun(['admin', 'add-user', ...common, 'bs.lan', '--role', 'radiologist', '--password-file', file]),
      gatewayCliRun(['admin', 'add-user', ...common, 'bs.an', '--role', 'radiologist'], { env: { CXR_GATEWAY_PASSWORD: 'mat-khau-tu-moi-truong' } }),
      gatewayCliRun(['admin', 'add-user', ...common, 'quan.tri', '--role', 'admin'], { input: 'mat-khau-quan-tri-1\n' }),
      // --password still works (scripts/start.sh uses it), documented as visible in ps.
      gatewayCli(['admin', 'add-user', ...common, 'bs.minh', '--role', 'radiologist', '--password', 'mat-khau-minh-1']),
      gatewayCliRun(['admin', 'add-user', ...common, 'bs.rong', '--role', 'radiologist'], { input: '' }),
      gatewayCliRun(['admin', 'set-password', ...common, 'bs.lan', '--password', 'mat-khau-moi-123']),
      ...['tram-1', 'tram-2'].map((station) => gatewayCli(['admin', 'add-station', ...common, station])),
    ]);
    expect([fromFile.code, fromStdin.code, fromEnv.code]).toEqual([0, 0, 0]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toContain('the password is empty');
    expect(inArgv.code).toBe(2);
    expect(inArgv.stderr).toContain("unknown option '--password'");

    [a, b] = await Promise.all([spawnServe({ storeDir, redisUrl: redis.url }), spawnServe({ storeDir, redisUrl: redis.url })]);
    expect((await signIn(a.baseUrl, 'bs.lan', 'mat-khau-tu-tep-1')).status).toBe(200);
    expect((await signIn(b.baseUrl, 'quan.tri', 'mat-khau-quan-tri-1')).status).toBe(200);
    expect((await signIn(a.baseUrl, 'bs.minh', 'mat-khau-minh-1')).status).toBe(200);
    expect((await signIn(b.baseUrl, 'bs.an', 'mat-khau-tu-moi-truong')).status).toBe(200);
  });

  it('disable-user, enable-user and set-password refuse the sessions of the user at once on both gateway processes', async () => {
    const lan = await signIn(a.baseUrl, 'bs.lan', 'mat-khau-tu-tep-1');
    const minh = await signIn(b.baseUrl, 'bs.minh', 'mat-khau-minh-1');
    expect(await onBoth(lan.token)).toEqual([200, 200]);

    const disabled = await gatewayCliRun(['admin', 'disable-user', ...common, 'bs.lan']);
    expect(disabled.code).toBe(0);
    expect(await onBoth(lan.token)).toEqual([401, 401]);
    expect((await signIn(b.baseUrl, 'bs.lan', 'mat-khau-tu-tep-1')).status).toBe(401);
    // Another user is not touched.
    expect(await onBoth(minh.token)).toEqual([200, 200]);

    expect((await gatewayCliRun(['admin', 'enable-user', ...common, 'bs.lan'])).code).toBe(0);
    // The session the disable ended stays ended; signing in again works.
    expect(await onBoth(lan.token)).toEqual([401, 401]);
    const again = await signIn(b.baseUrl, 'bs.lan', 'mat-khau-tu-tep-1');
    expect(again.status).toBe(200);
    expect(await onBoth(again.token)).toEqual([200, 200]);

    const fromStdin = await gatewayCliRun(['admin', 'set-password', ...common, 'bs.lan'], { input: 'mat-khau-moi-tu-stdin\n' });
    expect(fromStdin.code).toBe(0);
    expect(await onBoth(again.token)).toEqual([401, 401]);
    expect((await signIn(a.baseUrl, 'bs.lan', 'mat-khau-tu-tep-1')).status).toBe(401);
    const third = await signIn(a.baseUrl, 'bs.lan', 'mat-khau-moi-tu-stdin');
    expect(third.status).toBe(200);

    const file = path.join(workDir, 'lan-2.password');
    writeFileSync(file, 'mat-khau-tu-tep-2\r\n', { mode: 0o600 });
    expect((await gatewayCliRun(['admin', 'set-password', ...common, 'bs.lan', '--password-file', file])).code).toBe(0);
    expect(await onBoth(third.token)).toEqual([401, 401]);
    expect((await signIn(b.baseUrl, 'bs.lan', 'mat-khau-tu-tep-2')).status).toBe(200);

    const unknown = await gatewayCliRun(['admin', 'disable-user', ...common, 'bs.khong-co']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('CXR_ACCOUNT_NOT_FOUND');
  });

  it('rotate-station-token prints the new token last and refuses the old one at once; revoke-station refuses every token', async () => {
    const tokenOf1 = async (): Promise<string> => lastLine(await gatewayCli(['admin', 'rotate-station-token', ...common, 'tram-1']));
    const old = await tokenOf1();
    expect(old).toMatch(/^cxrst_tram-1\.[A-Za-z0-9_-]{43}$/u);
    expect(await stationOnBoth(old)).toEqual([200, 200]);

    const rotated = await gatewayCliRun(['admin', 'rotate-station-token', ...common, 'tram-1']);
    expect(rotated.code).toBe(0);
    const fresh = lastLine(rotated.stdout);
    expect(fresh).toMatch(/^cxrst_tram-1\.[A-Za-z0-9_-]{43}$/u);
    expect(fresh).not.toBe(old);
    expect(await stationOnBoth(old)).toEqual([401, 401]);
    expect(await stationOnBoth(fresh)).toEqual([200, 200]);

    const revoked = await gatewayCliRun(['admin', 'revoke-station', ...common, 'tram-1']);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain('1 token(s) revoked');
    expect(await stationOnBoth(fresh)).toEqual([401, 401]);
    // Another station is not touched; a new token lets tram-1 in again.
    const tram2 = lastLine(await gatewayCli(['admin', 'rotate-station-token', ...common, 'tram-2']));
    expect(await Promise.all([a, b].map((g) => status(g.baseUrl, '/api/v1/stations/tram-2/model', tram2)))).toEqual([200, 200]);
    const back = lastLine(await gatewayCli(['admin', 'rotate-station-token', ...common, 'tram-1']));
    expect(await stationOnBoth(back)).toEqual([200, 200]);
  });

  it('records the admin commands in the audit trail', async () => {
    const admin = await signIn(a.baseUrl, 'quan.tri', 'mat-khau-quan-tri-1');
    const res = await fetch(`${b.baseUrl}/api/v1/audit?date=${new Date().toISOString().slice(0, 10)}`, { headers: { authorization: `Bearer ${admin.token}` } });
    const events = (await res.json()) as { actor: string; action: string; target: string }[];
    const admins = events.filter((e) => e.actor.startsWith('admin-cli:')).map((e) => `${e.action} ${e.target}`);
    expect(admins).toEqual(
      expect.arrayContaining([
        'account.add-user bs.lan',
        'account.add-station tram-1',
        'account.disable-user bs.lan',
        'account.enable-user bs.lan',
        'account.set-password bs.lan',
        'account.rotate-station-token tram-1',
        'account.revoke-station tram-1',
      ]),
    );
    expect(JSON.stringify(events)).not.toMatch(/mat-khau/u);
  });

  it("keeps the store for the gateway's user only: folders 0700, files 0600, the registry's private key too", async () => {
    const printed = await gatewayCli(['admin', 'registry-key', ...common]);
    expect(lastLine(printed)).toMatch(/^[A-Za-z0-9_-]{43}$/u);
    const key = path.join(storeDir, 'objects', 'registry', 'signing-key.json~obj');
    expect((statSync(key).mode & 0o777).toString(8)).toBe('600');
    const loose: string[] = [];
    const walk = (dir: string): void => {
      const mode = statSync(dir).mode & 0o777;
      if (mode !== 0o700) loose.push(`${dir}: ${mode.toString(8)}`);
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) walk(full);
        else if ((statSync(full).mode & 0o777) !== 0o600) loose.push(`${full}: ${(statSync(full).mode & 0o777).toString(8)}`);
      }
    };
    walk(storeDir);
    expect(loose).toEqual([]);
  });
});

describe('cxr-gateway serve', () => {
  const lanAddress = Object.values(networkInterfaces())
    .flat()
    .find((i) => i && i.family === 'IPv4' && !i.internal)?.address;

  it.skipIf(lanAddress === undefined)('listens on 127.0.0.1 unless --host says otherwise', async () => {
    const serve = await spawnServe({ storeDir, redisUrl: redis.url, host: null });
    try {
      const reach = (host: string): Promise<string> =>
        new Promise((resolve) => {
          const socket = connect({ host, port: serve.port }, () => {
            socket.destroy();
            resolve('connected');
          });
          socket.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
        });
      expect({ loopback: await reach('127.0.0.1'), lan: await reach(lanAddress ?? '') }).toEqual({ loopback: 'connected', lan: 'ECONNREFUSED' });
      expect(serve.output()).toContain('listening on 127.0.0.1 only');
    } finally {
      await serve.stop();
    }
  });
});
