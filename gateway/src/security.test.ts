/**
 * Issue 15, the gateway's half: sign-in (timing, throttling, audit), sessions checked against the account, paths
 * with dot segments, UIDs, security headers, the scrypt cost, and the route inventory. Against build() with a real
 * redis-server and a folder store, through inject() (and a real socket where inject() would rewrite the request).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino from 'pino';
import { Redis } from 'ioredis';
import { createPasswordHasher, scryptDerive, type DeriveKey } from '@cxr/inference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build, type GatewayDeps } from './app.js';
import { AccountStore, type UserRecord } from './accounts/accounts.js';
import { SessionStore } from './accounts/sessions.js';
import { SignInLimiter } from './accounts/sign-in-limiter.js';
import { routeInventory, type RouteAccess } from './plugins/access.js';
import { requireUser } from './plugins/auth.js';
import { ConsultQueue } from './queue/consults.js';
import { createFsObjectStore, type ObjectStore } from './store/index.js';
import { startRedis, type RedisServer } from './test-support/redis-server.js';
import { makeTestPki } from './test-support/test-pki.js';
import { waitFor } from '../test/support/radiologist.js';

let redisServer: RedisServer;
let app: FastifyInstance;
let deps: GatewayDeps;
let storeDir: string;
let store: ObjectStore;
let redis: Redis;
let accounts: AccountStore;
let radiologist = '';
let admin = '';
let mlops = '';
let tokenA = '';
let tokenB = '';

/** Small limits, so that a test reaches them in a few attempts (the defaults are 10 per account, 30 per address). */
const limits = { windowSeconds: 600, maxFailuresPerAccount: 3, maxFailuresPerAddress: 6 };

/** GET with the path sent exactly as given (node:http does not normalize it). */
function rawGet(port: number, rawPath: string, headers: Record<string, string>): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: rawPath, headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

const auth = (token: string) => ({ authorization: `Bearer ${token}` });
const login = (username: string, password: string, ip = '10.0.0.1') => app.inject({ method: 'POST', url: '/api/v1/login', payload: { username, password }, remoteAddress: ip });
const tokenOf = async (username: string, password: string, ip: string): Promise<string> => {
  const res = await login(username, password, ip);
  if (res.statusCode !== 200) throw new Error(`sign-in of ${username}: ${res.statusCode} ${res.body}`);
  return (res.json() as { token: string }).token;
};
const today = (): string => new Date().toISOString().slice(0, 10);
const auditEvents = async () =>
  (await app.inject({ method: 'GET', url: `/api/v1/audit?date=${today()}`, headers: auth(admin) })).json() as { actor: string; action: string; target: string; detail?: Record<string, unknown> }[];

beforeAll(async () => {
  redisServer = await startRedis();
  storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-sec-'));
  store = await createFsObjectStore({ root: storeDir });
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  accounts = new AccountStore(store);
  deps = {
    store,
    redis,
    accounts,
    sessions: new SessionStore(redis, { prefix: 'sec:', ttlSeconds: 600 }),
    queue: new ConsultQueue(redis, { prefix: 'sec:', claimTimeoutMs: 60_000 }),
    signInLimiter: new SignInLimiter(redis, { prefix: 'sec:', limits }),
    log: pino({ level: 'silent' }),
  };
  app = await build(deps);
  tokenA = (await accounts.addStation({ stationId: 'tram-a' })).token;
  tokenB = (await accounts.addStation({ stationId: 'tram-b' })).token;
  await Promise.all([
    accounts.addUser({ username: 'bs.lan', password: 'correct horse battery', role: 'radiologist' }),
    accounts.addUser({ username: 'quan.tri', password: 'admin password 1', role: 'admin' }),
    accounts.addUser({ username: 'kt.hung', password: 'mlops password 1', role: 'mlops' }),
  ]);
  [radiologist, admin, mlops] = await Promise.all([
    tokenOf('bs.lan', 'correct horse battery', '10.9.9.1'),
    tokenOf('quan.tri', 'admin password 1', '10.9.9.2'),
    tokenOf('kt.hung', 'mlops password 1', '10.9.9.3'),
  ]);
});

afterAll(async () => {
  await app?.close();
  redis?.disconnect();
  await redisServer?.stop();
  rmSync(storeDir, { recursive: true, force: true });
});

describe('passwords', () => {
  it('answers 500 for an account whose stored hash cannot be read, never a quiet 401 "wrong password"', async () => {
    // The hashing itself (which hashes are malformed) is tested with it: inference/src/accounts/passwords.test.ts.
    const record: UserRecord = { username: 'bs.hong', role: 'radiologist', passwordHash: 'scrypt$32768$8$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', displayName: 'bs.hong', createdAt: new Date().toISOString(), disabled: false };
    await store.put('accounts/users/bs.hong.json', Buffer.from(JSON.stringify(record)), { contentType: 'application/json' });
    const res = await login('bs.hong', 'any password 1', '10.10.0.1');
    expect([res.statusCode, (res.json() as { error?: { code?: string } }).error?.code]).toEqual([500, 'CXR_INTERNAL']);
    // Nothing is left stuck: the next sign-in from the same address is answered as usual.
    expect((await login('bs.lan', 'correct horse battery', '10.10.0.1')).statusCode).toBe(200);
  });

  it('costs one scrypt derivation at the current cost for a wrong password, an unknown user and a disabled user alike', async () => {
    const derivations: number[] = [];
    const counting: DeriveKey = (password, salt, keyLength, cost) => {
      derivations.push(cost.N);
      return scryptDerive(password, salt, keyLength, cost);
    };
    const counted = new AccountStore(store, { hasher: createPasswordHasher({ derive: counting }) });
    await counted.addUser({ username: 'bs.dem', password: 'counted password 1', role: 'radiologist' });
    await counted.addUser({ username: 'bs.tat', password: 'counted password 2', role: 'radiologist' });
    await counted.disableUser('bs.tat');
    await counted.authenticate('no.such.user', 'whatever password'); // makes the throwaway hash once
    const cost = (attempt: () => Promise<unknown>) => async (): Promise<number[]> => {
      derivations.length = 0;
      await attempt();
      return [...derivations];
    };
    expect({
      wrongPassword: await cost(() => counted.authenticate('bs.dem', 'wrong password'))(),
      unknownUser: await cost(() => counted.authenticate('ai.do', 'wrong password'))(),
      malformedName: await cost(() => counted.authenticate('NOT A NAME', 'wrong password'))(),
      disabledUser: await cost(() => counted.authenticate('bs.tat', 'counted password 2'))(),
    }).toEqual({ wrongPassword: [2 ** 17], unknownUser: [2 ** 17], malformedName: [2 ** 17], disabledUser: [2 ** 17] });
  });

  it('hashes new passwords with scrypt N=2^17, r=8, p=1', async () => {
    const user = await accounts.user('bs.lan');
    expect(user?.passwordHash.split('$').slice(0, 4)).toEqual(['scrypt', String(2 ** 17), '8', '1']);
  });

  it('still takes a password hashed at the old cost (N=2^15), and rehashes it at the new cost on that sign-in', async () => {
    const old = createPasswordHasher({}, { cost: { N: 2 ** 15, r: 8, p: 1 } });
    const record: UserRecord = { username: 'bs.cu', role: 'radiologist', passwordHash: await old.hash('old cost password'), displayName: 'bs.cu', createdAt: new Date().toISOString(), disabled: false };
    await store.put('accounts/users/bs.cu.json', Buffer.from(JSON.stringify(record)), { contentType: 'application/json' });
    expect((await login('bs.cu', 'old cost password', '10.3.0.1')).statusCode).toBe(200);
    const after = await accounts.user('bs.cu');
    expect(after?.passwordHash.split('$').slice(0, 4)).toEqual(['scrypt', String(2 ** 17), '8', '1']);
    expect((await login('bs.cu', 'old cost password', '10.3.0.1')).statusCode).toBe(200);
    expect((await login('bs.cu', 'not the password', '10.3.0.1')).statusCode).toBe(401);
  });
});

describe('sign-in attempts', () => {
  it('answers 429 CXR_RATE_LIMITED with Retry-After after repeated failures for one account, from any address', async () => {
    await accounts.addUser({ username: 'bs.khoa', password: 'right password 1', role: 'radiologist' });
    const answers: number[] = [];
    for (let i = 0; i < limits.maxFailuresPerAccount; i += 1) answers.push((await login('bs.khoa', `wrong password ${i}`, `10.1.0.${i}`)).statusCode);
    expect(answers).toEqual([401, 401, 401]);
    // Even the right password, from yet another address: the account is held back for the window.
    const throttled = await login('bs.khoa', 'right password 1', '10.1.1.1');
    expect(throttled.statusCode).toBe(429);
    expect(throttled.json()).toMatchObject({ error: { code: 'CXR_RATE_LIMITED' } });
    expect(Number(throttled.headers['retry-after'])).toBeGreaterThan(0);
    expect(Number(throttled.headers['retry-after'])).toBeLessThanOrEqual(limits.windowSeconds);
  });

  it('answers 429 after repeated failures from one address over several accounts; a success there does not clear them', async () => {
    const ip = '10.2.0.1';
    const answers: number[] = [];
    for (let i = 0; i < limits.maxFailuresPerAddress - 1; i += 1) answers.push((await login(`nobody.${i}`, 'wrong password', ip)).statusCode);
    // A good sign-in from the same address (an attacker's own account) gives back only its own attempt.
    answers.push((await login('bs.lan', 'correct horse battery', ip)).statusCode);
    answers.push((await login('nobody.x', 'wrong password', ip)).statusCode);
    answers.push((await login('bs.lan', 'correct horse battery', ip)).statusCode);
    expect(answers).toEqual([401, 401, 401, 401, 401, 200, 401, 429]);
    // Another address is not held back.
    expect((await login('bs.lan', 'correct horse battery', '10.2.0.2')).statusCode).toBe(200);
  });

  it('counts a burst of parallel guesses before any password is checked: no more than the limit get through', async () => {
    await accounts.addUser({ username: 'bs.song', password: 'parallel password 1', role: 'radiologist' });
    const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => login('bs.song', `guess ${i}`, `10.4.0.${i}`)));
    const counts = answers.reduce<Record<number, number>>((acc, res) => ({ ...acc, [res.statusCode]: (acc[res.statusCode] ?? 0) + 1 }), {});
    expect(counts).toEqual({ 401: limits.maxFailuresPerAccount, 429: 12 - limits.maxFailuresPerAccount });
  });

  it('lets the account in again once the window has passed', async () => {
    const shortLimiter = new SignInLimiter(redis, { prefix: 'sec-short:', limits: { windowSeconds: 1, maxFailuresPerAccount: 1, maxFailuresPerAddress: 10 } });
    const first = await shortLimiter.attempt('bs.lan', '10.5.0.1');
    if (!first.allowed) throw new Error('the first attempt was held back');
    await first.release('failure');
    expect(await shortLimiter.attempt('bs.lan', '10.5.0.1')).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    await waitFor('the window to pass', async () => ((await shortLimiter.attempt('bs.lan', '10.5.0.1')).allowed ? true : undefined), 10_000, 200);
  });

  it('audits failed and throttled sign-ins with the address, never the password', async () => {
    expect((await login('NOT A NAME', 'wrong password', '10.8.0.1')).statusCode).toBe(401);
    const events = await auditEvents();
    expect(events.filter((e) => e.action === 'login.failed' && e.target === 'bs.khoa').map((e) => e.detail?.['address'])).toEqual(['10.1.0.0', '10.1.0.1', '10.1.0.2']);
    expect(events.filter((e) => e.action === 'login.throttled' && e.target === 'bs.khoa')).toEqual([
      expect.objectContaining({ actor: 'user:bs.khoa', detail: expect.objectContaining({ address: '10.1.1.1' }) }),
    ]);
    expect(events.some((e) => e.action === 'login.throttled' && e.target === 'bs.lan' && e.detail?.['address'] === '10.2.0.1')).toBe(true);
    expect(events.some((e) => e.action === 'login.failed' && e.target === '(not a username)')).toBe(true);
    expect(JSON.stringify(events)).not.toMatch(/wrong password|right password 1|guess \d|NOT A NAME/u);
  });
});

describe('sessions', () => {
  it('refuses a session at its next request once the user is disabled, or their password set; a new sign-in works', async () => {
    await accounts.addUser({ username: 'bs.phuong', password: 'first password 1', role: 'radiologist' });
    const first = await tokenOf('bs.phuong', 'first password 1', '10.6.0.1');
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth(first) })).statusCode).toBe(200);
    await accounts.disableUser('bs.phuong');
    const refused = await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth(first) });
    expect(refused.statusCode).toBe(401);
    expect(refused.json()).toMatchObject({ error: { code: 'CXR_AUTH_INVALID' } });
    expect((await login('bs.phuong', 'first password 1', '10.6.0.1')).statusCode).toBe(401);
    await accounts.enableUser('bs.phuong');
    // The session the disable ended stays ended.
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth(first) })).statusCode).toBe(401);
    const second = await tokenOf('bs.phuong', 'first password 1', '10.6.0.1');
    await accounts.setPassword('bs.phuong', 'second password 2');
    expect((await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth(second) })).statusCode).toBe(401);
    expect((await login('bs.phuong', 'first password 1', '10.6.0.2')).statusCode).toBe(401);
    expect((await login('bs.phuong', 'second password 2', '10.6.0.2')).statusCode).toBe(200);
  });

  it('applies a role as the account has it now, not as it was at sign-in', async () => {
    await accounts.addUser({ username: 'bs.vai', password: 'role password 1', role: 'admin' });
    const token = await tokenOf('bs.vai', 'role password 1', '10.7.0.1');
    expect((await app.inject({ method: 'GET', url: `/api/v1/audit?date=${today()}`, headers: auth(token) })).statusCode).toBe(200);
    const user = await accounts.user('bs.vai');
    await store.put('accounts/users/bs.vai.json', Buffer.from(JSON.stringify({ ...user, role: 'radiologist' })), { contentType: 'application/json' });
    expect((await app.inject({ method: 'GET', url: `/api/v1/audit?date=${today()}`, headers: auth(token) })).statusCode).toBe(403);
  });
});

describe('paths', () => {
  it('answers 400 CXR_VALIDATION, never 500, to dot segments and encoded slashes in a consult image path', async () => {
    const asked = await app.inject({ method: 'POST', url: '/api/v1/stations/tram-a/consults', headers: auth(tokenA), payload: { studyInstanceUid: '1.2.840.5', priority: 'urgent', reason: 'policy' } });
    const consult = (asked.json() as { consultId: string }).consultId;
    const sha = 'b'.repeat(64);
    const tails = [
      `../${sha}/preview.png`,
      `%2e%2e/${sha}/preview.png`,
      `.%2E/${sha}/preview.png`,
      `.../${sha}/heatmap.png`,
      `..%2F..%2F${sha}/preview.png`,
      '../../../x',
      '..%2F..%2Fx/y/z',
      '%2e%2e/%2E%2E/x/preview.png',
      '1.2.3/..%2f..%2fx/preview.png',
      '1.2.3/%2e%2e/preview.png',
      '..%5c..%5cx/a/b',
      '1.2.3/../../x/preview.png',
      `1.2.3/${sha}/%00preview.png`,
    ];
    const answers = [];
    // A real socket: inject() parses the URL with WHATWG rules, which resolve the dot segments before the gateway
    // sees them; a client such as curl --path-as-is sends them as they are.
    await app.listen({ port: 0, host: '127.0.0.1' });
    const { port } = app.server.address() as { port: number };
    for (const tail of tails) {
      const res = await rawGet(port, `/api/v1/consults/${consult}/instances/${tail}`, auth(radiologist));
      answers.push(`${tail} ${res.status} ${String((JSON.parse(res.body || '{}') as { error?: { code?: string } }).error?.code)}`);
    }
    expect(answers).toEqual(tails.map((tail) => `${tail} 400 CXR_VALIDATION`));
    // The same image path, well formed, is looked up (and not there).
    expect((await rawGet(port, `/api/v1/consults/${consult}/instances/1.2.3/${sha}/preview.png`, auth(radiologist))).status).toBe(404);
  });

  it('refuses UIDs outside the DICOM UI grammar (leading zeros, empty parts, over 64) on ingest and consult routes', async () => {
    const sha = 'a'.repeat(64);
    const answers: string[] = [];
    for (const uid of ['1.02.3', '1..2', '.1.2', '1.2.', `1.${'2'.repeat(63)}`, '1.2.3a']) {
      const put = await app.inject({ method: 'PUT', url: `/api/v1/stations/tram-a/studies/${uid}/instances/1.2.3/${sha}/result`, headers: auth(tokenA), payload: { result: {} } });
      const sop = await app.inject({ method: 'GET', url: `/api/v1/stations/tram-a/studies/1.2.3/instances/${uid}/${sha}/dicom/upload`, headers: auth(tokenA) });
      const ask = await app.inject({ method: 'POST', url: '/api/v1/stations/tram-a/consults', headers: auth(tokenA), payload: { studyInstanceUid: uid, priority: 'urgent', reason: 'policy' } });
      const image = await app.inject({ method: 'GET', url: `/api/v1/consults/tram-a-0123456789abcdef0123/instances/${uid}/${sha}/preview.png`, headers: auth(radiologist) });
      answers.push(`${uid}: ${put.statusCode} ${sop.statusCode} ${ask.statusCode} ${image.statusCode}`);
    }
    expect(answers).toEqual(['1.02.3', '1..2', '.1.2', '1.2.', `1.${'2'.repeat(63)}`, '1.2.3a'].map((uid) => `${uid}: 400 400 400 400`));
    // A UUID-derived UID (2.25.N, as the edge makes for a study without one) is a UID.
    const uuidUid = `2.25.${BigInt('0x' + 'f'.repeat(32)).toString()}`;
    const ok = await app.inject({ method: 'POST', url: '/api/v1/stations/tram-a/consults', headers: auth(tokenA), payload: { studyInstanceUid: uuidUid, priority: 'routine', reason: 'policy' } });
    expect(ok.statusCode).toBe(201);
  });
});

describe('security headers', () => {
  it('sends CSP with frame-ancestors none, nosniff and a referrer policy on pages, API answers and errors; no HSTS on plain HTTP', async () => {
    for (const [url, token] of [['/', ''], ['/ml/', ''], ['/shared/sign-in.js', ''], ['/api/health', ''], ['/api/v1/worklist', ''], ['/api/v1/worklist', radiologist], ['/no-such-page', '']] as const) {
      const res = await app.inject({ method: 'GET', url, headers: token ? auth(token) : {} });
      const csp = String(res.headers['content-security-policy'] ?? '');
      expect({ url, csp }).toEqual({ url, csp: expect.stringContaining("frame-ancestors 'none'") });
      expect(csp).toContain("default-src 'self'");
      expect(csp).toContain("script-src 'self'");
      expect(csp).not.toMatch(/script-src[^;]*(unsafe|\*)/u);
      expect(res.headers['x-content-type-options']).toBe('nosniff');
      expect(res.headers['referrer-policy']).toBe('no-referrer');
      expect(res.headers['strict-transport-security']).toBeUndefined();
    }
  });
});

describe('security headers over TLS', () => {
  it('adds Strict-Transport-Security when the gateway serves HTTPS itself', async () => {
    const pki = makeTestPki();
    const tlsApp = await build(deps, { https: { cert: readFileSync(pki.serverCert), key: readFileSync(pki.serverKey) } });
    try {
      await tlsApp.listen({ port: 0, host: '127.0.0.1' });
      const { port } = tlsApp.server.address() as { port: number };
      const headers = await new Promise<Record<string, unknown>>((resolve, reject) => {
        const req = httpsRequest({ host: '127.0.0.1', port, path: '/api/health', ca: readFileSync(pki.caCert) }, (res) => {
          res.resume();
          resolve(res.headers);
        });
        req.on('error', reject);
        req.end();
      });
      expect(headers['strict-transport-security']).toBe('max-age=31536000');
      expect(String(headers['content-security-policy'])).toContain("frame-ancestors 'none'");
    } finally {
      await tlsApp.close();
      rmSync(pki.dir, { recursive: true, force: true });
    }
  });
});

describe('route inventory', () => {
  /** Values for route parameters, by name; a parameter not named here fails the test (name it). */
  const paramValues: Record<string, string> = {
    stationId: 'tram-a',
    studyUid: '1.2.3',
    sopUid: '1.2.3.4',
    sha: 'a'.repeat(64),
    sha256: 'a'.repeat(64),
    consultId: 'tram-a-0123456789abcdef0123',
    image: 'preview.png',
    name: 'model-a',
    version: '1.0.0',
    cohort: 'pilot',
    '*': 'model.onnx',
  };
  const fill = (url: string): string =>
    url
      .split('/')
      .map((part) => {
        const name = part === '*' ? '*' : part.startsWith(':') ? part.slice(1) : undefined;
        if (name === undefined) return part;
        const value = paramValues[name];
        if (value === undefined) throw new Error(`route ${url}: no test value for :${name}`);
        return value;
      })
      .join('/');
  const call = async (route: RouteAccess, token: string | undefined, url = fill(route.url)): Promise<number> => {
    const body = route.method === 'POST' || route.method === 'PUT' ? { payload: {} } : {};
    const res = await app.inject({ method: route.method as 'GET', url, headers: token ? auth(token) : {}, ...body });
    return res.statusCode;
  };

  it('lists every route from the app with the credential it needs, and each refuses no credential, a wrong role and another station', async () => {
    const routes = routeInventory(app);
    const byKey = new Map(routes.map((r) => [`${r.method} ${r.url}`, r.access]));
    // The inventory is the app's own: the routes of the gateway and of the registry plugin are in it.
    expect(Object.fromEntries(['POST /api/v1/login', 'GET /api/v1/worklist', 'GET /api/v1/audit', 'PUT /api/v1/stations/:stationId/studies/:studyUid/instances/:sopUid/:sha/dicom', 'GET /api/v1/stations/:stationId/model', 'POST /api/v1/registry/deployments', 'GET /api/v1/registry/public-key', 'GET /*', 'GET /ml/*'].map((k) => [k, byKey.get(k)]))).toEqual({
      'POST /api/v1/login': 'public',
      'GET /api/v1/worklist': 'user:radiologist|admin',
      'GET /api/v1/audit': 'user:admin',
      'PUT /api/v1/stations/:stationId/studies/:studyUid/instances/:sopUid/:sha/dicom': 'station',
      'GET /api/v1/stations/:stationId/model': 'station',
      'POST /api/v1/registry/deployments': 'user:mlops|admin',
      'GET /api/v1/registry/public-key': 'signed-in',
      'GET /*': 'public',
      'GET /ml/*': 'public',
    });
    const tokens = { radiologist, admin, mlops } as const;
    const problems: string[] = [];
    let checked = 0;
    for (const route of routes) {
      const where = `${route.method} ${route.url} (${route.access})`;
      if (route.access === 'public') continue;
      checked += 1;
      const expectStatus = async (what: string, token: string | undefined, status: number, url?: string): Promise<void> => {
        const got = await call(route, token, url);
        if (got !== status) problems.push(`${where} with ${what}: ${got}, expected ${status}`);
      };
      await expectStatus('no credential', undefined, 401);
      await expectStatus('a malformed token', 'cxrsess_forged', 401);
      if (route.access === 'station') {
        await expectStatus("a radiologist's session", radiologist, 403);
        await expectStatus("an admin's session", admin, 403);
        if (route.url.includes(':stationId')) await expectStatus("another station's token", tokenB, 403);
      } else if (route.access.startsWith('user:')) {
        await expectStatus("a station's token", tokenA, 403);
        const allowed = route.access.slice('user:'.length).split('|');
        for (const role of ['radiologist', 'admin', 'mlops'] as const) {
          if (!allowed.includes('*') && !allowed.includes(role)) await expectStatus(`role ${role}`, tokens[role], 403);
        }
      }
    }
    expect(problems).toEqual([]);
    expect(checked).toBeGreaterThan(30);
  });

  it('refuses to register a route that declares no access, or whose declaration and guard disagree', async () => {
    const fresh = await build(deps);
    try {
      expect(() => fresh.get('/api/v1/undeclared', async () => ({ patients: [] }))).toThrow(/GET \/api\/v1\/undeclared declares no credential/u);
      expect(() => fresh.get('/api/v1/mislabelled', { config: { credential: 'public' }, preValidation: requireUser('admin') }, async () => ({}))).toThrow(/declares credential public but its guard enforces user:admin/u);
      expect(() => fresh.get('/api/v1/typo', { config: { credential: 'user:' } }, async () => ({}))).toThrow(/is not one of/u);
      // Declared, it is in the inventory.
      fresh.get('/api/v1/declared', { preValidation: requireUser('admin') }, async () => ({}));
      expect(routeInventory(fresh)).toContainEqual({ method: 'GET', url: '/api/v1/declared', access: 'user:admin' });
    } finally {
      await fresh.close();
    }
  });
});
