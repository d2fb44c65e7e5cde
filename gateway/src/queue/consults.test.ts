import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startRedis, type RedisServer } from '../test-support/redis-server.js';
import { ConsultQueue, type ConsultJob } from './consults.js';

let server: RedisServer;
beforeAll(async () => {
  server = await startRedis();
});
afterAll(async () => {
  await server.stop();
});

/** A fresh key namespace per test, as bullmq's own tests do. */
let prefix: string;
const open: { queue: ConsultQueue; redis: Redis }[] = [];
async function queue(claimTimeoutMs = 60_000): Promise<ConsultQueue> {
  const redis = new Redis(server.url, { maxRetriesPerRequest: null });
  const q = new ConsultQueue(redis, { prefix, claimTimeoutMs });
  open.push({ queue: q, redis });
  return q;
}
beforeEach(async () => {
  prefix = `test-${randomUUID()}:`;
  return async () => {
    for (const { queue: q, redis } of open.splice(0)) {
      await q.close();
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.del(...keys);
      redis.disconnect();
    }
  };
});

let n = 0;
const consult = (priority: ConsultJob['priority']): ConsultJob => {
  n += 1;
  return { consultId: `c${n}`, stationId: 'tram-1', studyInstanceUid: `1.2.3.${n}`, priority, receivedAt: new Date(Date.UTC(2026, 10, 23, 8, 0, n)).toISOString() };
};

describe('consult queue', () => {
  it('orders the worklist by priority, then arrival', async () => {
    const q = await queue();
    const items = [consult('routine'), consult('urgent'), consult('stat'), consult('urgent'), consult('routine'), consult('stat')];
    for (const item of items) await q.enqueue(item);
    const list = await q.worklist();
    expect(list.map((i) => i.priority)).toEqual(['stat', 'stat', 'urgent', 'urgent', 'routine', 'routine']);
    expect(list.map((i) => i.consultId)).toEqual([items[2], items[5], items[1], items[3], items[0], items[4]].map((i) => i?.consultId));
    expect(list.every((i) => i.status === 'queued')).toBe(true);
  });

  it('adds a replayed consult once', async () => {
    const q = await queue();
    const c = consult('urgent');
    await q.enqueue(c);
    await q.enqueue(c);
    expect(await q.count()).toBe(1);
  });

  it('lets one radiologist claim; others see it taken; release returns it', async () => {
    const a = await queue();
    const b = await queue(); // a second gateway process on the same Redis
    const c = consult('stat');
    await a.enqueue(c);
    await a.claim(c.consultId, 'bs.lan');
    await expect(b.claim(c.consultId, 'bs.minh')).rejects.toMatchObject({ code: 'CXR_CONFLICT' });
    expect((await b.worklist())[0]).toMatchObject({ consultId: c.consultId, status: 'claimed', claimedBy: 'bs.lan' });
    await expect(b.release(c.consultId, 'bs.minh')).rejects.toMatchObject({ code: 'CXR_CONFLICT' });
    await a.release(c.consultId, 'bs.lan');
    expect((await b.worklist())[0]).toMatchObject({ status: 'queued', claimedBy: null });
    await b.claim(c.consultId, 'bs.minh');
  });

  it('returns a consult to the queue when the claim times out', async () => {
    const q = await queue(300);
    const c = consult('urgent');
    await q.enqueue(c);
    await q.claim(c.consultId, 'bs.lan');
    expect((await q.worklist())[0]?.status).toBe('claimed');
    await new Promise((r) => setTimeout(r, 450));
    expect((await q.worklist())[0]?.status).toBe('queued');
  });

  it('takes a reported consult off the worklist, only for its claimant', async () => {
    const q = await queue();
    const c = consult('routine');
    await q.enqueue(c);
    await expect(q.complete(c.consultId, 'bs.lan')).rejects.toMatchObject({ code: 'CXR_CONFLICT' });
    await q.claim(c.consultId, 'bs.lan');
    await q.complete(c.consultId, 'bs.lan');
    expect(await q.worklist()).toEqual([]);
    await expect(q.claim(c.consultId, 'bs.lan')).rejects.toMatchObject({ code: 'CXR_NOT_FOUND' });
  });

  it('fills in bulk exactly as one by one, and pages the worklist with limit and offset', async () => {
    const q = await queue();
    const items = [consult('routine'), consult('stat'), consult('urgent'), consult('routine'), consult('stat'), consult('urgent'), consult('urgent')];
    await q.enqueueMany(items.slice(0, 5));
    await q.enqueue(items[1] as ConsultJob); // a replay adds nothing
    await q.enqueueMany([items[5] as ConsultJob, items[6] as ConsultJob, items[0] as ConsultJob]);
    expect(await q.count()).toBe(7);
    const expected = [items[1], items[4], items[2], items[5], items[6], items[0], items[3]].map((i) => i?.consultId);
    const whole = await q.worklist();
    expect(whole.map((i) => i.consultId)).toEqual(expected);
    expect(whole[0]).toEqual({ ...items[1], status: 'queued', claimedBy: null });
    await q.claim(items[5]?.consultId ?? '', 'bs.lan');
    const pages = [await q.worklist(3, 0), await q.worklist(3, 3), await q.worklist(3, 6), await q.worklist(3, 9)];
    expect(pages.map((p) => p.length)).toEqual([3, 3, 1, 0]);
    expect(pages.flat().map((i) => i.consultId)).toEqual(expected);
    expect(pages[1]?.[0]).toMatchObject({ consultId: items[5]?.consultId, status: 'claimed', claimedBy: 'bs.lan' });
    await q.remove(items[4]?.consultId ?? '');
    expect((await q.worklist(2)).map((i) => i.consultId)).toEqual([items[1], items[2]].map((i) => i?.consultId));
  });
});
