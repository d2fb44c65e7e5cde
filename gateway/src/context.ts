import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { AccountStore } from './accounts/accounts.js';
import { SessionStore } from './accounts/sessions.js';
import { SignInLimiter, type SignInLimits } from './accounts/sign-in-limiter.js';
import { ConsultQueue } from './queue/consults.js';
import { storeFromUrl, type ObjectStore } from './store/index.js';

/** What every gateway command needs: the object store, Redis and the account stores over them. */
export interface GatewayContext {
  readonly store: ObjectStore;
  readonly redis: Redis;
  readonly accounts: AccountStore;
  readonly sessions: SessionStore;
  readonly queue: ConsultQueue;
  readonly signInLimiter: SignInLimiter;
  close(): Promise<void>;
}

export interface ContextOptions {
  /** `DIR`, `file://DIR` or `s3://BUCKET` (endpoint and keys from CXR_S3_* variables) */
  readonly store: string;
  /** `redis://HOST:PORT` */
  readonly redis: string;
  /** Redis key prefix, so several deployments can share one Redis. Default `cxr:`. */
  readonly prefix?: string;
  /** session lifetime in seconds. Default 8 hours (a shift). */
  readonly sessionTtlSeconds?: number;
  /** ms before an unreported claim lapses. Default 30 minutes. */
  readonly claimTimeoutMs?: number;
  /** limits on failed sign-ins (accounts/sign-in-limiter.ts for the defaults) */
  readonly signIn?: Partial<SignInLimits>;
  readonly log: Logger;
}

export async function openContext(options: ContextOptions): Promise<GatewayContext> {
  const store = await storeFromUrl(options.store, process.env);
  // A request must not wait forever for a Redis that is down: commands give up after 5 s (the route answers 503)
  // while the client keeps reconnecting in the background.
  const redis = new Redis(options.redis, { maxRetriesPerRequest: null, lazyConnect: true, enableOfflineQueue: true, commandTimeout: 5000 });
  redis.on('error', (err: Error) => options.log.warn({ err: err.message }, 'redis error'));
  await redis.connect();
  const prefix = options.prefix ?? 'cxr:';
  const queue = new ConsultQueue(redis, { prefix, claimTimeoutMs: options.claimTimeoutMs ?? 30 * 60 * 1000 });
  return {
    queue,
    store,
    redis,
    accounts: new AccountStore(store),
    sessions: new SessionStore(redis, { prefix, ttlSeconds: options.sessionTtlSeconds ?? 8 * 3600 }),
    signInLimiter: new SignInLimiter(redis, { prefix, ...(options.signIn ? { limits: options.signIn } : {}) }),
    async close(): Promise<void> {
      await queue.close();
      redis.disconnect();
      await store.close();
    },
  };
}
