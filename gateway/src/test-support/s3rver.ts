import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, rename, rm } from 'node:fs/promises';
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { finished } from 'node:stream/promises';
import S3rver, { type S3rverObject } from 's3rver';

export const S3RVER_KEYS = { accessKey: 'S3RVER', secretKey: 'S3RVER' }; // s3rver's one account

// ---------------------------------------------------------------------------------------------------------------
// A real S3-protocol server (s3rver, in this process, on a free loopback port, in a fresh folder).
//
// s3rver 3.7 falls short of S3 in three places this store's contract rests on. The harness closes exactly those
// gaps, each the way S3 (and MinIO, production's server) documents it; everything else is s3rver as shipped:
//  1. Conditional create: S3 refuses a PUT or CompleteMultipartUpload carrying `If-None-Match: *` with
//     412 PreconditionFailed when the key exists, atomically. s3rver ignores the header.
//  2. Atomic overwrite: an S3 GET returns the old or the new object. s3rver truncates the object's file and streams
//     the new body into it, and keeps its metadata and md5 in other files, so a reader can get a mix. Here its store
//     writes the new version under a staging name and renames it into place while readers of that key wait.
//  3. Listing: S3 lists keys in UTF-8 byte order; s3rver in folder-walk order. And every truncated ListObjectsV2
//     answers 500 on Node >= 17: its continuation token is DES-encrypted, which OpenSSL 3 refuses. Here the
//     listing is sorted and never marked truncated; the store pages by start-after and goes on while pages are
//     full, so it needs neither the flag nor the token.

export interface TestS3 {
  port: number;
  /** 412s the harness answered: proof that a conditional write reached the server */
  preconditionFailures: () => number;
  stop: () => Promise<void>;
}

export async function startS3rver(): Promise<TestS3> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'cxr-s3rver-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, silent: true, directory });
  atomicOverwriteAndSortedListing(server);
  const address = await server.run();
  const conditional = honourIfNoneMatch(server);
  return {
    port: address.port,
    preconditionFailures: conditional.count,
    stop: async () => {
      await server.close().catch(() => undefined);
      await rm(directory, { recursive: true, force: true });
    },
  };
}

/** Per-key FIFO: `run(key, fn)` waits for the previous holder of `key`. */
class KeyedLock {
  readonly #tails = new Map<string, Promise<unknown>>();
  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(key) ?? Promise.resolve();
    const result = previous.then(fn, fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.#tails.set(key, tail);
    void tail.then(() => this.#tails.get(key) === tail && this.#tails.delete(key));
    return result;
  }
}

function atomicOverwriteAndSortedListing(server: S3rver): void {
  const store = server.store;
  const lock = new KeyedLock();
  const staging = '.staging'; // a folder beside the buckets
  const put = store.putObject.bind(store);
  const get = store.getObject.bind(store);
  const remove = store.deleteObject.bind(store);
  const list = store.listObjects.bind(store);
  store.putObject = async (object: S3rverObject) => {
    const staged = { ...object, bucket: staging, key: randomUUID() };
    const result = await put(staged);
    await lock.run(`${object.bucket}/${object.key}`, async () => {
      for (const resource of ['object', 'object.md5', 'metadata.json']) {
        const target = store.getResourcePath(object.bucket, object.key, resource);
        await mkdir(path.dirname(target), { recursive: true });
        await rename(store.getResourcePath(staging, staged.key, resource), target);
      }
    });
    return result;
  };
  // Metadata read and file opened together: an open stream keeps reading the version it opened.
  store.getObject = (bucket, key, options) => lock.run(`${bucket}/${key}`, () => get(bucket, key, options));
  store.deleteObject = (bucket, key) => lock.run(`${bucket}/${key}`, () => remove(bucket, key));
  store.listObjects = async (bucket, options) => {
    const all = await list(bucket, { ...options, maxKeys: Number.POSITIVE_INFINITY });
    const objects = [...all.objects].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { ...all, objects: objects.slice(0, options.maxKeys ?? objects.length), isTruncated: false };
  };
}

function honourIfNoneMatch(server: S3rver): { count: () => number } {
  const http = server.httpServer!;
  const handler = http.listeners('request')[0] as RequestListener;
  http.removeAllListeners('request');
  const lock = new KeyedLock();
  let failures = 0;
  http.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? '/', 'http://s3rver');
    const completes = req.method === 'POST' && url.searchParams.has('uploadId');
    if (req.headers['if-none-match'] !== '*' || !(req.method === 'PUT' || completes)) {
      handler(req, res);
      return;
    }
    const [bucket = '', ...rest] = url.pathname.slice(1).split('/').map(decodeURIComponent);
    const key = rest.join('/');
    // Conditional writes of one key take turns, each holding it until its response is sent (object committed).
    void lock.run(`${bucket}/${key}`, async () => {
      if (await server.store.existsObject(bucket, key)) {
        failures++;
        req.resume();
        await finished(req).catch(() => undefined);
        const body = '<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>PreconditionFailed</Code><Message>At least one of the pre-conditions you specified did not hold</Message><Condition>If-None-Match</Condition></Error>';
        res.writeHead(412, { 'content-type': 'application/xml', 'content-length': Buffer.byteLength(body) }).end(body);
        return;
      }
      await new Promise<void>((resolve) => {
        res.on('close', resolve);
        handler(req, res);
      });
    });
  });
  return { count: () => failures };
}

