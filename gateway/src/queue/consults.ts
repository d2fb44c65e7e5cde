import { randomUUID } from 'node:crypto';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { urgencyRank, type Priority } from '@cxr/inference';
import { GatewayError } from '../errors.js';

/** A consult as it waits for a radiologist: ids only, never pixels or patient data. */
export interface ConsultJob {
  readonly consultId: string;
  readonly stationId: string;
  readonly studyInstanceUid: string;
  readonly priority: Priority;
  /** when the gateway received the request (ISO 8601) */
  readonly receivedAt: string;
}

export interface WorklistItem extends ConsultJob {
  readonly status: 'queued' | 'claimed';
  readonly claimedBy: string | null;
}

/**
 * BullMQ priorities: lower runs first; within one priority, arrival order. 0 means "no priority" to BullMQ (another
 * list), so the library's rank (stat 0) is shifted by one: stat 1, urgent 2, routine 3, as jobs already queued hold.
 */
const bullPriority = (priority: Priority): number => urgencyRank(priority) + 1;

const jobOptions = (consult: ConsultJob) => ({ jobId: consult.consultId, priority: bullPriority(consult.priority), removeOnComplete: true, removeOnFail: true });

// A page of the prioritized set (ZRANGE by rank: priority, then arrival), and for each id its job's data and its
// claim, as a flat list [data, claim, data, claim, ...]; nil where absent.
const worklistScript = `local ids = redis.call('ZRANGE', KEYS[1], ARGV[1], ARGV[2])
local out = {}
for _, id in ipairs(ids) do
  out[#out + 1] = redis.call('HGET', ARGV[3] .. id, 'data') or false
  out[#out + 1] = redis.call('GET', ARGV[4] .. id) or false
end
return out`;

// Deletes a claim only when it is still the caller's (compare and delete, atomically).
const releaseScript = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;

export interface ConsultQueueOptions {
  /** Redis key prefix shared with the rest of the gateway. Default `cxr:`. */
  readonly prefix: string;
  /** A claim not reported within this many ms returns the consult to the queue. Default 30 minutes. */
  readonly claimTimeoutMs: number;
}

/**
 * The consult queue: BullMQ keeps the order (priority, then arrival) and survives process restarts; claims are
 * Redis keys with an expiry, so that every gateway process sees the same claims and an abandoned claim lapses.
 */
export class ConsultQueue {
  readonly #queue: Queue;
  readonly #redis: Redis;
  readonly #options: ConsultQueueOptions;

  constructor(redis: Redis, options: ConsultQueueOptions) {
    this.#redis = redis;
    this.#options = options;
    this.#queue = new Queue('consults', { connection: redis, prefix: `${options.prefix}bull` });
  }

  get claimTimeoutMs(): number {
    return this.#options.claimTimeoutMs;
  }

  /** Idempotent: the consult id is the job id, so a replayed request adds nothing. */
  async enqueue(consult: ConsultJob): Promise<void> {
    await this.#queue.add('consult', consult, jobOptions(consult));
  }

  /**
   * Puts the consult last among those of its priority: added when absent, moved to the end when present (the
   * rebuild restores arrival order with it). Like enqueue(), it can bring back a consult reported meanwhile: the
   * caller checks the store for a report after it.
   */
  async enqueueLast(consult: ConsultJob): Promise<void> {
    const job = await this.#queue.add('consult', consult, jobOptions(consult));
    try {
      // BullMQ keeps a present job where it is on add(); a change of priority (to the same) re-inserts it last.
      await job.changePriority({ priority: bullPriority(consult.priority) });
    } catch (err) {
      if (await this.has(consult.consultId)) throw err;
    }
  }

  /** As enqueue() for each, in one transaction (BullMQ's addBulk): for filling a queue fast. */
  async enqueueMany(consults: readonly ConsultJob[]): Promise<void> {
    await this.#queue.addBulk(consults.map((consult) => ({ name: 'consult', data: consult, opts: jobOptions(consult) })));
  }

  async has(consultId: string): Promise<boolean> {
    return (await this.#queue.getJob(consultId)) !== undefined;
  }

  /**
   * Open consults in queue order, each with who holds it, if anyone: `limit` of them from `offset`. Every consult
   * is enqueued with a priority, so every one is in BullMQ's prioritized set, whose order is the queue's.
   */
  async worklist(limit = 200, offset = 0): Promise<WorklistItem[]> {
    if (limit < 1) return [];
    // One script reads the page's ids, each job's data and its claim: BullMQ's getJobs() reads every job hash twice
    // and builds a Job per id, most of the time of a 500-item page (benchmarks/README.md, "Gateway under load").
    const flat = (await this.#redis.eval(worklistScript, 1, this.#queue.toKey('prioritized'), offset, offset + limit - 1, this.#queue.toKey(''), this.#claimKey(''))) as (string | null)[];
    const items: WorklistItem[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      const data = flat[i];
      if (typeof data !== 'string') continue;
      const claimedBy = flat[i + 1] ?? null;
      items.push({ ...(JSON.parse(data) as ConsultJob), status: claimedBy ? 'claimed' : 'queued', claimedBy });
    }
    return items;
  }

  async count(): Promise<number> {
    return (await this.#queue.getPrioritizedCount()) + (await this.#queue.getWaitingCount());
  }

  /** Claims (or extends the caller's claim on) an open consult; resolves with when the claim lapses. */
  async claim(consultId: string, username: string): Promise<{ expiresAt: Date }> {
    if (!(await this.has(consultId))) throw new GatewayError('CXR_NOT_FOUND', `no open consult ${consultId}`);
    // Taken before the SET, so the record of the claim never outlives the Redis key.
    const expiresAt = new Date(Date.now() + this.#options.claimTimeoutMs);
    const ok = await this.#redis.set(this.#claimKey(consultId), username, 'PX', this.#options.claimTimeoutMs, 'NX');
    if (ok === 'OK') return { expiresAt };
    const holder = await this.#redis.get(this.#claimKey(consultId));
    if (holder === username) {
      await this.#redis.pexpire(this.#claimKey(consultId), this.#options.claimTimeoutMs);
      return { expiresAt };
    }
    throw new GatewayError('CXR_CONFLICT', `claimed by ${holder ?? 'someone else'}`);
  }

  /** Puts back a claim Redis lost, for its remaining time, unless someone holds the consult. True when set. */
  async restoreClaim(consultId: string, username: string, remainingMs: number): Promise<boolean> {
    if (remainingMs < 1) return false;
    return (await this.#redis.set(this.#claimKey(consultId), username, 'PX', Math.ceil(remainingMs), 'NX')) === 'OK';
  }

  /** Drops the consult's claim if `username` holds it; quietly does nothing otherwise. */
  async dropClaim(consultId: string, username: string): Promise<void> {
    await this.#redis.eval(releaseScript, 1, this.#claimKey(consultId), username);
  }

  /**
   * The epoch of this Redis's data: a random value written once (SET NX) and never changed, so a different or new
   * value means Redis lost what it held (restarted empty, flushed, failed over to an empty replica).
   */
  async epoch(): Promise<string | null> {
    const key = `${this.#options.prefix}epoch`;
    await this.#redis.set(key, `${Date.now()}-${randomUUID()}`, 'NX');
    // null only when Redis lost its data again between the two commands: the caller checks again later.
    return this.#redis.get(key);
  }

  async release(consultId: string, username: string): Promise<void> {
    const released = (await this.#redis.eval(releaseScript, 1, this.#claimKey(consultId), username)) as number;
    if (released !== 1) throw new GatewayError('CXR_CONFLICT', 'not claimed by you');
  }

  async claimedBy(consultId: string): Promise<string | null> {
    return this.#redis.get(this.#claimKey(consultId));
  }

  /** Takes a reported consult off the queue. Only its claimant may. */
  async complete(consultId: string, username: string): Promise<void> {
    if ((await this.claimedBy(consultId)) !== username) throw new GatewayError('CXR_CONFLICT', 'claim it before reporting');
    const job = await this.#queue.getJob(consultId);
    await job?.remove();
    await this.#redis.del(this.#claimKey(consultId));
  }

  /** Takes a consult off the queue whoever holds it (its report is already signed and stored). */
  async remove(consultId: string): Promise<void> {
    const job = await this.#queue.getJob(consultId);
    await job?.remove();
    await this.#redis.del(this.#claimKey(consultId));
  }

  async close(): Promise<void> {
    await this.#queue.close();
  }

  #claimKey(consultId: string): string {
    return `${this.#options.prefix}claim:${consultId}`;
  }
}
