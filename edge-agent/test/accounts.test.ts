/**
 * The radiographers' accounts on their own: the same work for every sign-in whatever the name (timing does not tell
 * which accounts exist), a hash at an older cost replaced, a corrupt one an error, the sign-in limits on their own
 * clock, and the sessions in the accounts file. The real scrypt runs throughout; a test only counts what it is asked
 * to do. The hashing itself is tested with it, in inference/src/accounts/passwords.test.ts.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createPasswordHasher, DEFAULT_SCRYPT_COST, hashPassword, PasswordHashError, scryptDerive, type DeriveKey } from '@cxr/inference';
import { afterEach, describe, expect, it } from 'vitest';
import { SignInLimiter } from '../src/accounts/limiter.js';
import { PasswordChecker, PasswordQueueFull } from '../src/accounts/sign-in.js';
import { AccountStore } from '../src/accounts/store.js';
import { removeDir, tempDir } from './harness/agent-process.js';

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) removeDir(d);
});

function newStore(now?: () => number): AccountStore {
  const dir = tempDir('cxr-accounts-');
  dirs.push(dir);
  return new AccountStore(dir, now ? { now } : {});
}

/** What the sessions' tests store as a hash: the store does not read it. */
const someHash = 'scrypt$131072$8$1$c0SM6yd5uPRQrnwWj0T18w$jQnqiPlaHDTGizgvApRyNYp9il8pMj5dqjxF5UB8JGk';

describe('a sign-in costs the same whoever it names', () => {
  /** The real scrypt, with a note of each derivation's cost. */
  function countingDerive(): { derive: DeriveKey; calls: { N: number; r: number }[] } {
    const calls: { N: number; r: number }[] = [];
    return {
      calls,
      derive: async (password, salt, keyLength, cost) => {
        calls.push({ N: cost.N, r: cost.r });
        return scryptDerive(password, salt, keyLength, cost);
      },
    };
  }

  it('runs one full-cost scrypt for a right password, a wrong one, an unknown name, a disabled account and a malformed name', async () => {
    const store = newStore();
    store.add('lan.a', await hashPassword('mat-khau-dai-1'));
    store.add('lan.off', await hashPassword('mat-khau-dai-2'));
    store.setDisabled('lan.off', true);
    const cases = [
      ['lan.a', 'mat-khau-dai-1', { ok: true, username: 'lan.a' }],
      ['LAN.A', 'sai-mat-khau', { ok: false, reason: 'wrong-password' }],
      ['khong.co', 'mat-khau-dai-1', { ok: false, reason: 'unknown-user' }],
      ['lan.off', 'mat-khau-dai-2', { ok: false, reason: 'account-disabled' }],
      ['../../x', 'mat-khau-dai-1', { ok: false, reason: 'unknown-user' }],
    ] as const;
    const { derive, calls } = countingDerive();
    const checker = new PasswordChecker({ store, hasher: createPasswordHasher({ derive }) });
    // The throwaway hash for unknown names, made once (the agent does this at start).
    await checker.prepare();
    for (const [name, password, outcome] of cases) {
      calls.length = 0;
      expect(await checker.check(name, password)).toEqual(outcome);
      expect({ name, calls }).toEqual({ name, calls: [{ N: DEFAULT_SCRYPT_COST.N, r: DEFAULT_SCRYPT_COST.r }] });
    }
    store.close();
  });

  it('checks one password at a time and refuses a flood rather than queueing it for ever', async () => {
    const store = newStore();
    let running = 0;
    let most = 0;
    const derive: DeriveKey = async (password, salt, keyLength, cost) => {
      running += 1;
      most = Math.max(most, running);
      try {
        return await scryptDerive(password, salt, keyLength, cost);
      } finally {
        running -= 1;
      }
    };
    const checker = new PasswordChecker({ store, hasher: createPasswordHasher({ derive }) }, { maxWaiting: 3 });
    const attempts = Array.from({ length: 5 }, (_, i) => checker.check(`ten.${i}`, 'sai-mat-khau').then(() => 'checked', (err: unknown) => (err instanceof PasswordQueueFull ? 'refused' : 'error')));
    expect((await Promise.all(attempts)).sort()).toEqual(['checked', 'checked', 'checked', 'refused', 'refused']);
    expect(most).toBe(1);
    store.close();
  });
});

describe('a stored hash', () => {
  it('made at an older cost still signs in, and is replaced at the current cost without ending the sessions', async () => {
    const store = newStore();
    const old = createPasswordHasher({}, { cost: { N: 2 ** 15, r: 8, p: 1 } });
    store.add('lan.cu', await old.hash('mat-khau-cu-1'));
    const session = store.createSession('lan.cu', 60_000);
    const checker = new PasswordChecker({ store });
    expect(await checker.check('lan.cu', 'mat-khau-cu-1')).toEqual({ ok: true, username: 'lan.cu' });
    expect(store.get('lan.cu')?.passwordHash.split('$').slice(0, 4)).toEqual(['scrypt', String(2 ** 17), '8', '1']);
    expect(store.checkSession(session.token).ok).toBe(true);
    expect(await checker.check('lan.cu', 'mat-khau-cu-1')).toEqual({ ok: true, username: 'lan.cu' });
    expect(await checker.check('lan.cu', 'sai-mat-khau-1')).toEqual({ ok: false, reason: 'wrong-password' });
    store.close();
  });

  it('is not replaced over a password set meanwhile', async () => {
    const store = newStore();
    store.add('lan.a', someHash);
    store.setPassword('lan.a', await hashPassword('mat-khau-moi-1'));
    expect(store.rehashPassword('lan.a', someHash, 'scrypt$other')).toBe(false);
    expect(store.get('lan.a')?.passwordHash).not.toBe('scrypt$other');
    store.close();
  });

  it('that cannot be read is an error, not a wrong password, and the checks after it go on', async () => {
    const store = newStore();
    store.add('lan.hong', 'scrypt$131072$8$1$not-a-hash');
    store.add('lan.a', await hashPassword('mat-khau-dai-1'));
    const checker = new PasswordChecker({ store });
    await expect(checker.check('lan.hong', 'mat-khau-dai-1')).rejects.toBeInstanceOf(PasswordHashError);
    expect(await checker.check('lan.a', 'mat-khau-dai-1')).toEqual({ ok: true, username: 'lan.a' });
    store.close();
  });
});

describe('sign-in limits', () => {
  const minute = 60_000;

  it('refuses an account after 5 failures in 15 minutes, until the oldest is 15 minutes old', () => {
    let now = 0;
    const limiter = new SignInLimiter({ now: () => now });
    for (let i = 0; i < 5; i++) {
      expect(limiter.retryAfterMs('lan.a', `10.0.0.${i}`)).toBe(0);
      limiter.failed('lan.a', `10.0.0.${i}`);
      now += minute;
    }
    // From any address: the name is what is guessed.
    expect(limiter.retryAfterMs('lan.a', '10.0.0.99')).toBe(10 * minute);
    expect(limiter.retryAfterMs('lan.b', '10.0.0.99')).toBe(0);
    now = 15 * minute;
    expect(limiter.retryAfterMs('lan.a', '10.0.0.99')).toBe(0);
  });

  it('refuses an address after 20 failures in 15 minutes, whatever names it tries', () => {
    let now = 0;
    const limiter = new SignInLimiter({ now: () => now });
    for (let i = 0; i < 20; i++) {
      expect(limiter.retryAfterMs(`ten.${i}`, '10.0.0.7')).toBe(0);
      limiter.failed(`ten.${i}`, '10.0.0.7');
      now += 1000;
    }
    expect(limiter.retryAfterMs('lan.a', '10.0.0.7')).toBe(15 * minute - 20_000);
    expect(limiter.retryAfterMs('lan.a', '10.0.0.8')).toBe(0);
  });

  it('counts the attempts still being checked, so that a burst at once cannot get more guesses in', () => {
    const limiter = new SignInLimiter({ now: () => 0 });
    const under = Array.from({ length: 5 }, () => (limiter.retryAfterMs('lan.a', '10.0.0.7') === 0 ? limiter.begin('lan.a', '10.0.0.7') : undefined));
    expect(under.filter(Boolean)).toHaveLength(5);
    expect(limiter.retryAfterMs('lan.a', '10.0.0.7')).toBeGreaterThan(0);
    for (const done of under) {
      done?.();
      limiter.failed('lan.a', '10.0.0.7');
    }
    expect(limiter.retryAfterMs('lan.a', '10.0.0.8')).toBe(15 * 60_000);
  });

  it("forgets an account's failures once it signs in, not its address's", () => {
    const limiter = new SignInLimiter({ now: () => 0 }, { perAccount: 2, perAddress: 3 });
    limiter.failed('lan.a', '10.0.0.7');
    limiter.failed('lan.a', '10.0.0.7');
    expect(limiter.retryAfterMs('lan.a', '10.0.0.8')).toBeGreaterThan(0);
    limiter.succeeded('lan.a');
    expect(limiter.retryAfterMs('lan.a', '10.0.0.8')).toBe(0);
    limiter.failed('lan.b', '10.0.0.7');
    expect(limiter.retryAfterMs('lan.c', '10.0.0.7')).toBeGreaterThan(0);
  });
});

describe('sessions in the accounts file', () => {
  it('end when they expire, when the account is disabled, and when its password changes', () => {
    let now = 1_000_000;
    const store = newStore(() => now);
    store.add('lan.a', someHash);
    const first = store.createSession('lan.a', 60_000);
    expect(store.checkSession(first.token)).toEqual({ ok: true, username: 'lan.a', expiresAt: now + 60_000 });
    now += 60_000;
    expect(store.checkSession(first.token)).toEqual({ ok: false, reason: 'expired' });
    const second = store.createSession('lan.a', 60_000);
    store.setDisabled('lan.a', true);
    expect(store.checkSession(second.token).ok).toBe(false);
    store.setDisabled('lan.a', false);
    const third = store.createSession('lan.a', 60_000);
    now += 1;
    store.setPassword('lan.a', someHash);
    expect(store.checkSession(third.token).ok).toBe(false);
    expect(store.checkSession('not-a-token').ok).toBe(false);
    store.close();
  });

  it('keep only a digest of the token: the file does not sign anyone in', () => {
    const store = newStore();
    store.add('lan.a', someHash);
    const { token } = store.createSession('lan.a', 60_000);
    store.close();
    const dir = dirs[0] ?? '';
    const files = readdirSync(dir);
    expect(files).toContain('accounts.db');
    for (const file of files) expect(readFileSync(path.join(dir, file)).includes(Buffer.from(token))).toBe(false);
  });
});
