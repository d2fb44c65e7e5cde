import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { collect, describeObjectStoreConformance, keysOf, storeError } from './conformance.js';
import { createFsObjectStore } from './fs-store.js';
import { parseStoreUrl, storeFromUrl } from './parse-store-url.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const repoRoot = path.resolve(here, '../../..');
const roots: string[] = [];

async function freshRoot(): Promise<string> {
  const root = await mkdtemp(path.join(os.tmpdir(), 'cxr-fs-store-'));
  roots.push(root);
  return root;
}

afterAll(async () => {
  await Promise.all(roots.map((root) => rm(root, { recursive: true, force: true })));
});

describeObjectStoreConformance('fs', async () => {
  const root = await freshRoot();
  const store = await createFsObjectStore({ root });
  return {
    store,
    cleanup: async () => {
      await store.close();
      await rm(root, { recursive: true, force: true });
    },
  };
});

describe('fs store', () => {
  it('makes its folders 0700 and its files 0600 whatever the umask (patient images, accounts, the registry key)', async () => {
    const root = path.join(await freshRoot(), 'made-by-the-store');
    const before = process.umask(0o022);
    try {
      const store = await createFsObjectStore({ root });
      await store.put('accounts/users/bs.lan.json', Buffer.from('{}'));
      await store.put('studies/tram-1/1.2.3/instances/1.2.3.4/sha/instance.dcm', Buffer.from('DICM'), { ifNoneMatch: true });
      await store.close();
    } finally {
      process.umask(before);
    }
    const modes: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      modes.push(`${path.relative(root, dir) || '.'} ${((await stat(dir)).mode & 0o777).toString(8)}`);
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else modes.push(`${path.relative(root, full)} ${((await stat(full)).mode & 0o777).toString(8)}`);
      }
    };
    await walk(root);
    expect(modes.filter((m) => !/ (700|600)$/u.test(m))).toEqual([]);
    expect(modes).toEqual(expect.arrayContaining(['. 700', '.tmp 700', 'objects 700', 'objects/accounts/users/bs.lan.json~obj 600', 'objects/studies/tram-1/1.2.3/instances/1.2.3.4/sha/instance.dcm~obj 600']));
  });

  it('shows nothing of a write whose process was killed mid-way, and clears its temp file on the next open', async () => {
    const root = await freshRoot();
    await (await createFsObjectStore({ root })).close();
    const script = path.join(root, 'writer.mjs');
    await writeFile(
      script,
      [
        `import { createFsObjectStore } from ${JSON.stringify(pathToFileURL(path.join(here, 'fs-store.ts')).href)};`,
        `const store = await createFsObjectStore({ root: process.argv[2] });`,
        `setInterval(() => {}, 1000);`,
        `async function* body() { yield Buffer.alloc(4 * 1024 * 1024, 1); process.stdout.write('writing\\n'); await new Promise(() => {}); }`,
        `await store.put('crash/instance.dcm', body());`,
      ].join('\n'),
    );
    const child = spawn(process.execPath, ['--import', 'tsx', script, root], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => child.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('writing') && resolve());
      child.on('exit', (code) => reject(new Error(`writer exited (${code}) before writing: ${stderr}`)));
    });
    const temps = await readdir(path.join(root, '.tmp'));
    expect(temps).toHaveLength(1);
    expect((await stat(path.join(root, '.tmp', temps[0]!))).size).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    child.kill('SIGKILL');
    expect(await exited).toBe('SIGKILL');

    const store = await createFsObjectStore({ root });
    expect(await readdir(path.join(root, '.tmp'))).toEqual([]);
    expect(await store.head('crash/instance.dcm')).toBeUndefined();
    expect(await keysOf(store.list(''))).toEqual([]);
    await store.close();
  });

  it('on open, removes temp files of gone processes, foreign names and stale ones; keeps live, fresh ones', async () => {
    const root = await freshRoot();
    await (await createFsObjectStore({ root })).close();
    const tmp = path.join(root, '.tmp');
    const host = os.hostname().replace(/[^A-Za-z0-9.-]/gu, '-') || 'host';
    const name = (pid: number, h = host): string => `${pid}.${randomUUID()}.${h}.tmp`;
    const twoDaysAgo = new Date(Date.now() - 2 * 24 * 3600 * 1000);
    const files = {
      foreign: 'leftover.part',
      deadProcess: name(2_000_000_000),
      liveFresh: name(process.pid),
      liveStale: name(process.pid),
      otherHostFresh: name(process.pid, 'other-host'),
      otherHostStale: name(process.pid, 'other-host'),
    };
    for (const file of Object.values(files)) await writeFile(path.join(tmp, file), 'partial');
    await utimes(path.join(tmp, files.liveStale), twoDaysAgo, twoDaysAgo);
    await utimes(path.join(tmp, files.otherHostStale), twoDaysAgo, twoDaysAgo);
    await (await createFsObjectStore({ root })).close();
    expect((await readdir(tmp)).sort()).toEqual([files.liveFresh, files.otherHostFresh].sort());
  });

  it('keeps one file per object under objects/ and lists nothing else found there', async () => {
    const root = await freshRoot();
    const store = await createFsObjectStore({ root });
    await store.put('studies/1.2.3/preview.png', Buffer.from('png'), { contentType: 'image/png' });
    expect(await readdir(path.join(root, 'objects', 'studies', '1.2.3'))).toEqual(['preview.png~obj']);
    // Strays: a file without the suffix, a folder whose name is not a key segment, an editor's backup.
    await writeFile(path.join(root, 'objects', 'studies', 'README'), 'notes');
    await mkdir(path.join(root, 'objects', 'lost+found'));
    await writeFile(path.join(root, 'objects', 'lost+found', 'x~obj'), 'junk');
    await writeFile(path.join(root, 'objects', 'studies', '1.2.3', 'preview.png~obj~'), 'backup');
    expect(await keysOf(store.list(''))).toEqual(['studies/1.2.3/preview.png']);
    await store.close();
  });

  it('reads what an earlier instance wrote', async () => {
    const root = await freshRoot();
    const first = await createFsObjectStore({ root });
    await first.put('reports/r1.json', Buffer.from('{"impression":"normal"}'), { contentType: 'application/json', metadata: { author: 'dr-an' } });
    await first.close();
    const second = await createFsObjectStore({ root });
    expect(await second.head('reports/r1.json')).toMatchObject({ size: 23, contentType: 'application/json', metadata: { author: 'dr-an' } });
    expect(Buffer.from(await second.getBytes('reports/r1.json')).toString()).toBe('{"impression":"normal"}');
    await second.close();
  });

  it('reports a damaged object file as CXR_STORE_CORRUPT (permanent)', async () => {
    const root = await freshRoot();
    const store = await createFsObjectStore({ root });
    await store.put('damaged', Buffer.alloc(1000, 3));
    const file = await open(path.join(root, 'objects', 'damaged~obj'), 'r+');
    await file.truncate(900);
    await file.close();
    const err = await storeError(store.head('damaged'), 'CXR_STORE_CORRUPT');
    expect(err.transient).toBe(false);
    await storeError(store.get('damaged'), 'CXR_STORE_CORRUPT');
    await storeError(store.getBytes('damaged'), 'CXR_STORE_CORRUPT');
    await storeError(collect(store.list('')), 'CXR_STORE_CORRUPT');
    await store.delete('damaged');
    expect(await keysOf(store.list(''))).toEqual([]);
    await store.close();
  });
});

describe('storeFromUrl (folders)', () => {
  it('opens DIR, file://DIR and file:///abs as the folder store', async () => {
    const root = await freshRoot();
    const relative = path.relative(process.cwd(), root);
    for (const url of [root, relative, `file://${relative}`, pathToFileURL(root).href]) {
      expect(parseStoreUrl(url)).toEqual({ config: { kind: 'fs', options: { root } }, problems: [] });
    }
    const store = await storeFromUrl(pathToFileURL(root).href, {});
    expect(store.kind).toBe('fs');
    await store.put('k', Buffer.from('v'));
    await store.close();
    expect(await readdir(path.join(root, 'objects'))).toEqual(['k~obj']);
  });

  it('refuses an empty setting and unknown schemes', async () => {
    expect(parseStoreUrl('').problems).toHaveLength(1);
    expect(parseStoreUrl('minio://bucket').problems[0]).toMatch(/unsupported scheme minio/u);
    await expect(storeFromUrl('ftp://host/dir', {})).rejects.toMatchObject({ code: 'CXR_STORE_CONFIG', transient: false });
  });
});
