import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { sharedUiDir } from '@cxr/inference';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { registerModelRegistry, type RegistryOptions } from '@cxr/model-registry';
import { Type } from '@sinclair/typebox';
import type { AccountStore } from './accounts/accounts.js';
import type { SessionStore } from './accounts/sessions.js';
import { SignInLimiter, type SignInLimits } from './accounts/sign-in-limiter.js';
import { GatewayError } from './errors.js';
import { registerRouteInventory } from './plugins/access.js';
import { registerAuth, requireSignedIn, requireStation, requireUser } from './plugins/auth.js';
import { registerPathGuard, registerSecurityHeaders } from './plugins/hardening.js';
import { AuditTrail } from './audit.js';
import { registerConsults } from './plugins/consults.js';
import { registerIngest } from './plugins/ingest.js';
import { registerUploads } from './plugins/uploads.js';
import type { ConsultQueue } from './queue/consults.js';
import { ConsultDesk } from './queue/desk.js';
import type { ObjectStore } from './store/index.js';

export interface GatewayDeps {
  readonly store: ObjectStore;
  readonly redis: Redis;
  readonly accounts: AccountStore;
  readonly sessions: SessionStore;
  readonly queue: ConsultQueue;
  readonly log: Logger;
  /** failed sign-ins counted in Redis; default: one over `redis` with the `cxr:` prefix and `options.signIn` */
  readonly signInLimiter?: SignInLimiter;
}

export interface GatewayOptions {
  /** largest JSON request body, in bytes (DICOM uploads stream and have their own limit). Default 1 MiB. */
  readonly bodyLimit?: number;
  /** largest DICOM upload, in bytes. Default 512 MiB. */
  readonly maxDicomBytes?: number;
  /** largest preview upload, in bytes. Default 8 MiB. */
  readonly maxPreviewBytes?: number;
  /** largest chunk of a resumable DICOM upload, in bytes. Default 16 MiB. */
  readonly maxChunkBytes?: number;
  /**
   * HTTPS: the server's certificate and key (PEM). With `ca`, clients may present certificates signed by it, and
   * every station must (mTLS: its certificate's common name is its station id); browsers need none.
   */
  readonly https?: { readonly cert: Buffer; readonly key: Buffer; readonly ca?: Buffer };
  /** the model registry's settings (model-registry/src/plugin.ts) */
  readonly registry?: RegistryOptions;
  /** limits on failed sign-ins, when `deps.signInLimiter` is not given (accounts/sign-in-limiter.ts) */
  readonly signIn?: Partial<SignInLimits>;
}

/** The gateway's HTTP app, apart from any listening socket: tests use inject() or listen({ port: 0 }). */
export async function build(deps: GatewayDeps, options: GatewayOptions = {}): Promise<FastifyInstance> {
  const tls = options.https;
  const app = Fastify({
    loggerInstance: deps.log.child({ component: 'http' }) as FastifyBaseLogger,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    // rejectUnauthorized false: the TLS layer asks for a certificate but lets browsers in without one; the station
    // routes then refuse a station whose connection did not present its own (plugins/auth.ts).
    ...(tls ? { https: { cert: tls.cert, key: tls.key, ...(tls.ca ? { ca: tls.ca, requestCert: true, rejectUnauthorized: false } : {}) } } : {}),
  }) as unknown as FastifyInstance;

  // First: every route registered from here on must declare the credential it needs (plugins/access.ts).
  registerRouteInventory(app);
  registerSecurityHeaders(app, { tls: tls !== undefined });
  registerPathGuard(app);

  app.setErrorHandler((err, request, reply) => {
    if (err instanceof GatewayError) return reply.code(err.status).headers(err.headers).send({ error: { code: err.code, message: err.message } });
    const e = err as { validation?: unknown; statusCode?: number; code?: string; message: string };
    if (e.validation) return reply.code(400).send({ error: { code: 'CXR_VALIDATION', message: e.message } });
    if (e.statusCode === 413 || e.code === 'FST_ERR_CTP_BODY_TOO_LARGE') {
      return reply.code(413).send({ error: { code: 'CXR_PAYLOAD_TOO_LARGE', message: e.message } });
    }
    if (e.statusCode && e.statusCode < 500) return reply.code(e.statusCode).send({ error: { code: 'CXR_VALIDATION', message: e.message } });
    if (/Command timed out|Connection is closed|ECONNREFUSED|Stream isn't writeable/u.test(e.message) || (e as { transient?: boolean }).transient) {
      request.log.warn({ err: e.message }, 'backing service unavailable');
      return reply.code(503).send({ error: { code: 'CXR_UNAVAILABLE', message: 'Redis or the object store is not reachable; try again shortly' } });
    }
    request.log.error({ err: e.message, code: e.code }, 'request failed');
    return reply.code(500).send({ error: { code: 'CXR_INTERNAL', message: 'internal error' } });
  });

  // The OpenAPI document is made from the routes' own schemas: registered before them, served at the end.
  await app.register(fastifySwagger, {
    openapi: {
      info: { title: 'CXR triage gateway', version: '0.1.0', description: 'Station ingest, the consult queue, reports, accounts.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  registerAuth(app, deps, { stationCertificates: tls?.ca !== undefined });
  // The radiologist's page: static files beside src/ and dist/, no build step.
  await app.register(fastifyStatic, { root: fileURLToPath(new URL('../public/', import.meta.url)), prefix: '/', index: ['index.html'] });
  await app.register(fastifyStatic, { root: sharedUiDir, prefix: '/shared/', decorateReply: false });
  const audit = new AuditTrail(deps.store);
  const desk = new ConsultDesk({ store: deps.store, queue: deps.queue });
  registerIngest(app, { store: deps.store, desk, audit }, {
    maxDicomBytes: options.maxDicomBytes ?? 512 * 1024 * 1024,
    maxPreviewBytes: options.maxPreviewBytes ?? 8 * 1024 * 1024,
  });
  registerUploads(app, { store: deps.store, audit }, { maxDicomBytes: options.maxDicomBytes ?? 512 * 1024 * 1024, ...(options.maxChunkBytes ? { maxChunkBytes: options.maxChunkBytes } : {}) });
  registerConsults(app, { store: deps.store, queue: deps.queue, desk, audit });
  // The model registry: its API, the stations' model sync and the ML engineer's page at /ml/.
  await registerModelRegistry(
    app,
    {
      store: deps.store,
      redis: deps.redis,
      audit,
      log: deps.log.child({ component: 'registry' }),
      principal: (request) => request.principal,
      requireUser,
      requireStation,
      httpError: (code, detail) => new GatewayError(code, detail),
      listStations: async () => (await deps.accounts.stations()).map((s) => s.stationId),
      stationExists: async (stationId) => (await deps.accounts.station(stationId)) !== undefined,
    },
    options.registry,
  );

  app.get('/api/health', { config: { credential: 'public' } }, async (_request, reply) => {
    const checks = { redis: false, store: false };
    try {
      checks.redis = (await deps.redis.ping()) === 'PONG';
    } catch {
      checks.redis = false;
    }
    try {
      await deps.store.head('health/probe');
      checks.store = true;
    } catch {
      checks.store = false;
    }
    const ok = checks.redis && checks.store;
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ok' : 'degraded', checks });
  });

  const limiter = deps.signInLimiter ?? new SignInLimiter(deps.redis, { prefix: 'cxr:', ...(options.signIn ? { limits: options.signIn } : {}) });
  app.post(
    '/api/v1/login',
    {
      config: { credential: 'public' },
      schema: {
        body: Type.Object({ username: Type.String({ minLength: 1, maxLength: 64 }), password: Type.String({ minLength: 1, maxLength: 1024 }) }, { additionalProperties: false }),
      },
    },
    async (request) => {
      const { username, password } = request.body as { username: string; password: string };
      const address = request.ip;
      // Who tried, as far as a username can say it: only a well-formed one is kept (a password typed into the
      // username field must not end up in the audit trail or the log).
      const who = /^[a-z0-9][a-z0-9._-]{1,63}$/u.test(username) ? username : '(not a username)';
      const attempt = await limiter.attempt(username, address);
      if (!attempt.allowed) {
        request.log.warn({ username: who, address, retryAfterSeconds: attempt.retryAfterSeconds }, 'sign-in throttled');
        await audit.record({ actor: `user:${who}`, action: 'login.throttled', target: who, detail: { address, retryAfterSeconds: attempt.retryAfterSeconds } });
        throw new GatewayError('CXR_RATE_LIMITED', `try again in ${attempt.retryAfterSeconds} s`, { 'retry-after': String(attempt.retryAfterSeconds) });
      }
      let user: Awaited<ReturnType<AccountStore['authenticate']>>;
      try {
        user = await deps.accounts.authenticate(username, password);
      } catch (err) {
        // Redis or the store failed: not the user's failure, give the slot back.
        await attempt.release('error').catch(() => undefined);
        throw err;
      }
      if (!user) {
        await attempt.release('failure');
        request.log.warn({ username: who, address }, 'sign-in refused');
        await audit.record({ actor: `user:${who}`, action: 'login.failed', target: who, detail: { address } });
        throw new GatewayError('CXR_AUTH_INVALID');
      }
      await attempt.release('success');
      const session = await deps.sessions.create(user);
      await audit.record({ actor: `user:${user.username}`, action: 'login', target: user.username, detail: { address } });
      request.log.info({ username, role: user.role }, 'signed in');
      return { token: session.token, expiresAt: session.expiresAt, username: user.username, role: user.role, displayName: user.displayName };
    },
  );

  app.post('/api/v1/logout', { preValidation: requireUser() }, async (request) => {
    const token = /^Bearer\s+(\S+)$/iu.exec(request.headers.authorization ?? '')?.[1];
    if (token) await deps.sessions.revoke(token);
    return { ok: true };
  });

  app.get<{ Querystring: { date?: string } }>('/api/v1/audit', { preValidation: requireUser('admin') }, async (request) => {
    const date = request.query.date ?? new Date().toISOString().slice(0, 10);
    if (!/^\d{4}-\d{2}-\d{2}$/u.test(date)) throw new GatewayError('CXR_VALIDATION', 'date must be YYYY-MM-DD');
    const events = [];
    for await (const event of audit.day(date)) events.push(event);
    return events;
  });

  app.get('/api/v1/me', { preValidation: requireSignedIn() }, async (request) => request.principal);

  app.get('/api/openapi.json', { config: { credential: 'public' }, schema: { hide: true } }, async () => app.swagger());

  return app;
}
