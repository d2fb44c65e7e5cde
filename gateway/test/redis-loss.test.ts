/**
 * Redis restarted empty under two running gateway processes (neither restarted): each one notices that Redis lost
 * its data and rebuilds the consult queue from the object store while it serves. Real redis-server (SIGKILL, then
 * started again on the same port with no data), real `cxr-gateway serve` processes, a folder store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../src/test-support/redis-server.js';
import { addAccounts, buildGateway, spawnServe, type ServeProcess } from './support/gateway.js';
import { inQueueOrder, Radiologist, waitFor, type WorklistRow } from './support/radiologist.js';
import { Station } from './support/seed.js';

const LAN = { username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist' } as const;
const MINH = { username: 'bs.minh', password: 'mat-khau-dai-2', role: 'radiologist' } as const;
const priorities = ['routine', 'urgent', 'stat'] as const;
const studyUid = (n: number): string => `1.2.826.0.1.3680043.10.1414.${n}`;

let redis: RedisServer;
let storeDir: string;
let a: ServeProcess;
let b: ServeProcess;
let token = '';

beforeAll(async () => {
  await buildGateway();
  redis = await startRedis();
  storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-redis-loss-'));
  const tokens = await addAccounts(storeDir, redis.url, { stations: ['tram-1'], users: [LAN, MINH] });
  token = tokens.get('tram-1') ?? '';
  [a, b] = await Promise.all([spawnServe({ storeDir, redisUrl: redis.url, logLevel: 'info' }), spawnServe({ storeDir, redisUrl: redis.url, logLevel: 'info' })]);
});

afterAll(async () => {
  await Promise.all([a?.stop(), b?.stop()]);
  await redis?.stop();
  rmSync(storeDir, { recursive: true, force: true });
});

const ids = (rows: readonly WorklistRow[]): string[] => rows.map((r) => r.consultId);

describe('Redis restarted empty, the gateway processes left running', () => {
  it('rebuilds the worklist in order in every process within seconds; a claim held before still lets its radiologist report', async () => {
    // 12 consults, mixed priorities, asked for through both processes.
    for (let n = 0; n < 12; n += 1) {
      const station = new Station(n % 2 === 0 ? a.baseUrl : b.baseUrl, 'tram-1', token);
      await station.expect([201], 'POST', '/api/v1/stations/tram-1/consults', { studyInstanceUid: studyUid(n), priority: priorities[n % 3], reason: 'policy' });
    }
    let lan = await Radiologist.signIn(a.baseUrl, LAN);
    const first = await lan.worklist();
    expect(first).toHaveLength(12);
    const held = first[3] as WorklistRow;
    const signed = first[5] as WorklistRow;
    expect((await lan.claim(held.consultId)).status).toBe(200);
    expect((await lan.via(b.baseUrl).claim(signed.consultId)).status).toBe(200);
    expect((await lan.via(b.baseUrl).report(signed.consultId)).status).toBe(201);
    const before = await lan.worklist();
    expect(ids(before)).toEqual(ids(first).filter((id) => id !== signed.consultId));
    expect(before.find((r) => r.consultId === held.consultId)).toMatchObject({ status: 'claimed', claimedBy: 'bs.lan' });

    await redis.kill();
    // A station asks for a consult while Redis is down (its answer waits for Redis, or says 503 and it replays).
    const outageStation = new Station(b.baseUrl, 'tram-1', token);
    const outageBody = { studyInstanceUid: studyUid(99), priority: 'urgent', reason: 'requested' };
    const during = outageStation.call('POST', '/api/v1/stations/tram-1/consults', outageBody);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await redis.start({ empty: true });
    const back = Date.now();
    let asked = await during;
    if (asked.status >= 500) asked = await outageStation.call('POST', '/api/v1/stations/tram-1/consults', outageBody);
    expect([200, 201]).toContain(asked.status);
    const outageId = (asked.json as { consultId: string }).consultId;

    // Sessions lived in Redis: both radiologists sign in again (README, "The gateway").
    lan = await Radiologist.signIn(a.baseUrl, LAN);
    const minh = await Radiologist.signIn(b.baseUrl, MINH);
    const outageRecord = (await lan.call('GET', `/api/v1/consults/${outageId}`)).json as { consult: { receivedAt: string } };
    const expected = inQueueOrder<Pick<WorklistRow, 'consultId' | 'priority' | 'receivedAt'>>([...before, { consultId: outageId, priority: 'urgent', receivedAt: outageRecord.consult.receivedAt }]).map((r) => r.consultId);
    expect(expected).toHaveLength(12);

    for (const [name, reader] of [['the first process', lan], ['the second process', minh]] as const) {
      const rows = await waitFor(
        `every consult back on the worklist of ${name}`,
        async () => {
          const list = await reader.worklist();
          return ids(list).join() === expected.join() && list.find((r) => r.consultId === held.consultId)?.claimedBy === 'bs.lan' ? list : undefined;
        },
        Math.max(1, 8_000 - (Date.now() - back)),
      );
      expect(rows.filter((r) => r.consultId === outageId)).toHaveLength(1);
      expect(rows.find((r) => r.consultId === held.consultId)).toMatchObject({ status: 'claimed', claimedBy: 'bs.lan' });
    }

    // The claim survived: another radiologist cannot take the consult, its claimant can report it.
    const taken = await minh.claim(held.consultId);
    expect(taken.status).toBe(409);
    expect(taken.json).toMatchObject({ error: { code: 'CXR_CONFLICT' } });
    expect((await lan.via(b.baseUrl).report(held.consultId)).status).toBe(201);
    const after = await minh.worklist();
    expect(ids(after)).toEqual(expected.filter((id) => id !== held.consultId));
    expect(ids(after)).not.toContain(signed.consultId);

    // One line per rebuild in each process, saying how many consults went back on the queue.
    for (const gateway of [a, b]) {
      const rebuilt = gateway
        .output()
        .split('\n')
        .filter((line) => line.includes('consult queue rebuilt from the object store') && line.includes('redis lost its data'));
      expect(rebuilt.length).toBeGreaterThanOrEqual(1);
      expect(rebuilt[0]).toMatch(/"requeued":\d+/u);
    }
  });
});
