/**
 * The password hashing the gateway and the edge share: its cost, the checks, what a malformed stored hash does, the
 * rehash at a new cost, the throwaway hash for unknown names, and the rules for a new password. Each side's own use
 * of it is tested there (gateway/src/security.test.ts, edge-agent/test/accounts.test.ts).
 */
import { describe, expect, it } from 'vitest';
import { createPasswordHasher, DEFAULT_SCRYPT_COST, hashPassword, PasswordHashError, passwordProblem, scryptDerive, verifyPassword, type DeriveKey, type ScryptCost } from './passwords.js';

/** A cheap cost, where the cost itself is not what is tested. */
const cheap: ScryptCost = { N: 2 ** 10, r: 8, p: 1 };
const salt22 = 'A'.repeat(22);
const hash43 = 'A'.repeat(43);

function counting(): { derive: DeriveKey; costs: number[] } {
  const costs: number[] = [];
  return {
    costs,
    derive: (password, salt, keyLength, cost) => {
      costs.push(cost.N);
      return scryptDerive(password, salt, keyLength, cost);
    },
  };
}

describe('password hashes', () => {
  it('are scrypt at N = 2^17, r = 8, p = 1 by default, self-describing, and checked', async () => {
    expect(DEFAULT_SCRYPT_COST).toEqual({ N: 2 ** 17, r: 8, p: 1 });
    const stored = await hashPassword('mat-khau-dai-1');
    expect(stored).toMatch(/^scrypt\$131072\$8\$1\$[A-Za-z0-9_-]{22}\$[A-Za-z0-9_-]{43}$/u);
    expect(await verifyPassword('mat-khau-dai-1', stored)).toBe(true);
    expect(await verifyPassword('mat-khau-dai-2', stored)).toBe(false);
  });

  it('get a new salt each time, and take a password in either Unicode form (NFKC)', async () => {
    const hasher = createPasswordHasher({}, { cost: cheap });
    const composed = 'mật khẩu dài';
    const [a, b] = await Promise.all([hasher.hash(composed), hasher.hash(composed)]);
    expect(a).not.toBe(b);
    expect(await hasher.verify(composed.normalize('NFD'), a)).toBe(true);
  });

  it('that are malformed or out of bounds are an error, never a quiet "wrong password" that skips scrypt', async () => {
    const { derive, costs } = counting();
    const hasher = createPasswordHasher({ derive }, { cost: cheap });
    const malformed = [
      // Five fields: the dummy hash the gateway once used for unknown users, so scrypt never ran for them.
      `scrypt$32768$8$${salt22}$${hash43}`,
      `bcrypt$1024$8$1$${salt22}$${hash43}`,
      `scrypt$${2 ** 30}$8$1$${salt22}$${hash43}`,
      `scrypt$1000$8$1$${salt22}$${hash43}`,
      `scrypt$512$8$1$${salt22}$${hash43}`,
      `scrypt$1024$0$1$${salt22}$${hash43}`,
      `scrypt$1024$8$16$${salt22}$${hash43}`,
      // 128 * N * r: 1 GiB, more than a sign-in may take.
      `scrypt$${2 ** 20}$8$1$${salt22}$${hash43}`,
      `scrypt$01024$8$1$${salt22}$${hash43}`,
      `scrypt$1024$8$1$${salt22}$${hash43.slice(1)}=`,
      `scrypt$1024$8$1$AAAA$${hash43}`,
      `scrypt$1024$8$1$${salt22}$AAAA`,
      '',
    ];
    for (const stored of malformed) {
      await expect(hasher.verify('anything', stored), stored).rejects.toBeInstanceOf(PasswordHashError);
      expect(() => hasher.needsRehash(stored), stored).toThrow(/malformed/u);
    }
    expect(costs).toEqual([]);
    await expect(verifyPassword('anything', `scrypt$32768$8$${salt22}$${hash43}`)).rejects.toMatchObject({ code: 'CXR_PASSWORD_HASH_MALFORMED' });
  });

  it('made at another cost still verify, and say that they need a rehash at the current one', async () => {
    const older = await createPasswordHasher({}, { cost: cheap }).hash('mat-khau-cu-1');
    const current = createPasswordHasher({}, { cost: { N: 2 ** 11, r: 8, p: 1 } });
    expect(await current.verify('mat-khau-cu-1', older)).toBe(true);
    expect(current.needsRehash(older)).toBe(true);
    expect(current.needsRehash(await current.hash('mat-khau-cu-1'))).toBe(false);
  });

  it('are not made at a cost the hasher could not read back', () => {
    expect(() => createPasswordHasher({}, { cost: { N: 2 ** 30, r: 8, p: 1 } })).toThrow(PasswordHashError);
    expect(() => createPasswordHasher({}, { cost: { N: 3000, r: 8, p: 1 } })).toThrow(PasswordHashError);
  });
});

describe('the throwaway hash for unknown and disabled accounts', () => {
  it('is made once per hasher at its current cost; each check against it is one derivation at that cost', async () => {
    const { derive, costs } = counting();
    const hasher = createPasswordHasher({ derive }, { cost: cheap });
    expect(await hasher.verifyDummy('mat-khau-dai-1')).toBe(false);
    expect(costs).toEqual([cheap.N, cheap.N]);
    costs.length = 0;
    expect(await hasher.verifyDummy('mat-khau-dai-2')).toBe(false);
    expect(costs).toEqual([cheap.N]);
  });

  it('is made again on the next check when making it failed', async () => {
    let fail = true;
    const derive: DeriveKey = (password, salt, keyLength, cost) => (fail ? Promise.reject(new Error('no memory')) : scryptDerive(password, salt, keyLength, cost));
    const hasher = createPasswordHasher({ derive }, { cost: cheap });
    await expect(hasher.verifyDummy('x')).rejects.toThrow('no memory');
    fail = false;
    expect(await hasher.verifyDummy('x')).toBe(false);
  });
});

describe('the rules for a new password', () => {
  it('want at least 10 characters, counted as people count them, at most 1024 bytes, and not only blanks', () => {
    expect(passwordProblem('mat-khau-dai-1')).toBeUndefined();
    expect(passwordProblem('')).toBe('the password is empty');
    expect(passwordProblem(' '.repeat(12))).toBe('the password is empty');
    expect(passwordProblem('ngan-9chu')).toMatch(/at least 10 characters/u);
    // Ten characters, each two UTF-16 units: enough.
    expect(passwordProblem('😀'.repeat(10))).toBeUndefined();
    expect(passwordProblem('😀'.repeat(5))).toMatch(/at least 10 characters/u);
    expect(passwordProblem('a'.repeat(1024))).toBeUndefined();
    // 700 characters, but 2100 bytes.
    expect(passwordProblem('ậ'.repeat(700))).toMatch(/at most 1024 bytes/u);
  });
});
