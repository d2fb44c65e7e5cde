/**
 * The object store in a local folder: the embedded default, a real implementation (not a mock) that passes the
 * same conformance suite as S3.
 *
 * Layout under ROOT:
 *   objects/<segments of the key>~obj   one file per object: the body, then a JSON trailer (sha256, content type,
 *                                       metadata, size, key), then a 12-byte footer (trailer length, magic)
 *   .tmp/<pid>.<uuid>.<host>.tmp        writes in progress
 *
 * Why one file with a trailer rather than a sidecar: a put becomes visible with one rename, so body and metadata
 * change together, and a reader that opened the file keeps a consistent snapshot (the inode) even while the key
 * is overwritten. The `~obj` suffix (`~` cannot occur in a key) keeps the key `a` (file `a~obj`) apart from the
 * folder of `a/b`, so both can exist as on S3, and makes anything else in the tree (stray files, temp files)
 * invisible to `list()`.
 *
 * Durability of a put: stream into .tmp/ while hashing, fsync the file, verify the sha256, then rename (or, for
 * `ifNoneMatch`, hard-link, which fails with EEXIST when another writer created the key first: atomic across
 * processes) into place and fsync the folder (and every folder the put created). A crash at any point leaves
 * either no object or the complete one; leftovers in .tmp/ are removed on open. Needs a POSIX file system with
 * hard links (ext4, xfs, btrfs, NFS).
 */
import { createHash, randomUUID } from 'node:crypto';
import type { Dirent } from 'node:fs';
import { link, mkdir, open, readdir, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  BodySourceError,
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
  type GetOptions,
  type ListOptions,
  type NormalizedPutOptions,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  type PutOptions,
} from './object-store.js';

export interface FsObjectStoreOptions {
  /** the folder; created if missing */
  root: string;
  /**
   * On open, temp files of processes that are gone are removed at once; those of live processes (another
   * gateway or CLI on the same folder) only when older than this. Default 24 hours.
   */
  staleTempMs?: number;
}

export interface FsObjectStore extends ObjectStore {
  readonly kind: 'fs';
  /** the absolute root folder */
  readonly root: string;
}

const OBJECTS_DIR = 'objects';
const TMP_DIR = '.tmp';
const OBJECT_SUFFIX = '~obj';
const MAGIC = Buffer.from('CXROBJ01', 'latin1');
const FOOTER_BYTES = 4 + MAGIC.length;
const MAX_TRAILER_BYTES = 64 * 1024;
/** small chunks are gathered up to this before a write */
const FLUSH_BYTES = 1024 * 1024;
/** a chunk at least this big is written as is */
const DIRECT_WRITE_BYTES = 64 * 1024;
const DAY_MS = 24 * 3600 * 1000;
/**
 * The store holds patient images, accounts and the registry's private key: folders (the root too, when the store
 * makes it) and files for the gateway's user only, whatever the process's umask. An existing root keeps its mode.
 */
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;

const HOST_TAG = os.hostname().replace(/[^A-Za-z0-9.-]/gu, '-') || 'host';
const TEMP_NAME = /^(\d+)\.([0-9a-f-]{36})\.([A-Za-z0-9.-]+)\.tmp$/u;

/** Errors of the file system that may pass: full disk, I/O error, too many open files, NFS hiccups. */
const TRANSIENT_FS_CODES = new Set(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'EBUSY', 'ETIMEDOUT', 'ESTALE', 'EINTR', 'ENOMEM', 'ENOBUFS']);

interface Trailer {
  v: 1;
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  metadata: Record<string, string>;
}

export async function createFsObjectStore(options: FsObjectStoreOptions): Promise<FsObjectStore> {
  if (typeof options?.root !== 'string' || options.root === '') throw new ObjectStoreError('CXR_STORE_CONFIG', 'the fs store needs a root folder');
  const root = path.resolve(options.root);
  const staleTempMs = options.staleTempMs ?? DAY_MS;
  try {
    await mkdir(path.join(root, OBJECTS_DIR), { recursive: true, mode: DIR_MODE });
    await mkdir(path.join(root, TMP_DIR), { recursive: true, mode: DIR_MODE });
    await removeLeftoverTemps(path.join(root, TMP_DIR), staleTempMs);
  } catch (err) {
    throw fsError(err);
  }
  return new FsStore(root);
}

class FsStore implements FsObjectStore {
  readonly kind = 'fs' as const;
  readonly root: string;
  readonly #objects: string;
  readonly #tmp: string;
  readonly #lifecycle = new StoreLifecycle();

  constructor(root: string) {
    this.root = root;
    this.#objects = path.join(root, OBJECTS_DIR);
    this.#tmp = path.join(root, TMP_DIR);
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
    const handle = await this.#open(key);
    if (!handle) throw notFound(key);
    try {
      const info = await readTrailer(handle, key);
      if (range && range.start >= info.size) throw rangePastEnd(key, range.start, info.size);
      if (info.size === 0) {
        await handle.close();
        return Readable.from([], { objectMode: false });
      }
      const start = range?.start ?? 0;
      const end = Math.min(range?.end ?? info.size - 1, info.size - 1);
      // The handle pins this version of the object: an overwrite meanwhile renames a new inode over the name.
      return handle.createReadStream({ start, end, autoClose: true });
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw fsError(err, key);
    }
  }

  async getBytes(key: string): Promise<Uint8Array> {
    this.#assertOpen();
    assertValidKey(key);
    const handle = await this.#open(key);
    if (!handle) throw notFound(key);
    try {
      const info = await readTrailer(handle, key);
      const bytes = Buffer.allocUnsafe(info.size);
      await readFully(handle, bytes, 0, key);
      return bytes;
    } catch (err) {
      throw fsError(err, key);
    } finally {
      await handle.close().catch(() => undefined);
    }
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
    const cut = prefix.lastIndexOf('/') + 1;
    let count = 0;
    for await (const key of this.#walk(prefix.slice(0, cut), prefix.slice(cut), startAfter)) {
      const info = await this.#head(key);
      if (!info) continue; // deleted since the folder was read
      yield info;
      if (++count >= limit) return;
    }
  }

  async delete(key: string): Promise<void> {
    this.#assertOpen();
    assertValidKey(key);
    await this.#track(this.#delete(key));
  }

  async close(): Promise<void> {
    await this.#lifecycle.close();
  }

  // -------------------------------------------------------------------------------------------------------------

  async #put(key: string, body: ObjectBody, opts: NormalizedPutOptions): Promise<ObjectInfo> {
    const target = this.#path(key);
    const tmp = path.join(this.#tmp, `${process.pid}.${randomUUID()}.${HOST_TAG}.tmp`);
    let handle: FileHandle | undefined;
    let placed = false;
    try {
      // Refuse a replay before reading its body; the link() below is what makes it safe against a concurrent writer.
      if (opts.ifNoneMatch && (await exists(target))) throw new ObjectStoreError('CXR_STORE_EXISTS', key, { key });
      handle = await open(tmp, 'wx', FILE_MODE);
      const writer = new BufferedWriter(handle);
      const hash = createHash('sha256');
      let size = 0;
      for await (const chunk of bodyChunks(body)) {
        hash.update(chunk);
        size += chunk.byteLength;
        await writer.write(chunk);
      }
      const sha256 = hash.digest('hex');
      if (opts.sha256 !== undefined && opts.sha256 !== sha256) {
        throw new ObjectStoreError('CXR_STORE_HASH_MISMATCH', `${key}: expected ${opts.sha256}, the body has ${sha256}`, { key });
      }
      const trailer: Trailer = { v: 1, key, size, sha256, contentType: opts.contentType, metadata: opts.metadata };
      await writer.write(encodeTrailer(trailer));
      await writer.flush();
      await handle.sync();
      const { mtime } = await handle.stat();
      await handle.close();
      handle = undefined;
      await this.#place(tmp, target, opts.ifNoneMatch, key);
      placed = true;
      return { key, size, sha256, contentType: opts.contentType, lastModified: mtime, metadata: { ...opts.metadata } };
    } catch (err) {
      if (err instanceof BodySourceError) throw err.cause;
      throw fsError(err, key);
    } finally {
      if (handle) await handle.close().catch(() => undefined);
      if (!placed) await rm(tmp, { force: true }).catch(() => undefined);
    }
  }

  /** Makes the fsynced temp file the object: atomic replace (rename) or atomic create (link). */
  async #place(tmp: string, target: string, exclusive: boolean, key: string): Promise<void> {
    const dir = path.dirname(target);
    await this.#mkdirs(dir);
    for (let attempt = 1; ; attempt++) {
      try {
        if (exclusive) {
          await link(tmp, target);
          await unlink(tmp).catch(() => undefined); // a leftover link in .tmp/ is removed on the next open
        } else {
          await rename(tmp, target);
        }
        break;
      } catch (err) {
        const code = errnoCode(err);
        if (exclusive && code === 'EEXIST') throw new ObjectStoreError('CXR_STORE_EXISTS', key, { key });
        // A concurrent delete pruned the folder (empty at that moment) between mkdir and rename: make it again.
        if (code === 'ENOENT' && attempt < 5) {
          await this.#mkdirs(dir);
          continue;
        }
        throw err;
      }
    }
    await fsyncDir(dir);
  }

  /** mkdir -p, then fsync the parent of every folder it created, so that the new path survives a crash. */
  async #mkdirs(dir: string): Promise<void> {
    const first = await mkdir(dir, { recursive: true, mode: DIR_MODE });
    if (first === undefined) return;
    const created: string[] = [];
    for (let d = dir; ; d = path.dirname(d)) {
      created.push(d);
      if (d === first || path.dirname(d) === d) break;
    }
    for (const d of created.reverse()) await fsyncDir(path.dirname(d));
  }

  async #delete(key: string): Promise<void> {
    const target = this.#path(key);
    try {
      await unlink(target);
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return;
      throw fsError(err, key);
    }
    const dir = path.dirname(target);
    try {
      await fsyncDir(dir);
    } catch (err) {
      throw fsError(err, key);
    }
    // Prune folders left empty, so that listing stays fast; a put racing with this makes its folder again.
    for (let d = dir; d.startsWith(this.#objects + path.sep); d = path.dirname(d)) {
      try {
        await rmdir(d);
      } catch {
        break;
      }
    }
  }

  async #head(key: string): Promise<ObjectInfo | undefined> {
    const handle = await this.#open(key);
    if (!handle) return undefined;
    try {
      return await readTrailer(handle, key);
    } catch (err) {
      throw fsError(err, key);
    } finally {
      await handle.close().catch(() => undefined);
    }
  }

  /** The object's file, or undefined when there is none. */
  async #open(key: string): Promise<FileHandle | undefined> {
    try {
      return await open(this.#path(key), 'r');
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
      throw fsError(err, key);
    }
  }

  /**
   * Keys under the folder `dirKey` (`''` or ending in `/`) whose next segment starts with `partial`, after
   * `startAfter`, in key order. A folder `d` stands for the keys `d/...`: sorting entries by `name` for a file and
   * `name/` for a folder gives the lexicographic order of the keys, one folder in memory at a time.
   */
  async *#walk(dirKey: string, partial: string, startAfter: string): AsyncGenerator<string, void, undefined> {
    let entries: Dirent[];
    try {
      entries = await readdir(path.join(this.#objects, dirKey), { withFileTypes: true });
    } catch (err) {
      const code = errnoCode(err);
      if (code === 'ENOENT' || code === 'ENOTDIR') return;
      throw fsError(err);
    }
    const items: { sortKey: string; folder: boolean }[] = [];
    for (const entry of entries) {
      let name: string;
      const folder = entry.isDirectory();
      if (folder) name = entry.name;
      else if (entry.isFile() && entry.name.endsWith(OBJECT_SUFFIX)) name = entry.name.slice(0, -OBJECT_SUFFIX.length);
      else continue;
      if (!name.startsWith(partial) || !isValidKey(dirKey + name)) continue;
      const sortKey = folder ? `${dirKey}${name}/` : `${dirKey}${name}`;
      // Every key under folder `d/` sorts before startAfter when `d/` does and startAfter is not inside it.
      if (sortKey <= startAfter && !(folder && startAfter.startsWith(sortKey))) continue;
      items.push({ sortKey, folder });
    }
    items.sort((a, b) => (a.sortKey < b.sortKey ? -1 : a.sortKey > b.sortKey ? 1 : 0));
    for (const item of items) {
      if (item.folder) yield* this.#walk(item.sortKey, '', startAfter);
      else yield item.sortKey;
    }
  }

  #path(key: string): string {
    return path.join(this.#objects, key + OBJECT_SUFFIX);
  }

  #assertOpen(): void {
    this.#lifecycle.assertOpen();
  }

  #track<T>(work: Promise<T>): Promise<T> {
    return this.#lifecycle.track(work);
  }
}

/** Gathers small chunks (copying them: the producer may reuse its buffer) into fewer, larger writes. */
class BufferedWriter {
  readonly #handle: FileHandle;
  #pending: Buffer[] = [];
  #pendingBytes = 0;

  constructor(handle: FileHandle) {
    this.#handle = handle;
  }

  async write(chunk: Uint8Array): Promise<void> {
    if (this.#pendingBytes === 0 && chunk.byteLength >= DIRECT_WRITE_BYTES) {
      await writeFully(this.#handle, chunk);
      return;
    }
    this.#pending.push(Buffer.from(chunk));
    this.#pendingBytes += chunk.byteLength;
    if (this.#pendingBytes >= FLUSH_BYTES) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.#pendingBytes === 0) return;
    const data = this.#pending.length === 1 ? this.#pending[0]! : Buffer.concat(this.#pending, this.#pendingBytes);
    this.#pending = [];
    this.#pendingBytes = 0;
    await writeFully(this.#handle, data);
  }
}

async function writeFully(handle: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let offset = 0; offset < bytes.byteLength; ) {
    const { bytesWritten } = await handle.write(bytes, offset, bytes.byteLength - offset);
    offset += bytesWritten;
  }
}

async function readFully(handle: FileHandle, into: Buffer, position: number, key: string): Promise<void> {
  for (let offset = 0; offset < into.length; ) {
    const { bytesRead } = await handle.read(into, offset, into.length - offset, position + offset);
    if (bytesRead === 0) throw new ObjectStoreError('CXR_STORE_CORRUPT', `${key}: the file is shorter than its trailer says`, { key });
    offset += bytesRead;
  }
}

function encodeTrailer(trailer: Trailer): Buffer {
  const json = Buffer.from(JSON.stringify(trailer), 'utf8');
  const footer = Buffer.alloc(FOOTER_BYTES);
  footer.writeUInt32BE(json.length, 0);
  MAGIC.copy(footer, 4);
  return Buffer.concat([json, footer]);
}

async function readTrailer(handle: FileHandle, key: string): Promise<ObjectInfo> {
  const corrupt = (why: string): never => {
    throw new ObjectStoreError('CXR_STORE_CORRUPT', `${key}: ${why}`, { key });
  };
  const { size: fileSize, mtime } = await handle.stat();
  if (fileSize < FOOTER_BYTES) corrupt('no footer');
  const footer = Buffer.alloc(FOOTER_BYTES);
  await readFully(handle, footer, fileSize - FOOTER_BYTES, key);
  if (!footer.subarray(4).equals(MAGIC)) corrupt('bad magic');
  const trailerBytes = footer.readUInt32BE(0);
  if (trailerBytes > MAX_TRAILER_BYTES || trailerBytes > fileSize - FOOTER_BYTES) corrupt('bad trailer length');
  const raw = Buffer.alloc(trailerBytes);
  await readFully(handle, raw, fileSize - FOOTER_BYTES - trailerBytes, key);
  let trailer: Partial<Trailer>;
  try {
    trailer = JSON.parse(raw.toString('utf8')) as Partial<Trailer>;
  } catch {
    return corrupt('trailer is not JSON');
  }
  const size = fileSize - FOOTER_BYTES - trailerBytes;
  if (trailer.v !== 1 || trailer.size !== size || typeof trailer.sha256 !== 'string' || typeof trailer.contentType !== 'string') corrupt('bad trailer');
  const metadata = trailer.metadata;
  if (metadata === null || typeof metadata !== 'object' || Object.values(metadata).some((v) => typeof v !== 'string')) corrupt('bad metadata');
  return { key, size, sha256: trailer.sha256!, contentType: trailer.contentType!, lastModified: mtime, metadata: { ...metadata } };
}

async function fsyncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems cannot fsync a folder; there is nothing more to do for them.
    if (!['EINVAL', 'ENOTSUP', 'EISDIR'].includes(errnoCode(err) ?? '')) throw err;
  } finally {
    await handle.close();
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw err;
  }
}

/**
 * Removes writes that a crash cut short. A temp file is named after its process and host: it goes at once when
 * that process (on this host) is gone or the name is not ours, otherwise only when older than `staleMs` (a
 * live process may still be writing it; another host sharing the folder cannot be asked).
 */
async function removeLeftoverTemps(dir: string, staleMs: number): Promise<void> {
  for (const name of await readdir(dir)) {
    const file = path.join(dir, name);
    const match = TEMP_NAME.exec(name);
    let remove = true;
    if (match && !(match[3] === HOST_TAG && !processAlive(Number(match[1])))) {
      const info = await stat(file).catch(() => undefined);
      remove = info !== undefined && Date.now() - info.mtimeMs > staleMs;
    }
    if (remove) await rm(file, { force: true, recursive: true });
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return errnoCode(err) === 'EPERM';
  }
}

function errnoCode(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

function notFound(key: string): ObjectStoreError {
  return new ObjectStoreError('CXR_STORE_NOT_FOUND', key, { key });
}

/** Store errors pass through; file system errors become UNAVAILABLE (transient) or FAILED (permanent). */
function fsError(err: unknown, key?: string): ObjectStoreError {
  if (err instanceof ObjectStoreError) return err;
  const code = errnoCode(err);
  const message = err instanceof Error ? err.message : String(err);
  if (code && TRANSIENT_FS_CODES.has(code)) return new ObjectStoreError('CXR_STORE_UNAVAILABLE', message, { key, cause: err });
  return new ObjectStoreError('CXR_STORE_FAILED', message, { key, cause: err });
}
