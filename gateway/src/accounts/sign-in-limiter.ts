import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface SignInLimits {
  /** the window failures are counted in, in seconds (fixed: it starts at the first failure). Default 900 (15 min). */
  readonly windowSeconds: number;
  /** failed sign-ins to one account in a window before it is held back. Default 10. */
  readonly maxFailuresPerAccount: number;
  /** failed sign-ins from one address (any accounts) in a window before it is held back. Default 30. */
  readonly maxFailuresPerAddress: number;
}

export const DEFAULT_SIGN_IN_LIMITS: SignInLimits = { windowSeconds: 15 * 60, maxFailuresPerAccount: 10, maxFailuresPerAddress: 30 };

/**
 * `failure`: the slot stays (a failed sign-in counts); `success`: the account's count is cleared and the address's
 * slot given back; `error` (the check itself failed, e.g. the store): both slots given back.
 */
export type Outcome = 'success' | 'failure' | 'error';

export type Attempt = { readonly allowed: true; release(outcome: Outcome): Promise<void> } | { readonly allowed: false; readonly retryAfterSeconds: number };

// Takes a slot in both counters, or none when either is full (then: the longest wait). A slot is taken before the
// password is checked, so a burst of parallel guesses cannot all pass the check before the first failure counts.
const TAKE = `
local account = tonumber(redis.call('GET', KEYS[1]) or '0')
local address = tonumber(redis.call('GET', KEYS[2]) or '0')
local wait = 0
if account >= tonumber(ARGV[2]) then wait = math.max(wait, redis.call('PTTL', KEYS[1])) end
if address >= tonumber(ARGV[3]) then wait = math.max(wait, redis.call('PTTL', KEYS[2])) end
if wait ~= 0 then return wait end
for i = 1, 2 do
  if redis.call('INCR', KEYS[i]) == 1 then redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return 0
`;

// Gives back a slot (never below zero, never to a key gone meanwhile); a success clears the account's count (other
// accounts' failures from the same address still count).
const GIVE_BACK = `
for i = 1, 2 do
  if i == 1 and ARGV[1] == 'success' then
    redis.call('DEL', KEYS[1])
  elseif tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
    redis.call('DECR', KEYS[i])
  end
end
return 0
`;

/**
 * Counts failed sign-ins per account and per address in Redis, so every gateway process shares the counts. A
 * fixed window per key: it starts with the first failure and the count goes when it ends.
 */
export class SignInLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #limits: SignInLimits;

  constructor(redis: Redis, options: { prefix: string; limits?: Partial<SignInLimits> }) {
    this.#redis = redis;
    this.#prefix = `${options.prefix}signin:`;
    this.#limits = { ...DEFAULT_SIGN_IN_LIMITS, ...options.limits };
    const problems = signInLimitProblems(this.#limits);
    if (problems.length > 0) throw new Error(`invalid sign-in limits: ${problems.join('; ')}`);
  }

  get limits(): SignInLimits {
    return this.#limits;
  }

  /** Before the password is checked. When allowed, `release` must be called with the outcome. */
  async attempt(username: string, address: string): Promise<Attempt> {
    const keys = this.#keys(username, address);
    const { windowSeconds, maxFailuresPerAccount, maxFailuresPerAddress } = this.#limits;
    const waitMs = Number(await this.#redis.eval(TAKE, 2, ...keys, windowSeconds * 1000, maxFailuresPerAccount, maxFailuresPerAddress));
    // PTTL is -1 for a key without expiry (none is made so) and -2 for a key gone meanwhile: wait a second.
    if (waitMs !== 0) return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)) };
    return {
      allowed: true,
      release: async (outcome) => {
        if (outcome !== 'failure') await this.#redis.eval(GIVE_BACK, 2, ...keys, outcome);
      },
    };
  }

  #keys(username: string, address: string): [string, string] {
    // Hashed: a username typed by anyone (perhaps a password typed in the wrong field) is not kept in Redis.
    const h = (text: string): string => createHash('sha256').update(text).digest('hex');
    return [`${this.#prefix}account:${h(username.toLowerCase())}`, `${this.#prefix}address:${h(address)}`];
  }
}

export function signInLimitProblems(limits: SignInLimits): string[] {
  const problems: string[] = [];
  const whole = (n: number, min: number): boolean => Number.isInteger(n) && n >= min;
  if (!whole(limits.windowSeconds, 1)) problems.push('the window must be a whole number of seconds, at least 1');
  if (!whole(limits.maxFailuresPerAccount, 1)) problems.push('failures per account must be a whole number, at least 1');
  if (!whole(limits.maxFailuresPerAddress, 1)) problems.push('failures per address must be a whole number, at least 1');
  return problems;
}
