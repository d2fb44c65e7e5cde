/**
 * What one push may cost the gateway (issue 15, defect 8): a push that names one blob under many paths, and pushes
 * past the size and file limits. Through the gateway's own app (build() with the real plugin, inject()) over a real
 * redis-server and a folder store; the registry's scratch folder is a folder of the test's, and the registry's
 * metrics step (an option, given a labelled set) looks at it once every file of the push has been copied there.
 */
import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import Fastify from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGateway } from '../../gateway/test/support/gateway.js';
import { registerModelRegistry, type RegistryDeps } from '../src/index.js';
import { auth, login, startTestGateway, type TestGateway } from './support/app.js';
import { sha256 } from './support/models.js';

const MiB = 1024 * 1024;

/**
 * Disk space a folder takes: allocated blocks, each file (inode) once. Synchronous: the registry's metrics option
 * is a plain function called at the moment to look.
 */
function diskUsage(dir: string, inodes = new Set<number>()): { bytes: number; files: number } {
  let bytes = 0;
  let files = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = diskUsage(full, inodes);
      bytes += inner.bytes;
      files += inner.files;
    } else {
      files += 1;
      const s = statSync(full);
      if (inodes.has(s.ino)) continue;
      inodes.add(s.ino);
      bytes += s.blocks * 512;
    }
  }
  return { bytes, files };
}

let gw: TestGateway;
let token = '';
let scratch = '';
/** what the scratch folder held each time the registry had copied a push's files */
const copied: { bytes: number; files: number }[] = [];
const blob = randomBytes(5 * MiB);
const csv = Buffer.from('image,pneumonia\nw/000.bin,1\n');

const upload = async (bytes: Buffer): Promise<void> => {
  const res = await gw.app.inject({ method: 'PUT', url: `/api/v1/registry/blobs/${sha256(bytes)}`, headers: { ...auth(token), 'content-type': 'application/octet-stream' }, payload: bytes });
  expect([200, 201]).toContain(res.statusCode);
};
const paths = (n: number, size = blob.length, sha = sha256(blob)) => Array.from({ length: n }, (_, i) => ({ path: `w/${String(i).padStart(3, '0')}.bin`, sha256: sha, size }));
const push = (payload: object) => gw.app.inject({ method: 'POST', url: '/api/v1/registry/versions', headers: auth(token), payload });
const labelled = { csv: 'labels.csv', files: [{ path: 'labels.csv', sha256: sha256(csv), size: csv.length }], truth: 'pneumonia', score: 'pneumonia' };
const blobObjects = async (): Promise<{ count: number; bytes: number }> => {
  let count = 0;
  let bytes = 0;
  for await (const info of gw.store.list('registry/blobs/')) {
    count += 1;
    bytes += info.size;
  }
  return { count, bytes };
};

beforeAll(async () => {
  await buildGateway();
  scratch = await mkdtemp(path.join(tmpdir(), 'cxr-reg-scratch-'));
  gw = await startTestGateway({
    latencyRuns: 2,
    scratchDir: scratch,
    maxPushBytes: 1000 * MiB,
    maxLabelledFiles: 3,
    // Built once the model folder and the labelled set (`<push folder>/labelled/labels.csv`) are copied, before
    // validation starts: the moment the scratch folder holds the most.
    metricsFor: (csvPath) => {
      copied.push(diskUsage(path.dirname(path.dirname(csvPath))));
      return async () => ({ errors: [], report: {} });
    },
  });
  await gw.accounts.addUser({ username: 'kt.hung', password: 'mat-khau-dai-3', role: 'mlops' });
  token = await login(gw.app, 'kt.hung', 'mat-khau-dai-3');
  await upload(blob);
  await upload(csv);
}, 120_000);

afterAll(async () => {
  await gw?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('a push names one 5 MiB blob under 199 paths', () => {
  it('copies it once for validation, and the store keeps it once', async () => {
    const before = await blobObjects();
    const res = await push({ files: paths(199), labelled });
    // No manifest: refused, after the files were copied and looked at.
    expect(res.statusCode).toBe(422);
    expect(copied).toHaveLength(1);
    expect(copied[0]?.files).toBe(200);
    // 199 copies would be 995 MiB; one copy and links is 5 MiB.
    expect(copied[0]?.bytes).toBeLessThan(2 * blob.length);
    expect(await blobObjects()).toEqual(before);
    expect(before.count).toBe(2);
    expect(before.bytes).toBe(blob.length + csv.length);
    // Nothing is left behind in the scratch folder.
    expect(await readdir(scratch)).toEqual([]);
  });
});

describe('push limits', () => {
  it('refuses a push past its size and file limits with 413 CXR_PAYLOAD_TOO_LARGE, naming each, before copying anything', async () => {
    const refusedBefore = ((await gw.app.inject({ method: 'GET', url: '/api/v1/registry/refused', headers: auth(token) })).json() as unknown[]).length;
    const copiesBefore = copied.length;
    // 201 paths of 5 MiB: 1005 MiB, past this gateway's 1000 MiB, and past 200 model files; 4 labelled files, past 3.
    const tooMany = { ...labelled, files: [...labelled.files, ...paths(3, csv.length, sha256(csv)).map((f, i) => ({ ...f, path: `img/${i}.csv` }))] };
    const res = await push({ files: paths(201), labelled: tooMany });
    expect(res.statusCode).toBe(413);
    const { error } = res.json() as { error: { code: string; message: string } };
    expect(error.code).toBe('CXR_PAYLOAD_TOO_LARGE');
    expect(error.message).toContain('the model folder has 201 files, at most 200');
    expect(error.message).toContain('the labelled set has 4 files, at most 3');
    expect(error.message).toContain(`the push names ${201 * blob.length + 4 * csv.length} bytes in all (each path counted), at most ${1000 * MiB}`);
    // Refused before anything was copied or kept.
    expect(copied).toHaveLength(copiesBefore);
    expect(await readdir(scratch)).toEqual([]);
    expect(((await gw.app.inject({ method: 'GET', url: '/api/v1/registry/refused', headers: auth(token) })).json() as unknown[]).length).toBe(refusedBefore);
    // One limit alone: the size.
    const big = await push({ files: [...paths(199), { path: 'big.bin', sha256: sha256(blob), size: 6 * MiB }] });
    expect(big.statusCode).toBe(413);
    const message = (big.json() as { error: { message: string } }).error.message;
    expect(message).toMatch(/: the push names \d+ bytes in all/u);
    expect(message).not.toMatch(/files, at most/u);
  });

  it('refuses options out of range when the registry is mounted, naming every one', async () => {
    const app = Fastify();
    try {
      // The options are checked before the registry touches anything it is given.
      await expect(registerModelRegistry(app, {} as RegistryDeps, { maxPushBytes: -1, maxModelFiles: 5000, maxLabelledFiles: 1.5 })).rejects.toThrow(
        /maxPushBytes: -1 is not a whole number from 1 to \d+; maxModelFiles: 5000 is not a whole number from 1 to 1000; maxLabelledFiles: 1\.5 is not/u,
      );
    } finally {
      await app.close();
    }
  });
});

describe('paths of a push', () => {
  it('refuses a path named both as a file and as a folder, with the reason (not an internal error)', async () => {
    const res = await push({ files: [{ path: 'w', sha256: sha256(csv), size: csv.length }, { path: 'w/x.bin', sha256: sha256(csv), size: csv.length }] });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ accepted: false, errors: [{ check: 'files', code: 'CXR_MANIFEST_INVALID', message: 'file "w" is also a folder of "w/x.bin"' }] });
  });
});
