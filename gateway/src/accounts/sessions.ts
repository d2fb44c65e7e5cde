import { createHash, randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Role } from './accounts.js';

export interface Session {
  readonly username: string;
  readonly role: Role;
  readonly expiresAt: string;
  /** the account's `sessionEpoch` when the session began (absent in sessions made before it: 0) */
  readonly epoch?: number;
}

/**
 * Bearer sessions in Redis, shared by every gateway process, expiring on their own. Redis keeps the hash of the
 * token, so a copy of Redis does not hand out sessions.
 */
export class SessionStore {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #ttlSeconds: number;

  constructor(redis: Redis, options: { prefix: string; ttlSeconds: number }) {
    this.#redis = redis;
    this.#prefix = `${options.prefix}session:`;
    this.#ttlSeconds = options.ttlSeconds;
  }

  async create(user: { username: string; role: Role; sessionEpoch?: number }): Promise<{ token: string; expiresAt: string }> {
    const token = `cxrsess_${randomBytes(32).toString('base64url')}`;
    const expiresAt = new Date(Date.now() + this.#ttlSeconds * 1000).toISOString();
    const session: Session = { username: user.username, role: user.role, expiresAt, epoch: user.sessionEpoch ?? 0 };
    await this.#redis.set(this.#key(token), JSON.stringify(session), 'EX', this.#ttlSeconds);
    return { token, expiresAt };
  }

  async get(token: string): Promise<Session | undefined> {
    if (!token.startsWith('cxrsess_')) return undefined;
    const raw = await this.#redis.get(this.#key(token));
    return raw ? (JSON.parse(raw) as Session) : undefined;
  }

  async revoke(token: string): Promise<void> {
    await this.#redis.del(this.#key(token));
  }

  #key(token: string): string {
    return this.#prefix + createHash('sha256').update(token).digest('hex');
  }
}
