import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Passwords of the gateway's users and the edge's radiographers, hashed one way in one place. scrypt is a
 * memory-hard function in Node's own crypto (no native addon to install). Stored as `scrypt$N$r$p$salt$hash` (salt
 * and hash in base64url): self-describing, so the cost can rise and older hashes still verify (each side rehashes at
 * the current cost on the next good sign-in: gateway/src/accounts/accounts.ts, edge-agent/src/accounts/sign-in.ts).
 */
export interface ScryptCost {
  /** CPU and memory cost, a power of two */
  readonly N: number;
  /** block size */
  readonly r: number;
  /** parallelism */
  readonly p: number;
}

/** N = 2^17, r = 8, p = 1: 128 MiB and about 0.4 to 0.5 s per hash on a 2-core server or a station PC (OWASP's scrypt minimum). */
export const DEFAULT_SCRYPT_COST: ScryptCost = { N: 2 ** 17, r: 8, p: 1 };

/** One scrypt derivation; passed in so a test can count them (the real one is Node's). */
export type DeriveKey = (password: string, salt: Buffer, keyLength: number, cost: ScryptCost) => Promise<Buffer>;

const KEY_BYTES = 32;
const SALT_BYTES = 16;
// Bounds of a stored hash's parameters: a record edited to N = 2^30 must not make a sign-in allocate 128 GiB, nor
// one edited to p = 16 make every sign-in take 16 times as long (the edge checks one password at a time).
const MIN_LOG_N = 10;
const MAX_LOG_N = 20;
const MAX_R = 32;
const MAX_P = 4;
/** scrypt takes 128 * N * r bytes: at most twice today's cost, which a station PC can still spare. */
const MAX_MEMORY_BYTES = 256 * 1024 * 1024;

/** A stored hash that cannot be read: an error (a corrupt account record), never a quiet "wrong password". */
export class PasswordHashError extends Error {
  readonly code = 'CXR_PASSWORD_HASH_MALFORMED';
  constructor(detail: string) {
    super(`stored password hash is malformed: ${detail}`);
    this.name = 'PasswordHashError';
  }
}

export const scryptDerive: DeriveKey = (password, salt, keyLength, cost) =>
  new Promise((resolve, reject) => {
    // maxmem: scrypt needs 128 * N * r bytes; twice that leaves room for Node's own accounting.
    scrypt(password.normalize('NFKC'), salt, keyLength, { N: cost.N, r: cost.r, p: cost.p, maxmem: 256 * cost.N * cost.r }, (err, key) => (err ? reject(err) : resolve(key)));
  });

interface ParsedHash {
  readonly cost: ScryptCost;
  readonly salt: Buffer;
  readonly hash: Buffer;
}

function parse(stored: string): ParsedHash {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') throw new PasswordHashError('expected scrypt$N$r$p$salt$hash');
  const [, n, r, p, salt, hash] = parts as [string, string, string, string, string, string];
  const num = (text: string): number => (/^[1-9][0-9]{0,9}$/u.test(text) ? Number(text) : NaN);
  const cost = { N: num(n), r: num(r), p: num(p) };
  const logN = Math.log2(cost.N);
  if (!Number.isInteger(logN) || logN < MIN_LOG_N || logN > MAX_LOG_N) throw new PasswordHashError(`N must be a power of two from 2^${MIN_LOG_N} to 2^${MAX_LOG_N}`);
  if (!(cost.r >= 1 && cost.r <= MAX_R) || !(cost.p >= 1 && cost.p <= MAX_P)) throw new PasswordHashError('r or p out of range');
  if (128 * cost.N * cost.r > MAX_MEMORY_BYTES) throw new PasswordHashError(`N and r ask for more than ${MAX_MEMORY_BYTES / 2 ** 20} MiB`);
  const b64 = /^[A-Za-z0-9_-]+$/u;
  if (!b64.test(salt) || !b64.test(hash)) throw new PasswordHashError('salt and hash must be base64url');
  const saltBytes = Buffer.from(salt, 'base64url');
  const hashBytes = Buffer.from(hash, 'base64url');
  if (saltBytes.length < SALT_BYTES || hashBytes.length !== KEY_BYTES) throw new PasswordHashError(`salt of at least ${SALT_BYTES} bytes and a hash of ${KEY_BYTES}`);
  return { cost, salt: saltBytes, hash: hashBytes };
}

export interface PasswordHasher {
  readonly cost: ScryptCost;
  hash(password: string): Promise<string>;
  /** Throws PasswordHashError for a stored hash it cannot read. */
  verify(password: string, stored: string): Promise<boolean>;
  /** True when the stored hash was made at another cost than the current one. Throws PasswordHashError like verify. */
  needsRehash(stored: string): boolean;
  /**
   * Verifies against a throwaway hash made at the current cost (once per hasher, on first use), so an unknown or
   * disabled account costs one derivation like a known one: the answer's timing does not tell which it was.
   */
  verifyDummy(password: string): Promise<false>;
}

export function createPasswordHasher(deps: { derive?: DeriveKey } = {}, options: { cost?: ScryptCost } = {}): PasswordHasher {
  const derive = deps.derive ?? scryptDerive;
  const cost = options.cost ?? DEFAULT_SCRYPT_COST;
  // A cost outside the bounds would make hashes this very hasher refuses to read.
  parse(['scrypt', cost.N, cost.r, cost.p, 'A'.repeat(22), 'A'.repeat(43)].join('$'));
  let dummy: Promise<string> | undefined;

  const hash = async (password: string): Promise<string> => {
    const salt = randomBytes(SALT_BYTES);
    const key = await derive(password, salt, KEY_BYTES, cost);
    return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64url'), key.toString('base64url')].join('$');
  };
  const verify = async (password: string, stored: string): Promise<boolean> => {
    const parsed = parse(stored);
    const actual = await derive(password, parsed.salt, KEY_BYTES, parsed.cost);
    return timingSafeEqual(parsed.hash, actual);
  };
  return {
    cost,
    hash,
    verify,
    needsRehash(stored: string): boolean {
      const { cost: was } = parse(stored);
      return was.N !== cost.N || was.r !== cost.r || was.p !== cost.p;
    },
    async verifyDummy(password: string): Promise<false> {
      // A failed try is not kept: the next sign-in makes the hash again rather than failing for ever.
      dummy ??= hash(randomBytes(24).toString('base64url')).catch((err: unknown) => {
        dummy = undefined;
        throw err;
      });
      await verify(password, await dummy);
      return false;
    },
  };
}

/** A hash at the default cost. */
export function hashPassword(password: string): Promise<string> {
  return createPasswordHasher().hash(password);
}

/** Throws PasswordHashError for a malformed stored hash. */
export function verifyPassword(password: string, stored: string): Promise<boolean> {
  return createPasswordHasher().verify(password, stored);
}

/** The most a password may be: what the sign-in routes take (1024 characters) holds every password this allows. */
export const MAX_PASSWORD_BYTES = 1024;
export const MIN_PASSWORD_CHARACTERS = 10;

/**
 * Why a new password is refused (undefined: it is fine), for every place one is set (the edge's and the gateway's
 * admin commands): long enough to resist guessing, short enough to hash and to be typed into a sign-in.
 */
export function passwordProblem(password: string): string | undefined {
  if (password.trim().length === 0) return 'the password is empty';
  // Characters as people count them (code points), not UTF-16 units.
  if ([...password].length < MIN_PASSWORD_CHARACTERS) return `the password must have at least ${MIN_PASSWORD_CHARACTERS} characters`;
  if (Buffer.byteLength(password) > MAX_PASSWORD_BYTES) return `the password must be at most ${MAX_PASSWORD_BYTES} bytes`;
  return undefined;
}
