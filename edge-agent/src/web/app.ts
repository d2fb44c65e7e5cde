import { createReadStream } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import { sharedUiDir } from '@cxr/inference';
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../log.js';
import type { RunningModel } from '../sync/model-sync.js';
import type { LinkStatus } from '../outbox/sender.js';
import type { ConsultRecord, OutboxDb } from '../outbox/outbox-db.js';
import type { InstanceRecord, SpoolDb } from '../spool/db.js';
import { isDiskFull, type DiskState } from '../spool/disk-guard.js';
import type { Spool } from '../spool/spool.js';
import { toStudyView } from './studies.js';

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
}

/** The page's static files: `public/` beside `src/` and `dist/`. */
const publicDir = fileURLToPath(new URL('../../public/', import.meta.url));

/** The radiographer's page and the local JSON API, built apart from any listening socket (tests use inject()). */
export async function buildEdgeApp(deps: EdgeAppDeps): Promise<FastifyInstance> {
  // Requests are not logged one by one (the page polls); warnings and errors are.
  const app = Fastify({ loggerInstance: deps.log.child({ component: 'http' }, { level: 'warn' }) as FastifyBaseLogger });
  // Open event streams never end by themselves: close them so that shutdown does not wait on a page left open.
  const eventStreams = new Set<ServerResponse>();
  app.addHook('preClose', (done) => {
    for (const stream of eventStreams) stream.end();
    done();
  });
  await app.register(fastifyStatic, { root: publicDir, prefix: '/', index: ['index.html'], cacheControl: true, maxAge: 0 });
  await app.register(fastifyStatic, { root: sharedUiDir, prefix: '/shared/', decorateReply: false, cacheControl: true, maxAge: 0 });

  // A write that failed for want of room is the disk's state, not a fault of the request.
  app.setErrorHandler((err: Error & { statusCode?: number }, request, reply) => {
    if (isDiskFull(err)) return reply.code(503).send({ error: { code: 'CXR_DISK_FULL', message: 'the station disk is full; free some space and try again' } });
    const status = err.statusCode ?? 500;
    if (status >= 500) request.log.error({ err: err.message }, 'request failed');
    return reply.code(status).send({ error: { code: status >= 500 ? 'CXR_INTERNAL' : 'CXR_VALIDATION', message: status >= 500 ? 'internal error' : err.message } });
  });

  /**
   * `ok` and ready when the agent takes images; `degraded` (503, not ready) while it is up but refuses them, with the
   * problems said; `starting` while the model loads.
   */
  app.get('/api/health', async (_request, reply) => {
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

  app.get<{ Querystring: { since?: string; limit?: string } }>('/api/studies', async (request) => {
    const since = request.query.since ? new Date(request.query.since) : undefined;
    const limit = request.query.limit ? Math.max(1, Math.min(1000, Number(request.query.limit) || 200)) : 200;
    return deps.db
      .studies({ limit, ...(since && !Number.isNaN(since.getTime()) ? { since } : {}) })
      .map((s) => toStudyView(s.studyInstanceUid, s.instances, deps.outbox.consult(s.studyInstanceUid)));
  });

  app.get<{ Params: { uid: string } }>('/api/studies/:uid', async (request, reply) => {
    const records = deps.db.study(request.params.uid);
    if (records.length === 0) return reply.code(404).send({ error: { code: 'CXR_NOT_FOUND', message: 'no such study' } });
    return toStudyView(request.params.uid, records, deps.outbox.consult(request.params.uid));
  });

  app.get('/api/link', async () => deps.link() ?? { state: 'disabled', pending: 0, pendingStudies: 0, failed: 0, lastSuccessAt: null, lastError: null });

  app.post<{ Params: { uid: string }; Body: { note?: string } | undefined }>('/api/studies/:uid/consult', async (request, reply) => {
    if (!deps.link()) return reply.code(409).send({ error: { code: 'CXR_NO_GATEWAY', message: 'this station is not linked to a hospital gateway' } });
    const note = typeof request.body?.note === 'string' ? request.body.note.slice(0, 2000) : null;
    const consult = deps.requestConsult(request.params.uid, note);
    if (!consult) return reply.code(404).send({ error: { code: 'CXR_NOT_FOUND', message: 'no such study' } });
    return reply.code(202).send(consult);
  });

  app.get<{ Params: { id: string; kind: string } }>('/api/instances/:id/:kind', async (request, reply) => {
    const record = deps.db.get(Number(request.params.id));
    const file = request.params.kind === 'preview.png' ? record?.previewFile : request.params.kind === 'heatmap.png' ? record?.heatmapFile : undefined;
    if (!record || !file) return reply.code(404).send({ error: { code: 'CXR_NOT_FOUND', message: 'no such image' } });
    return reply.type('image/png').header('cache-control', 'private, max-age=3600').send(createReadStream(deps.spool.absolute(file)));
  });

  // Server-sent events: the page updates without reloading.
  app.get('/api/events', (request, reply) => {
    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    raw.write('retry: 2000\n\n');
    eventStreams.add(raw);
    const unsubscribe = deps.subscribe((record) => {
      raw.write(`event: instance\ndata: ${JSON.stringify({ id: record.id, studyInstanceUid: record.studyInstanceUid, status: record.status })}\n\n`);
    });
    // The page reads /api/health again: a swapped model shows at once.
    const unsubscribeModel = deps.subscribeModel?.(() => raw.write('event: model\ndata: {}\n\n'));
    const unsubscribeHealth = deps.subscribeHealth?.(() => raw.write('event: health\ndata: {}\n\n'));
    const heartbeat = setInterval(() => raw.write(': keep-alive\n\n'), 15_000);
    request.raw.on('close', () => {
      eventStreams.delete(raw);
      clearInterval(heartbeat);
      unsubscribe();
      unsubscribeModel?.();
      unsubscribeHealth?.();
    });
  });

  return app;
}
