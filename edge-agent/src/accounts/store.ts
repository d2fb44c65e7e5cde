import { createHash, randomBytes } from 'node:crypto';
import path from 'node:path';
import Database from 'better-sqlite3';

/**
 * The radiographers' accounts and their sessions, in `DATA_DIR/accounts.db` (SQLite, WAL). A file of its own, not
 * a table of the spool's `edge.db`: `cxr-edge check`, the drills and copies of the spool made for support never see
 * password hashes. `cxr-edge admin` writes it while the agent runs; the agent reads the account on every request,
 * so a disabled account or a changed password takes effect at once.
 */
export const accountsFileName = 'accounts.db';

export const usernamePattern = /^[a-z0-9][a-z0-9._-]{1,63}$/u;

/** Names are kept in lower case: `Lan.A` and `lan.a` are one account. */
export function normalizeUsername(name: string): string {
  return name.trim().toLowerCase();
}

export function usernameProblem(name: string): string | undefined {
  return usernamePattern.test(normalizeUsername(name)) ? undefined : `"${name}" is not a user name: 2 to 64 letters, digits, dots, dashes or underscores, starting with a letter or digit`;
}

export interface Account {
  readonly username: string;
  readonly passwordHash: string;
  readonly disabled: boolean;
  readonly createdAt: string;
  readonly passwordChangedAt: string;
  readonly lastSignInAt: string | null;
}

/** Why a session cookie does not sign anyone in. */
export type SessionRefusal = 'unknown' | 'expired' | 'account-disabled' | 'account-gone';

export type SessionCheck = { readonly ok: true; readonly username: string; readonly expiresAt: number } | { readonly ok: false; readonly reason: SessionRefusal };

interface UserRow {
  username: string;
  password_hash: string;
  disabled: number;
  created_at: number;
  password_changed_at: number;
  last_sign_in_at: number | null;
}

const schema = `
CREATE TABLE IF NOT EXISTS users (
  username TEXT PRIMARY KEY,
  password_hash TEXT NOT NULL,
  disabled INTEGER NOT NULL DEFAULT 0,
  created_at INTEGER NOT NULL,
  password_changed_at INTEGER NOT NULL,
  last_sign_in_at INTEGER
);
CREATE TABLE IF NOT EXISTS sessions (
  token_sha256 TEXT PRIMARY KEY,
  username TEXT NOT NULL REFERENCES users(username) ON DELETE CASCADE,
  created_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(username);
`;

/** Only the token's digest is stored: a copy of the file signs no one in. */
const digest = (token: string): string => createHash('sha256').update(token).digest('hex');

export class AccountStore {
  readonly #db: Database.Database;
  readonly #now: () => number;

  /** `now` (ms since the epoch) is passed in so that tests can make a session that is already old. */
  constructor(dataDir: string, deps: { now?: () => number } = {}) {
    this.#now = deps.now ?? Date.now;
    this.#db = new Database(path.join(dataDir, accountsFileName));
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('foreign_keys = ON');
    // `cxr-edge admin` and the agent share the file.
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(schema);
  }

  close(): void {
    this.#db.close();
  }

  get(username: string): Account | undefined {
    const row = this.#db.prepare('SELECT * FROM users WHERE username = ?').get(normalizeUsername(username)) as UserRow | undefined;
    return row ? toAccount(row) : undefined;
  }

  list(): Account[] {
    return (this.#db.prepare('SELECT * FROM users ORDER BY username').all() as UserRow[]).map(toAccount);
  }

  enabledCount(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM users WHERE disabled = 0').get() as { n: number }).n;
  }

  /** False when the name is taken. */
  add(username: string, passwordHash: string): boolean {
    const now = this.#now();
    const info = this.#db
      .prepare('INSERT OR IGNORE INTO users (username, password_hash, disabled, created_at, password_changed_at) VALUES (?, ?, 0, ?, ?)')
      .run(normalizeUsername(username), passwordHash, now, now);
    return info.changes === 1;
  }

  /** A new password ends every session of the account (whoever knew the old one is out). False: no such account. */
  setPassword(username: string, passwordHash: string): boolean {
    const name = normalizeUsername(username);
    return this.#db.transaction(() => {
      const info = this.#db.prepare('UPDATE users SET password_hash = ?, password_changed_at = ? WHERE username = ?').run(passwordHash, this.#now(), name);
      this.#db.prepare('DELETE FROM sessions WHERE username = ?').run(name);
      return info.changes === 1;
    })();
  }

  /**
   * The same password hashed again at the current cost (sign-in.ts, on a good sign-in): its sessions stay, and the
   * hash is replaced only if it is still the one checked, so a password set meanwhile wins. False: it was not.
   */
  rehashPassword(username: string, checkedHash: string, passwordHash: string): boolean {
    const info = this.#db.prepare('UPDATE users SET password_hash = ? WHERE username = ? AND password_hash = ?').run(passwordHash, normalizeUsername(username), checkedHash);
    return info.changes === 1;
  }

  /** Disabling ends every session of the account at once. False: no such account. */
  setDisabled(username: string, disabled: boolean): boolean {
    const name = normalizeUsername(username);
    return this.#db.transaction(() => {
      const info = this.#db.prepare('UPDATE users SET disabled = ? WHERE username = ?').run(disabled ? 1 : 0, name);
      if (disabled) this.#db.prepare('DELETE FROM sessions WHERE username = ?').run(name);
      return info.changes === 1;
    })();
  }

  /** A new session for a signed-in account: the token goes in the cookie, its digest in the file. */
  createSession(username: string, ttlMs: number): { token: string; expiresAt: number } {
    const name = normalizeUsername(username);
    const token = randomBytes(32).toString('base64url');
    const now = this.#now();
    const expiresAt = now + ttlMs;
    this.#db.transaction(() => {
      this.#db.prepare('INSERT INTO sessions (token_sha256, username, created_at, expires_at) VALUES (?, ?, ?, ?)').run(digest(token), name, now, expiresAt);
      this.#db.prepare('UPDATE users SET last_sign_in_at = ? WHERE username = ?').run(now, name);
      // Old sessions go as new ones come, so the table stays small without a timer.
      this.#db.prepare('DELETE FROM sessions WHERE expires_at <= ?').run(now);
    })();
    return { token, expiresAt };
  }

  /** Checked on every request: the session exists and has not expired, and its account exists and is enabled. */
  checkSession(token: string): SessionCheck {
    const row = this.#db
      .prepare(
        `SELECT s.expires_at AS expires_at, s.created_at AS created_at, u.username AS username, u.disabled AS disabled, u.password_changed_at AS password_changed_at
         FROM sessions s LEFT JOIN users u ON u.username = s.username WHERE s.token_sha256 = ?`,
      )
      .get(digest(token)) as { expires_at: number; created_at: number; username: string | null; disabled: number | null; password_changed_at: number | null } | undefined;
    if (!row) return { ok: false, reason: 'unknown' };
    if (row.username === null) return { ok: false, reason: 'account-gone' };
    if (row.disabled) return { ok: false, reason: 'account-disabled' };
    // A session older than the password is refused even if the row somehow survived the change.
    if (row.password_changed_at !== null && row.created_at < row.password_changed_at) return { ok: false, reason: 'unknown' };
    if (row.expires_at <= this.#now()) return { ok: false, reason: 'expired' };
    return { ok: true, username: row.username, expiresAt: row.expires_at };
  }

  endSession(token: string): void {
    this.#db.prepare('DELETE FROM sessions WHERE token_sha256 = ?').run(digest(token));
  }
}

function toAccount(row: UserRow): Account {
  return {
    username: row.username,
    passwordHash: row.password_hash,
    disabled: row.disabled !== 0,
    createdAt: new Date(row.created_at).toISOString(),
    passwordChangedAt: new Date(row.password_changed_at).toISOString(),
    lastSignInAt: row.last_sign_in_at === null ? null : new Date(row.last_sign_in_at).toISOString(),
  };
}
