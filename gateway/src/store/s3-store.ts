/**
 * The object store on S3 (MinIO in production, any S3 endpoint), through the `minio` client. Passes the same
 * conformance suite as the folder store.
 *
 * Each object is one S3 object under its key; the body's sha256 rides along as user metadata
 * (`x-amz-meta-cxr-sha256`), the caller's metadata as `x-amz-meta-NAME`, the content type as Content-Type.
 *
 * How a put works, and why:
 * - The body is read once, hashed on the way, into a spool: memory up to `partSize` (default 8 MiB), then an
 *   anonymous temp file (opened and unlinked at once: a crash leaves nothing). Only then is anything sent.
 *   So the sha256 is known before the upload starts: a mismatch is refused with nothing ever sent to S3 (no
 *   temporary key to clean, no copy), and the hash goes into the metadata of the one PUT that makes the object
 *   visible, never added after it. (The alternative, upload to a temporary key, verify, server-side copy to the
 *   final key, costs a second write of every object on the server, leaves orphans on a crash and needs
 *   UploadPartCopy above 5 GB.) The spool also bounds memory: the minio client reads a whole request body into
 *   memory to sign it, so bodies are sent as one PUT up to `partSize`, and as a multipart upload of `partSize`
 *   parts above that, one part in memory at a time.
 * - Multipart uploads are driven here (initiate, parts, complete) rather than by minio's putObject, which
 *   resumes "the latest incomplete upload of this key": two writers of one key could then complete each other's
 *   parts. A failed multipart upload is aborted; one cut short by a crash is invisible (configure the bucket's
 *   AbortIncompleteMultipartUpload lifecycle rule to reclaim its parts).
 *
 * ifNoneMatch: the PUT (or CompleteMultipartUpload) carries `If-None-Match: *`, S3's conditional write (AWS since
 * 2024-08, MinIO): the server refuses with 412 if the key exists, atomically, whichever gateway process races.
 * Before that, a HEAD refuses a replay without reading or sending its body, and ifNoneMatch puts of one key in this
 * process take turns. A server that ignores If-None-Match (s3rver, old MinIO) still gets the HEAD and the
 * in-process turn, but two processes racing on it can both "win", the later write replacing the earlier.
 * (CopyObject conditions do not help: `x-amz-copy-source-if-none-match` tests the source's ETag, not whether the
 * target exists.)
 *
 * Errors: network failures, 5xx, SlowDown and a full spool disk are CXR_STORE_UNAVAILABLE (transient); minio's
 * own retries are off (they cannot replay a stream and log to the console): the caller retries transient errors.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdir, open, unlink, type FileHandle } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PassThrough, type Readable } from 'node:stream';
import * as Minio from 'minio';
import {
  BodySourceError,
  DEFAULT_CONTENT_TYPE,
  ObjectStoreError,
  assertValidGetOptions,
  assertValidKey,
  assertValidListOptions,
  assertValidPrefix,
  bodyChunks,
  isValidKey,
  normalizePutOptions,
  StoreLifecycle,
  rangePastEnd,
  readAll,
  type GetOptions,
  type ListOptions,
  type NormalizedPutOptions,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from './object-store.js';

export interface S3ObjectStoreOptions {
  /** host name or IP of the S3 endpoint */
  endPoint: string;
  port?: number;
  useSSL?: boolean;
  accessKey: string;
  secretKey: string;
  bucket: string;
  /** default `us-east-1` (MinIO's default too); set it to skip nothing but a location lookup */
  region?: string;
  /** bytes of a multipart part, and of the in-memory spool; at least 5 MiB (S3's minimum part). Default 8 MiB. */
  partSize?: number;
  /** folder of the spool files for bodies above `partSize` (anonymous: unlinked while open). Default os.tmpdir(). */
  spoolDir?: string;
  /** keys asked for per ListObjectsV2 request, 1..1000. Default 1000. */
  listPageSize?: number;
  /** HEAD requests in flight while listing (a listing does not return metadata). Default 16. */
  headConcurrency?: number;
  /** create the bucket when missing. Default true. */
  createBucket?: boolean;
  /** sockets to the endpoint. Default 64. */
  maxSockets?: number;
}

export interface S3ObjectStore extends ObjectStore {
  readonly kind: 's3';
  readonly bucket: string;
  /** Creates the bucket if it is missing (done by `createS3ObjectStore` unless `createBucket: false`). */
  ensureBucket(): Promise<void>;
}

const MIN_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_PART_SIZE = 8 * 1024 * 1024;
const META_PREFIX = 'x-amz-meta-';
const SHA256_META = 'cxr-sha256';
/** gather small chunks up to this before a spool write */
const SPOOL_FLUSH_BYTES = 1024 * 1024;

/** Node and network errors that may pass. */
const TRANSIENT_ERRNO = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ENETDOWN', 'EHOSTDOWN',
  'EAI_AGAIN', 'ENOTFOUND', 'ECONNABORTED', 'ESOCKETTIMEDOUT', 'ERR_STREAM_PREMATURE_CLOSE',
  'ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE',
]);
/** S3 error codes that may pass. */
const TRANSIENT_S3_CODES = new Set([
  'SlowDown', 'InternalError', 'ServiceUnavailable', 'RequestTimeout', 'RequestTimeTooSkewed', 'OperationAborted',
  'ConditionalRequestConflict', 'Throttling', 'ThrottlingException', 'XMinioServerNotInitialized',
  'XMinioStorageFull', 'XMinioBackendDown', 'XMinioReadQuorum', 'XMinioWriteQuorum',
]);

export async function createS3ObjectStore(options: S3ObjectStoreOptions): Promise<S3ObjectStore> {
  const store = new S3Store(options);
  if (options.createBucket !== false) {
    try {
      await store.ensureBucket();
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}

class S3Store implements S3ObjectStore {
  readonly kind = 's3' as const;
  readonly bucket: string;
  readonly #client: Minio.Client;
  readonly #agent: http.Agent;
  readonly #region: string;
  readonly #partSize: number;
  readonly #spoolDir: string;
  readonly #pageSize: number;
  readonly #headConcurrency: number;
  readonly #turns = new KeyedTurns();
  readonly #lifecycle = new StoreLifecycle();

  constructor(options: S3ObjectStoreOptions) {
    const problems: string[] = [];
    this.#partSize = options.partSize ?? DEFAULT_PART_SIZE;
    if (!Number.isSafeInteger(this.#partSize) || this.#partSize < MIN_PART_SIZE || this.#partSize > 5 * 1024 ** 3) problems.push('partSize must be 5 MiB..5 GiB');
    this.#pageSize = options.listPageSize ?? 1000;
    if (!Number.isSafeInteger(this.#pageSize) || this.#pageSize < 1 || this.#pageSize > 1000) problems.push('listPageSize must be 1..1000');
    this.#headConcurrency = options.headConcurrency ?? 16;
    if (!Number.isSafeInteger(this.#headConcurrency) || this.#headConcurrency < 1) problems.push('headConcurrency must be a positive integer');
    if (!options.accessKey || !options.secretKey) problems.push('accessKey and secretKey are required');
    if (!isValidBucketName(options.bucket)) problems.push(`invalid bucket name ${JSON.stringify(options.bucket)} (3..63 of a-z 0-9 . -)`);
    if (problems.length > 0) throw new ObjectStoreError('CXR_STORE_CONFIG', problems.join('; '));
    this.bucket = options.bucket;
    this.#region = options.region ?? 'us-east-1';
    this.#spoolDir = options.spoolDir ?? os.tmpdir();
    const useSSL = options.useSSL ?? false;
    const agentOptions = { keepAlive: true, maxSockets: options.maxSockets ?? 64 };
    this.#agent = useSSL ? new https.Agent(agentOptions) : new http.Agent(agentOptions);
    try {
      this.#client = new Minio.Client({
        endPoint: options.endPoint,
        ...(options.port === undefined ? {} : { port: options.port }),
        useSSL,
        accessKey: options.accessKey,
        secretKey: options.secretKey,
        region: this.#region,
        partSize: this.#partSize,
        transportAgent: this.#agent,
        retryOptions: { disableRetry: true },
      });
    } catch (err) {
      this.#agent.destroy();
      throw new ObjectStoreError('CXR_STORE_CONFIG', err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  async ensureBucket(): Promise<void> {
    this.#assertOpen();
    try {
      if (await this.#client.bucketExists(this.bucket)) return;
      await this.#client.makeBucket(this.bucket, this.#region);
    } catch (err) {
      const code = errorCode(err);
      // Another process made it first.
      if ((code === 'BucketAlreadyOwnedByYou' || code === 'BucketAlreadyExists') && (await this.#client.bucketExists(this.bucket).catch(() => false))) return;
      throw s3Error(err);
    }
  }

  async put(key: string, body: ObjectBody, options?: PutOptions): Promise<ObjectInfo> {
    this.#assertOpen();
    assertValidKey(key);
    const opts = normalizePutOptions(options);
    return this.#track(this.#put(key, body, opts));
  }

  async get(key: string, options?: GetOptions): Promise<NodeJS.ReadableStream> {
    this.#assertOpen();
    assertValidKey(key);
    const range = assertValidGetOptions(options);
    if (range) {
      // S3 answers a range past the end with 416, some S3-protocol servers with the whole body: ask the size first.
      const info = await this.#head(key);
      if (!info) throw new ObjectStoreError('CXR_STORE_NOT_FOUND', key, { key });
      if (range.start >= info.size) throw rangePastEnd(key, range.start, info.size);
    }
    let response: Readable;
    try {
      response = range
        ? await this.#client.getPartialObject(this.bucket, key, range.start, range.end === undefined ? undefined : range.end - range.start + 1)
        : await this.#client.getObject(this.bucket, key);
    } catch (err) {
      if (range && errorCode(err) === 'InvalidRange') {
        const size = (await this.#head(key))?.size;
        if (size !== undefined) throw rangePastEnd(key, range.start, size);
      }
      throw s3Error(err, key);
    }
    // A failure mid-body (connection reset) reaches the reader as a store error too.
    const body = new PassThrough();
    response.on('error', (err: unknown) => body.destroy(s3Error(err, key)));
    body.on('close', () => {
      if (!response.readableEnded) response.destroy();
    });
    response.pipe(body);
    return body;
  }

  async getBytes(key: string): Promise<Uint8Array> {
    return readAll(await this.get(key));
  }

  async head(key: string): Promise<ObjectInfo | undefined> {
    this.#assertOpen();
    assertValidKey(key);
    return this.#head(key);
  }

  async *list(prefix: string, options?: ListOptions): AsyncGenerator<ObjectInfo, void, undefined> {
    this.#assertOpen();
    assertValidPrefix(prefix);
    const { startAfter, limit } = assertValidListOptions(options);
    let after = startAfter;
    let count = 0;
    for (;;) {
      const want = Math.min(this.#pageSize, limit - count);
      let page: { objects: { name?: string }[]; isTruncated: boolean };
      try {
        // Paged by start-after (the last key seen), not by continuation token: the same for every server.
        page = await this.#client.listObjectsV2Query(this.bucket, prefix, '', '', want, after);
      } catch (err) {
        throw s3Error(err);
      }
      const names = page.objects.map((o) => o.name).filter((n): n is string => n !== undefined);
      // Keys this store could not have written (spaces, ...) are skipped: its API could not address them.
      const keys = names.filter((n) => n > after && n.startsWith(prefix) && isValidKey(n));
      // A listing has no user metadata: HEAD each key, a few at a time, yielding in key order.
      const pending: Promise<ObjectInfo | undefined>[] = [];
      let next = 0;
      const launch = (): void => {
        while (pending.length < this.#headConcurrency && next < keys.length) {
          const head = this.#head(keys[next++]!);
          head.catch(() => undefined); // awaited below; this only keeps an abandoned listing quiet
          pending.push(head);
        }
      };
      launch();
      while (pending.length > 0) {
        const info = await pending.shift()!;
        launch();
        if (!info) continue; // deleted since the listing
        yield info;
        if (++count >= limit) return;
      }
      const last = names.at(-1);
      // Stop at a short, untruncated page; a full page may have more behind it even if the server says otherwise.
      if ((!page.isTruncated && names.length < want) || last === undefined || last <= after) return;
      after = last;
    }
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen();
    assertValidKey(key);
    await this.#track(
      (async () => {
        try {
          await this.#client.removeObject(this.bucket, key); // 204 whether or not the key existed
        } catch (err) {
          throw s3Error(err, key);
        }
      })(),
    );
  }

  async close(): Promise<void> {
    if (await this.#lifecycle.close()) this.#agent.destroy();
  }

  // -------------------------------------------------------------------------------------------------------------

  async #put(key: string, body: ObjectBody, opts: NormalizedPutOptions): Promise<ObjectInfo> {
    const endTurn = opts.ifNoneMatch ? await this.#turns.take(key) : undefined;
    try {
      if (opts.ifNoneMatch && (await this.#head(key))) throw new ObjectStoreError('CXR_STORE_EXISTS', key, { key });
      let spool: Spool;
      try {
        spool = await spoolBody(body, this.#partSize, this.#spoolDir);
      } catch (err) {
        if (err instanceof BodySourceError) throw err.cause;
        throw s3Error(err, key);
      }
      try {
        if (opts.sha256 !== undefined && opts.sha256 !== spool.sha256) {
          throw new ObjectStoreError('CXR_STORE_HASH_MISMATCH', `${key}: expected ${opts.sha256}, the body has ${spool.sha256}`, { key });
        }
        const headers: Record<string, string> = { 'Content-Type': opts.contentType, [META_PREFIX + SHA256_META]: spool.sha256 };
        for (const [name, value] of Object.entries(opts.metadata)) headers[META_PREFIX + name] = value;
        try {
          if (spool.memory) {
            await this.#client.putObject(this.bucket, key, spool.memory, spool.size, opts.ifNoneMatch ? { ...headers, 'If-None-Match': '*' } : headers);
          } else {
            await this.#multipart(key, spool, headers, opts.ifNoneMatch);
          }
        } catch (err) {
          if (errorCode(err) === 'PreconditionFailed') throw new ObjectStoreError('CXR_STORE_EXISTS', key, { key, cause: err });
          throw s3Error(err, key);
        }
        // S3 answers a PUT without Last-Modified; this is the local clock (head() and list() give the server's).
        return { key, size: spool.size, sha256: spool.sha256, contentType: opts.contentType, lastModified: new Date(), metadata: { ...opts.metadata } };
      } finally {
        await spool.dispose();
      }
    } finally {
      endTurn?.();
    }
  }

  async #multipart(key: string, spool: Spool, headers: Record<string, string>, ifNoneMatch: boolean): Promise<void> {
    const uploadId = await this.#client.initiateNewMultipartUpload(this.bucket, key, headers);
    try {
      const parts: { part: number; etag: string }[] = [];
      const buffer = Buffer.allocUnsafe(this.#partSize);
      for (let part = 1, offset = 0; offset < spool.size; part++, offset += this.#partSize) {
        const payload = buffer.subarray(0, Math.min(this.#partSize, spool.size - offset));
        await spool.read(payload, offset);
        const { etag } = await this.#client.uploadPart({ bucketName: this.bucket, objectName: key, uploadID: uploadId, partNumber: part, headers: {} }, payload);
        parts.push({ part, etag });
      }
      await this.#complete(key, uploadId, parts, ifNoneMatch);
    } catch (err) {
      await this.#client.abortMultipartUpload(this.bucket, key, uploadId).catch(() => undefined);
      throw err;
    }
  }

  /** CompleteMultipartUpload, with If-None-Match (minio's own completeMultipartUpload takes no headers). */
  async #complete(key: string, uploadId: string, parts: { part: number; etag: string }[], ifNoneMatch: boolean): Promise<void> {
    const payload =
      '<CompleteMultipartUpload xmlns="http://s3.amazonaws.com/doc/2006-03-01/">' +
      parts.map((p) => `<Part><PartNumber>${p.part}</PartNumber><ETag>${escapeXml(p.etag)}</ETag></Part>`).join('') +
      '</CompleteMultipartUpload>';
    const response = await this.#client.makeRequestAsync(
      { method: 'POST', bucketName: this.bucket, objectName: key, query: `uploadId=${encodeURIComponent(uploadId)}`, headers: ifNoneMatch ? { 'If-None-Match': '*' } : {} },
      payload,
      [200],
    );
    const text = (await readAll(response)).toString('utf8');
    // S3 may report a failed complete as an <Error> document after a 200 status.
    const code = /<Error>[\s\S]*?<Code>([^<]*)<\/Code>/u.exec(text)?.[1];
    if (code !== undefined) throw Object.assign(new Error(`CompleteMultipartUpload failed: ${code}`), { code });
  }

  async #head(key: string): Promise<ObjectInfo | undefined> {
    let headers: http.IncomingHttpHeaders;
    try {
      // A raw HEAD: statObject folds x-amz-meta-* into the standard headers, losing which was which.
      ({ headers } = await this.#client.makeRequestAsyncOmit({ method: 'HEAD', bucketName: this.bucket, objectName: key }));
    } catch (err) {
      const code = errorCode(err);
      if (code === 'NotFound' || code === 'NoSuchKey') return undefined;
      throw s3Error(err, key);
    }
    const metadata: Record<string, string> = {};
    let sha256 = '';
    for (const [name, value] of Object.entries(headers)) {
      if (!name.startsWith(META_PREFIX) || typeof value !== 'string') continue;
      const short = name.slice(META_PREFIX.length);
      if (short === SHA256_META) sha256 = value;
      else if (!short.startsWith('cxr-')) metadata[short] = value;
    }
    const lastModified = headers['last-modified'];
    return {
      key,
      size: Number(headers['content-length'] ?? 0),
      sha256,
      contentType: headers['content-type'] ?? DEFAULT_CONTENT_TYPE,
      lastModified: lastModified ? new Date(lastModified) : new Date(0),
      metadata,
    };
  }

  #assertOpen(): void {
    this.#lifecycle.assertOpen();
  }

  #track<T>(work: Promise<T>): Promise<T> {
    return this.#lifecycle.track(work);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The spool: the body, read once and hashed, in memory up to a limit and in an anonymous temp file beyond it.

interface Spool {
  size: number;
  sha256: string;
  /** the whole body when it fit in memory */
  memory: Buffer | undefined;
  /** fills `into` from `offset` */
  read(into: Buffer, offset: number): Promise<void>;
  dispose(): Promise<void>;
}

async function spoolBody(body: ObjectBody, memoryLimit: number, dir: string): Promise<Spool> {
  const hash = createHash('sha256');
  let memory: Buffer[] = [];
  let size = 0;
  let file: FileHandle | undefined;
  let pending: Buffer[] = [];
  let pendingBytes = 0;
  const flush = async (): Promise<void> => {
    if (!file || pendingBytes === 0) return;
    const data = Buffer.concat(pending, pendingBytes);
    pending = [];
    pendingBytes = 0;
    await writeFully(file, data);
  };
  try {
    for await (const chunk of bodyChunks(body)) {
      hash.update(chunk);
      size += chunk.byteLength;
      if (!file && size > memoryLimit) {
        file = await openAnonymous(dir);
        pending = memory;
        pendingBytes = size - chunk.byteLength;
        memory = [];
      }
      const copy = Buffer.from(chunk); // the producer may reuse its buffer
      if (!file) {
        memory.push(copy);
      } else {
        pending.push(copy);
        pendingBytes += copy.length;
        if (pendingBytes >= SPOOL_FLUSH_BYTES) await flush();
      }
    }
    await flush();
  } catch (err) {
    await file?.close().catch(() => undefined);
    throw err;
  }
  const sha256 = hash.digest('hex');
  if (!file) {
    const whole = Buffer.concat(memory, size);
    return { size, sha256, memory: whole, read: async (into, offset) => void whole.copy(into, 0, offset, offset + into.length), dispose: async () => undefined };
  }
  const handle = file;
  return {
    size,
    sha256,
    memory: undefined,
    read: async (into, offset) => {
      for (let done = 0; done < into.length; ) {
        const { bytesRead } = await handle.read(into, done, into.length - done, offset + done);
        if (bytesRead === 0) throw new Error('spool file shorter than written');
        done += bytesRead;
      }
    },
    dispose: async () => handle.close(),
  };
}

/** A temp file that no longer has a name: nothing to clean up after a crash. */
async function openAnonymous(dir: string): Promise<FileHandle> {
  await mkdir(dir, { recursive: true });
  const file = path.join(dir, `cxr-s3-spool-${process.pid}-${randomUUID()}.tmp`);
  const handle = await open(file, 'wx+', 0o600);
  await unlink(file).catch(() => undefined);
  return handle;
}

async function writeFully(handle: FileHandle, bytes: Buffer): Promise<void> {
  for (let offset = 0; offset < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.length - offset);
    offset += bytesWritten;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** Puts of one key in this process take turns (FIFO). */
class KeyedTurns {
  readonly #tails = new Map<string, Promise<void>>();

  async take(key: string): Promise<() => void> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    let end!: () => void;
    const mine = new Promise<void>((resolve) => (end = resolve));
    const tail = previous.then(() => mine);
    this.#tails.set(key, tail);
    await previous;
    return () => {
      end();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }
}

/** S3's rules (3..63 of a-z 0-9 . -, starting and ending with a letter or digit, not an IP address). */
export function isValidBucketName(name: unknown): name is string {
  return typeof name === 'string' && /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/u.test(name) && !/\.\.|\.-|-\./u.test(name) && !/^\d+\.\d+\.\d+\.\d+$/u.test(name);
}

function escapeXml(text: string): string {
  return text.replace(/[<>&'"]/gu, (c) => `&#${c.charCodeAt(0)};`);
}

function errorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** minio and Node errors as store errors: missing key, transient (network, 5xx, throttling) or permanent. */
function s3Error(err: unknown, key?: string): ObjectStoreError {
  if (err instanceof ObjectStoreError) return err;
  const code = errorCode(err);
  const message = err instanceof Error ? err.message : String(err);
  const detail = code && !message.includes(code) ? `${code}: ${message}` : message;
  if (key !== undefined && (code === 'NoSuchKey' || code === 'NotFound')) return new ObjectStoreError('CXR_STORE_NOT_FOUND', key, { key, cause: err });
  // With retries off, minio reports a 5xx as a plain "Retryable HTTP status" error.
  if ((code && (TRANSIENT_ERRNO.has(code) || TRANSIENT_S3_CODES.has(code))) || /Retryable HTTP status/u.test(message)) {
    return new ObjectStoreError('CXR_STORE_UNAVAILABLE', detail, { key, cause: err });
  }
  return new ObjectStoreError('CXR_STORE_FAILED', detail, { key, cause: err });
}
