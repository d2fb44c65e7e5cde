import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Radiographers' passwords, hashed with scrypt from Node's own crypto (no native addon). Cost N = 2^17, r = 8, p = 1:
 * 128 MiB and about half a second per hash on a station PC, so a stolen accounts file is slow to guess from.
 */
export const passwordCost = { N: 2 ** 17, r: 8, p: 1, keyLength: 32, saltLength: 16 } as const;

/** scrypt needs 128 * N * r bytes; Node refuses above `maxmem`. A stored hash may not ask for more than this. */
const maxmem = 256 * 1024 * 1024;
const maxN = 2 ** 20;

/** The key derivation, passed in so that a test can see what it is asked to do (it is the real scrypt otherwise). */
export type DeriveKey = (password: string, salt: Buffer, cost: { N: number; r: number; p: number; keyLength: number }) => Promise<Buffer>;

export const scryptDerive: DeriveKey = (password, salt, cost) =>
  new Promise((resolve, reject) => {
    scrypt(password.normalize('NFKC'), salt, cost.keyLength, { N: cost.N, r: cost.r, p: cost.p, maxmem }, (err, key) => (err ? reject(err) : resolve(key)));
  });

export interface ParsedHash {
  readonly N: number;
  readonly r: number;
  readonly p: number;
  readonly salt: Buffer;
  readonly key: Buffer;
}

/** `scrypt$N$r$p$salt$key` (salt and key base64url): self-describing, so the cost can rise later. */
export function parseHash(stored: string): ParsedHash | undefined {
  const [scheme, n, r, p, salt, key, ...rest] = stored.split('$');
  if (scheme !== 'scrypt' || rest.length > 0 || !salt || !key) return undefined;
  const N = Number(n);
  const R = Number(r);
  const P = Number(p);
  if (!Number.isInteger(N) || N < 2 || N > maxN || (N & (N - 1)) !== 0 || !Number.isInteger(R) || R < 1 || R > 32 || !Number.isInteger(P) || P < 1 || P > 4) return undefined;
  if (128 * N * R > maxmem) return undefined;
  const saltBytes = Buffer.from(salt, 'base64url');
  const keyBytes = Buffer.from(key, 'base64url');
  if (saltBytes.length < 16 || keyBytes.length < 16) return undefined;
  return { N, r: R, p: P, salt: saltBytes, key: keyBytes };
}

export async function hashPassword(password: string, derive: DeriveKey = scryptDerive): Promise<string> {
  const salt = randomBytes(passwordCost.saltLength);
  const key = await derive(password, salt, passwordCost);
  return ['scrypt', passwordCost.N, passwordCost.r, passwordCost.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/**
 * What an unknown or disabled account is checked against: a real hash of a random password at the same cost, so the
 * answer takes as long as for a known account and the time does not tell which names exist.
 */
export const dummyHash = 'scrypt$131072$8$1$c0SM6yd5uPRQrnwWj0T18w$jQnqiPlaHDTGizgvApRyNYp9il8pMj5dqjxF5UB8JGk';

/** Constant-time comparison; a malformed stored hash still costs one full derivation (at the dummy's cost). */
export async function verifyPassword(password: string, stored: string, derive: DeriveKey = scryptDerive): Promise<boolean> {
  const parsed = parseHash(stored);
  const target = parsed ?? (parseHash(dummyHash) as ParsedHash);
  const actual = await derive(password, target.salt, { N: target.N, r: target.r, p: target.p, keyLength: target.key.length });
  return parsed !== undefined && actual.length === target.key.length && timingSafeEqual(actual, target.key);
}

/** Password rules for `cxr-edge admin`: long enough to resist guessing, short enough to hash. */
export function passwordProblem(password: string): string | undefined {
  if (password.trim().length === 0) return 'the password is empty';
  if ([...password].length < 10) return 'the password must have at least 10 characters';
  if (Buffer.byteLength(password) > 1024) return 'the password must be at most 1024 bytes';
  return undefined;
}
