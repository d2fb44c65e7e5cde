import { createPasswordHasher, type PasswordHasher } from '@cxr/inference';
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
  readonly #hasher: PasswordHasher;
  readonly #maxWaiting: number;
  #tail: Promise<unknown> = Promise.resolve();
  #waiting = 0;

  constructor(deps: { store: AccountStore; hasher?: PasswordHasher }, options: PasswordCheckerOptions = {}) {
    this.#store = deps.store;
    this.#hasher = deps.hasher ?? createPasswordHasher();
    this.#maxWaiting = options.maxWaiting ?? 8;
  }

  /**
   * Every outcome costs one full hash: an unknown or disabled account is checked against a throwaway hash of the
   * current cost, so the time taken does not tell which names exist or are disabled. An account whose stored hash
   * cannot be read throws PasswordHashError (the sign-in answers 500): a corrupt record is not a wrong password.
   */
  async check(username: string, password: string): Promise<SignInOutcome> {
    if (this.#waiting >= this.#maxWaiting) throw new PasswordQueueFull();
    this.#waiting += 1;
    try {
      return await this.#inTurn(() => this.#checkNow(username, password));
    } finally {
      this.#waiting -= 1;
    }
  }

  /**
   * Makes the throwaway hash now (the agent calls this at start), so that the first unknown name does not cost two
   * hashes where every other sign-in costs one. Takes its turn like a check.
   */
  async prepare(): Promise<void> {
    await this.#inTurn(() => this.#hasher.verifyDummy(''));
  }

  #inTurn<T>(work: () => Promise<T>): Promise<T> {
    const turn = this.#tail.then(work);
    this.#tail = turn.catch(() => undefined);
    return turn;
  }

  async #checkNow(username: string, password: string): Promise<SignInOutcome> {
    const name = normalizeUsername(username);
    const account = usernamePattern.test(name) ? this.#store.get(name) : undefined;
    if (!account || account.disabled) {
      await this.#hasher.verifyDummy(password);
      return { ok: false, reason: account ? 'account-disabled' : 'unknown-user' };
    }
    if (!(await this.#hasher.verify(password, account.passwordHash))) return { ok: false, reason: 'wrong-password' };
    // A hash made at an older cost is replaced at the current one while the password is at hand.
    if (this.#hasher.needsRehash(account.passwordHash)) this.#store.rehashPassword(account.username, account.passwordHash, await this.#hasher.hash(password));
    return { ok: true, username: account.username };
  }
}
