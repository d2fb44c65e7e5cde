/**
 * Every route of the station's page and API, as the app itself registers them (buildEdgeApp's route inventory, kept
 * by an onRoute hook: not a hand-kept list), each with the credential it declares. Against a real agent open to the
 * station's network, each route is called with no credential, a cookie that is no session, an expired session and
 * the session of an account disabled since: every `radiographer` route says 401 and gives away no patient data; a
 * signed-in radiographer gets through. `public` routes carry no patient data at all. The edge has one role
 * (radiographer) and no station tokens: "a wrong role" and "another station's token" do not arise here.
 * A route registered without a declared credential is refused by the app, so a new route cannot slip past this test.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SignInLimiter } from '../src/accounts/limiter.js';
import { PasswordChecker } from '../src/accounts/sign-in.js';
import { AccountStore } from '../src/accounts/store.js';
import { createLogger } from '../src/log.js';
import { OutboxDb } from '../src/outbox/outbox-db.js';
import { SpoolDb } from '../src/spool/db.js';
import { Spool } from '../src/spool/spool.js';
import { buildEdgeApp, type EdgeApp, type RouteEntry } from '../src/web/app.js';
import { HostAllowList } from '../src/web/security.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { admin, addUser, call, lanAddress, signIn, squeezenet, type Answer } from './support/lan.js';

const patient = ['CompressedSamples', '9RG1', '19400305'];

/** The app as the agent builds it, on an empty data folder: only its routes are read. */
async function inventoryApp(dir: string): Promise<{ app: EdgeApp; close: () => Promise<void> }> {
  const log = createLogger({ level: 'silent' });
  const db = new SpoolDb(path.join(dir, 'edge.db'));
  const accounts = new AccountStore(dir);
  const app = await buildEdgeApp({
    db,
    spool: new Spool({ db, log }, { dataDir: dir, minFreeBytes: 0 }),
    log,
    status: () => ({ ready: true, model: undefined, aeTitle: 'CXR_EDGE', dicomPort: 0, queue: 0, disk: { full: false, reason: null, since: null, freeBytes: null, minFreeBytes: 0 } }),
    outbox: new OutboxDb(db),
    link: () => undefined,
    requestConsult: () => undefined,
    subscribe: () => () => undefined,
    access: {
      signInRequired: true,
      accounts,
      passwords: new PasswordChecker({ store: accounts }),
      limiter: new SignInLimiter(),
      hosts: new HostAllowList({ httpHost: '0.0.0.0', allowedHosts: [], machineName: 'tram' }),
      sessionTtlMs: 60_000,
    },
  });
  return {
    app,
    close: async () => {
      await app.close();
      db.close();
      accounts.close();
    },
  };
}

describe('route inventory', () => {
  let work: string;
  let routes: readonly RouteEntry[];
  let agent: AgentProcess;
  const host = lanAddress() ?? '127.0.0.1';
  /** Sample values for the routes' parameters; a route with another parameter fails the test until one is added. */
  const samples: Record<string, string> = { '*': 'app.js', kind: 'preview.png' };

  beforeAll(async () => {
    work = tempDir('cxr-edge-routes-');
    const built = await inventoryApp(work);
    routes = built.app.routeInventory;
    await built.close();

    await addUser(path.join(work, 'agent'), 'lan.a', 'mat-khau-lan-a-1');
    await addUser(path.join(work, 'agent'), 'lan.off', 'mat-khau-lan-off');
    agent = await startAgent({ dataDir: path.join(work, 'agent'), args: ['--http-host', '0.0.0.0', '--model', squeezenet] });
    expect((await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm')])).code).toBe(0);
  });
  afterAll(async () => {
    await agent?.stop();
    removeDir(work);
  });

  it('lists every route with its credential, from the app itself', () => {
    const byRoute = new Map(routes.map((r) => [`${r.method} ${r.url}`, r.access]));
    expect(byRoute.get('GET /api/studies')).toBe('radiographer');
    expect(byRoute.get('POST /api/studies/:uid/consult')).toBe('radiographer');
    expect(byRoute.get('GET /api/events')).toBe('radiographer');
    expect(byRoute.get('GET /api/health')).toBe('public');
    expect(byRoute.get('POST /api/sign-in')).toBe('public');
    // The page's own files are routes like the rest, and declare themselves public.
    expect(byRoute.get('GET /*')).toBe('public');
    expect(byRoute.get('GET /shared/*')).toBe('public');
    expect(routes.every((r) => r.access === 'public' || r.access === 'radiographer')).toBe(true);
  });

  it('refuses to register a route that declares no credential', async () => {
    const dir = tempDir('cxr-edge-routes-new-');
    const { app, close } = await inventoryApp(dir);
    try {
      expect(() => app.get('/api/new-thing', async () => ({ patients: [] }))).toThrow(/declares no access/u);
      expect(() => app.get('/api/other-thing', { config: {} }, async () => ({}))).toThrow(/declares no access/u);
      expect(() => app.get('/api/declared', { config: { access: 'radiographer' } }, async () => ({}))).not.toThrow();
    } finally {
      await close();
      removeDir(dir);
    }
  });

  it('refuses every radiographer route without a valid session, and lets a signed-in radiographer through', async () => {
    const port = agent.httpPort;
    const good = await signIn(host, port, 'lan.a', 'mat-khau-lan-a-1');
    const disabled = await signIn(host, port, 'lan.off', 'mat-khau-lan-off');
    expect((await admin(['disable-user', 'lan.off', '--data-dir', agent.dataDir])).code).toBe(0);
    const old = new AccountStore(agent.dataDir, { now: () => Date.now() - 24 * 3_600_000 });
    const expired = `cxr_edge_session=${old.createSession('lan.a', 3_600_000).token}`;
    old.close();
    const study = await waitFor('the study and its preview', async () => {
      const res = await call(host, port, '/api/studies', { headers: { cookie: good } });
      const [s] = res.json<{ studyInstanceUid: string; instances: { id: number; previewUrl: string | null }[] }[]>();
      return s?.instances[0]?.previewUrl ? s : undefined;
    });
    samples.uid = study.studyInstanceUid;
    samples.id = String(study.instances[0]?.id);

    const send = (route: RouteEntry, cookie?: string): Promise<Answer> => {
      const url = route.url.replace(/:([A-Za-z]+)|\*/gu, (param, name: string | undefined) => {
        const value = samples[name ?? '*'];
        if (value === undefined) throw new Error(`route ${route.method} ${route.url}: add a sample value for ${param} to this test`);
        return route.url.startsWith('/shared/') && param === '*' ? 'base.css' : encodeURIComponent(value);
      });
      const headers: Record<string, string> = cookie ? { cookie } : {};
      if (route.method === 'POST') return call(host, port, url, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: '{}' });
      return call(host, port, url, { method: route.method, headers });
    };

    const results: string[] = [];
    for (const route of routes) {
      const label = `${route.method} ${route.url}`;
      if (route.access === 'public') {
        const res = await send(route);
        results.push(`${label}: ${res.status === 401 || res.status === 403 ? 'refused' : 'open'}`);
        for (const value of patient) expect(res.text, `${label} (public) carries patient data`).not.toContain(value);
        continue;
      }
      for (const [what, cookie] of [
        ['none', undefined],
        ['not a session', 'cxr_edge_session=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA'],
        ['expired', expired],
        ['disabled account', disabled],
      ] as const) {
        const res = await send(route, cookie);
        expect({ route: label, credential: what, status: res.status }).toEqual({ route: label, credential: what, status: 401 });
        if (route.method !== 'HEAD') expect(res.json().error?.code).toBe('CXR_AUTH_REQUIRED');
        for (const value of patient) expect(res.text).not.toContain(value);
      }
      const ok = await send(route, good);
      expect({ route: label, status: ok.status === 401 || ok.status === 403 || ok.status >= 500 }).toEqual({ route: label, status: false });
      results.push(`${label}: signed in only`);
    }
    expect(results.length).toBe(routes.length);
  });
});
