import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { build } from './app.js';
import { createLogger } from './log.js';
import { sweepStaleUploads } from './plugins/uploads.js';
import { AccountStore } from './accounts/accounts.js';
import { SessionStore } from './accounts/sessions.js';
import { ConsultQueue } from './queue/consults.js';
import { createFsObjectStore, type ObjectStore } from './store/index.js';
import { startRedis, type RedisServer } from './test-support/redis-server.js';
import { Redis } from 'ioredis';

const sha = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const sharedDicom = path.resolve(new URL('../../../shared/dicom', import.meta.url).pathname);

let redisServer: RedisServer;
let app: FastifyInstance;
let storeDir: string;
let store: ObjectStore;
let redis: Redis;
let logLines = '';
const logSink = new Writable({ write: (chunk, _e, cb) => ((logLines += String(chunk)), cb()) });
let tokenA = '';
let tokenB = '';
let radiologist = '';

const result = (studyUid: string, sopUid: string, priority: 'stat' | 'urgent' | 'routine') => ({
  schemaVersion: 1,
  sopInstanceUid: sopUid,
  studyInstanceUid: studyUid,
  applicable: true,
  applicability: { verified: true, notes: [] },
  probabilities: [0.9],
  findings: [{ code: 'pneumothorax', display: 'Pneumothorax', displayVi: 'Tràn khí màng phổi', probability: 0.9, threshold: 0.5, positive: true, priority: 'stat' }],
  priority,
  model: { name: 'm', version: '1.0.0', sha256: 'a'.repeat(64) },
  timingsMs: { decode: 1, preprocess: 1, infer: 1, total: 3 },
});

beforeAll(async () => {
  redisServer = await startRedis();
  storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-store-'));
  store = await createFsObjectStore({ root: storeDir });
  redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
  const accounts = new AccountStore(store);
  // The gateway's own logger (its redact list), into a sink the tests read.
  const log = createLogger({ level: 'trace', destination: logSink });
  app = await build({ store, redis, accounts, sessions: new SessionStore(redis, { prefix: 'gwtest:', ttlSeconds: 60 }), queue: new ConsultQueue(redis, { prefix: 'gwtest:', claimTimeoutMs: 60_000 }), log });
  tokenA = (await accounts.addStation({ stationId: 'tram-a' })).token;
  tokenB = (await accounts.addStation({ stationId: 'tram-b' })).token;
  await accounts.addUser({ username: 'bs.lan', password: 'correct horse battery', role: 'radiologist' });
  const login = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'bs.lan', password: 'correct horse battery' } });
  radiologist = (login.json() as { token: string }).token;
});

afterAll(async () => {
  await app.close();
  redis.disconnect();
  await redisServer.stop();
  rmSync(storeDir, { recursive: true, force: true });
});

const auth = (token: string) => ({ authorization: `Bearer ${token}` });

describe('gateway', () => {
  it('is healthy with Redis and the store reachable', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/health' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', checks: { redis: true, store: true } });
  });

  it('signs in with the right password only, and every route refuses without credentials', async () => {
    const bad = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'bs.lan', password: 'wrong password!' } });
    expect(bad.statusCode).toBe(401);
    expect(bad.json()).toMatchObject({ error: { code: 'CXR_AUTH_INVALID' } });
    for (const [method, url] of [
      ['GET', '/api/v1/worklist'],
      ['POST', '/api/v1/consults/tram-a-0123456789abcdef0123/claim'],
      ['PUT', '/api/v1/stations/tram-a/studies/1.2/instances/1.2.3/' + 'a'.repeat(64) + '/result'],
      ['POST', '/api/v1/stations/tram-a/consults'],
    ] as const) {
      const res = await app.inject({ method, url, payload: {} });
      expect([401, 400]).toContain(res.statusCode);
      if (res.statusCode === 400) throw new Error(`${url} validated before authenticating`);
    }
    const wrong = await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth('cxrst_tram-a.' + 'x'.repeat(43)) });
    expect(wrong.statusCode).toBe(401);
  });

  it('takes a station result, preview and DICOM idempotently, and refuses another station', async () => {
    const dicom = readFileSync(path.join(sharedDicom, 'cr_chest_CR-MONO1-10-chest.dcm'));
    const content = sha(dicom);
    const base = `/api/v1/stations/tram-a/studies/1.2.840.1/instances/1.2.840.1.1/${content}`;
    const put = () => app.inject({ method: 'PUT', url: `${base}/result`, headers: auth(tokenA), payload: { result: result('1.2.840.1', '1.2.840.1.1', 'stat') } });
    expect((await put()).statusCode).toBe(201);
    expect((await put()).statusCode).toBe(200);
    const up = await app.inject({ method: 'PUT', url: `${base}/dicom`, headers: { ...auth(tokenA), 'content-type': 'application/dicom', 'x-content-sha256': content }, payload: dicom });
    expect(up.statusCode).toBe(201);
    const again = await app.inject({ method: 'PUT', url: `${base}/dicom`, headers: { ...auth(tokenA), 'content-type': 'application/dicom', 'x-content-sha256': content }, payload: dicom });
    expect(again.statusCode).toBe(200);
    const tampered = await app.inject({ method: 'PUT', url: `${base}/preview`, headers: { ...auth(tokenA), 'content-type': 'image/png', 'x-content-sha256': sha('other') }, payload: Buffer.from('png bytes') });
    expect(tampered.json()).toMatchObject({ error: { code: 'CXR_HASH_MISMATCH' } });
    const other = await app.inject({ method: 'PUT', url: base.replace('tram-a', 'tram-b') + '/result', headers: auth(tokenA), payload: { result: result('1.2.840.1', '1.2.840.1.1', 'stat') } });
    expect(other.statusCode).toBe(403);
    const radiologistWrites = await app.inject({ method: 'PUT', url: `${base}/result`, headers: auth(radiologist), payload: { result: result('1.2.840.1', '1.2.840.1.1', 'stat') } });
    expect(radiologistWrites.statusCode).toBe(403);
    const traversal = await app.inject({ method: 'PUT', url: `/api/v1/stations/tram-a/studies/..%2F..%2Fx/instances/1.2/${content}/result`, headers: auth(tokenA), payload: { result: {} } });
    expect(traversal.statusCode).toBe(400);
  });

  it('takes a big DICOM file in chunks, resumes where the gateway stands, and joins them checking the sha256', async () => {
    const dicom = readFileSync(path.join(sharedDicom, 'cr_chest_pa_RG1_J2KI.dcm'));
    const content = sha(dicom);
    const upload = `/api/v1/stations/tram-a/studies/1.2.840.9/instances/1.2.840.9.1/${content}/dicom/upload`;
    const length = { 'x-upload-length': String(dicom.length) };
    const chunk = (offset: number, bytes: Buffer, token = tokenA) =>
      app.inject({ method: 'PUT', url: `${upload}?offset=${offset}`, headers: { ...auth(token), ...length, 'content-type': 'application/octet-stream' }, payload: bytes });
    const size = Math.ceil(dicom.length / 3);

    expect((await app.inject({ method: 'GET', url: upload, headers: auth(tokenA) })).json()).toEqual({ offset: 0, complete: false });
    expect((await chunk(0, dicom.subarray(0, size))).json()).toEqual({ offset: size });
    // The station lost the answer and sends the same chunk again: refused with where the upload stands, nothing doubled.
    const replay = await chunk(0, dicom.subarray(0, size));
    expect(replay.statusCode).toBe(409);
    expect(replay.json()).toMatchObject({ error: { code: 'CXR_UPLOAD_OFFSET' } });
    expect(replay.headers['x-upload-offset']).toBe(String(size));
    expect((await chunk(size, dicom.subarray(size, 2 * size), tokenB)).statusCode).toBe(403);
    expect((await app.inject({ method: 'GET', url: upload, headers: auth(tokenA) })).json()).toEqual({ offset: size, complete: false });

    const early = await app.inject({ method: 'POST', url: `${upload}/complete`, headers: { ...auth(tokenA), ...length, 'x-content-sha256': content } });
    expect(early.json()).toMatchObject({ error: { code: 'CXR_UPLOAD_INCOMPLETE' } });
    expect((await chunk(size, dicom.subarray(size, 2 * size))).json()).toEqual({ offset: 2 * size });
    expect((await chunk(2 * size, dicom.subarray(2 * size))).json()).toEqual({ offset: dicom.length });
    const done = await app.inject({ method: 'POST', url: `${upload}/complete`, headers: { ...auth(tokenA), ...length, 'x-content-sha256': content } });
    expect(done.statusCode).toBe(201);
    const stored = await store.getBytes(`studies/tram-a/1.2.840.9/instances/1.2.840.9.1/${content}/instance.dcm`);
    expect(sha(stored)).toBe(content);
    const leftovers: string[] = [];
    for await (const part of store.list('uploads/')) leftovers.push(part.key);
    expect(leftovers).toEqual([]);
    expect((await app.inject({ method: 'GET', url: upload, headers: auth(tokenA) })).json()).toEqual({ offset: dicom.length, complete: true });
    const again = await app.inject({ method: 'POST', url: `${upload}/complete`, headers: { ...auth(tokenA), ...length, 'x-content-sha256': content } });
    expect(again.statusCode).toBe(200);
  });

  it('throws away chunks that do not join into the file the station hashed', async () => {
    const bytes = Buffer.from('not the DICOM file the hash names');
    const upload = `/api/v1/stations/tram-a/studies/1.2.840.10/instances/1.2.840.10.1/${sha('x')}/dicom/upload`;
    const length = { 'x-upload-length': String(bytes.length) };
    await app.inject({ method: 'PUT', url: `${upload}?offset=0`, headers: { ...auth(tokenA), ...length, 'content-type': 'application/octet-stream' }, payload: bytes });
    const done = await app.inject({ method: 'POST', url: `${upload}/complete`, headers: { ...auth(tokenA), ...length, 'x-content-sha256': sha('x') } });
    expect(done.statusCode).toBe(422);
    expect(done.json()).toMatchObject({ error: { code: 'CXR_HASH_MISMATCH' } });
    expect((await app.inject({ method: 'GET', url: upload, headers: auth(tokenA) })).json()).toEqual({ offset: 0, complete: false });

    // An upload left unfinished: its chunks stay while recent, and go once older than the cut-off.
    await app.inject({ method: 'PUT', url: `${upload}?offset=0`, headers: { ...auth(tokenA), ...length, 'content-type': 'application/octet-stream' }, payload: bytes.subarray(0, 10) });
    expect(await sweepStaleUploads(store, { olderThan: new Date(Date.now() - 24 * 3600 * 1000) })).toEqual({ uploads: 0, chunks: 0 });
    expect((await app.inject({ method: 'GET', url: upload, headers: auth(tokenA) })).json()).toEqual({ offset: 10, complete: false });
    expect(await sweepStaleUploads(store, { olderThan: new Date(Date.now() + 60_000) })).toEqual({ uploads: 1, chunks: 1 });
    expect((await app.inject({ method: 'GET', url: upload, headers: auth(tokenA) })).json()).toEqual({ offset: 0, complete: false });
    const tooBig = await app.inject({ method: 'PUT', url: `${upload}?offset=0`, headers: { ...auth(tokenA), 'x-upload-length': String(2 ** 40), 'content-type': 'application/octet-stream' }, payload: bytes });
    expect(tooBig.json()).toMatchObject({ error: { code: 'CXR_PAYLOAD_TOO_LARGE' } });
  });

  it('runs the consult loop: request, worklist by urgency, claim, report, and the report back at the station', async () => {
    const ask = (token: string, station: string, studyInstanceUid: string, priority: string) =>
      app.inject({ method: 'POST', url: `/api/v1/stations/${station}/consults`, headers: auth(token), payload: { studyInstanceUid, priority, reason: 'policy' } });
    const routine = (await ask(tokenB, 'tram-b', '1.2.840.3', 'routine')).json() as { consultId: string };
    const stat = (await ask(tokenA, 'tram-a', '1.2.840.1', 'stat')).json() as { consultId: string };
    expect((await ask(tokenA, 'tram-a', '1.2.840.1', 'stat')).statusCode).toBe(200);
    const list = (await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth(radiologist) })).json() as { consultId: string; status: string; priority: string; stationId: string }[];
    expect(list.map((c) => c.consultId)).toEqual([stat.consultId, routine.consultId]);
    expect(list[0]).toMatchObject({ priority: 'stat', status: 'queued', stationId: 'tram-a', studyInstanceUid: '1.2.840.1' });

    const view = (await app.inject({ method: 'GET', url: `/api/v1/consults/${stat.consultId}`, headers: auth(radiologist) })).json() as { instances: { result: { priority: string } | null; hasDicom: boolean }[] };
    expect(view.instances[0]).toMatchObject({ result: { priority: 'stat' }, hasDicom: true });

    const early = await app.inject({ method: 'POST', url: `/api/v1/consults/${stat.consultId}/report`, headers: auth(radiologist), payload: { impression: 'x', findings: [] } });
    expect(early.json()).toMatchObject({ error: { code: 'CXR_CONFLICT' } });
    expect((await app.inject({ method: 'POST', url: `/api/v1/consults/${stat.consultId}/claim`, headers: auth(radiologist) })).statusCode).toBe(200);
    const blank = await app.inject({ method: 'POST', url: `/api/v1/consults/${stat.consultId}/report`, headers: auth(radiologist), payload: { impression: '   ', findings: [] } });
    expect(blank.statusCode).toBe(400);
    expect((blank.json() as { error: { message: string } }).error.message).toMatch(/impression is empty.*pneumothorax/u);
    const report = await app.inject({
      method: 'POST',
      url: `/api/v1/consults/${stat.consultId}/report`,
      headers: auth(radiologist),
      payload: { impression: 'Tràn khí màng phổi phải, lượng ít.', findings: [{ code: 'pneumothorax', agree: true }], recommendation: 'Chuyển tuyến' },
    });
    expect(report.statusCode).toBe(201);
    const twice = await app.inject({ method: 'POST', url: `/api/v1/consults/${stat.consultId}/report`, headers: auth(radiologist), payload: { impression: 'again', findings: [{ code: 'pneumothorax', agree: true }] } });
    expect(twice.json()).toMatchObject({ error: { code: 'CXR_ALREADY_REPORTED' } });
    const after = (await app.inject({ method: 'GET', url: '/api/v1/worklist', headers: auth(radiologist) })).json() as { consultId: string }[];
    expect(after.map((c) => c.consultId)).toEqual([routine.consultId]);

    const back = await app.inject({ method: 'GET', url: `/api/v1/stations/tram-a/consults/${stat.consultId}`, headers: auth(tokenA) });
    expect(back.json()).toMatchObject({ status: 'reported', report: { impression: 'Tràn khí màng phổi phải, lượng ít.', signedBy: 'bs.lan' } });
    const snooping = await app.inject({ method: 'GET', url: `/api/v1/stations/tram-b/consults/${stat.consultId}`, headers: auth(tokenB) });
    expect(snooping.statusCode).toBe(404);
  });

  it('pages the worklist with ?limit= and ?offset=, in queue order, and refuses a bad page', async () => {
    for (const [uid, priority] of [['1.2.840.7.1', 'routine'], ['1.2.840.7.2', 'stat'], ['1.2.840.7.3', 'urgent']] as const) {
      const res = await app.inject({ method: 'POST', url: '/api/v1/stations/tram-a/consults', headers: auth(tokenA), payload: { studyInstanceUid: uid, priority, reason: 'policy' } });
      expect(res.statusCode).toBe(201);
    }
    const get = async (query: string) => app.inject({ method: 'GET', url: `/api/v1/worklist${query}`, headers: auth(radiologist) });
    const whole = (await get('')).json() as { consultId: string; studyInstanceUid: string }[];
    expect(whole.length).toBeGreaterThanOrEqual(3);
    expect(whole.map((c) => c.studyInstanceUid).filter((u) => u.startsWith('1.2.840.7.'))).toEqual(['1.2.840.7.2', '1.2.840.7.3', '1.2.840.7.1']);
    const pages: { consultId: string }[] = [];
    for (let offset = 0; offset < whole.length + 2; offset += 2) {
      const page = await get(`?limit=2&offset=${offset}`);
      expect(page.statusCode).toBe(200);
      pages.push(...(page.json() as { consultId: string }[]));
    }
    expect(pages).toEqual(whole);
    for (const bad of ['?limit=0', '?limit=1001', '?offset=-1', '?limit=many']) {
      const res = await get(bad);
      expect(res.statusCode).toBe(400);
      expect(res.json()).toMatchObject({ error: { code: 'CXR_VALIDATION' } });
    }
  });

  it('lets an admin, and only an admin, read the append-only audit trail', async () => {
    const day = new Date().toISOString().slice(0, 10);
    expect((await app.inject({ method: 'GET', url: `/api/v1/audit?date=${day}`, headers: auth(radiologist) })).statusCode).toBe(403);
    const accounts = new AccountStore(await createFsObjectStore({ root: storeDir }));
    await accounts.addUser({ username: 'quan.tri', password: 'admin password 1', role: 'admin' });
    const login = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username: 'quan.tri', password: 'admin password 1' } });
    const admin = (login.json() as { token: string }).token;
    const res = await app.inject({ method: 'GET', url: `/api/v1/audit?date=${day}`, headers: auth(admin) });
    expect(res.statusCode).toBe(200);
    const actions = (res.json() as { actor: string; action: string }[]).map((e) => `${e.actor} ${e.action}`);
    expect(actions).toEqual(expect.arrayContaining(['user:bs.lan login', 'station:tram-a ingest.result', 'station:tram-a consult.request', 'user:bs.lan consult.claim', 'user:bs.lan consult.report']));
  });

  it('serves its OpenAPI document with every route', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/openapi.json' });
    expect(res.statusCode).toBe(200);
    const doc = res.json() as { openapi: string; paths: Record<string, unknown> };
    expect(doc.openapi).toMatch(/^3\./u);
    for (const route of ['/api/v1/login', '/api/v1/worklist', '/api/v1/consults/{consultId}/claim', '/api/v1/consults/{consultId}/report', '/api/v1/stations/{stationId}/consults']) {
      expect(Object.keys(doc.paths)).toContain(route);
    }
  });

  it('keeps patient data and secrets out of the log', () => {
    expect(logLines).not.toContain('correct horse battery');
    expect(logLines).not.toContain(tokenA);
    expect(logLines).not.toContain(radiologist);
  });

  it('holds back every secret and patient field its logger is handed (fails if the redact list loses one)', () => {
    const marks = { password: 'QXPASS1', token: 'QXTOKEN2', authorization: 'Bearer QXAUTH3', patientName: 'QXNAME4', PatientID: 'QXPID5', accessionNumber: 'QXACC6' };
    const before = logLines.length;
    app.log.info({ body: { username: 'bs.lan', password: marks.password }, session: { token: marks.token }, req: { headers: { authorization: marks.authorization } } }, 'handed');
    app.log.info({ study: { patientName: marks.patientName, PatientID: marks.PatientID, accessionNumber: marks.accessionNumber } }, 'handed');
    app.log.info({ password: marks.password, token: marks.token, patientName: marks.patientName }, 'handed');
    const lines = logLines.slice(before);
    expect(lines.match(/"msg":"handed"/gu)).toHaveLength(3);
    for (const mark of Object.values(marks)) expect(lines).not.toContain(mark.replace('Bearer ', ''));
  });
});
