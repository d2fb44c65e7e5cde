/**
 * The one suite every ObjectStore implementation passes (the folder store, S3). A behaviour the gateway relies
 * on belongs here, not in one implementation's tests, so that the two cannot drift apart.
 *
 *   describeObjectStoreConformance('fs', async () => ({ store, cleanup }));
 *
 * `make` runs before each test and must return an empty store; `cleanup` runs after it (and may close the store
 * again: close is idempotent).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectStoreError, type ObjectInfo, type ObjectStore, type ObjectStoreErrorCode } from './object-store.js';

export interface ConformanceSubject {
  store: ObjectStore;
  cleanup: () => Promise<void>;
}

const MiB = 1024 * 1024;
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export function describeObjectStoreConformance(name: string, make: () => Promise<ConformanceSubject>): void {
  describe(`ObjectStore conformance: ${name}`, () => {
    let store: ObjectStore;
    let cleanup: () => Promise<void>;

    beforeEach(async () => {
      ({ store, cleanup } = await make());
    });
    afterEach(async () => {
      await cleanup();
    });

    describe('put and get', () => {
      it('round-trips bytes and reports size, sha256, content type and time', async () => {
        const body = Buffer.from('{"finding":"pneumothorax","probability":0.91}');
        const before = Date.now();
        const info = await store.put('studies/1.2.3/result.json', body, { contentType: 'application/json' });
        expect(info).toMatchObject({ key: 'studies/1.2.3/result.json', size: body.length, sha256: sha256(body), contentType: 'application/json', metadata: {} });
        expect(info.lastModified).toBeInstanceOf(Date);
        expect(Math.abs(info.lastModified.getTime() - before)).toBeLessThan(60_000);
        expect(Buffer.from(await store.getBytes('studies/1.2.3/result.json')).equals(body)).toBe(true);
        expect((await readStream(await store.get('studies/1.2.3/result.json'))).equals(body)).toBe(true);
      });

      it('defaults the content type to application/octet-stream', async () => {
        const info = await store.put('plain', Buffer.from('x'));
        expect(info.contentType).toBe('application/octet-stream');
        expect((await store.head('plain'))?.contentType).toBe('application/octet-stream');
      });

      it('stores an empty body', async () => {
        const info = await store.put('empty', new Uint8Array(0));
        expect(info).toMatchObject({ size: 0, sha256: EMPTY_SHA256 });
        expect((await store.getBytes('empty')).length).toBe(0);
        expect((await readStream(await store.get('empty'))).length).toBe(0);
        expect(await store.head('empty')).toMatchObject({ size: 0, sha256: EMPTY_SHA256 });
      });

      it('takes a Uint8Array view (offset into a larger buffer), a Node stream and an async iterable', async () => {
        const backing = Buffer.from('0123456789abcdefghij');
        await store.put('view', new Uint8Array(backing.buffer, backing.byteOffset + 3, 10));
        expect(Buffer.from(await store.getBytes('view')).toString()).toBe('3456789abc');

        const body = patternBuffer(3 * MiB + 5, 11);
        await store.put('stream', Readable.from(chunksOf(body, 100_000), { objectMode: false }));
        expect(sha256(await store.getBytes('stream'))).toBe(sha256(body));

        await store.put('iterable', slowly(body, 32 * 1024));
        expect(sha256(await store.getBytes('iterable'))).toBe(sha256(body));
      });

      it('streams a 20 MB body in and out (chunks of one reused buffer, hashed on the way)', async () => {
        const size = 20 * MiB + 123;
        const expected = patternSha256(size, 1);
        // The producer reuses one buffer: a store that kept chunks without copying them would store garbage.
        const info = await store.put('big/20mb.dcm', patterned(size, 1), { sha256: expected, contentType: 'application/dicom' });
        expect(info).toMatchObject({ size, sha256: expected, contentType: 'application/dicom' });
        // Read back as a stream, hashing as it comes, never holding the body.
        const read = await hashStream(await store.get('big/20mb.dcm'));
        expect(read).toEqual({ size, sha256: expected });
        expect(await store.head('big/20mb.dcm')).toMatchObject({ size, sha256: expected });
      });

      it('reads a byte range: from an offset, between two offsets, an end past the last byte', async () => {
        const body = patternBuffer(1000, 7);
        await store.put('models/blob', body);
        expect((await readStream(await store.get('models/blob', { start: 10 }))).equals(body.subarray(10))).toBe(true);
        expect((await readStream(await store.get('models/blob', { start: 10, end: 19 }))).equals(body.subarray(10, 20))).toBe(true);
        expect((await readStream(await store.get('models/blob', { start: 999 }))).equals(body.subarray(999))).toBe(true);
        expect((await readStream(await store.get('models/blob', { start: 990, end: 5000 }))).equals(body.subarray(990))).toBe(true);
        expect((await readStream(await store.get('models/blob', { end: 3 }))).equals(body.subarray(0, 4))).toBe(true);
        expect((await readStream(await store.get('models/blob', {}))).equals(body)).toBe(true);
        // Read from the offset, not skipped over: a 20 MB object read from its last MiB.
        const size = 20 * MiB + 123;
        const big = patternBuffer(size, 3);
        await store.put('models/big', big);
        const tail = await readStream(await store.get('models/big', { start: size - MiB }));
        expect(tail.length).toBe(MiB);
        expect(sha256(tail)).toBe(sha256(big.subarray(size - MiB)));
      });

      it('refuses a range that starts past the end or is malformed, and a range of a missing key is not found', async () => {
        await store.put('models/blob', patternBuffer(1000, 7));
        await store.put('models/empty', new Uint8Array(0));
        const past = await storeError(store.get('models/blob', { start: 1000 }), 'CXR_STORE_INVALID_ARGUMENT');
        expect(past.message).toMatch(/starts at byte 1000, the object has 1000 bytes/u);
        await storeError(store.get('models/empty', { start: 0, end: 0 }), 'CXR_STORE_INVALID_ARGUMENT');
        expect((await readStream(await store.get('models/empty', { start: 0 }))).length).toBe(0);
        for (const bad of [{ start: -1 }, { start: 1.5 }, { start: 5, end: 4 }, { start: Number.NaN }, { end: -1 }]) {
          await storeError(store.get('models/blob', bad), 'CXR_STORE_INVALID_ARGUMENT');
        }
        await storeError(store.get('models/missing', { start: 10 }), 'CXR_STORE_NOT_FOUND');
      });

      it('rethrows the error of a failing body unchanged and leaves nothing', async () => {
        const boom = new Error('the station hung up');
        async function* failing(): AsyncGenerator<Uint8Array> {
          yield Buffer.alloc(64 * 1024, 1);
          yield Buffer.alloc(64 * 1024, 2);
          throw boom;
        }
        await expect(store.put('broken/upload', failing())).rejects.toBe(boom);
        expect(await store.head('broken/upload')).toBeUndefined();
        expect(await keysOf(store.list(''))).toEqual([]);
      });
    });

    describe('sha256', () => {
      it('accepts a matching expected sha256 (any case of hex)', async () => {
        const body = Buffer.from('DICM');
        const info = await store.put('hash/ok', body, { sha256: sha256(body).toUpperCase() });
        expect(info.sha256).toBe(sha256(body));
      });

      it('refuses a mismatch with nothing left behind', async () => {
        const body = Buffer.from('the real body');
        const err = await storeError(store.put('hash/bad', body, { sha256: sha256(Buffer.from('another body')) }), 'CXR_STORE_HASH_MISMATCH');
        expect(err.transient).toBe(false);
        expect(await store.head('hash/bad')).toBeUndefined();
        await storeError(store.getBytes('hash/bad'), 'CXR_STORE_NOT_FOUND');
        expect(await keysOf(store.list(''))).toEqual([]);
      });

      it('refuses a mismatch of a big streamed body with nothing left behind', async () => {
        await storeError(store.put('hash/big', patterned(9 * MiB + 1, 5), { sha256: patternSha256(9 * MiB + 1, 6) }), 'CXR_STORE_HASH_MISMATCH');
        expect(await store.head('hash/big')).toBeUndefined();
        expect(await keysOf(store.list(''))).toEqual([]);
      });

      it('leaves the existing object untouched when an overwrite mismatches', async () => {
        const original = Buffer.from('version 1');
        await store.put('hash/keep', original, { metadata: { version: '1' } });
        await storeError(store.put('hash/keep', Buffer.from('version 2'), { sha256: sha256(Buffer.from('version 3')) }), 'CXR_STORE_HASH_MISMATCH');
        expect(Buffer.from(await store.getBytes('hash/keep')).equals(original)).toBe(true);
        expect(await store.head('hash/keep')).toMatchObject({ sha256: sha256(original), metadata: { version: '1' } });
      });

      it('refuses a malformed expected sha256', async () => {
        await storeError(store.put('hash/malformed', Buffer.from('x'), { sha256: 'abc' }), 'CXR_STORE_INVALID_ARGUMENT');
        expect(await store.head('hash/malformed')).toBeUndefined();
      });
    });

    describe('ifNoneMatch', () => {
      it('creates once, then refuses without touching the object', async () => {
        const first = Buffer.from('first');
        await store.put('once/key', first, { ifNoneMatch: true, metadata: { n: '1' } });
        const err = await storeError(store.put('once/key', Buffer.from('second'), { ifNoneMatch: true, metadata: { n: '2' } }), 'CXR_STORE_EXISTS');
        expect(err.transient).toBe(false);
        expect(Buffer.from(await store.getBytes('once/key')).equals(first)).toBe(true);
        expect((await store.head('once/key'))?.metadata).toEqual({ n: '1' });
      });

      it('lets exactly one of 10 concurrent writers of a key win', async () => {
        const bodies = Array.from({ length: 10 }, (_, i) => Buffer.from(`writer ${i};`.repeat(2000 + i)));
        const results = await Promise.allSettled(bodies.map((body) => store.put('once/race', body, { ifNoneMatch: true })));
        const winners = results.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []));
        expect(winners).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'CXR_STORE_EXISTS' });
        const stored = Buffer.from(await store.getBytes('once/race'));
        expect(sha256(stored)).toBe(winners[0]!.sha256);
        expect(bodies.some((b) => b.equals(stored))).toBe(true);
      });

      it('lets exactly one of 10 concurrent streaming writers win', async () => {
        const bodies = Array.from({ length: 10 }, (_, i) => patternBuffer(256 * 1024 + i, 100 + i));
        const results = await Promise.allSettled(bodies.map((body) => store.put('once/race-stream', slowly(body, 16 * 1024), { ifNoneMatch: true })));
        expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
        for (const r of results) if (r.status === 'rejected') expect(r.reason).toMatchObject({ code: 'CXR_STORE_EXISTS' });
        const stored = Buffer.from(await store.getBytes('once/race-stream'));
        expect(bodies.some((b) => b.equals(stored))).toBe(true);
      });

      it('works again after the key is deleted', async () => {
        await store.put('once/again', Buffer.from('a'), { ifNoneMatch: true });
        await store.delete('once/again');
        await store.put('once/again', Buffer.from('b'), { ifNoneMatch: true });
        expect(Buffer.from(await store.getBytes('once/again')).toString()).toBe('b');
      });
    });

    describe('head, metadata and overwrite', () => {
      it('heads a missing key as undefined', async () => {
        expect(await store.head('missing/key')).toBeUndefined();
      });

      it('round-trips metadata and content type through put, head and list', async () => {
        const metadata = { 'study-instance-uid': '1.2.840.113619.2.55.3.604688119', station: 'tyt-xa-01', 'model-version': '1.0.0', note: 'two  spaces inside', empty: '' };
        const body = Buffer.from('pixels');
        const put = await store.put('meta/instance.dcm', body, { contentType: 'application/dicom', metadata });
        expect(put.metadata).toEqual(metadata);
        const head = await store.head('meta/instance.dcm');
        expect(head).toMatchObject({ key: 'meta/instance.dcm', size: body.length, sha256: sha256(body), contentType: 'application/dicom', metadata });
        expect(head?.lastModified).toBeInstanceOf(Date);
        const [listed] = await collect(store.list('meta/'));
        expect(listed).toMatchObject({ key: 'meta/instance.dcm', size: body.length, sha256: sha256(body), contentType: 'application/dicom', metadata });
      });

      it('refuses metadata that S3 headers cannot carry, writing nothing', async () => {
        const bad: Record<string, string>[] = [
          { Upper: 'x' },
          { under_score: 'x' },
          { 'cxr-sha256': 'reserved' },
          { name: 'nguyễn' },
          { name: ' leading space' },
          { name: 'line\nbreak' },
          { big: 'x'.repeat(2100) },
        ];
        for (const metadata of bad) await storeError(store.put('meta/bad', Buffer.from('x'), { metadata }), 'CXR_STORE_INVALID_ARGUMENT');
        await storeError(store.put('meta/bad', Buffer.from('x'), { contentType: '' }), 'CXR_STORE_INVALID_ARGUMENT');
        expect(await store.head('meta/bad')).toBeUndefined();
      });

      it('replaces body, metadata and content type on overwrite', async () => {
        await store.put('over/key', Buffer.from('old body, longer than the new one'), { contentType: 'text/plain', metadata: { version: '1', old: 'yes' } });
        const body = Buffer.from('new');
        await store.put('over/key', body, { contentType: 'application/json', metadata: { version: '2' } });
        expect(Buffer.from(await store.getBytes('over/key')).equals(body)).toBe(true);
        expect(await store.head('over/key')).toMatchObject({ size: 3, sha256: sha256(body), contentType: 'application/json', metadata: { version: '2' } });
      });

      it('shows a concurrent reader the old object or the new one, never a mix', async () => {
        const oldBody = patternBuffer(3 * MiB, 21);
        const newBody = patternBuffer(2 * MiB + 7, 22);
        const versions = new Map([
          [sha256(oldBody), { size: oldBody.length, version: 'old' }],
          [sha256(newBody), { size: newBody.length, version: 'new' }],
        ]);
        await store.put('over/race', oldBody, { metadata: { version: 'old' } });
        // A reader that started before the overwrite reads on after it (below) and must get the old body whole.
        const early = await store.get('over/race');
        let done = false;
        const writer = store.put('over/race', slowly(newBody, 64 * 1024), { metadata: { version: 'new' } }).finally(() => (done = true));
        let reads = 0;
        while (!done || reads < 3) {
          const [bytes, info] = await Promise.all([store.getBytes('over/race'), store.head('over/race')]);
          expect(versions.has(sha256(bytes)), `read ${reads} is one of the two bodies`).toBe(true);
          const seen = versions.get(info?.sha256 ?? '');
          expect(seen, `head ${reads} describes one of the two versions`).toBeDefined();
          expect({ size: info?.size, version: info?.metadata.version }).toEqual({ size: seen?.size, version: seen?.version });
          reads++;
        }
        await writer;
        expect(sha256(await store.getBytes('over/race'))).toBe(sha256(newBody));
        expect(sha256(await readStream(early))).toBe(sha256(oldBody));
      });
    });

    describe('list', () => {
      const keys = ['list/a', 'list/a-b', 'list/a.c', 'list/a/b', 'list/a/b/c', 'list/a0', 'list/ab/x', 'list/b', 'list/B', 'list/_', 'list/z/9/9', 'lister/x'];
      const sorted = [...keys].sort();
      const under = (prefix: string): string[] => sorted.filter((k) => k.startsWith(prefix));

      beforeEach(async () => {
        // Written out of order, so that a store returning them in write order fails.
        for (const key of [...keys].reverse()) await store.put(key, Buffer.from(key), { metadata: { k: key.replace(/\//gu, '-') } });
      });

      it('lists by prefix in byte order of key (- . / 0-9 A-Z _ a-z)', async () => {
        expect(await keysOf(store.list(''))).toEqual(sorted);
        expect(await keysOf(store.list('list/'))).toEqual(under('list/'));
        expect(await keysOf(store.list('list'))).toEqual(under('list'));
        expect(await keysOf(store.list('list/a'))).toEqual(under('list/a'));
        expect(await keysOf(store.list('list/a/'))).toEqual(['list/a/b', 'list/a/b/c']);
        expect(await keysOf(store.list('list/a/b'))).toEqual(['list/a/b', 'list/a/b/c']);
        expect(await keysOf(store.list('nothing/'))).toEqual([]);
        expect(await keysOf(store.list('list/a/b/c/'))).toEqual([]);
      });

      it('gives full ObjectInfo for each listed object', async () => {
        const infos = await collect(store.list('list/a/'));
        expect(infos.map((i) => ({ key: i.key, size: i.size, sha256: i.sha256, metadata: i.metadata }))).toEqual(
          ['list/a/b', 'list/a/b/c'].map((k) => ({ key: k, size: k.length, sha256: sha256(Buffer.from(k)), metadata: { k: k.replace(/\//gu, '-') } })),
        );
      });

      it('starts after a key, whether or not it exists, and inside a "folder"', async () => {
        for (const startAfter of ['list/a.c', 'list/a/b', 'list/a/', 'list/a', 'list/a/b/c', 'list/a/zzz', 'list/', 'list/zzz', 'l', '']) {
          expect(await keysOf(store.list('list/', { startAfter })), `startAfter ${startAfter}`).toEqual(under('list/').filter((k) => k > startAfter));
        }
      });

      it('stops at a limit, and pages with startAfter + limit', async () => {
        expect(await keysOf(store.list('list/', { limit: 3 }))).toEqual(under('list/').slice(0, 3));
        expect(await keysOf(store.list('list/', { limit: 1000 }))).toEqual(under('list/'));
        for (const pageSize of [1, 2, 5]) {
          const paged: string[] = [];
          let startAfter = '';
          for (;;) {
            const page = await keysOf(store.list('list/', { startAfter, limit: pageSize }));
            paged.push(...page);
            if (page.length < pageSize) break;
            startAfter = page.at(-1)!;
          }
          expect(paged, `pages of ${pageSize}`).toEqual(under('list/'));
        }
        await storeError(collect(store.list('list/', { limit: 0 })), 'CXR_STORE_INVALID_ARGUMENT');
      });

      it('does not show deleted objects, and lets a listing be abandoned early', async () => {
        await store.delete('list/a/b');
        await store.delete('list/a/b/c');
        expect(await keysOf(store.list('list/a'))).toEqual(['list/a', 'list/a-b', 'list/a.c', 'list/a0', 'list/ab/x']);
        for await (const info of store.list('')) {
          expect(info.key).toBe(sorted[0]);
          break;
        }
      });
    });

    describe('nothing half-written is visible', () => {
      it('lists only committed objects while a put is in flight and after one failed', async () => {
        await store.put('leak/ok', Buffer.from('ok'));
        await storeError(store.put('leak/bad', Buffer.from('bad'), { sha256: sha256(Buffer.from('other')) }), 'CXR_STORE_HASH_MISMATCH');
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        let started!: () => void;
        const hasStarted = new Promise<void>((resolve) => (started = resolve));
        async function* held(): AsyncGenerator<Uint8Array> {
          yield Buffer.alloc(MiB, 7);
          started();
          await gate;
          yield Buffer.alloc(MiB, 8);
        }
        const pending = store.put('leak/pending', held());
        await hasStarted;
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(await keysOf(store.list(''))).toEqual(['leak/ok']);
        expect(await keysOf(store.list('leak/'))).toEqual(['leak/ok']);
        expect(await store.head('leak/pending')).toBeUndefined();
        await storeError(store.get('leak/pending'), 'CXR_STORE_NOT_FOUND');
        release();
        await pending;
        expect(await keysOf(store.list(''))).toEqual(['leak/ok', 'leak/pending']);
      });
    });

    describe('delete', () => {
      it('is idempotent', async () => {
        await store.delete('never/existed');
        await store.put('del/key', Buffer.from('x'));
        await store.delete('del/key');
        await store.delete('del/key');
        expect(await store.head('del/key')).toBeUndefined();
        await storeError(store.get('del/key'), 'CXR_STORE_NOT_FOUND');
        expect(await keysOf(store.list(''))).toEqual([]);
      });

      it('keeps a key and the "folder" of the same name apart', async () => {
        await store.put('pair', Buffer.from('file'));
        await store.put('pair/child', Buffer.from('child'));
        expect(await keysOf(store.list(''))).toEqual(['pair', 'pair/child']);
        await store.delete('pair');
        expect(Buffer.from(await store.getBytes('pair/child')).toString()).toBe('child');
        await store.put('pair', Buffer.from('again'));
        await store.delete('pair/child');
        expect(Buffer.from(await store.getBytes('pair')).toString()).toBe('again');
        expect(await keysOf(store.list(''))).toEqual(['pair']);
      });

      it('lets a deep key be written again after its neighbours are gone', async () => {
        await store.put('deep/a/b/c/d', Buffer.from('1'));
        await store.delete('deep/a/b/c/d');
        await store.put('deep/a/b/c/e', Buffer.from('2'));
        expect(await keysOf(store.list('deep/'))).toEqual(['deep/a/b/c/e']);
      });
    });

    describe('errors', () => {
      it('reports a missing key as CXR_STORE_NOT_FOUND (permanent, with the key)', async () => {
        await store.put('folder/child', Buffer.from('x'));
        for (const key of ['missing', 'folder']) {
          const viaGet = await storeError(store.get(key), 'CXR_STORE_NOT_FOUND');
          expect(viaGet).toMatchObject({ transient: false, key });
          await storeError(store.getBytes(key), 'CXR_STORE_NOT_FOUND');
        }
      });

      it('refuses invalid keys in every method', async () => {
        const invalid = ['../x', '/x', 'a//b', 'a/../b', 'a/./b', '.', '..', 'a/', '', 'with space', 'tab\tkey', 'ä', 'a\\b', 'a:b', 'x'.repeat(513), `${'s'.repeat(201)}/x`];
        for (const key of invalid) {
          await storeError(store.put(key, Buffer.from('x')), 'CXR_STORE_INVALID_KEY');
          await storeError(store.get(key), 'CXR_STORE_INVALID_KEY');
          await storeError(store.getBytes(key), 'CXR_STORE_INVALID_KEY');
          await storeError(store.head(key), 'CXR_STORE_INVALID_KEY');
          await storeError(store.delete(key), 'CXR_STORE_INVALID_KEY');
        }
        for (const prefix of ['../', '/x', 'a//', 'a/../', 'with space', '../..']) {
          await storeError(collect(store.list(prefix)), 'CXR_STORE_INVALID_KEY');
        }
        expect(await keysOf(store.list(''))).toEqual([]);
      });

      it('accepts the edges of the key grammar', async () => {
        const valid = [
          '1.2.840.10008.5.1.4.1.1.1/1.2.276.0.7230010.3.1.4.8323329.1',
          '.hidden/x',
          'a/.b/..c',
          '-',
          '_/_',
          's'.repeat(200),
          ['s'.repeat(200), 't'.repeat(200), 'u'.repeat(110)].join('/'),
        ];
        expect(valid.at(-1)).toHaveLength(512);
        for (const key of valid) await store.put(key, Buffer.from(key));
        expect(await keysOf(store.list(''))).toEqual([...valid].sort());
        for (const key of valid) expect(Buffer.from(await store.getBytes(key)).toString()).toBe(key);
      });

      it('fails every call after close (permanent), and close is idempotent', async () => {
        await store.put('closing', Buffer.from('x'));
        await store.close();
        await store.close();
        await storeError(store.put('closing', Buffer.from('y')), 'CXR_STORE_FAILED');
        await storeError(store.get('closing'), 'CXR_STORE_FAILED');
        await storeError(store.head('closing'), 'CXR_STORE_FAILED');
        await storeError(store.delete('closing'), 'CXR_STORE_FAILED');
        await storeError(collect(store.list('')), 'CXR_STORE_FAILED');
      });
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Helpers, exported for the implementations' own tests.

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}

export async function keysOf(items: AsyncIterable<ObjectInfo>): Promise<string[]> {
  return (await collect(items)).map((i) => i.key);
}

export async function readStream(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks);
}

export async function hashStream(stream: NodeJS.ReadableStream): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of stream) {
    hash.update(chunk);
    size += chunk.length;
  }
  return { size, sha256: hash.digest('hex') };
}

/** Awaits a rejection with an ObjectStoreError of `code`, and returns it. */
export async function storeError(promise: Promise<unknown>, code: ObjectStoreErrorCode): Promise<ObjectStoreError> {
  const outcome = await promise.then(
    (value: unknown) => ({ value }),
    (error: unknown) => ({ error }),
  );
  if (!('error' in outcome)) throw new Error(`expected ${code}, but the call succeeded`);
  expect(outcome.error, `expected ${code}`).toBeInstanceOf(ObjectStoreError);
  expect((outcome.error as ObjectStoreError).code).toBe(code);
  return outcome.error as ObjectStoreError;
}

/**
 * Deterministic pseudo-random bytes (xorshift32) in chunks of ONE buffer that is overwritten for every chunk.
 */
export function* patternChunks(total: number, seed: number, chunkBytes = 64 * 1024): Generator<Uint8Array> {
  const words = new Uint32Array(chunkBytes / 4);
  const bytes = new Uint8Array(words.buffer);
  let state = seed >>> 0 || 1;
  for (let done = 0; done < total; ) {
    const n = Math.min(chunkBytes, total - done);
    for (let i = 0; i < Math.ceil(n / 4); i++) {
      state ^= state << 13;
      state >>>= 0;
      state ^= state >>> 17;
      state ^= state << 5;
      state >>>= 0;
      words[i] = state;
    }
    yield bytes.subarray(0, n);
    done += n;
  }
}

export async function* patterned(total: number, seed: number, chunkBytes = 64 * 1024): AsyncGenerator<Uint8Array> {
  for (const chunk of patternChunks(total, seed, chunkBytes)) yield chunk;
}

export function patternSha256(total: number, seed: number): string {
  const hash = createHash('sha256');
  for (const chunk of patternChunks(total, seed)) hash.update(chunk);
  return hash.digest('hex');
}

export function patternBuffer(total: number, seed: number): Buffer {
  const parts: Buffer[] = [];
  for (const chunk of patternChunks(total, seed)) parts.push(Buffer.from(chunk)); // copy: the chunk buffer is reused
  return Buffer.concat(parts);
}

function* chunksOf(body: Buffer, size: number): Generator<Buffer> {
  for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size);
}

/** The body in chunks, yielding to the event loop between them, so that other work interleaves with the put. */
export async function* slowly(body: Buffer, chunkBytes: number): AsyncGenerator<Uint8Array> {
  for (const chunk of chunksOf(body, chunkBytes)) {
    await new Promise((resolve) => setImmediate(resolve));
    yield chunk;
  }
}
