/**
 * Claims in the record and the rebuild after Redis lost its data, against a real redis-server (emptied with
 * FLUSHALL, as a restart without data leaves it) and a real folder store. Two ConsultQueues on two connections
 * stand for two gateway processes.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ConsultRecord } from '../consults/types.js';
import { createFsObjectStore, type ObjectStore } from '../store/index.js';
import { consultKeys } from '../store/keys.js';
import { startRedis, type RedisServer } from '../test-support/redis-server.js';
import { ConsultQueue } from './consults.js';
import { ConsultDesk, type ClaimRecord } from './desk.js';
import { rebuildQueueFromStore } from './rebuild.js';
import { RedisLossWatch } from './redis-loss.js';

let server: RedisServer;
let storeDir: string;
let store: ObjectStore;
let logLines: string[] = [];
const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => (logLines.push(String(chunk)), cb()) }));
const open: { queue: ConsultQueue; redis: Redis }[] = [];

/** A gateway process's view: its own connection, queue and desk. */
function gatewayProcess(claimTimeoutMs = 60_000): { redis: Redis; queue: ConsultQueue; desk: ConsultDesk } {
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const queue = new ConsultQueue(redis, { prefix: 'cxr:', claimTimeoutMs });
  open.push({ queue, redis });
  return { redis, queue, desk: new ConsultDesk({ store, queue }) };
}

beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});
beforeEach(async () => {
  storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-desk-'));
  store = await createFsObjectStore({ root: storeDir });
  logLines = [];
  return async () => {
    for (const { queue, redis } of open.splice(0)) {
      await queue.close();
      redis.disconnect();
    }
    const redis = new Redis(server.url);
    await redis.flushall();
    redis.disconnect();
    await store.close();
    rmSync(storeDir, { recursive: true, force: true });
  };
});

let n = 0;
/** A consult as the ingest route stores it, `n` seconds into the morning. */
async function stored(priority: ConsultRecord['priority']): Promise<ConsultRecord> {
  n += 1;
  const record: ConsultRecord = {
    consultId: `tram-1-${n.toString(16).padStart(20, '0')}`,
    stationId: 'tram-1',
    studyInstanceUid: `1.2.3.${n}`,
    priority,
    reason: 'policy',
    note: null,
    receivedAt: new Date(Date.UTC(2026, 10, 23, 8, 0, n)).toISOString(),
  };
  await store.put(consultKeys(record.consultId).consult, Buffer.from(JSON.stringify(record)), { contentType: 'application/json' });
  return record;
}
const rank = { stat: 1, urgent: 2, routine: 3 } as const;
const inOrder = (records: readonly ConsultRecord[]): string[] =>
  [...records].sort((x, y) => rank[x.priority] - rank[y.priority] || x.receivedAt.localeCompare(y.receivedAt)).map((r) => r.consultId);
const report = (consultId: string): Promise<unknown> => store.put(consultKeys(consultId).report, Buffer.from(JSON.stringify({ consultId, signedBy: 'bs.lan' })));
const ids = async (queue: ConsultQueue): Promise<string[]> => (await queue.worklist(1000)).map((i) => i.consultId);

/** The real store, with some of its methods run through `overrides` (to let another request land at a chosen step). */
function around(target: ObjectStore, overrides: Partial<Pick<ObjectStore, 'head' | 'getBytes'>>): ObjectStore {
  return new Proxy(target, {
    get(object, property) {
      const override = (overrides as Record<PropertyKey, unknown>)[property];
      if (override) return override;
      const value: unknown = Reflect.get(object, property, object);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(object) : value;
    },
  });
}

describe('claims in the record', () => {
  it('writes the claim to the store on claim, takes it out on release and on report', async () => {
    const { desk } = gatewayProcess();
    const c = await stored('urgent');
    await desk.enqueue(c);
    const before = Date.now();
    await desk.claim(c.consultId, 'bs.lan');
    const claim = JSON.parse(Buffer.from(await store.getBytes(consultKeys(c.consultId).claim)).toString()) as ClaimRecord;
    expect(claim).toMatchObject({ consultId: c.consultId, username: 'bs.lan' });
    expect(Date.parse(claim.claimedAt)).toBeGreaterThanOrEqual(before - 5);
    expect(Date.parse(claim.expiresAt) - Date.parse(claim.claimedAt)).toBeGreaterThan(59_000);
    await desk.release(c.consultId, 'bs.lan');
    expect(await store.head(consultKeys(c.consultId).claim)).toBeUndefined();
    await desk.claim(c.consultId, 'bs.lan');
    await report(c.consultId);
    await desk.finishReported(c.consultId);
    expect(await store.head(consultKeys(c.consultId).claim)).toBeUndefined();
  });

  it('after Redis lost its data, before any rebuild: the claimant may report, nobody else may claim or report', async () => {
    const one = gatewayProcess();
    const two = gatewayProcess();
    const c = await stored('stat');
    await one.desk.enqueue(c);
    await one.desk.claim(c.consultId, 'bs.lan');
    await one.redis.flushall();
    await expect(two.desk.assertClaimant(c.consultId, 'bs.lan')).resolves.toBeUndefined();
    await expect(two.desk.assertClaimant(c.consultId, 'bs.minh')).rejects.toMatchObject({ code: 'CXR_CONFLICT' });
    await expect(two.desk.claim(c.consultId, 'bs.minh')).rejects.toMatchObject({ code: 'CXR_CONFLICT', message: expect.stringContaining('claimed by bs.lan') });
    // The refusal put the consult back on the queue and its claim back in Redis, for every process to see.
    expect((await one.queue.worklist())[0]).toMatchObject({ consultId: c.consultId, status: 'claimed', claimedBy: 'bs.lan' });
    expect(await two.desk.holder(c.consultId)).toBe('bs.lan');
  });

  it('the claimant can claim again and release after the loss; a lapsed claim is no claim', async () => {
    const { redis, desk, queue } = gatewayProcess(300);
    const c = await stored('urgent');
    await desk.enqueue(c);
    await desk.claim(c.consultId, 'bs.lan');
    await redis.flushall();
    await desk.claim(c.consultId, 'bs.lan');
    await redis.flushall();
    await desk.release(c.consultId, 'bs.lan');
    expect(await store.head(consultKeys(c.consultId).claim)).toBeUndefined();
    await desk.claim(c.consultId, 'bs.lan');
    await new Promise((resolve) => setTimeout(resolve, 400));
    await redis.flushall();
    expect(await desk.holder(c.consultId)).toBeNull();
    await expect(desk.assertClaimant(c.consultId, 'bs.lan')).rejects.toMatchObject({ code: 'CXR_CONFLICT' });
    await desk.claim(c.consultId, 'bs.minh');
    expect((await queue.worklist())[0]).toMatchObject({ consultId: c.consultId, claimedBy: 'bs.minh' });
  });

  it('never claims a reported consult, on a full or an emptied Redis', async () => {
    const { redis, desk } = gatewayProcess();
    const c = await stored('routine');
    await desk.enqueue(c);
    await report(c.consultId);
    await desk.finishReported(c.consultId);
    await expect(desk.claim(c.consultId, 'bs.lan')).rejects.toMatchObject({ code: 'CXR_NOT_FOUND' });
    await redis.flushall();
    await expect(desk.claim(c.consultId, 'bs.lan')).rejects.toMatchObject({ code: 'CXR_NOT_FOUND' });
    expect(await desk.enqueue(c)).toBe(false);
  });
});

describe('rebuilding the queue from the store', () => {
  it('puts every open consult back in arrival order, the ones asked for during the loss behind, claims with their remaining time', async () => {
    const one = gatewayProcess();
    const records = [await stored('routine'), await stored('urgent'), await stored('stat'), await stored('urgent'), await stored('routine'), await stored('urgent')];
    for (const r of records) await one.desk.enqueue(r);
    const [r0, r1, , r3] = records as [ConsultRecord, ConsultRecord, ConsultRecord, ConsultRecord];
    await one.desk.claim(r1.consultId, 'bs.lan');
    await one.desk.claim(r3.consultId, 'bs.minh');
    await report(r3.consultId);
    await one.desk.finishReported(r3.consultId);
    await one.desk.claim(r0.consultId, 'bs.lan');
    await one.desk.release(r0.consultId, 'bs.lan');
    const before = await ids(one.queue);

    await one.redis.flushall();
    // Asked for while Redis was empty, before any rebuild: first on the queue of its priority for now.
    const outage = await stored('urgent');
    await one.desk.enqueue(outage);
    const summary = await rebuildQueueFromStore({ store, queue: one.queue, log }, { reason: 'redis lost its data' });
    expect(summary).toEqual({ consults: 6, requeued: 5, reordered: 1, claims: 1, finished: 0 });
    const expected = inOrder([...records.filter((r) => r.consultId !== r3.consultId), outage]);
    expect(await ids(one.queue)).toEqual(expected);
    expect(expected.filter((id) => id !== outage.consultId)).toEqual(before);
    const items = await one.queue.worklist();
    expect(items.filter((i) => i.status === 'claimed').map((i) => [i.consultId, i.claimedBy])).toEqual([[r1.consultId, 'bs.lan']]);
    const remaining = await one.redis.pttl(`cxr:claim:${r1.consultId}`);
    expect(remaining).toBeGreaterThan(50_000);
    expect(remaining).toBeLessThanOrEqual(60_000);
    // One line, no study or patient data in it.
    const lines = logLines.filter((l) => l.includes('consult queue rebuilt'));
    expect(lines).toHaveLength(1);
    expect(JSON.parse(lines[0] ?? '{}')).toMatchObject({ reason: 'redis lost its data', requeued: 5, reordered: 1, claims: 1 });
    expect(lines[0]).not.toContain('1.2.3.');

    // Again: nothing to do.
    expect(await rebuildQueueFromStore({ store, queue: one.queue, log })).toEqual({ consults: 6, requeued: 0, reordered: 0, claims: 0, finished: 0 });
    expect(await ids(one.queue)).toEqual(expected);
  });

  it('several processes rebuilding at once neither double nor misorder a consult, nor bring back a reported one', async () => {
    const processes = [gatewayProcess(), gatewayProcess(), gatewayProcess()];
    const [first] = processes as [ReturnType<typeof gatewayProcess>];
    const records: ConsultRecord[] = [];
    for (let i = 0; i < 40; i += 1) records.push(await stored((['stat', 'urgent', 'routine'] as const)[i % 3] ?? 'routine'));
    for (const r of records) await first.desk.enqueue(r);
    const reported = records.filter((_, i) => i % 7 === 0);
    for (const r of reported) {
      await report(r.consultId);
      await first.desk.finishReported(r.consultId);
    }
    await first.redis.flushall();
    // One consult is reported while the rebuilds run.
    const late = records[5] as ConsultRecord;
    await Promise.all([
      ...processes.map((p) => rebuildQueueFromStore({ store, queue: p.queue, log }, { reason: 'redis lost its data' })),
      (async () => {
        await report(late.consultId);
        await first.desk.finishReported(late.consultId);
      })(),
    ]);
    const expected = inOrder(records.filter((r) => !reported.includes(r) && r !== late));
    expect(await ids(first.queue)).toEqual(expected);
    expect(await first.queue.count()).toBe(expected.length);
  });

  it('never brings back a consult reported between its check for a report and its add', async () => {
    const reporter = gatewayProcess();
    const c = await stored('urgent');
    await reporter.redis.flushall();
    // The radiologist's report lands (stored, then the consult taken off) just after the check said "no report".
    let raced = false;
    const racing = around(store, {
      head: async (key) => {
        const info = await store.head(key);
        if (key === consultKeys(c.consultId).report && !raced) {
          raced = true;
          await report(c.consultId);
          await reporter.desk.finishReported(c.consultId);
        }
        return info;
      },
    });
    const { queue } = gatewayProcess();
    expect(await new ConsultDesk({ store: racing, queue }).enqueue(c)).toBe(false);
    expect(raced).toBe(true);
    expect(await ids(queue)).toEqual([]);
  });

  it('never restores a claim released while the rebuild read it', async () => {
    const holder = gatewayProcess();
    const c = await stored('stat');
    await holder.desk.enqueue(c);
    await holder.desk.claim(c.consultId, 'bs.lan');
    await holder.redis.flushall();
    let raced = false;
    const racing = around(store, {
      getBytes: async (key) => {
        const bytes = await store.getBytes(key);
        if (key === consultKeys(c.consultId).claim && !raced) {
          raced = true;
          await holder.desk.release(c.consultId, 'bs.lan');
        }
        return bytes;
      },
    });
    const { queue } = gatewayProcess();
    expect(await rebuildQueueFromStore({ store: racing, queue, log })).toMatchObject({ requeued: 1, claims: 0 });
    expect(raced).toBe(true);
    expect((await queue.worklist())[0]).toMatchObject({ consultId: c.consultId, status: 'queued', claimedBy: null });
  });

  it('finishes a report whose consult was still queued and claimed (a crash between the two)', async () => {
    const { desk, queue } = gatewayProcess();
    const c = await stored('stat');
    await desk.enqueue(c);
    await desk.claim(c.consultId, 'bs.lan');
    await report(c.consultId);
    expect(await rebuildQueueFromStore({ store, queue, log })).toMatchObject({ consults: 0, finished: 1 });
    expect(await ids(queue)).toEqual([]);
    expect(await store.head(consultKeys(c.consultId).claim)).toBeUndefined();
  });
});

describe('the watch for a Redis that lost its data', () => {
  it('rebuilds within its check interval while the process goes on, and only when the data went', async () => {
    const { redis, queue } = gatewayProcess();
    const records = [await stored('urgent'), await stored('stat'), await stored('routine')];
    const watch = new RedisLossWatch({ redis, store, queue, log }, { checkIntervalMs: 200 });
    await watch.start();
    try {
      expect(await ids(queue)).toEqual(inOrder(records));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(logLines.filter((l) => l.includes('consult queue rebuilt'))).toHaveLength(1);
      await redis.flushall();
      const at = Date.now();
      const rebuilds = (): number => logLines.filter((l) => l.includes('consult queue rebuilt')).length;
      while (rebuilds() < 2 && Date.now() - at < 3_000) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(Date.now() - at).toBeLessThan(2_000);
      expect(await ids(queue)).toEqual(inOrder(records));
      const rebuilt = logLines.filter((l) => l.includes('consult queue rebuilt')).map((l) => JSON.parse(l) as { reason: string; requeued: number });
      expect(rebuilt.map((l) => [l.reason, l.requeued])).toEqual([
        ['start', 3],
        ['redis lost its data', 3],
      ]);
    } finally {
      await watch.stop();
    }
  });
});
