/**
 * The object store: the gateway's system of record (studies, results, previews, DICOM, reports, audit).
 * Redis only holds the queue and indexes and is rebuilt from here, so `list()` by prefix is part of the contract.
 *
 * Two real implementations pass one conformance suite (`conformance.ts`): a local folder (`fs-store.ts`, the
 * embedded default) and S3 through the `minio` client (`s3-store.ts`). This file is the contract both keep:
 * the interface, the key grammar, the metadata rules and the error codes.
 */

/** What a put writes, and how. */
export interface PutOptions {
  /** MIME type; default `application/octet-stream`. Printable ASCII, at most 255 characters. */
  contentType?: string;
  /**
   * Hex sha256 the caller expects. The store hashes the body while streaming it and refuses a mismatch
   * (`CXR_STORE_HASH_MISMATCH`) with nothing left behind: no object, no temp file, and an existing object
   * under the key is left untouched.
   */
  sha256?: string;
  /**
   * Refuse if the key exists (`CXR_STORE_EXISTS`), for immutable objects and idempotent replays. When the key
   * already exists the store refuses before reading the body; the caller still owns (and should drain or
   * destroy) its stream.
   */
  ifNoneMatch?: boolean;
  /** User metadata, see `assertValidMetadata` for the rules (S3's x-amz-meta-* limits, ASCII, lowercase names). */
  metadata?: Record<string, string>;
}

export interface ObjectInfo {
  key: string;
  /** bytes of the body */
  size: number;
  /** hex sha256 of the body; empty for an object this store did not write (a foreign S3 object) */
  sha256: string;
  contentType: string;
  lastModified: Date;
  metadata: Record<string, string>;
}

/** A body: bytes in memory, a Node stream, or any async iterable of chunks. */
export type ObjectBody = Uint8Array | NodeJS.ReadableStream | AsyncIterable<Uint8Array>;

export interface ListOptions {
  /** list only keys strictly after this one (for paging: pass the last key you saw) */
  startAfter?: string;
  /** at most this many objects (a positive integer) */
  limit?: number;
}

/**
 * Part of a body, by byte offset as in an HTTP Range: from `start` (default 0) to `end` included (default: the
 * last byte; past it, the last byte). A `start` at or past the end of the body is `CXR_STORE_INVALID_ARGUMENT`
 * (an empty body read whole is fine). Read from the store, not skipped over: resuming a download late in a big
 * object costs what is sent.
 */
export interface GetOptions {
  start?: number;
  end?: number;
}

export interface ObjectStore {
  readonly kind: 'fs' | 's3';
  /**
   * Writes the whole object or nothing. Streams big bodies (bounded memory) and computes the sha256 on the
   * way through. Overwrites are atomic: a concurrent reader sees the old object or the new one, never a mix.
   */
  put(key: string, body: ObjectBody, options?: PutOptions): Promise<ObjectInfo>;
  /** The body, or the part `options` asks for, as a stream; `CXR_STORE_NOT_FOUND` when missing. */
  get(key: string, options?: GetOptions): Promise<NodeJS.ReadableStream>;
  /** The body in memory (for small objects); `CXR_STORE_NOT_FOUND` when missing. */
  getBytes(key: string): Promise<Uint8Array>;
  /** `undefined` when missing. */
  head(key: string): Promise<ObjectInfo | undefined>;
  /**
   * Objects whose key starts with `prefix` (any string of key characters, need not end at a `/`), in
   * lexicographic (byte) order of key, streamed page by page: safe for a 100k-object rebuild.
   */
  list(prefix: string, options?: ListOptions): AsyncIterable<ObjectInfo>;
  /** Idempotent: deleting a missing key succeeds. */
  delete(key: string): Promise<void>;
  /** Waits for puts in flight, then releases resources. Idempotent; every call after it fails (`CXR_STORE_FAILED`). */
  close(): Promise<void>;
}

/**
 * The store's error registry. Codes are stable; the code decides whether retrying may help.
 */
export const ObjectStoreErrorCodes = {
  CXR_STORE_NOT_FOUND: { transient: false, message: 'No object under this key' },
  CXR_STORE_EXISTS: { transient: false, message: 'An object already exists under this key' },
  CXR_STORE_HASH_MISMATCH: { transient: false, message: 'The body does not match the expected sha256' },
  CXR_STORE_INVALID_KEY: { transient: false, message: 'Invalid object key' },
  CXR_STORE_INVALID_ARGUMENT: { transient: false, message: 'Invalid argument' },
  /** network down, server busy (5xx, SlowDown), disk full, I/O error: retry later */
  CXR_STORE_UNAVAILABLE: { transient: true, message: 'The object store is unavailable' },
  /** refused for good: access denied, missing bucket, read-only file system, store closed */
  CXR_STORE_FAILED: { transient: false, message: 'The object store refused the operation' },
  /** an object file that does not parse (fs store) */
  CXR_STORE_CORRUPT: { transient: false, message: 'The stored object is corrupt' },
  /** the store URL or its settings are invalid */
  CXR_STORE_CONFIG: { transient: false, message: 'Invalid object store configuration' },
} as const satisfies Record<string, { transient: boolean; message: string }>;

export type ObjectStoreErrorCode = keyof typeof ObjectStoreErrorCodes;

export class ObjectStoreError extends Error {
  readonly code: ObjectStoreErrorCode;
  readonly transient: boolean;
  /** the key concerned, when there is one */
  readonly key: string | undefined;

  constructor(code: ObjectStoreErrorCode, detail?: string, options?: { key?: string; cause?: unknown }) {
    const base = ObjectStoreErrorCodes[code].message;
    super(detail ? `${base}: ${detail}` : base, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ObjectStoreError';
    this.code = code;
    this.transient = ObjectStoreErrorCodes[code].transient;
    this.key = options?.key;
  }

  toJSON(): { code: ObjectStoreErrorCode; message: string; transient: boolean; key?: string } {
    return { code: this.code, message: this.message, transient: this.transient, ...(this.key === undefined ? {} : { key: this.key }) };
  }
}

export function isObjectStoreError(value: unknown, code?: ObjectStoreErrorCode): value is ObjectStoreError {
  return value instanceof ObjectStoreError && (code === undefined || value.code === code);
}

// ---------------------------------------------------------------------------------------------------------------
// Keys

export const MAX_KEY_LENGTH = 512;
/**
 * One path segment. File-backed stores make each segment a file or folder name (255 bytes on ext4) plus a suffix
 * of their own (`~obj` here, `._S3rver_metadata.json` in s3rver), so segments stay well below that. UIDs are ≤ 64.
 */
export const MAX_SEGMENT_LENGTH = 200;
const KEY_CHARS = /^[A-Za-z0-9._/-]*$/u;

function keyProblem(key: unknown): string | undefined {
  if (typeof key !== 'string') return 'not a string';
  if (key.length === 0) return 'empty';
  if (key.length > MAX_KEY_LENGTH) return `longer than ${MAX_KEY_LENGTH} characters`;
  if (!KEY_CHARS.test(key)) return 'only A-Z a-z 0-9 . _ / - are allowed';
  if (key.startsWith('/')) return 'starts with /';
  for (const segment of key.split('/')) {
    const problem = segmentProblem(segment);
    if (problem) return problem;
  }
  return undefined;
}

function segmentProblem(segment: string): string | undefined {
  if (segment === '') return 'empty segment (// or a trailing /)';
  // `.` is refused too: a folder store would read `a/./b` as `a/b`, S3 as a different key.
  if (segment === '.' || segment === '..') return `"${segment}" segment`;
  if (segment.length > MAX_SEGMENT_LENGTH) return `segment longer than ${MAX_SEGMENT_LENGTH} characters`;
  return undefined;
}

/** True when `key` satisfies `assertValidKey`. */
export function isValidKey(key: unknown): key is string {
  return keyProblem(key) === undefined;
}

/**
 * The one key grammar: 1..512 characters of `[A-Za-z0-9._/-]`, `/`-separated segments, no leading `/`,
 * no empty, `.` or `..` segment, each segment at most 200 characters. DICOM UIDs (digits and dots) fit as is.
 */
export function assertValidKey(key: unknown): asserts key is string {
  const problem = keyProblem(key);
  if (problem) throw new ObjectStoreError('CXR_STORE_INVALID_KEY', `${JSON.stringify(key)}: ${problem}`, { key: typeof key === 'string' ? key : undefined });
}

/**
 * A list prefix: `''` or the start of a key. Whole segments (those before the last `/`) follow the key rules;
 * the last, partial segment may be anything made of key characters.
 */
export function assertValidPrefix(prefix: unknown): asserts prefix is string {
  const fail = (why: string): never => {
    throw new ObjectStoreError('CXR_STORE_INVALID_KEY', `prefix ${JSON.stringify(prefix)}: ${why}`);
  };
  if (typeof prefix !== 'string') return fail('not a string');
  if (prefix === '') return;
  if (prefix.length > MAX_KEY_LENGTH) fail(`longer than ${MAX_KEY_LENGTH} characters`);
  if (!KEY_CHARS.test(prefix)) fail('only A-Z a-z 0-9 . _ / - are allowed');
  if (prefix.startsWith('/')) fail('starts with /');
  const whole = prefix.split('/').slice(0, -1);
  for (const segment of whole) {
    const problem = segmentProblem(segment);
    if (problem) fail(problem);
  }
}

export function assertValidListOptions(options: ListOptions | undefined): { startAfter: string; limit: number } {
  const startAfter = options?.startAfter ?? '';
  if (typeof startAfter !== 'string') throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', 'startAfter must be a string');
  const limit = options?.limit ?? Number.POSITIVE_INFINITY;
  if (limit !== Number.POSITIVE_INFINITY && (!Number.isSafeInteger(limit) || limit < 1)) {
    throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `limit must be a positive integer, got ${String(limit)}`);
  }
  return { startAfter, limit };
}

/**
 * What both stores do about closing: calls after `close()` fail (`CXR_STORE_FAILED`), and `close()` waits for the
 * puts in flight.
 */
export class StoreLifecycle {
  readonly #inFlight = new Set<Promise<unknown>>();
  #closed = false;

  assertOpen(): void {
    if (this.#closed) throw new ObjectStoreError('CXR_STORE_FAILED', 'the store is closed');
  }

  /** Runs `work` as one that `close()` waits for. */
  async track<T>(work: Promise<T>): Promise<T> {
    this.#inFlight.add(work);
    try {
      return await work;
    } finally {
      this.#inFlight.delete(work);
    }
  }

  /** Refuses new calls, then waits for those in flight. false when it was closed already. */
  async close(): Promise<boolean> {
    if (this.#closed) return false;
    this.#closed = true;
    await Promise.allSettled([...this.#inFlight]);
    return true;
  }
}

/** Checks a range; `undefined` means the whole body. */
export function assertValidGetOptions(options: GetOptions | undefined): { start: number; end: number | undefined } | undefined {
  if (options === undefined) return undefined;
  const { start = 0, end } = options;
  if (!Number.isSafeInteger(start) || start < 0) throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `start must be a byte offset (an integer >= 0), got ${String(start)}`);
  if (end !== undefined && (!Number.isSafeInteger(end) || end < start)) {
    throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `end must be an integer >= start (${start}), got ${String(end)}`);
  }
  return start === 0 && end === undefined ? undefined : { start, end };
}

/** The error for a range that starts at or past the end of a body of `size` bytes. */
export function rangePastEnd(key: string, start: number, size: number): ObjectStoreError {
  return new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `range starts at byte ${start}, the object has ${size} bytes`, { key });
}

// ---------------------------------------------------------------------------------------------------------------
// Put options and metadata

export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';
/** Metadata names the stores keep for themselves (the S3 store's `x-amz-meta-cxr-sha256`). */
export const RESERVED_METADATA_PREFIX = 'cxr-';
/** S3 allows 2 KB of user metadata (names + values); both stores enforce it so that they accept the same puts. */
export const MAX_METADATA_BYTES = 2048;
const METADATA_NAME = /^[a-z0-9][a-z0-9-]{0,63}$/u;
/** printable ASCII without leading or trailing spaces (HTTP trims them), or empty */
const METADATA_VALUE = /^(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?$/u;
const CONTENT_TYPE = /^[\x21-\x7e][\x20-\x7e]{0,254}$/u;
const SHA256_HEX = /^[0-9a-fA-F]{64}$/u;

/**
 * Metadata travels as HTTP headers on S3 (`x-amz-meta-NAME`), so both stores accept only what survives that:
 * names of lowercase letters, digits and `-` (not starting with `cxr-`), values of printable ASCII without
 * leading/trailing spaces, 2 KB in all. Put identifiers that need other characters in the body.
 */
export function assertValidMetadata(metadata: unknown): asserts metadata is Record<string, string> {
  const fail = (why: string): never => {
    throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `metadata: ${why}`);
  };
  if (metadata === null || typeof metadata !== 'object' || Array.isArray(metadata)) return fail('must be an object of strings');
  let bytes = 0;
  for (const [name, value] of Object.entries(metadata as Record<string, unknown>)) {
    if (!METADATA_NAME.test(name)) fail(`name ${JSON.stringify(name)} must be 1..64 of a-z 0-9 - (starting with a letter or digit)`);
    if (name.startsWith(RESERVED_METADATA_PREFIX)) fail(`name ${JSON.stringify(name)} is reserved (${RESERVED_METADATA_PREFIX}*)`);
    if (typeof value !== 'string') fail(`value of ${name} must be a string`);
    else if (!METADATA_VALUE.test(value)) fail(`value of ${name} must be printable ASCII without leading or trailing spaces`);
    bytes += name.length + String(value).length;
  }
  if (bytes > MAX_METADATA_BYTES) fail(`${bytes} bytes, at most ${MAX_METADATA_BYTES}`);
}

/** PutOptions checked and filled in, as both stores use them. */
export interface NormalizedPutOptions {
  contentType: string;
  sha256: string | undefined;
  ifNoneMatch: boolean;
  metadata: Record<string, string>;
}

export function normalizePutOptions(options: PutOptions | undefined): NormalizedPutOptions {
  const contentType = options?.contentType ?? DEFAULT_CONTENT_TYPE;
  if (typeof contentType !== 'string' || !CONTENT_TYPE.test(contentType)) {
    throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `contentType ${JSON.stringify(contentType)} must be 1..255 printable ASCII characters`);
  }
  const sha256 = options?.sha256;
  if (sha256 !== undefined && (typeof sha256 !== 'string' || !SHA256_HEX.test(sha256))) {
    throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `sha256 ${JSON.stringify(sha256)} must be 64 hex digits`);
  }
  const metadata = options?.metadata ?? {};
  assertValidMetadata(metadata);
  return { contentType, sha256: sha256?.toLowerCase(), ifNoneMatch: options?.ifNoneMatch === true, metadata: { ...metadata } };
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies (shared by the implementations)

/**
 * Wraps a failure of the caller's body (its stream errored, a size limit it enforces fired), so that a store can
 * tell it from its own failures and rethrow the caller's error unchanged (`error.cause`).
 */
export class BodySourceError extends Error {
  constructor(cause: unknown) {
    super(cause instanceof Error ? cause.message : String(cause), { cause });
    this.name = 'BodySourceError';
  }
}

/**
 * The body's chunks as Uint8Arrays. A chunk may be a view into a buffer the producer reuses once the consumer
 * asks for the next one: use or copy it before continuing. Errors of the source come out as `BodySourceError`.
 * Abandoning the iteration does not destroy the source: the caller owns its stream.
 */
export async function* bodyChunks(body: ObjectBody): AsyncGenerator<Uint8Array, void, undefined> {
  if (body instanceof Uint8Array) {
    yield body;
    return;
  }
  if (body === null || typeof body !== 'object' || !(Symbol.asyncIterator in body)) {
    throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', 'body must be a Uint8Array, a readable stream or an async iterable of Uint8Array');
  }
  const source = (body as AsyncIterable<unknown>)[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<unknown>;
    try {
      next = await source.next();
    } catch (err) {
      throw new BodySourceError(err);
    }
    if (next.done) return;
    const chunk = next.value;
    if (chunk instanceof Uint8Array) yield chunk;
    else if (typeof chunk === 'string') yield Buffer.from(chunk, 'utf8');
    else throw new ObjectStoreError('CXR_STORE_INVALID_ARGUMENT', `body chunk of type ${typeof chunk}; expected Uint8Array`);
  }
}

/** Reads a stream to the end into one buffer. */
export async function readAll(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk);
  return Buffer.concat(chunks);
}

/** A Buffer over the same memory as `bytes` (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
