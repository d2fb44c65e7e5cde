/**
 * Every named crash point of the gateway (GatewayCrashPoint), crossed by a real `cxr-gateway serve` process: started
 * with CXR_CRASH_POINT, driven to the point by the request that reaches it, seen to die there (SIGKILL, the `crash
 * point NAME reached` line), started again without it; then what a station or a radiologist replays after a request
 * that got no answer, and the invariants: every consult the gateway acknowledged is on the worklist or reported,
 * none twice; a report is stored once and its consult left the queue; an upload completes with the right sha256;
 * nothing acknowledged is lost. Real redis-server, folder store, real DICOM files.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { crashPointLine } from '@cxr/inference';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { GatewayCrashPoint, type GatewayCrashPointName } from '../src/crash-points.js';
import { consultIdOf } from '../src/plugins/ids.js';
import { createFsObjectStore, type ObjectStore } from '../src/store/index.js';
import { startRedis, type RedisServer } from '../src/test-support/redis-server.js';
import { addAccounts, buildGateway, spawnServe, type ServeProcess } from './support/gateway.js';
import { Radiologist } from './support/radiologist.js';
import { dicomFile } from './support/seed.js';

const LAN = { username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist' } as const;
const MINH = { username: 'bs.minh', password: 'mat-khau-dai-2', role: 'radiologist' } as const;
const STATION = 'tram-1';
const CHUNK = 256 * 1024;

let redis: RedisServer;
let storeDir: string;
let store: ObjectStore;
let stationToken = '';
const running: ServeProcess[] = [];
/** The crash points this file saw a gateway die at. */
const reached = new Set<string>();
/** Consults the gateway answered 200/201 for, and those it answered a signed report for. */
const acknowledged = new Set<string>();
const reportedAck = new Set<string>();

beforeAll(async () => {
  await buildGateway();
  redis = await startRedis();
  storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-crash-'));
  store = await createFsObjectStore({ root: storeDir });
  stationToken = (await addAccounts(storeDir, redis.url, { stations: [STATION], users: [LAN, MINH] })).get(STATION) ?? '';
});

afterEach(async () => {
  await Promise.all(running.splice(0).map((p) => p.stop()));
});

afterAll(async () => {
  await store?.close();
  await redis?.stop();
  rmSync(storeDir, { recursive: true, force: true });
});

const sha256 = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');
const studyUid = (n: number): string => `1.2.826.0.1.3680043.10.1415.${n}`;

async function serve(env: NodeJS.ProcessEnv = {}): Promise<ServeProcess> {
  const gateway = await spawnServe({ storeDir, redisUrl: redis.url, env });
  running.push(gateway);
  return gateway;
}

/** A gateway that dies at `point` (at its `hit`-th crossing). */
const armed = (point: GatewayCrashPointName, hit = 1): Promise<ServeProcess> => serve({ CXR_CRASH_POINT: point, CXR_CRASH_POINT_HIT: String(hit) });

/** The request got no answer, the process died by SIGKILL at the named point and said so. */
async function expectCrash(gateway: ServeProcess, point: GatewayCrashPointName, request: Promise<unknown>): Promise<void> {
  expect(await request.then(() => 'answered', () => 'no answer')).toBe('no answer');
  const { signal } = await gateway.exited;
  expect(signal).toBe('SIGKILL');
  expect(gateway.output()).toContain(crashPointLine(point));
  reached.add(point);
}

/** A station's request, with its token; the response as fetch gives it. */
function station(gateway: ServeProcess, method: string, route: string, body?: Uint8Array | object, headers: Record<string, string> = {}): Promise<Response> {
  const bytes = body instanceof Uint8Array;
  return fetch(`${gateway.baseUrl}/api/v1/stations/${STATION}${route}`, {
    method,
    headers: { authorization: `Bearer ${stationToken}`, ...(body !== undefined && !bytes ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : bytes ? body : JSON.stringify(body),
  });
}

async function askConsult(gateway: ServeProcess, n: number): Promise<Response> {
  return station(gateway, 'POST', '/consults', { studyInstanceUid: studyUid(n), priority: 'urgent', reason: 'policy' });
}

async function askedConsult(gateway: ServeProcess, n: number): Promise<string> {
  const res = await askConsult(gateway, n);
  expect([200, 201]).toContain(res.status);
  const { consultId } = (await res.json()) as { consultId: string };
  acknowledged.add(consultId);
  return consultId;
}

const instanceRoute = (n: number, sha: string): string => `/studies/${studyUid(n)}/instances/${studyUid(n)}.1/${sha}`;
const instanceKey = (n: number, sha: string): string => `studies/${STATION}/${studyUid(n)}/instances/${studyUid(n)}.1/${sha}/instance.dcm`;

function putChunk(gateway: ServeProcess, route: string, bytes: Uint8Array, offset: number): Promise<Response> {
  const chunk = bytes.subarray(offset, Math.min(offset + CHUNK, bytes.length));
  return station(gateway, 'PUT', `${route}/dicom/upload?offset=${offset}`, chunk, { 'content-type': 'application/octet-stream', 'x-upload-length': String(bytes.length) });
}

/** What the edge agent does for a big file: ask where the upload stands, send the rest chunk by chunk, join. */
async function uploadAsTheEdgeDoes(gateway: ServeProcess, route: string, bytes: Uint8Array): Promise<{ resumedAt: number }> {
  const status = (await (await station(gateway, 'GET', `${route}/dicom/upload`)).json()) as { offset: number; complete: boolean };
  if (status.complete) return { resumedAt: status.offset };
  let offset = status.offset;
  while (offset < bytes.length) {
    const res = await putChunk(gateway, route, bytes, offset);
    expect([200, 409]).toContain(res.status);
    offset = Number(res.headers.get('x-upload-offset'));
  }
  const done = await station(gateway, 'POST', `${route}/dicom/upload/complete`, undefined, { 'x-content-sha256': sha256(bytes), 'x-upload-length': String(bytes.length) });
  expect(done.status).toBe(201);
  return { resumedAt: status.offset };
}

/** The stored instance is the station's file, byte for byte, and no chunk of it is left. */
async function expectInstance(n: number, bytes: Uint8Array): Promise<void> {
  expect(sha256(await store.getBytes(instanceKey(n, sha256(bytes))))).toBe(sha256(bytes));
  const chunks: string[] = [];
  for await (const part of store.list(`uploads/studies/${STATION}/${studyUid(n)}/`)) chunks.push(part.key);
  expect(chunks).toEqual([]);
}

async function filesOf(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list(prefix)) keys.push(info.key.slice(prefix.length));
  return keys;
}

/** What must hold after every crash and replay. */
async function checkInvariants(reader: Radiologist): Promise<void> {
  const listed = (await reader.worklist()).map((r) => r.consultId);
  expect(new Set(listed).size, 'a consult twice on the worklist').toBe(listed.length);
  const consults = new Set<string>();
  const reported = new Set<string>();
  for await (const info of store.list('consults/')) {
    const [, id, file] = info.key.split('/');
    if (id && file === 'consult.json') consults.add(id);
    if (id && file === 'report.json') reported.add(id);
  }
  for (const id of acknowledged) expect(consults.has(id), `acknowledged consult ${id} in the store`).toBe(true);
  for (const id of reportedAck) expect(reported.has(id), `acknowledged report of ${id} in the store`).toBe(true);
  for (const id of consults) {
    if (reported.has(id)) expect(listed, `reported consult ${id} off the worklist`).not.toContain(id);
    else expect(listed, `open consult ${id} on the worklist`).toContain(id);
  }
  for (const id of listed) expect(consults.has(id), `worklist consult ${id} in the store`).toBe(true);
  for await (const part of store.list('uploads/')) {
    const upload = part.key.slice('uploads/'.length, part.key.lastIndexOf('/part-'));
    expect(await store.head(`${upload}/instance.dcm`), `chunk ${part.key} of a joined upload`).toBeUndefined();
  }
}

/** For each crash point, the drive to it, the replay after the restart and its own checks. */
const scenarios: Record<keyof typeof GatewayCrashPoint, (point: GatewayCrashPointName) => Promise<void>> = {
  async consultStored(point) {
    const crashing = await armed(point);
    await expectCrash(crashing, point, askConsult(crashing, 1));
    const gateway = await serve();
    const lan = await Radiologist.signIn(gateway.baseUrl, LAN);
    const consultId = consultIdOf(STATION, studyUid(1));
    // Stored before the crash: the restart put it on the queue before any replay.
    expect((await lan.worklist()).map((r) => r.consultId)).toContain(consultId);
    const replay = await askConsult(gateway, 1);
    expect(replay.status).toBe(200);
    expect(await replay.json()).toEqual({ consultId, created: false });
    acknowledged.add(consultId);
    expect((await lan.worklist()).filter((r) => r.consultId === consultId)).toHaveLength(1);
    await checkInvariants(lan);
  },

  async reportStored(point) {
    const crashing = await armed(point);
    const consultId = await askedConsult(crashing, 2);
    const lan = await Radiologist.signIn(crashing.baseUrl, LAN);
    expect((await lan.claim(consultId)).status).toBe(200);
    await expectCrash(crashing, point, lan.report(consultId, 'Bóng tim không to.'));
    const gateway = await serve();
    const again = lan.via(gateway.baseUrl);
    // The radiologist saw no answer and signs again: the report was kept, once.
    const replay = await again.report(consultId, 'Bóng tim không to.');
    expect(replay.status).toBe(409);
    expect(replay.json).toMatchObject({ error: { code: 'CXR_ALREADY_REPORTED' } });
    reportedAck.add(consultId);
    expect((await again.worklist()).map((r) => r.consultId)).not.toContain(consultId);
    expect(await filesOf(`consults/${consultId}/`)).toEqual(['consult.json', 'report.json']);
    const atStation = (await (await station(gateway, 'GET', `/consults/${consultId}`)).json()) as { status: string; report: { impression: string; signedBy: string } };
    expect(atStation).toMatchObject({ status: 'reported', report: { impression: 'Bóng tim không to.', signedBy: 'bs.lan' } });
    await checkInvariants(again);
  },

  async claimRecorded(point) {
    const crashing = await armed(point);
    const consultId = await askedConsult(crashing, 3);
    const lan = await Radiologist.signIn(crashing.baseUrl, LAN);
    await expectCrash(crashing, point, lan.claim(consultId));
    const gateway = await serve();
    const again = lan.via(gateway.baseUrl);
    expect((await again.worklist()).find((r) => r.consultId === consultId)).toMatchObject({ status: 'claimed', claimedBy: 'bs.lan' });
    expect((await again.claim(consultId)).status).toBe(200);
    const minh = await Radiologist.signIn(gateway.baseUrl, MINH);
    expect((await minh.claim(consultId)).json).toMatchObject({ error: { code: 'CXR_CONFLICT' } });
    expect(JSON.parse(Buffer.from(await store.getBytes(`consults/${consultId}/claim.json`)).toString())).toMatchObject({ consultId, username: 'bs.lan' });
    expect((await again.report(consultId)).status).toBe(201);
    reportedAck.add(consultId);
    await checkInvariants(again);
  },

  async uploadChunkStored(point) {
    const bytes = new Uint8Array(readFileSync(dicomFile('cr_chest_pa_RG1_J2KI.dcm')));
    const route = instanceRoute(4, sha256(bytes));
    // The first chunk is acknowledged; the gateway dies with the second stored and not acknowledged.
    const crashing = await armed(point, 2);
    expect((await putChunk(crashing, route, bytes, 0)).status).toBe(200);
    await expectCrash(crashing, point, putChunk(crashing, route, bytes, CHUNK));
    const gateway = await serve();
    // A station that replays the chunk it got no answer for is told where the upload stands.
    const replay = await putChunk(gateway, route, bytes, CHUNK);
    expect(replay.status).toBe(409);
    expect(replay.headers.get('x-upload-offset')).toBe(String(2 * CHUNK));
    expect(await uploadAsTheEdgeDoes(gateway, route, bytes)).toEqual({ resumedAt: 2 * CHUNK });
    await expectInstance(4, bytes);
    await checkInvariants(await Radiologist.signIn(gateway.baseUrl, LAN));
  },

  async uploadJoined(point) {
    const bytes = new Uint8Array(readFileSync(dicomFile('cr_chest_pa_RG1_J2KI.dcm')));
    const route = instanceRoute(5, sha256(bytes));
    const crashing = await armed(point);
    for (let offset = 0; offset < bytes.length; offset += CHUNK) expect((await putChunk(crashing, route, bytes, offset)).status).toBe(200);
    const join = station(crashing, 'POST', `${route}/dicom/upload/complete`, undefined, { 'x-content-sha256': sha256(bytes), 'x-upload-length': String(bytes.length) });
    await expectCrash(crashing, point, join);
    const gateway = await serve();
    // The edge asks first, sees the upload complete and stops there.
    expect(await uploadAsTheEdgeDoes(gateway, route, bytes)).toEqual({ resumedAt: bytes.length });
    await expectInstance(5, bytes);
    const replay = await station(gateway, 'POST', `${route}/dicom/upload/complete`, undefined, { 'x-content-sha256': sha256(bytes), 'x-upload-length': String(bytes.length) });
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ created: false });
    await checkInvariants(await Radiologist.signIn(gateway.baseUrl, LAN));
  },

  async instanceResultStored(point) {
    const result = {
      schemaVersion: 1,
      sopInstanceUid: `${studyUid(6)}.1`,
      studyInstanceUid: studyUid(6),
      applicable: true,
      applicability: { verified: true, notes: [] },
      probabilities: [0.9],
      findings: [{ code: 'pneumothorax', display: 'Pneumothorax', displayVi: 'Tràn khí màng phổi', probability: 0.9, threshold: 0.5, positive: true, priority: 'stat' }],
      priority: 'stat',
      model: { name: 'm', version: '1.0.0', sha256: 'a'.repeat(64) },
      timingsMs: { decode: 1, preprocess: 1, infer: 1, total: 3 },
    };
    const route = `${instanceRoute(6, 'b'.repeat(64))}/result`;
    const crashing = await armed(point);
    await expectCrash(crashing, point, station(crashing, 'PUT', route, { result }));
    const gateway = await serve();
    const replay = await station(gateway, 'PUT', route, { result });
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ created: false, priority: 'stat' });
    const key = `studies/${STATION}/${studyUid(6)}/instances/${studyUid(6)}.1/${'b'.repeat(64)}/result.json`;
    expect(JSON.parse(Buffer.from(await store.getBytes(key)).toString())).toEqual(result);
    await checkInvariants(await Radiologist.signIn(gateway.baseUrl, LAN));
  },

  async instanceFileStored(point) {
    const bytes = new Uint8Array(readFileSync(dicomFile('cr_extremity_RG3_JPLY.dcm')));
    const route = `${instanceRoute(7, sha256(bytes))}/dicom`;
    const headers = { 'content-type': 'application/dicom', 'x-content-sha256': sha256(bytes) };
    const crashing = await armed(point);
    await expectCrash(crashing, point, station(crashing, 'PUT', route, bytes, headers));
    const gateway = await serve();
    const replay = await station(gateway, 'PUT', route, bytes, headers);
    expect(replay.status).toBe(200);
    expect(await replay.json()).toMatchObject({ created: false });
    await expectInstance(7, bytes);
    await checkInvariants(await Radiologist.signIn(gateway.baseUrl, LAN));
  },
};

describe('the gateway killed at each of its crash points', () => {
  for (const [key, point] of Object.entries(GatewayCrashPoint) as [keyof typeof GatewayCrashPoint, GatewayCrashPointName][]) {
    it(`${point}: dies there, and after a restart and the replay nothing acknowledged is lost or doubled`, async () => {
      const scenario = scenarios[key] as ((point: GatewayCrashPointName) => Promise<void>) | undefined;
      if (!scenario) throw new Error(`no scenario drives the gateway to crash point ${point}`);
      await scenario(point);
    });
  }

  it('crossed every crash point of GatewayCrashPoint', () => {
    expect([...reached].sort()).toEqual(Object.values(GatewayCrashPoint).sort());
  });
});
