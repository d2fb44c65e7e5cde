/**
 * Who reaches the station's page, against real agent processes: by default only the station PC itself; opened to the
 * station's network, only radiographers who sign in (accounts made with `cxr-edge admin`), a limited number of tries,
 * a disabled account or a changed password refused at once. On either: no foreign Host (DNS rebinding), no change
 * that is not JSON from the page itself (cross-site request forgery), and the protective headers on every answer.
 * "Another machine" is this machine's own network address: a request to it comes from it, not from 127.0.0.1.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AccountStore } from '../src/accounts/store.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { startAgent as startPageAgent, type RunningAgent } from './support/agent.js';
import { addUser, admin, call, cookieOf, lanAddress, postJson, signIn, squeezenet } from './support/lan.js';

const chest = path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm');
/** What the chest file says of its patient: none of it may reach someone who has not signed in. */
const patient = { name: 'CompressedSamples', id: '9RG1', birthDate: '19400305' };
const lan = lanAddress();

function expectNoPatientData(text: string): void {
  for (const value of Object.values(patient)) expect(text).not.toContain(value);
}

describe('the page on the station PC alone (the default)', () => {
  let agent: RunningAgent;
  beforeAll(async () => {
    agent = await startPageAgent({ args: ['--model', squeezenet, '--allowed-hosts', 'tram-xa.local'] });
    expect((await storescu(agent.dicomPort, [chest])).code).toBe(0);
  });
  afterAll(async () => {
    await agent?.stop();
    if (agent) removeDir(agent.dataDir);
  });

  it('listens on 127.0.0.1 only: another machine on the network cannot connect', async (ctx) => {
    if (!lan) return ctx.skip();
    await expect(call(lan, agent.httpPort, '/api/studies')).rejects.toMatchObject({ code: 'ECONNREFUSED' });
  });

  it("needs no sign-in on the PC's own screen", async () => {
    expect((await call('127.0.0.1', agent.httpPort, '/api/session')).json()).toEqual({ signInRequired: false, user: null, expiresAt: null });
    const studies = await call('127.0.0.1', agent.httpPort, '/api/studies');
    expect(studies.status).toBe(200);
    expect(studies.text).toContain(patient.name);
  });

  it('answers only to its own names: a foreign Host (DNS rebinding) is refused with 421 CXR_HOST_NOT_ALLOWED', async () => {
    const port = agent.httpPort;
    for (const host of [`evil.example:${port}`, 'evil.example', `localhost.evil.example:${port}`, `evil.example.:${port}`]) {
      const res = await call('127.0.0.1', port, '/api/studies', { headers: { host } });
      expect({ host, status: res.status, code: res.json().error?.code }).toEqual({ host, status: 421, code: 'CXR_HOST_NOT_ALLOWED' });
      expectNoPatientData(res.text);
    }
    // The page itself (index.html) is refused too: a rebound name never gets a page that would then read the API.
    expect((await call('127.0.0.1', port, '/', { headers: { host: `evil.example:${port}` } })).status).toBe(421);
    for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, `[::1]:${port}`, `tram-xa.local:${port}`, `TRAM-XA.local:${port}`, `192.0.2.77:${port}`]) {
      expect({ host, status: (await call('127.0.0.1', port, '/api/studies', { headers: { host } })).status }).toEqual({ host, status: 200 });
    }
  });

  it('takes a change only as JSON from the page itself (cross-site request forgery)', async () => {
    const port = agent.httpPort;
    const uid = (await call('127.0.0.1', port, '/api/studies')).json<{ studyInstanceUid: string }[]>()[0]?.studyInstanceUid ?? '';
    const consult = `/api/studies/${encodeURIComponent(uid)}/consult`;
    const post = (headers: Record<string, string>, body = '{"note":"x"}') => call('127.0.0.1', port, consult, { method: 'POST', headers, body });
    // What a form or a "simple" fetch from any website can send, with no preflight:
    expect((await post({ 'content-type': 'text/plain', origin: 'http://evil.example' })).json().error?.code).toBe('CXR_CROSS_SITE');
    const plain = await post({ 'content-type': 'text/plain' });
    expect([plain.status, plain.json().error?.code]).toEqual([415, 'CXR_UNSUPPORTED_MEDIA_TYPE']);
    const form = await post({ 'content-type': 'application/x-www-form-urlencoded' }, 'note=x');
    expect([form.status, form.json().error?.code]).toEqual([415, 'CXR_UNSUPPORTED_MEDIA_TYPE']);
    // JSON, but from another site (a preflight the agent never answers would stop a browser; the Origin says it anyway).
    const foreign: Record<string, string>[] = [{ origin: 'http://evil.example' }, { origin: `http://localhost:${port + 1}` }, { origin: 'null' }, { 'sec-fetch-site': 'cross-site' }, { 'sec-fetch-site': 'same-site' }];
    for (const headers of foreign) {
      const res = await post({ 'content-type': 'application/json', ...headers });
      expect({ headers, status: res.status, code: res.json().error?.code }).toEqual({ headers, status: 403, code: 'CXR_CROSS_SITE' });
    }
    // Reading the API from another site is refused as well (a browser says so in Sec-Fetch-Site).
    expect((await call('127.0.0.1', port, '/api/studies', { headers: { 'sec-fetch-site': 'cross-site' } })).status).toBe(403);
    // The page's own request reaches the route (this agent has no hospital link: 409 CXR_NO_GATEWAY).
    const own: Record<string, string>[] = [{}, { origin: `http://127.0.0.1:${port}`, 'sec-fetch-site': 'same-origin' }];
    for (const headers of own) {
      const res = await post({ 'content-type': 'application/json; charset=utf-8', ...headers });
      expect({ headers, code: res.json().error?.code }).toEqual({ headers, code: 'CXR_NO_GATEWAY' });
    }
  });

  it('sends the protective headers on every answer (no HSTS: the page is plain http)', async () => {
    const port = agent.httpPort;
    const routes = ['/', '/app.js', '/shared/base.css', '/api/health', '/api/studies', '/api/no-such-route', '/no-such-file.js'];
    for (const route of routes) {
      const { headers, status } = await call('127.0.0.1', port, route);
      expect({ route, status: status >= 500 }).toEqual({ route, status: false });
      expect(headers['content-security-policy'], route).toMatch(/default-src 'self'/u);
      expect(headers['content-security-policy'], route).toContain("frame-ancestors 'none'");
      expect(headers['content-security-policy'], route).not.toMatch(/script-src[^;]*unsafe-inline/u);
      expect(headers['x-content-type-options'], route).toBe('nosniff');
      expect(headers['x-frame-options'], route).toBe('DENY');
      expect(headers['referrer-policy'], route).toBe('no-referrer');
      expect(headers['strict-transport-security'], route).toBeUndefined();
    }
    // Refusals carry them too.
    expect((await call('127.0.0.1', port, '/api/studies', { headers: { host: 'evil.example' } })).headers['x-frame-options']).toBe('DENY');
    expect((await call('127.0.0.1', port, '/api/events')).headers['content-security-policy']).toContain("frame-ancestors 'none'");
  });

  it('warns at start, on the terminal and in its log, that any device can send studies without --calling-ae', () => {
    expect(agent.output()).toMatch(/cxr-edge: WARNING: no --calling-ae: any device on the station's network can send studies/u);
    expect(agent.output()).toMatch(/"msg":"no --calling-ae: any device on the station network can send studies/u);
  });
});

describe('the page open to the station network', () => {
  let agent: AgentProcess;
  let dataDir: string;
  /** Where "another machine" calls the agent: the network address, or 127.0.0.1 on a machine without one. */
  const host = lan ?? '127.0.0.1';
  const passwords = { 'lan.a': 'mat-khau-lan-a-1', 'lan.b': 'mat-khau-lan-b-1', 'lan.c': 'mat-khau-lan-c-1' } as const;
  const get = (route: string, cookie?: string) => call(host, agent.httpPort, route, cookie ? { headers: { cookie } } : {});

  beforeAll(async () => {
    dataDir = tempDir('cxr-edge-lan-');
    await addUser(dataDir, 'lan.a', passwords['lan.a']);
    // The other way in: a password file.
    const file = path.join(dataDir, 'pw-b.txt');
    writeFileSync(file, `${passwords['lan.b']}\n`);
    expect((await admin(['add-user', 'LAN.B', '--data-dir', dataDir, '--password-file', file])).code).toBe(0);
    await addUser(dataDir, 'lan.c', passwords['lan.c']);
    agent = await startAgent({ dataDir, args: ['--http-host', '0.0.0.0', '--model', squeezenet, '--log-level', 'info'] });
    expect((await storescu(agent.dicomPort, [chest])).code).toBe(0);
  });
  afterAll(async () => {
    await agent?.stop();
    removeDir(dataDir);
  });

  it('refuses to start open to the network with no enabled account, and names the command that makes one', async () => {
    const empty = tempDir('cxr-edge-lan-empty-');
    try {
      await expect(startAgent({ dataDir: empty, args: ['--http-host', '0.0.0.0', '--model', squeezenet] })).rejects.toThrow(
        /CXR_NO_ACCOUNTS: .*no account is enabled: create one with `cxr-edge admin add-user NAME --data-dir /u,
      );
      // --require-sign-in asks for it on 127.0.0.1 too.
      await expect(startAgent({ dataDir: empty, args: ['--require-sign-in', '--model', squeezenet] })).rejects.toThrow(/CXR_NO_ACCOUNTS: the page would listen on 127\.0\.0\.1 with --require-sign-in/u);
      // A disabled account is no account.
      await addUser(empty, 'only.one', 'mat-khau-only-1');
      expect((await admin(['disable-user', 'only.one', '--data-dir', empty])).code).toBe(0);
      await expect(startAgent({ dataDir: empty, args: ['--http-host', '0.0.0.0', '--model', squeezenet] })).rejects.toThrow(/CXR_NO_ACCOUNTS/u);
    } finally {
      removeDir(empty);
    }
  });

  it('gives patient data to a signed-in radiographer only', async () => {
    expect((await get('/api/session')).json()).toEqual({ signInRequired: true, user: null, expiresAt: null });
    for (const route of ['/api/studies', '/api/link', '/api/events']) {
      const res = await get(route);
      expect({ route, status: res.status, code: res.json().error?.code }).toEqual({ route, status: 401, code: 'CXR_AUTH_REQUIRED' });
      expectNoPatientData(res.text);
    }
    const signedIn = await postJson(host, agent.httpPort, '/api/sign-in', { username: 'Lan.A', password: passwords['lan.a'] });
    expect(signedIn.status).toBe(200);
    const setCookie = String(signedIn.headers['set-cookie']);
    expect(setCookie).toMatch(/^cxr_edge_session=[A-Za-z0-9_-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=43200$/u);
    const cookie = cookieOf(signedIn);
    expect((await get('/api/session', cookie)).json()).toMatchObject({ signInRequired: true, user: { username: 'lan.a' } });
    const studies = await waitFor('the study', async () => {
      const res = await get('/api/studies', cookie);
      return res.status === 200 && res.text.includes(patient.name) ? res : undefined;
    });
    const [study] = studies.json<{ studyInstanceUid: string; instances: { id: number }[] }[]>();
    expect((await get(`/api/studies/${study?.studyInstanceUid}`, cookie)).status).toBe(200);
    expect((await get(`/api/studies/${study?.studyInstanceUid}`)).status).toBe(401);
    // A cookie that is not a session is no better than none.
    expect((await get('/api/studies', 'cxr_edge_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA')).status).toBe(401);
    expect((await get('/api/studies', `${cookie}x`)).status).toBe(401);
  });

  it('answers a wrong password and an unknown name alike, and logs each failure with the name and address, never the password', async () => {
    const wrong = await postJson(host, agent.httpPort, '/api/sign-in', { username: 'lan.a', password: 'sai-mat-khau-1234' });
    const unknown = await postJson(host, agent.httpPort, '/api/sign-in', { username: 'khong.co', password: 'sai-mat-khau-5678' });
    expect([wrong.status, wrong.text]).toEqual([unknown.status, unknown.text]);
    expect(wrong.json().error?.code).toBe('CXR_AUTH_INVALID');
    await waitFor('the log lines', async () => (agent.output().includes('"username":"khong.co"') ? true : undefined), 5_000);
    const failures = agent.output().split('\n').filter((l) => l.includes('"msg":"sign-in failed"'));
    expect(failures.some((l) => l.includes('"username":"lan.a"') && l.includes(`"address":"${host}"`) && l.includes('"reason":"wrong-password"'))).toBe(true);
    expect(failures.some((l) => l.includes('"username":"khong.co"') && l.includes('"reason":"unknown-user"'))).toBe(true);
    expect(agent.output()).not.toContain('sai-mat-khau');
    expect(agent.output()).not.toContain(passwords['lan.a']);
  });

  it('answers 500 CXR_INTERNAL, not "wrong password", for an account whose stored hash cannot be read, and logs which', async () => {
    const store = new AccountStore(dataDir);
    store.add('lan.hong', 'scrypt$131072$8$1$not-a-hash');
    store.close();
    const res = await postJson(host, agent.httpPort, '/api/sign-in', { username: 'lan.hong', password: 'mat-khau-hong-1' });
    expect([res.status, res.json().error?.code]).toEqual([500, 'CXR_INTERNAL']);
    await waitFor('the log line', async () => (agent.output().includes('the stored password hash cannot be read') ? true : undefined), 5_000);
    expect(agent.output()).toMatch(/"username":"lan.hong","address":"[^"]+",.*"msg":"sign-in failed: the stored password hash cannot be read"/u);
    expect(agent.output()).not.toContain('mat-khau-hong-1');
    // The agent goes on: the next sign-in is checked as usual.
    await signIn(host, agent.httpPort, 'lan.a', passwords['lan.a']);
  });

  it('refuses an account after 5 failures, right password or not: 429 CXR_RATE_LIMITED with Retry-After, logged', async () => {
    for (let i = 0; i < 5; i++) {
      expect((await postJson(host, agent.httpPort, '/api/sign-in', { username: 'lan.c', password: `doan-mo-${i}-abcdef` })).status).toBe(401);
    }
    const throttled = await postJson(host, agent.httpPort, '/api/sign-in', { username: 'LAN.C', password: passwords['lan.c'] });
    expect(throttled.status).toBe(429);
    expect(throttled.json().error?.code).toBe('CXR_RATE_LIMITED');
    const retryAfter = Number(throttled.headers['retry-after']);
    expect(retryAfter).toBeGreaterThan(60);
    expect(retryAfter).toBeLessThanOrEqual(15 * 60);
    await waitFor('the log line', async () => (agent.output().includes('"msg":"sign-in throttled"') ? true : undefined), 5_000);
    expect(agent.output()).toMatch(/"username":"lan.c","address":"[^"]+","retryAfterS":\d+,"msg":"sign-in throttled"/u);
    // Another account is not held up by it.
    await signIn(host, agent.httpPort, 'lan.a', passwords['lan.a']);
  });

  it('refuses a disabled account at once, its open session too; enabled again, it signs in', async () => {
    const cookie = await signIn(host, agent.httpPort, 'lan.b', passwords['lan.b']);
    expect((await get('/api/studies', cookie)).status).toBe(200);
    expect((await admin(['disable-user', 'lan.b', '--data-dir', dataDir])).stdout).toBe('disabled lan.b; its sessions are ended\n');
    const refused = await get('/api/studies', cookie);
    expect([refused.status, refused.json().error?.code]).toEqual([401, 'CXR_AUTH_REQUIRED']);
    expectNoPatientData(refused.text);
    // Signing in again says no more than a wrong password would.
    const again = await postJson(host, agent.httpPort, '/api/sign-in', { username: 'lan.b', password: passwords['lan.b'] });
    expect([again.status, again.json().error?.code]).toEqual([401, 'CXR_AUTH_INVALID']);
    expect((await admin(['list-users', '--json', '--data-dir', dataDir])).stdout).toMatch(/"username":"lan.b","state":"disabled"/u);
    expect((await admin(['enable-user', 'lan.b', '--data-dir', dataDir])).code).toBe(0);
    expect((await get('/api/studies', await signIn(host, agent.httpPort, 'lan.b', passwords['lan.b']))).status).toBe(200);
  });

  it('ends the sessions of an account whose password is changed; the old password no longer signs in', async () => {
    const cookie = await signIn(host, agent.httpPort, 'lan.b', passwords['lan.b']);
    const changed = await admin(['set-password', 'lan.b', '--data-dir', dataDir], 'mat-khau-moi-lan-b\n');
    expect(changed).toMatchObject({ code: 0, stdout: 'password of lan.b changed; its sessions are ended\n' });
    expect((await get('/api/studies', cookie)).status).toBe(401);
    expect((await postJson(host, agent.httpPort, '/api/sign-in', { username: 'lan.b', password: passwords['lan.b'] })).status).toBe(401);
    expect((await get('/api/studies', await signIn(host, agent.httpPort, 'lan.b', 'mat-khau-moi-lan-b'))).status).toBe(200);
  });

  it('refuses an expired session', async () => {
    // A session made 13 hours ago for 12 hours, in the agent's own accounts file.
    const store = new AccountStore(dataDir, { now: () => Date.now() - 13 * 3_600_000 });
    const { token } = store.createSession('lan.a', 12 * 3_600_000);
    store.close();
    const res = await get('/api/studies', `cxr_edge_session=${token}`);
    expect([res.status, res.json().error?.code]).toEqual([401, 'CXR_AUTH_REQUIRED']);
    // The page is told to drop the cookie.
    expect(String(res.headers['set-cookie'])).toMatch(/^cxr_edge_session=; .*Max-Age=0/u);
  });

  it('signs out: the session is over on the agent, not only in the browser', async () => {
    const cookie = await signIn(host, agent.httpPort, 'lan.a', passwords['lan.a']);
    const out = await postJson(host, agent.httpPort, '/api/sign-out', {}, { cookie });
    expect(out.status).toBe(200);
    expect(String(out.headers['set-cookie'])).toMatch(/Max-Age=0/u);
    expect((await get('/api/studies', cookie)).status).toBe(401);
  });

  it('refuses a change from another site even with a valid session', async () => {
    const cookie = await signIn(host, agent.httpPort, 'lan.a', passwords['lan.a']);
    const res = await call(host, agent.httpPort, '/api/studies/1.2.3/consult', { method: 'POST', headers: { cookie, 'content-type': 'text/plain', origin: 'http://evil.example' }, body: '{}' });
    expect([res.status, res.json().error?.code]).toEqual([403, 'CXR_CROSS_SITE']);
    // Nor can another site sign someone in (a sign-in is a change too).
    const login = await call(host, agent.httpPort, '/api/sign-in', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ username: 'lan.a', password: passwords['lan.a'] }) });
    expect(login.status).toBe(415);
  });

  // The limit per address (20 failures in 15 minutes, whatever the names) is checked on the limiter itself, with its
  // clock (test/accounts.test.ts): 20 real password checks here would take half a minute.
});
