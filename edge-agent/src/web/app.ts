import { createReadStream } from 'node:fs';
import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { PasswordHashError, sharedUiDir } from '@cxr/inference';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { SignInLimiter } from '../accounts/limiter.js';
import { PasswordQueueFull, type PasswordChecker } from '../accounts/sign-in.js';
import { normalizeUsername, type AccountStore } from '../accounts/store.js';
import type { Logger } from '../log.js';
import type { RunningModel } from '../sync/model-sync.js';
import type { LinkStatus } from '../outbox/sender.js';
import type { ConsultRecord, OutboxDb } from '../outbox/outbox-db.js';
import type { InstanceRecord, SpoolDb } from '../spool/db.js';
import { isDiskFull, type DiskState } from '../spool/disk-guard.js';
import type { Spool } from '../spool/spool.js';
import { sendError } from './errors.js';
import { clearedSessionCookie, crossSiteRefusal, securityHeaders, sessionCookie, sessionToken, type HostAllowList } from './security.js';
import { toStudyView } from './studies.js';

/**
 * What a route needs, declared on every route (`config: { access }`); the app refuses to register one without.
 * `public`: no patient data (the page's files, health, signing in and out). `radiographer`: a signed-in account when
 * sign-in is on (the page open to the station's network, or --require-sign-in); the station PC's own screen otherwise.
 */
export type RouteAccess = 'public' | 'radiographer';

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
}

/** One route as the app registered it, with the credential it needs (the route inventory test reads this). */
export interface RouteEntry {
  readonly method: string;
  readonly url: string;
  readonly access: RouteAccess;
}

/** Who may use the page, from where. */
export interface EdgeAccess {
  /** Radiographers sign in: the page listens on the station's network, or --require-sign-in. */
  readonly signInRequired: boolean;
  readonly accounts: AccountStore;
  readonly passwords: PasswordChecker;
  readonly limiter: SignInLimiter;
  /** The names the page answers to (Host header). */
  readonly hosts: HostAllowList;
  /** ms a sign-in lasts */
  readonly sessionTtlMs: number;
}

export interface EdgeAppDeps {
  readonly db: SpoolDb;
  readonly spool: Spool;
  readonly log: Logger;
  /** What the health route reports; read on every request. */
  readonly status: () => { ready: boolean; model: RunningModel | undefined; aeTitle: string; dicomPort: number; queue: number; disk: DiskState };
  readonly outbox: OutboxDb;
  /** The hospital link's state; undefined when the agent works alone. */
  readonly link: () => LinkStatus | undefined;
  /** Asks for a consult on a study (the page's button); undefined for an unknown study. */
  readonly requestConsult: (studyInstanceUid: string, note: string | null) => ConsultRecord | undefined;
  /** Subscribes to instance changes for the live page; returns the unsubscribe function. */
  readonly subscribe: (listener: (record: InstanceRecord) => void) => () => void;
  /** Subscribes to changes of the model serving or of its update from the registry. */
  readonly subscribeModel?: (listener: () => void) => () => void;
  /** Subscribes to changes of the agent's health (the disk filling up, or having room again). */
  readonly subscribeHealth?: (listener: () => void) => () => void;
  readonly access: EdgeAccess;
}

/** The page's static files: `public/` beside `src/` and `dist/`. */
const publicDir = fileURLToPath(new URL('../../public/', import.meta.url));

/** The app, with the routes it registered and the credential each needs. */
export type EdgeApp = FastifyInstance & { readonly routeInventory: readonly RouteEntry[] };

/** The radiographer's page and the local JSON API, built apart from any listening socket (tests use inject()). */
export async function buildEdgeApp(deps: EdgeAppDeps): Promise<EdgeApp> {
  const { access } = deps;
  const accessLog = deps.log.child({ component: 'access' });
  // Requests are not logged one by one (the page polls); warnings and errors are.
  const app = Fastify({ loggerInstance: deps.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger });
  const routeInventory: RouteEntry[] = [];
  // Every route says what credential it needs, or is not registered at all (a new route cannot be open by omission).
  app.addHook('onRoute', (route) => {
    const declared = route.config?.access;
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (declared !== 'public' && declared !== 'radiographer') {
      throw new Error(`route ${methods.join(',')} ${route.url} declares no access: give it config: { access: 'public' | 'radiographer' }`);
    }
    for (const method of methods) routeInventory.push({ method, url: route.url, access: declared });
  });
  // Open event streams never end by themselves: close them so that shutdown does not wait on a page left open.
  const eventStreams = new Set<ServerResponse>();
  app.addHook('preClose', (done) => {
    for (const stream of eventStreams) stream.end();
    done();
  });
  // sendFile only: the file routes are ours, so that they declare their access like every other route.
  await app.register(fastifyStatic, { root: publicDir, serve: false, cacheControl: true, maxAge: 0 });

  /** The session's account, checked against the account on every request (a disabled one is refused at once). */
  const signedIn = (token: string | undefined): string | undefined => {
    if (!token) return undefined;
    const check = access.accounts.checkSession(token);
    return check.ok ? check.username : undefined;
  };

  // In this order: headers on every answer; the Host (DNS rebinding); changes only as JSON from this page (CSRF);
  // then the route's credential.
  app.addHook('onRequest', async (request, reply) => {
    reply.headers(securityHeaders);
    const api = request.url.startsWith('/api/');
    if (api) reply.header('cache-control', 'no-store');
    if (!access.hosts.allows(request.headers.host)) {
      accessLog.warn({ host: request.headers.host ?? null, address: request.ip }, 'request refused: Host is not a name of this station');
      return sendError(reply, 'CXR_HOST_NOT_ALLOWED');
    }
    const refusal = crossSiteRefusal(request, { api });
    if (refusal) {
      accessLog.warn({ method: request.method, url: request.routeOptions.url ?? null, address: request.ip, origin: request.headers.origin ?? null, code: refusal }, 'request refused: not from this page');
      return sendError(reply, refusal);
    }
    if (request.routeOptions.config.access === 'radiographer' && access.signInRequired) {
      const token = sessionToken(request);
      if (!signedIn(token)) {
        if (token) reply.header('set-cookie', clearedSessionCookie);
        return sendError(reply, 'CXR_AUTH_REQUIRED');
      }
    }
    return undefined;
  });

  // A write that failed for want of room is the disk's state, not a fault of the request.
  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    if (isDiskFull(err)) return sendError(reply, 'CXR_DISK_FULL');
    const status = err.statusCode ?? 500;
    if (status >= 500) {
      request.log.error({ err: err.message }, 'request failed');
      return sendError(reply, 'CXR_INTERNAL');
    }
    // The file routes: a path out of the page's folder, or a hidden file, is simply not there.
    if (status === 403 || status === 404) return sendError(reply, 'CXR_NOT_FOUND');
    return reply.code(status).send({ error: { code: 'CXR_VALIDATION', message: err.message } });
  });

  const publicRoute = { config: { access: 'public' as const } };
  const radiographer = { config: { access: 'radiographer' as const } };

  // The page's own files: no patient data in them, so anyone who reaches the page may load the sign-in screen.
  app.get<{ Params: { '*': string } }>('/*', publicRoute, (request, reply) => reply.sendFile(request.params['*'] || 'index.html'));
  app.get<{ Params: { '*': string } }>('/shared/*', publicRoute, (request, reply) => reply.sendFile(request.params['*'], sharedUiDir));

  // Signing in. Tried names and addresses are limited (429 with Retry-After past the limit); each failure is in the
  // log with the name and address, never the password.
  app.get('/api/session', publicRoute, async (request) => {
    const token = sessionToken(request);
    const check = token ? access.accounts.checkSession(token) : undefined;
    return {
      signInRequired: access.signInRequired,
      user: check?.ok ? { username: check.username } : null,
      expiresAt: check?.ok ? new Date(check.expiresAt).toISOString() : null,
    };
  });

  app.post<{ Body: { username: string; password: string } }>(
    '/api/sign-in',
    {
      ...publicRoute,
      schema: {
        body: {
          type: 'object',
          required: ['username', 'password'],
          properties: { username: { type: 'string', minLength: 1, maxLength: 64 }, password: { type: 'string', minLength: 1, maxLength: 1024 } },
        },
      },
    },
    async (request, reply) => {
      const username = normalizeUsername(request.body.username);
      const address = request.ip;
      const refuseFor = (waitMs: number): typeof reply => {
        const retryAfterS = Math.max(1, Math.ceil(waitMs / 1000));
        accessLog.warn({ username, address, retryAfterS }, 'sign-in throttled');
        sendError(reply.header('retry-after', String(retryAfterS)), 'CXR_RATE_LIMITED');
        return reply;
      };
      const wait = access.limiter.retryAfterMs(username, address);
      if (wait > 0) return refuseFor(wait);
      // Counted while it waits for the hash: a burst of attempts at once cannot slip past the limit.
      const done = access.limiter.begin(username, address);
      let outcome;
      try {
        outcome = await access.passwords.check(username, request.body.password);
      } catch (err) {
        if (err instanceof PasswordQueueFull) return refuseFor(1000);
        if (err instanceof PasswordHashError) {
          // A corrupt account record, not a wrong password: said as such, until `set-password` gives a new hash.
          accessLog.error({ username, address, err: err.message }, 'sign-in failed: the stored password hash cannot be read');
          return sendError(reply, 'CXR_INTERNAL');
        }
        throw err;
      } finally {
        done();
      }
      if (!outcome.ok) {
        access.limiter.failed(username, address);
        accessLog.warn({ username, address, reason: outcome.reason }, 'sign-in failed');
        return sendError(reply, 'CXR_AUTH_INVALID');
      }
      access.limiter.succeeded(username);
      const session = access.accounts.createSession(outcome.username, access.sessionTtlMs);
      accessLog.info({ username: outcome.username, address }, 'signed in');
      return reply
        .header('set-cookie', sessionCookie(session.token, access.sessionTtlMs))
        .send({ user: { username: outcome.username }, expiresAt: new Date(session.expiresAt).toISOString() });
    },
  );

  app.post('/api/sign-out', publicRoute, async (request, reply) => {
    const token = sessionToken(request);
    const username = signedIn(token);
    if (token) access.accounts.endSession(token);
    if (username) accessLog.info({ username, address: request.ip }, 'signed out');
    return reply.header('set-cookie', clearedSessionCookie).send({ user: null });
  });

  /**
   * `ok` and ready when the agent takes images; `degraded` (503, not ready) while it is up but refuses them, with the
   * problems said; `starting` while the model loads.
   */
  app.get('/api/health', publicRoute, async (_request, reply) => {
    const s = deps.status();
    const problems = s.disk.full
      ? [{ code: 'CXR_DISK_FULL', message: s.disk.reason === 'below-minimum' ? `less than ${s.disk.minFreeBytes} bytes free on the data disk` : 'a write failed: no room on the data disk' }]
      : [];
    const ready = s.ready && problems.length === 0;
    const body = {
      status: !s.ready ? 'starting' : ready ? 'ok' : 'degraded',
      ready,
      problems,
      disk: s.disk,
      model: s.model ?? null,
      aeTitle: s.aeTitle,
      dicomPort: s.dicomPort,
      queue: s.queue,
      counts: deps.db.counts(),
    };
    return reply.code(ready ? 200 : 503).send(body);
  });

  app.get<{ Querystring: { since?: string; limit?: string } }>('/api/studies', radiographer, async (request) => {
    const since = request.query.since ? new Date(request.query.since) : undefined;
    const limit = request.query.limit ? Math.max(1, Math.min(1000, Number(request.query.limit) || 200)) : 200;
    return deps.db
      .studies({ limit, ...(since && !Number.isNaN(since.getTime()) ? { since } : {}) })
      .map((s) => toStudyView(s.studyInstanceUid, s.instances, deps.outbox.consult(s.studyInstanceUid)));
  });

  app.get<{ Params: { uid: string } }>('/api/studies/:uid', radiographer, async (request, reply) => {
    const records = deps.db.study(request.params.uid);
    if (records.length === 0) return sendError(reply, 'CXR_NOT_FOUND', 'no such study');
    return toStudyView(request.params.uid, records, deps.outbox.consult(request.params.uid));
  });

  app.get('/api/link', radiographer, async () => deps.link() ?? { state: 'disabled', pending: 0, pendingStudies: 0, failed: 0, lastSuccessAt: null, lastError: null });

  app.post<{ Params: { uid: string }; Body: { note?: string } | undefined }>('/api/studies/:uid/consult', radiographer, async (request, reply) => {
    if (!deps.link()) return sendError(reply, 'CXR_NO_GATEWAY');
    const note = typeof request.body?.note === 'string' ? request.body.note.slice(0, 2000) : null;
    const consult = deps.requestConsult(request.params.uid, note);
    if (!consult) return sendError(reply, 'CXR_NOT_FOUND', 'no such study');
    return reply.code(202).send(consult);
  });

  app.get<{ Params: { id: string; kind: string } }>('/api/instances/:id/:kind', radiographer, async (request, reply) => {
    const record = deps.db.get(Number(request.params.id));
    const file = request.params.kind === 'preview.png' ? record?.previewFile : request.params.kind === 'heatmap.png' ? record?.heatmapFile : undefined;
    if (!record || !file) return sendError(reply, 'CXR_NOT_FOUND', 'no such image');
    return reply.type('image/png').header('cache-control', 'private, max-age=3600').send(createReadStream(deps.spool.absolute(file)));
  });

  // Server-sent events: the page updates without reloading. The session is checked again before every event and
  // heartbeat: a stream held open by an account disabled since is ended (the page then finds itself signed out).
  // GET only: a HEAD would hold its connection with nothing ever sent (Node sends a HEAD answer's head on end()).
  app.get('/api/events', { ...radiographer, exposeHeadRoute: false }, (request, reply) => {
    const token = sessionToken(request);
    reply.hijack();
    const raw = reply.raw;
    const headers: OutgoingHttpHeaders = { ...securityHeaders, 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' };
    raw.writeHead(200, headers);
    raw.write('retry: 2000\n\n');
    eventStreams.add(raw);
    const send = (text: string): void => {
      if (access.signInRequired && !signedIn(token)) {
        raw.end();
        return;
      }
      raw.write(text);
    };
    const unsubscribe = deps.subscribe((record) => {
      send(`event: instance\ndata: ${JSON.stringify({ id: record.id, studyInstanceUid: record.studyInstanceUid, status: record.status })}\n\n`);
    });
    // The page reads /api/health again: a swapped model shows at once.
    const unsubscribeModel = deps.subscribeModel?.(() => send('event: model\ndata: {}\n\n'));
    const unsubscribeHealth = deps.subscribeHealth?.(() => send('event: health\ndata: {}\n\n'));
    const heartbeat = setInterval(() => send(': keep-alive\n\n'), 15_000);
    request.raw.on('close', () => {
      eventStreams.delete(raw);
      clearInterval(heartbeat);
      unsubscribe();
      unsubscribeModel?.();
      unsubscribeHealth?.();
    });
  });

  const built = app as unknown as EdgeApp;
  Object.defineProperty(built, 'routeInventory', { value: routeInventory, enumerable: false });
  return built;
}
