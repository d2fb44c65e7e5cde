import { randomUUID } from 'node:crypto';
import * as Minio from 'minio';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { collect, describeObjectStoreConformance, keysOf, slowly, patternBuffer, storeError } from './conformance.js';
import { parseStoreUrl, storeFromUrl } from './parse-store-url.js';
import { createS3ObjectStore, type S3ObjectStoreOptions } from './s3-store.js';
import { S3RVER_KEYS as KEYS, startS3rver, type TestS3 } from '../test-support/s3rver.js';

const MiB = 1024 * 1024;
// ---------------------------------------------------------------------------------------------------------------

let s3: TestS3;
let buckets = 0;
const options = (extra: Partial<S3ObjectStoreOptions> = {}): S3ObjectStoreOptions => ({
  endPoint: '127.0.0.1',
  port: s3.port,
  useSSL: false,
  ...KEYS,
  bucket: `cxr-test-${++buckets}`,
  // 5 MiB parts (S3's minimum) and 4-key pages, so that multipart uploads and paging are both exercised.
  partSize: 5 * MiB,
  listPageSize: 4,
  ...extra,
});

beforeAll(async () => {
  s3 = await startS3rver();
});
afterAll(async () => {
  await s3?.stop();
});

describeObjectStoreConformance('s3 (s3rver)', async () => {
  const store = await createS3ObjectStore(options());
  return { store, cleanup: () => store.close() };
});

// The same suite against a real S3 endpoint (MinIO) when one is given: CXR_TEST_S3_ENDPOINT=http://127.0.0.1:9000
// CXR_TEST_S3_ACCESS_KEY=... CXR_TEST_S3_SECRET_KEY=... Each test makes a bucket and removes it after.
const real = process.env.CXR_TEST_S3_ENDPOINT;
if (real) {
  const { config } = parseStoreUrl('s3://cxr-conformance', {
    CXR_S3_ENDPOINT: real,
    CXR_S3_ACCESS_KEY: process.env.CXR_TEST_S3_ACCESS_KEY,
    CXR_S3_SECRET_KEY: process.env.CXR_TEST_S3_SECRET_KEY,
    CXR_S3_REGION: process.env.CXR_TEST_S3_REGION,
  });
  if (config?.kind !== 's3') throw new Error('CXR_TEST_S3_* settings are incomplete');
  describeObjectStoreConformance(`s3 (${real})`, async () => {
    const bucket = `cxr-conformance-${Date.now()}-${randomUUID().slice(0, 8)}`;
    const store = await createS3ObjectStore({ ...config.options, bucket, listPageSize: 4, partSize: 5 * MiB });
    return {
      store,
      cleanup: async () => {
        await store.close();
        const client = new Minio.Client({ ...config.options, retryOptions: { disableRetry: true } });
        const names: string[] = [];
        for await (const item of client.listObjectsV2(bucket, '', true)) if (item.name) names.push(item.name);
        if (names.length > 0) await client.removeObjects(bucket, names);
        await client.removeBucket(bucket);
      },
    };
  });
}

describe('s3 store', () => {
  it('reports a server that is down as CXR_STORE_UNAVAILABLE (transient)', async () => {
    const doomed = await startS3rver();
    const store = await createS3ObjectStore({ ...options(), port: doomed.port });
    await store.put('up', Buffer.from('while it lasted'));
    await doomed.stop();
    const calls: [string, () => Promise<unknown>][] = [
      ['head', () => store.head('up')],
      ['get', () => store.get('up')],
      ['getBytes', () => store.getBytes('up')],
      ['put', () => store.put('down', Buffer.from('x'))],
      ['put ifNoneMatch', () => store.put('down', Buffer.from('x'), { ifNoneMatch: true })],
      ['put multipart', () => store.put('down', patternBuffer(6 * MiB, 3))],
      ['list', () => collect(store.list(''))],
      ['delete', () => store.delete('up')],
    ];
    for (const [name, call] of calls) {
      const err = await storeError(call(), 'CXR_STORE_UNAVAILABLE');
      expect(err.transient, name).toBe(true);
    }
    await store.close();
    const refused = await storeError(createS3ObjectStore({ ...options(), port: doomed.port }), 'CXR_STORE_UNAVAILABLE');
    expect(refused.transient).toBe(true);
  });

  it('lets one of two processes win a conditional create: the server decides (If-None-Match: *)', async () => {
    const bucket = `cxr-race-${randomUUID().slice(0, 8)}`;
    const [a, b] = [await createS3ObjectStore(options({ bucket })), await createS3ObjectStore(options({ bucket }))];
    const before = s3.preconditionFailures();
    for (let round = 0; round < 3; round++) {
      const key = `race/${round}`;
      // Slow bodies: both stores HEAD (absent), spool, then PUT; only the server can tell them apart.
      const results = await Promise.allSettled(
        [a, b].flatMap((store, s) => [0, 1].map((i) => store.put(key, slowly(patternBuffer(512 * 1024, 10 * s + i + round), 64 * 1024), { ifNoneMatch: true }))),
      );
      expect(results.filter((r) => r.status === 'fulfilled'), `round ${round}`).toHaveLength(1);
      for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'CXR_STORE_EXISTS' });
    }
    expect(s3.preconditionFailures() - before).toBeGreaterThanOrEqual(3);
    // Above partSize the upload is multipart, and conditional at its completion.
    const big = await Promise.allSettled([a, b].map((store, s) => store.put('race/big', slowly(patternBuffer(6 * MiB, 50 + s), 256 * 1024), { ifNoneMatch: true })));
    expect(big.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    expect(big.find((r) => r.status === 'rejected')).toMatchObject({ reason: { code: 'CXR_STORE_EXISTS' } });
    expect(s3.preconditionFailures() - before).toBeGreaterThanOrEqual(4);
    expect(await keysOf(a.list('race/'))).toEqual(['race/0', 'race/1', 'race/2', 'race/big']);
    await a.close();
    await b.close();
  });

  it('refuses unknown credentials as a permanent failure', async () => {
    // (s3rver checks the access key but not SigV4 signatures, so a wrong secret alone would pass here.)
    const err = await storeError(createS3ObjectStore(options({ accessKey: 'NOT-AN-ACCOUNT', secretKey: 'not-the-secret' })), 'CXR_STORE_FAILED');
    expect(err.transient).toBe(false);
    expect(err.message).toMatch(/AccessDenied|InvalidAccessKeyId/u);
    expect(err.message).not.toContain('not-the-secret');
  });

  it('creates its bucket when missing, idempotently; without it, writes fail for good', async () => {
    const bucket = `cxr-made-${randomUUID().slice(0, 8)}`;
    const first = await createS3ObjectStore(options({ bucket }));
    await first.ensureBucket();
    const second = await createS3ObjectStore(options({ bucket }));
    await first.put('k', Buffer.from('v'));
    expect(Buffer.from(await second.getBytes('k')).toString()).toBe('v');
    await Promise.all([first.close(), second.close()]);
    const missing = await createS3ObjectStore(options({ bucket: `cxr-missing-${randomUUID().slice(0, 8)}`, createBucket: false }));
    expect((await storeError(missing.put('k', Buffer.from('v')), 'CXR_STORE_FAILED')).message).toMatch(/NoSuchBucket/u);
    await missing.close();
  });

  it('reads an object another tool wrote (no sha256 recorded) with an empty sha256', async () => {
    const opts = options();
    const store = await createS3ObjectStore(opts);
    const client = new Minio.Client({ endPoint: opts.endPoint, port: opts.port!, useSSL: false, ...KEYS, region: 'us-east-1' });
    await client.putObject(opts.bucket, 'foreign/file.txt', Buffer.from('hello'), 5, { 'Content-Type': 'text/plain', 'x-amz-meta-origin': 'mc' });
    await client.putObject(opts.bucket, 'foreign/not a key.txt', Buffer.from('spaces'), 6);
    expect(await store.head('foreign/file.txt')).toMatchObject({ size: 5, sha256: '', contentType: 'text/plain', metadata: { origin: 'mc' } });
    // Keys outside the store's grammar are not listed: nothing could address them.
    expect(await keysOf(store.list('foreign/'))).toEqual(['foreign/file.txt']);
    await store.close();
  });

  it('refuses invalid settings at once', async () => {
    await expect(createS3ObjectStore(options({ partSize: MiB }))).rejects.toMatchObject({ code: 'CXR_STORE_CONFIG' });
    await expect(createS3ObjectStore(options({ bucket: 'Bad_Bucket' }))).rejects.toMatchObject({ code: 'CXR_STORE_CONFIG' });
    await expect(createS3ObjectStore(options({ listPageSize: 0 }))).rejects.toMatchObject({ code: 'CXR_STORE_CONFIG' });
  });
});

describe('storeFromUrl (s3)', () => {
  it('opens s3://BUCKET with the endpoint and keys from the environment', async () => {
    const env = { CXR_S3_ENDPOINT: `http://127.0.0.1:${s3.port}`, CXR_S3_ACCESS_KEY: KEYS.accessKey, CXR_S3_SECRET_KEY: KEYS.secretKey };
    expect(parseStoreUrl('s3://cxr-url-test/', env)).toEqual({
      config: { kind: 's3', options: { endPoint: '127.0.0.1', port: s3.port, useSSL: false, ...KEYS, bucket: 'cxr-url-test' } },
      problems: [],
    });
    const store = await storeFromUrl('s3://cxr-url-test', env);
    expect(store.kind).toBe('s3');
    await store.put('hello', Buffer.from('world'));
    expect(await keysOf(store.list(''))).toEqual(['hello']);
    await store.close();
  });

  it('lists every missing or wrong setting in one error, without secrets', async () => {
    const err = await storeError(storeFromUrl('s3://Bad_Bucket/prefix', { CXR_S3_SECRET_KEY: 'hunter2', CXR_S3_REGION: 'EU WEST' }), 'CXR_STORE_CONFIG');
    const { problems } = parseStoreUrl('s3://Bad_Bucket/prefix', { CXR_S3_SECRET_KEY: 'hunter2', CXR_S3_REGION: 'EU WEST' });
    expect(problems).toEqual([
      expect.stringMatching(/key prefix/u),
      expect.stringMatching(/not a valid bucket name/u),
      expect.stringMatching(/CXR_S3_ENDPOINT is not set/u),
      expect.stringMatching(/CXR_S3_ACCESS_KEY is not set/u),
      expect.stringMatching(/CXR_S3_REGION/u),
    ]);
    expect(err.message).not.toContain('hunter2');
    expect(parseStoreUrl('s3://bucket-ok', { CXR_S3_ENDPOINT: 'ftp://user:pw@host:21/x', CXR_S3_ACCESS_KEY: 'a', CXR_S3_SECRET_KEY: 'b' }).problems).toEqual([
      expect.stringMatching(/http:\/\/ or https:\/\/.*credentials.*no path/u),
    ]);
    expect(parseStoreUrl('s3://bucket-ok', { CXR_S3_ENDPOINT: 'https://s3.example.org', CXR_S3_ACCESS_KEY: 'a', CXR_S3_SECRET_KEY: 'b', CXR_S3_REGION: 'ap-southeast-1' }).config).toEqual({
      kind: 's3',
      options: { endPoint: 's3.example.org', port: 443, useSSL: true, accessKey: 'a', secretKey: 'b', bucket: 'bucket-ok', region: 'ap-southeast-1' },
    });
  });
});
