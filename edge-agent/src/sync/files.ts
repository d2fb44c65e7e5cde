import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { CxrError, type ModelRelease, type ReleaseFile } from '@cxr/inference';
import { syncDir } from './state.js';

/** A download stopped before its end (link dropped, stalled or stopped): what is on disk stays for the next try. */
export class DownloadInterrupted extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DownloadInterrupted';
  }
}

/** Folder of one model version under DATA_DIR/models/. */
export function modelFolder(modelsDir: string, name: string, version: string): string {
  return path.join(modelsDir, `${name}@${version}`);
}

/** Absolute path of a release file inside its folder; refuses a path that would leave the folder. */
export function releasePath(folder: string, file: ReleaseFile): string {
  const target = path.resolve(folder, file.path);
  if (!target.startsWith(path.resolve(folder) + path.sep)) throw new CxrError('CXR_SIGNATURE_INVALID', `release file ${file.path} is outside the model folder`);
  return target;
}

export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function sizeOf(file: string): Promise<number | undefined> {
  try {
    return (await stat(file)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

/** True when the file is there with the signed size and digest. */
export async function fileMatches(file: string, expected: ReleaseFile): Promise<boolean> {
  const size = await sizeOf(file);
  return size === expected.size && (await sha256File(file)) === expected.sha256;
}

/**
 * Checks every file of a folder against the signed release (size and sha256), and that its manifest names the
 * release. Throws CXR_MODEL_DIGEST_MISMATCH naming the files that differ, CXR_MANIFEST_INVALID for another model.
 */
export async function verifyFolder(folder: string, release: ModelRelease): Promise<void> {
  const wrong: string[] = [];
  for (const file of release.files) {
    if (!(await fileMatches(releasePath(folder, file), file))) wrong.push(file.path);
  }
  if (wrong.length > 0) throw new CxrError('CXR_MODEL_DIGEST_MISMATCH', `${release.name}@${release.version}: ${wrong.join(', ')} do not match the signed release`);
  if (!release.files.some((f) => f.path === 'manifest.json')) throw new CxrError('CXR_MANIFEST_INVALID', `${release.name}@${release.version}: the release has no manifest.json`);
  const manifest = JSON.parse(await readFile(path.join(folder, 'manifest.json'), 'utf8')) as { name?: unknown; version?: unknown };
  if (manifest.name !== release.name || manifest.version !== release.version) {
    throw new CxrError('CXR_MANIFEST_INVALID', `the manifest names ${String(manifest.name)}@${String(manifest.version)}, the signed release ${release.name}@${release.version}`);
  }
}

export interface DownloadOutcome {
  /** bytes already on disk when this download started (0: from the beginning) */
  readonly resumedFrom: number;
  /** bytes received by this call */
  readonly received: number;
  /** the file was already complete and verified */
  readonly present: boolean;
}

export interface DownloadOptions {
  /** asks for the file from `offset` on (a Range request when > 0) */
  readonly fetchFrom: (offset: number, signal: AbortSignal) => Promise<Response>;
  readonly signal: AbortSignal;
  /** the download stops (resumable) when no byte arrives for this long, ms */
  readonly stallMs: number;
}

const SYNC_EVERY_BYTES = 4 * 1024 * 1024;

/**
 * Downloads one release file resumably: bytes go to `<file>.part`, continued with a Range request from its size
 * after a dropped link or a restart; once complete it is fsynced, its sha256 checked against the signed release
 * (CXR_MODEL_DIGEST_MISMATCH: the part is removed) and renamed into place.
 */
export async function downloadFile(target: string, expected: ReleaseFile, options: DownloadOptions): Promise<DownloadOutcome> {
  if (await fileMatches(target, expected)) return { resumedFrom: expected.size, received: 0, present: true };
  await unlink(target).catch(() => undefined);
  await mkdir(path.dirname(target), { recursive: true });
  const part = `${target}.part`;
  let offset = (await sizeOf(part)) ?? 0;
  if (offset > expected.size) {
    await unlink(part);
    offset = 0;
  }
  let resumedFrom = offset;
  let received = 0;
  if (offset < expected.size) {
    const stall = new AbortController();
    const signal = AbortSignal.any([options.signal, stall.signal]);
    let timer = setTimeout(() => stall.abort(), options.stallMs);
    const alive = (): void => {
      clearTimeout(timer);
      timer = setTimeout(() => stall.abort(), options.stallMs);
    };
    try {
      const res = await options.fetchFrom(offset, signal);
      alive();
      if (res.status === 416) {
        // The server has fewer bytes than our part: start again from nothing.
        await res.body?.cancel();
        await unlink(part).catch(() => undefined);
        throw new DownloadInterrupted(`${expected.path}: the server refused the range from ${offset}`);
      }
      if (res.status === 206) {
        const start = /^bytes (\d+)-/u.exec(res.headers.get('content-range') ?? '')?.[1];
        if (Number(start) !== offset) {
          await res.body?.cancel();
          await unlink(part).catch(() => undefined);
          throw new DownloadInterrupted(`${expected.path}: the server answered another range than from ${offset}`);
        }
      } else {
        // A 200 is the whole file: the part is written again from its start.
        offset = 0;
        resumedFrom = 0;
      }
      const handle = await open(part, offset === 0 ? 'w' : 'a');
      let sinceSync = 0;
      try {
        if (!res.body) throw new DownloadInterrupted(`${expected.path}: empty answer`);
        for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
          alive();
          if (offset + received + chunk.byteLength > expected.size) {
            throw new CxrError('CXR_MODEL_DIGEST_MISMATCH', `${expected.path}: the server sent more than the ${expected.size} bytes of the signed release`);
          }
          await handle.write(chunk);
          received += chunk.byteLength;
          sinceSync += chunk.byteLength;
          if (sinceSync >= SYNC_EVERY_BYTES) {
            await handle.datasync();
            sinceSync = 0;
          }
        }
      } catch (err) {
        if (err instanceof CxrError || err instanceof DownloadInterrupted) throw err;
        throw new DownloadInterrupted(`${expected.path}: stopped after ${offset + received} of ${expected.size} bytes (${stall.signal.aborted ? `no data for ${options.stallMs} ms` : (err as Error).message})`);
      } finally {
        // What arrived stays on disk for the next try.
        await handle.datasync().catch(() => undefined);
        await handle.close();
      }
    } catch (err) {
      if (err instanceof CxrError && err.code === 'CXR_MODEL_DIGEST_MISMATCH') await unlink(part).catch(() => undefined);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }
  const size = (await sizeOf(part)) ?? 0;
  if (size < expected.size) throw new DownloadInterrupted(`${expected.path}: the answer ended after ${size} of ${expected.size} bytes`);
  const actual = await sha256File(part);
  if (size !== expected.size || actual !== expected.sha256) {
    await unlink(part);
    throw new CxrError('CXR_MODEL_DIGEST_MISMATCH', `${expected.path}: sha256 ${actual}, the signed release says ${expected.sha256}`);
  }
  await rename(part, target);
  await syncDir(path.dirname(target));
  return { resumedFrom, received, present: false };
}
