/**
 * Failed sign-ins, counted per account name and per address over a sliding window. Past the limit every attempt is
 * refused, right password or not, until the oldest failure in the window is old enough: guessing a password then
 * takes days, not minutes. Unknown names count like known ones, so the refusal does not tell which names exist.
 * Kept in memory: an attacker cannot restart the agent, and a restart after a real lock-out is the way to lift it.
 */
export interface SignInLimits {
  /** failures of one account name within `windowMs` before it is refused (default 5) */
  readonly perAccount: number;
  /** failures from one address within `windowMs` before it is refused (default 20) */
  readonly perAddress: number;
  /** ms a failure counts (default 15 minutes) */
  readonly windowMs: number;
}

export const defaultSignInLimits: SignInLimits = { perAccount: 5, perAddress: 20, windowMs: 15 * 60_000 };

/** Names and addresses kept at most; the oldest are forgotten first (an address tries at most `perAddress` names). */
const maxKeys = 10_000;

export class SignInLimiter {
  readonly #limits: SignInLimits;
  readonly #now: () => number;
  readonly #accounts = new Map<string, number[]>();
  readonly #addresses = new Map<string, number[]>();
  /** Attempts being checked now, which count against the limit until they are decided. */
  readonly #pendingAccounts = new Map<string, number>();
  readonly #pendingAddresses = new Map<string, number>();

  constructor(deps: { now?: () => number } = {}, limits: Partial<SignInLimits> = {}) {
    this.#now = deps.now ?? Date.now;
    this.#limits = { ...defaultSignInLimits, ...limits };
  }

  /** Ms to wait before this name may be tried from this address; 0: go ahead. */
  retryAfterMs(account: string, address: string): number {
    const now = this.#now();
    return Math.max(
      this.#wait(this.#accounts, this.#pendingAccounts, account, this.#limits.perAccount, now),
      this.#wait(this.#addresses, this.#pendingAddresses, address, this.#limits.perAddress, now),
    );
  }

  /** An attempt is being checked; call the returned function once it is decided (then `failed` or `succeeded`). */
  begin(account: string, address: string): () => void {
    const add = (map: Map<string, number>, key: string, n: number): void => {
      const value = (map.get(key) ?? 0) + n;
      if (value > 0) map.set(key, value);
      else map.delete(key);
    };
    add(this.#pendingAccounts, account, 1);
    add(this.#pendingAddresses, address, 1);
    let ended = false;
    return () => {
      if (ended) return;
      ended = true;
      add(this.#pendingAccounts, account, -1);
      add(this.#pendingAddresses, address, -1);
    };
  }

  failed(account: string, address: string): void {
    const now = this.#now();
    this.#record(this.#accounts, account, now);
    this.#record(this.#addresses, address, now);
  }

  /** A right password clears the account's failures (not the address's: one good account does not excuse guessing). */
  succeeded(account: string): void {
    this.#accounts.delete(account);
  }

  #wait(map: Map<string, number[]>, pending: Map<string, number>, key: string, limit: number, now: number): number {
    const times = this.#recent(map, key, now);
    if (times.length + (pending.get(key) ?? 0) < limit) return 0;
    // The attempts under way may fill the limit: ask again once they are decided.
    if (times.length < limit) return 1000;
    // Free again when enough failures have aged out of the window to leave room for one more.
    const freeing = times[times.length - limit] as number;
    return Math.max(1, freeing + this.#limits.windowMs - now);
  }

  #recent(map: Map<string, number[]>, key: string, now: number): number[] {
    const times = (map.get(key) ?? []).filter((t) => t > now - this.#limits.windowMs);
    if (times.length === 0) map.delete(key);
    else map.set(key, times);
    return times;
  }

  #record(map: Map<string, number[]>, key: string, now: number): void {
    const times = this.#recent(map, key, now);
    times.push(now);
    map.delete(key);
    map.set(key, times);
    if (map.size > maxKeys) {
      const oldest = map.keys().next().value;
      if (oldest !== undefined) map.delete(oldest);
    }
  }
}
