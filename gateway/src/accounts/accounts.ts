import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { createPasswordHasher, passwordProblem, type PasswordHasher } from '@cxr/inference';
import type { ObjectStore } from '../store/index.js';
import { STATIONS_PREFIX, stationKey, userKey } from '../store/keys.js';

export type Role = 'radiologist' | 'admin' | 'mlops';
export const roles: readonly Role[] = ['radiologist', 'admin', 'mlops'];

export interface UserRecord {
  readonly username: string;
  readonly role: Role;
  readonly passwordHash: string;
  readonly displayName: string;
  readonly createdAt: string;
  readonly disabled: boolean;
  /**
   * Raised when the account is disabled or its password set: a session remembers the epoch it began in and is
   * refused once they differ (plugins/auth.ts checks on every request). Absent in records made before it: 0.
   */
  readonly sessionEpoch?: number;
}

export interface StationToken {
  /** sha256 of the token: the token itself is shown once and never stored. */
  readonly sha256: string;
  readonly createdAt: string;
  readonly revokedAt: string | null;
}

export interface StationRecord {
  readonly stationId: string;
  readonly name: string;
  readonly createdAt: string;
  readonly tokens: readonly StationToken[];
}

export class AccountError extends Error {
  readonly code: 'CXR_ACCOUNT_EXISTS' | 'CXR_ACCOUNT_NOT_FOUND' | 'CXR_ACCOUNT_INVALID';
  constructor(code: AccountError['code'], message: string) {
    super(message);
    this.name = 'AccountError';
    this.code = code;
  }
}

const usernamePattern = /^[a-z0-9][a-z0-9._-]{1,63}$/u;
const stationPattern = /^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$/u;
const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Users and stations, kept in the object store (the system of record), JSON per account. */
export class AccountStore {
  readonly #store: ObjectStore;
  readonly #hasher: PasswordHasher;

  constructor(store: ObjectStore, deps: { hasher?: PasswordHasher } = {}) {
    this.#store = store;
    this.#hasher = deps.hasher ?? createPasswordHasher();
  }

  async addUser(input: { username: string; password: string; role: Role; displayName?: string }): Promise<UserRecord> {
    const problems: string[] = [];
    if (!usernamePattern.test(input.username)) problems.push('username: 2-64 lower-case letters, digits, ".", "_" or "-"');
    const weak = passwordProblem(input.password);
    if (weak) problems.push(weak);
    if (!roles.includes(input.role)) problems.push(`role: one of ${roles.join(', ')}`);
    if (problems.length > 0) throw new AccountError('CXR_ACCOUNT_INVALID', problems.join('; '));
    const record: UserRecord = {
      username: input.username,
      role: input.role,
      passwordHash: await this.#hasher.hash(input.password),
      displayName: input.displayName ?? input.username,
      createdAt: new Date().toISOString(),
      disabled: false,
      sessionEpoch: 0,
    };
    await this.#putNew(userKey(input.username), record, `user ${input.username} exists`);
    return record;
  }

  async user(username: string): Promise<UserRecord | undefined> {
    if (!usernamePattern.test(username)) return undefined;
    return this.#getJson<UserRecord>(userKey(username));
  }

  /**
   * The user when the password is right; undefined otherwise (the caller cannot tell which part was wrong). Every
   * answer costs one scrypt derivation at the current cost, so its timing does not tell an unknown or disabled
   * account from a wrong password. A hash made at an older cost is replaced at the current one.
   */
  async authenticate(username: string, password: string): Promise<UserRecord | undefined> {
    const user = await this.user(username);
    if (!user || user.disabled) return this.#hasher.verifyDummy(password).then(() => undefined);
    if (!(await this.#hasher.verify(password, user.passwordHash))) return undefined;
    if (!this.#hasher.needsRehash(user.passwordHash)) return user;
    const passwordHash = await this.#hasher.hash(password);
    // Only over the record just read: a disable or a password change made meanwhile wins (a small window remains,
    // as the store has no compare-and-swap; the worst case is one more rehash on the next sign-in).
    return (await this.#updateUser(username, (now) => (now.passwordHash === user.passwordHash && now.disabled === user.disabled ? { ...now, passwordHash } : now))) ?? user;
  }

  /** Sets a new password and ends every session of the user (on every gateway process, at their next request). */
  async setPassword(username: string, password: string): Promise<UserRecord> {
    const weak = passwordProblem(password);
    if (weak) throw new AccountError('CXR_ACCOUNT_INVALID', weak);
    const passwordHash = await this.#hasher.hash(password);
    return this.#mustUpdateUser(username, (u) => ({ ...u, passwordHash, sessionEpoch: (u.sessionEpoch ?? 0) + 1 }));
  }

  /** A disabled user cannot sign in, and every session of theirs is refused at its next request. */
  async disableUser(username: string): Promise<UserRecord> {
    return this.#mustUpdateUser(username, (u) => ({ ...u, disabled: true, sessionEpoch: (u.sessionEpoch ?? 0) + 1 }));
  }

  /** The user can sign in again; sessions ended by the disable stay ended. */
  async enableUser(username: string): Promise<UserRecord> {
    return this.#mustUpdateUser(username, (u) => ({ ...u, disabled: false }));
  }

  async #mustUpdateUser(username: string, change: (user: UserRecord) => UserRecord): Promise<UserRecord> {
    const updated = await this.#updateUser(username, change);
    if (!updated) throw new AccountError('CXR_ACCOUNT_NOT_FOUND', `no user ${username}`);
    return updated;
  }

  async #updateUser(username: string, change: (user: UserRecord) => UserRecord): Promise<UserRecord | undefined> {
    const user = await this.user(username);
    if (!user) return undefined;
    const updated = change(user);
    if (updated !== user) await this.#store.put(userKey(username), Buffer.from(JSON.stringify(updated, null, 1)), { contentType: 'application/json' });
    return updated;
  }

  /** Creates a station and its first token. The token is returned once; only its hash is kept. */
  async addStation(input: { stationId: string; name?: string }): Promise<{ station: StationRecord; token: string }> {
    if (!stationPattern.test(input.stationId)) {
      throw new AccountError('CXR_ACCOUNT_INVALID', 'station id: 2-64 letters, digits, "_" or "-"');
    }
    const token = newStationToken(input.stationId);
    const station: StationRecord = {
      stationId: input.stationId,
      name: input.name ?? input.stationId,
      createdAt: new Date().toISOString(),
      tokens: [{ sha256: sha256(token), createdAt: new Date().toISOString(), revokedAt: null }],
    };
    await this.#putNew(stationKey(input.stationId), station, `station ${input.stationId} exists`);
    return { station, token };
  }

  async station(stationId: string): Promise<StationRecord | undefined> {
    if (!stationPattern.test(stationId)) return undefined;
    return this.#getJson<StationRecord>(stationKey(stationId));
  }

  async stations(): Promise<StationRecord[]> {
    const out: StationRecord[] = [];
    for await (const info of this.#store.list(STATIONS_PREFIX)) {
      const record = await this.#getJson<StationRecord>(info.key);
      if (record) out.push(record);
    }
    return out;
  }

  /** Revokes every current token of a station and issues a new one. */
  async rotateStationToken(stationId: string): Promise<string> {
    const station = await this.station(stationId);
    if (!station) throw new AccountError('CXR_ACCOUNT_NOT_FOUND', `no station ${stationId}`);
    const token = newStationToken(stationId);
    const now = new Date().toISOString();
    const updated: StationRecord = {
      ...station,
      tokens: [...station.tokens.map((t) => ({ ...t, revokedAt: t.revokedAt ?? now })), { sha256: sha256(token), createdAt: now, revokedAt: null }],
    };
    await this.#store.put(stationKey(stationId), Buffer.from(JSON.stringify(updated, null, 1)), { contentType: 'application/json' });
    return token;
  }

  /** Revokes every token of a station: refused at once; `rotateStationToken` lets it in again with a new one. */
  async revokeStation(stationId: string): Promise<{ revoked: number }> {
    const station = await this.station(stationId);
    if (!station) throw new AccountError('CXR_ACCOUNT_NOT_FOUND', `no station ${stationId}`);
    const now = new Date().toISOString();
    const revoked = station.tokens.filter((t) => t.revokedAt === null).length;
    const updated: StationRecord = { ...station, tokens: station.tokens.map((t) => ({ ...t, revokedAt: t.revokedAt ?? now })) };
    await this.#store.put(stationKey(stationId), Buffer.from(JSON.stringify(updated, null, 1)), { contentType: 'application/json' });
    return { revoked };
  }

  /** The station a token belongs to, when the token is current. */
  async verifyStationToken(token: string): Promise<StationRecord | undefined> {
    const stationId = stationIdOfToken(token);
    if (!stationId) return undefined;
    const station = await this.station(stationId);
    if (!station) return undefined;
    const presented = Buffer.from(sha256(token), 'hex');
    const match = station.tokens.some((t) => t.revokedAt === null && timingSafeEqual(Buffer.from(t.sha256, 'hex'), presented));
    return match ? station : undefined;
  }

  async #putNew(key: string, value: unknown, existsMessage: string): Promise<void> {
    try {
      await this.#store.put(key, Buffer.from(JSON.stringify(value, null, 1)), { contentType: 'application/json', ifNoneMatch: true });
    } catch (err) {
      if ((err as { code?: string }).code === 'CXR_STORE_EXISTS') throw new AccountError('CXR_ACCOUNT_EXISTS', existsMessage);
      throw err;
    }
  }

  async #getJson<T>(key: string): Promise<T | undefined> {
    if (!(await this.#store.head(key))) return undefined;
    return JSON.parse(Buffer.from(await this.#store.getBytes(key)).toString('utf8')) as T;
  }
}

/** `cxrst_<station>.<secret>`: the station id lets the gateway find the hash without scanning every station. */
function newStationToken(stationId: string): string {
  return `cxrst_${stationId}.${randomBytes(32).toString('base64url')}`;
}

function stationIdOfToken(token: string): string | undefined {
  const m = /^cxrst_([A-Za-z0-9][A-Za-z0-9_-]{1,63})\.[A-Za-z0-9_-]{43}$/u.exec(token);
  return m?.[1];
}
