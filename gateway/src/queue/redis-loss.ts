import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { ObjectStore } from '../store/index.js';
import type { ConsultQueue } from './consults.js';
import { rebuildQueueFromStore } from './rebuild.js';

export interface RedisLossWatchOptions {
  /** How often to check that Redis still holds its data, in ms (it is also checked on every reconnect). Default 2000. */
  readonly checkIntervalMs?: number;
}

export const DEFAULT_REDIS_CHECK_INTERVAL_MS = 2000;

/**
 * Notices a Redis that lost its data (restarted empty, flushed, an empty replica promoted) while the gateway
 * serves, and rebuilds the consult queue from the object store. Redis carries an epoch key, written once with SET
 * NX (ConsultQueue.epoch()); a missing or new epoch means the data went. Every gateway process runs one: each
 * rebuilds when it sees an epoch it did not rebuild for (the rebuild is idempotent, so several at once is fine,
 * and a process that dies mid-rebuild leaves the others to do it).
 */
export class RedisLossWatch {
  readonly #deps: { redis: Redis; store: ObjectStore; queue: ConsultQueue; log: Logger };
  readonly #intervalMs: number;
  /** the epoch the queue was last rebuilt for; undefined before the first rebuild */
  #rebuiltFor: string | undefined;
  #running: Promise<void> | undefined;
  #again = false;
  #failing = false;
  #timer: NodeJS.Timeout | undefined;
  readonly #onReady = (): void => void this.#checkQuietly();

  constructor(deps: { redis: Redis; store: ObjectStore; queue: ConsultQueue; log: Logger }, options: RedisLossWatchOptions = {}) {
    this.#deps = deps;
    this.#intervalMs = options.checkIntervalMs ?? DEFAULT_REDIS_CHECK_INTERVAL_MS;
  }

  /** Rebuilds once (the start's rebuild; its failure is the caller's), then keeps watching. */
  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(this.#onReady, this.#intervalMs);
    this.#timer.unref();
    this.#deps.redis.on('ready', this.#onReady);
  }

  /** Checks the epoch now and rebuilds if it changed. Calls during a check run it once more after it. */
  check(): Promise<void> {
    if (this.#running) {
      this.#again = true;
      return this.#running;
    }
    const run = async (): Promise<void> => {
      try {
        do {
          this.#again = false;
          await this.#checkOnce();
        } while (this.#again);
      } finally {
        this.#running = undefined;
      }
    };
    this.#running = run();
    return this.#running;
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#deps.redis.off('ready', this.#onReady);
    await this.#running?.catch(() => undefined);
  }

  async #checkOnce(): Promise<void> {
    const epoch = await this.#deps.queue.epoch();
    if (epoch === null || epoch === this.#rebuiltFor) return;
    const reason = this.#rebuiltFor === undefined ? 'start' : 'redis lost its data';
    await rebuildQueueFromStore(this.#deps, { reason });
    // Only after a whole rebuild: one cut short by Redis going again is done again at the next check.
    this.#rebuiltFor = epoch;
  }

  async #checkQuietly(): Promise<void> {
    try {
      await this.check();
      if (this.#failing) this.#deps.log.info('redis data check works again');
      this.#failing = false;
    } catch (err) {
      // Redis down: every check fails until it is back; say so once.
      if (!this.#failing) this.#deps.log.warn({ err: (err as Error).message }, 'redis data check failed; retrying');
      this.#failing = true;
    }
  }
}
