import { dummyHash, scryptDerive, verifyPassword, type DeriveKey } from './passwords.js';
import { normalizeUsername, usernamePattern, type AccountStore } from './store.js';

export type SignInOutcome = { readonly ok: true; readonly username: string } | { readonly ok: false; readonly reason: 'unknown-user' | 'account-disabled' | 'wrong-password' };

/** Too many sign-ins are waiting for the hash: refused at once rather than queued for ever. */
export class PasswordQueueFull extends Error {
  constructor() {
    super('too many sign-ins at once');
    this.name = 'PasswordQueueFull';
  }
}

export interface PasswordCheckerOptions {
  /** sign-ins that may wait for their turn at the hash (default 8); more are refused */
  readonly maxWaiting?: number;
}

/**
 * Checks passwords one at a time. Each check takes 128 MiB and half a second of a libuv thread, the pool the
 * station's file writes and JPEG 2000 decodes also run on: a flood of sign-ins must not take them all.
 */
export class PasswordChecker {
  readonly #store: AccountStore;
  readonly #derive: DeriveKey;
  readonly #maxWaiting: number;
  #tail: Promise<unknown> = Promise.resolve();
  #waiting = 0;

  constructor(deps: { store: AccountStore; derive?: DeriveKey }, options: PasswordCheckerOptions = {}) {
    this.#store = deps.store;
    this.#derive = deps.derive ?? scryptDerive;
    this.#maxWaiting = options.maxWaiting ?? 8;
  }

  /**
   * Every outcome costs one full hash: an unknown or disabled account is checked against a dummy hash of the same
   * cost, so the time taken does not tell which names exist or are disabled.
   */
  async check(username: string, password: string): Promise<SignInOutcome> {
    if (this.#waiting >= this.#maxWaiting) throw new PasswordQueueFull();
    this.#waiting += 1;
    const turn = this.#tail.then(() => this.#checkNow(username, password));
    this.#tail = turn.catch(() => undefined);
    try {
      return await turn;
    } finally {
      this.#waiting -= 1;
    }
  }

  async #checkNow(username: string, password: string): Promise<SignInOutcome> {
    const name = normalizeUsername(username);
    const account = usernamePattern.test(name) ? this.#store.get(name) : undefined;
    const usable = account !== undefined && !account.disabled;
    const matches = await verifyPassword(password, usable ? account.passwordHash : dummyHash, this.#derive);
    if (!account) return { ok: false, reason: 'unknown-user' };
    if (account.disabled) return { ok: false, reason: 'account-disabled' };
    return matches ? { ok: true, username: account.username } : { ok: false, reason: 'wrong-password' };
  }
}
