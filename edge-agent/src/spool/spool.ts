import { createHash, randomUUID } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { chmod, mkdir, open, readFile, readdir, rename, rm, statfs, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import { CxrError, Tag, crashPoint, formatTag, isValidUid, parseDicom, readImageInfo, type DicomDataset } from '@cxr/inference';
import { EdgeCrashPoint } from '../crash-points.js';
import type { Logger } from '../log.js';
import { datasetOffset } from './part10.js';
import type { InsertOutcome, InstanceRecord, InstanceSource, NewInstance, SpoolDb } from './db.js';
import { compareInstances } from './equivalence.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, privateDir } from './modes.js';

/** Why an instance was not accepted. `out-of-resources` is told to the sender as such (C-STORE A700). */
export class SpoolRefusal extends Error {
  readonly reason: 'out-of-resources' | 'unreadable';
  constructor(reason: 'out-of-resources' | 'unreadable', message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SpoolRefusal';
    this.reason = reason;
  }
}

/** A file being written: bytes go through the hash to a temporary name; nothing is visible until `commit`. */
export interface SpoolWriter {
  readonly stream: Writable;
  /** Resolves once every byte is on disk (fsynced) under the temporary name. */
  finished(): Promise<{ tmpPath: string; sha256: string; size: number }>;
  abort(): Promise<void>;
}

export interface SpoolOptions {
  readonly dataDir: string;
  /** bytes that must stay free on the spool's disk */
  readonly minFreeBytes: number;
}

/** Test seam: the storage layer's writes, so a test can make the disk "full" without filling one. */
export interface SpoolFaults {
  beforeWrite?(): void;
}

/** What the spool asks of the disk guard (spool/disk-guard.ts); without one, only the free space is looked at. */
export interface SpoolDisk {
  readonly full: boolean;
  /** one of our own writes failed: true when for want of room (the disk is full until there is room again) */
  report(err: unknown): boolean;
  /** a received file did not fit: look at the free space now */
  check(): Promise<void>;
}

const isNoSpace = (err: unknown): boolean => ['ENOSPC', 'EDQUOT', 'EFBIG'].includes((err as NodeJS.ErrnoException).code ?? '');

/**
 * The durable store of received instances. A file is written to tmp/, fsynced, renamed to objects/ by its
 * content hash (never by a UID from the wire), the folder fsynced, then recorded in the database. Only then is
 * the instance acknowledged.
 */
export class Spool {
  readonly dirs: { tmp: string; objects: string; derived: string; quarantine: string };
  readonly #db: SpoolDb;
  readonly #log: Logger;
  readonly #options: SpoolOptions;
  readonly #faults: SpoolFaults;
  readonly #disk: SpoolDisk | undefined;
  /** Commits of one SOP Instance UID, one after the other: each compares itself with the versions stored before it. */
  readonly #commitsByUid = new Map<string, Promise<unknown>>();

  constructor(deps: { db: SpoolDb; log: Logger; faults?: SpoolFaults; disk?: SpoolDisk }, options: SpoolOptions) {
    this.#db = deps.db;
    this.#log = deps.log;
    this.#faults = deps.faults ?? {};
    this.#disk = deps.disk;
    this.#options = options;
    const d = options.dataDir;
    this.dirs = { tmp: path.join(d, 'tmp'), objects: path.join(d, 'objects'), derived: path.join(d, 'derived'), quarantine: path.join(d, 'quarantine') };
  }

  async init(): Promise<void> {
    for (const dir of Object.values(this.dirs)) await privateDir(dir);
    // Leftovers of writes cut short by a crash were never acknowledged: drop them.
    for (const name of await readdir(this.dirs.tmp)) await rm(path.join(this.dirs.tmp, name), { force: true });
  }

  /** Refuses when the disk is full or nearly so, before the sender transfers anything. */
  async checkSpace(): Promise<void> {
    if (this.#disk?.full) throw new SpoolRefusal('out-of-resources', 'the spool disk is full');
    const stats = await statfs(this.dirs.tmp);
    const free = stats.bavail * stats.bsize;
    if (free < this.#options.minFreeBytes) {
      throw new SpoolRefusal('out-of-resources', `only ${free} bytes free on the spool disk, ${this.#options.minFreeBytes} required`);
    }
  }

  /**
   * Starts a file. `header` (the Part 10 preamble and File Meta) is written first but is not hashed: the
   * content hash covers the dataset, so the same instance has the same hash whichever way it arrived.
   */
  beginWrite(header: Uint8Array | undefined): SpoolWriter {
    const tmpPath = path.join(this.dirs.tmp, `${randomUUID()}.part`);
    const hash = createHash('sha256');
    let size = 0;
    let failure: unknown;
    let file: WriteStream | undefined;
    try {
      this.#faults.beforeWrite?.();
      file = createWriteStream(tmpPath, { flags: 'wx', mode: PRIVATE_FILE_MODE });
    } catch (err) {
      failure = err;
    }
    file?.on('error', (err) => {
      failure ??= err;
    });
    if (header && file) file.write(header);
    const stream = new Writable({
      highWaterMark: 1 << 20,
      write: (chunk: Buffer, _enc, callback) => {
        if (failure || !file) return callback();
        try {
          this.#faults.beforeWrite?.();
        } catch (err) {
          failure = err;
          return callback();
        }
        hash.update(chunk);
        size += chunk.length;
        if (file.write(chunk)) return callback();
        // A full disk errors instead of draining: either way the sender must not stall.
        const resume = (): void => {
          file?.off('drain', resume).off('error', resume).off('close', resume);
          callback();
        };
        file.once('drain', resume).once('error', resume).once('close', resume);
      },
      final: (callback) => {
        if (!file) return callback();
        file.end(() => callback());
      },
    });
    const done = new Promise<void>((resolve) => stream.once('finish', () => resolve()));
    return {
      stream,
      finished: async () => {
        await done;
        if (file && !file.closed) await new Promise<void>((resolve) => file?.once('close', () => resolve()));
        if (failure) {
          await rm(tmpPath, { force: true });
          throw isNoSpace(failure) ? this.#noRoom(`disk full while writing: ${(failure as Error).message}`, failure) : failure;
        }
        try {
          await fsyncPath(tmpPath);
        } catch (err) {
          await rm(tmpPath, { force: true });
          throw isNoSpace(err) ? this.#noRoom('disk full while syncing', err) : err;
        }
        crashPoint(EdgeCrashPoint.TmpSynced);
        return { tmpPath, sha256: hash.digest('hex'), size };
      },
      abort: async () => {
        stream.destroy();
        // Wait for the descriptor to close: removing the name while the open is still queued would let the open
        // create the file again afterwards.
        if (file && !file.closed) {
          const closing = file;
          await new Promise<void>((resolve) => {
            closing.once('close', () => resolve());
            closing.destroy();
          });
        }
        await rm(tmpPath, { force: true });
      },
    };
  }

  /** Writes a whole file (watched folder). The hash covers the dataset after any File Meta. */
  async writeBytes(bytes: Uint8Array): Promise<{ tmpPath: string; sha256: string; size: number }> {
    const tmpPath = path.join(this.dirs.tmp, `${randomUUID()}.part`);
    try {
      this.#faults.beforeWrite?.();
      await writeFile(tmpPath, bytes, { flag: 'wx', mode: PRIVATE_FILE_MODE });
      await fsyncPath(tmpPath);
    } catch (err) {
      await rm(tmpPath, { force: true });
      throw isNoSpace(err) ? this.#noRoom(`disk full: ${(err as Error).message}`, err) : err;
    }
    crashPoint(EdgeCrashPoint.TmpSynced);
    const sha256 = createHash('sha256').update(bytes.subarray(datasetOffset(bytes))).digest('hex');
    return { tmpPath, sha256, size: bytes.length };
  }

  /**
   * Makes a written file durable and records it. Reads its header (refusing what is not readable DICOM, kept in
   * quarantine with the reason), renames it to objects/, fsyncs the folder, inserts the row. The same instance in
   * another encoding as a stored version is a duplicate: the stored file stays, the new one is removed.
   */
  async commit(
    written: { tmpPath: string; sha256: string; size: number },
    origin: { source: InstanceSource; callingAe: string | null; sopInstanceUid?: string; name?: string },
  ): Promise<InsertOutcome> {
    const bytes = await readFile(written.tmpPath);
    let header: NewInstanceHeader;
    try {
      header = readHeader(bytes, origin.sopInstanceUid);
    } catch (err) {
      const code = (err as CxrError).code ?? 'CXR_MALFORMED';
      // The written copy is what is kept: the sender's own file (a watched one) is not quarantined a second time.
      await this.quarantine(written.tmpPath, `${code}: ${(err as Error).message}`, origin.name);
      throw new SpoolRefusal('unreadable', `${code}: ${(err as Error).message}`, { cause: err });
    }
    const uid = header.sopInstanceUid;
    const previous = this.#commitsByUid.get(uid) ?? Promise.resolve();
    const committed = previous.catch(() => undefined).then(() => this.#commitReadable(written, origin, bytes, header));
    this.#commitsByUid.set(uid, committed);
    try {
      return await committed;
    } finally {
      if (this.#commitsByUid.get(uid) === committed) this.#commitsByUid.delete(uid);
    }
  }

  async #commitReadable(
    written: { tmpPath: string; sha256: string; size: number },
    origin: { source: InstanceSource; callingAe: string | null },
    bytes: Uint8Array,
    header: NewInstanceHeader,
  ): Promise<InsertOutcome> {
    const sameInstance = await this.#storedSameInstance(bytes, header.sopInstanceUid, written.sha256);
    if (sameInstance) {
      await rm(written.tmpPath, { force: true });
      this.#log.info(
        { instanceId: sameInstance.id, outcome: 'duplicate', version: sameInstance.version, source: origin.source, transferSyntax: header.transferSyntaxUid, storedTransferSyntax: sameInstance.transferSyntaxUid },
        'instance stored',
      );
      return { kind: 'duplicate', record: sameInstance };
    }
    const relative = path.join('objects', written.sha256.slice(0, 2), `${written.sha256}.dcm`);
    const target = path.join(this.#options.dataDir, relative);
    let outcome: InsertOutcome;
    try {
      await mkdir(path.dirname(target), { recursive: true, mode: PRIVATE_DIR_MODE });
      await rename(written.tmpPath, target);
      await fsyncPath(path.dirname(target));
      await fsyncPath(this.dirs.objects);
      crashPoint(EdgeCrashPoint.ObjectDurable);
      outcome = this.#db.insert({ ...header, contentSha256: written.sha256, file: relative, size: written.size, source: origin.source, callingAe: origin.callingAe }, new Date());
    } catch (err) {
      // Refused, never acknowledged: the unit sends it again. A file already in objects/ without its row is
      // recorded by recoverOrphans() once there is room, and the resend is then a duplicate.
      await rm(written.tmpPath, { force: true });
      if (this.#disk?.report(err) || isNoSpace(err)) throw new SpoolRefusal('out-of-resources', 'disk full while recording the instance', { cause: err });
      throw err;
    }
    crashPoint(EdgeCrashPoint.RowCommitted);
    this.#log.info({ instanceId: outcome.record.id, outcome: outcome.kind, version: outcome.record.version, source: origin.source }, 'instance stored');
    return outcome;
  }

  /**
   * A stored version of this SOP Instance UID that is the same instance in another encoding (spool/equivalence.ts).
   * Decoding costs time: looked for only when the UID is stored with other content.
   */
  async #storedSameInstance(bytes: Uint8Array, sopInstanceUid: string, sha256: string): Promise<InstanceRecord | undefined> {
    const versions = this.#db.versions(sopInstanceUid);
    if (versions.some((v) => v.contentSha256 === sha256)) return undefined;
    for (const version of versions) {
      try {
        const comparison = await compareInstances(await readFile(this.absolute(version.file)), bytes);
        if (comparison.same) return version;
        this.#log.info({ instanceId: version.id, differences: comparison.differences.slice(0, 20) }, 'same SOP Instance UID, other content');
      } catch (err) {
        this.#log.warn({ instanceId: version.id, code: (err as CxrError).code ?? 'CXR_INTERNAL' }, 'could not compare with the stored version');
      }
    }
    return undefined;
  }

  /** Files renamed into objects/ whose row never got written (a crash in between): recorded on restart. */
  async recoverOrphans(): Promise<number> {
    let recovered = 0;
    for (const shard of await readdir(this.dirs.objects)) {
      for (const name of await readdir(path.join(this.dirs.objects, shard))) {
        const relative = path.join('objects', shard, name);
        if (this.#db.hasFile(relative)) continue;
        const bytes = await readFile(path.join(this.#options.dataDir, relative));
        try {
          const header = readHeader(bytes, undefined);
          this.#db.insert({ ...header, contentSha256: name.replace(/\.dcm$/u, ''), file: relative, size: bytes.length, source: 'dicom', callingAe: null }, new Date());
          recovered += 1;
        } catch (err) {
          this.#log.warn({ file: relative, code: (err as CxrError).code }, 'orphan not readable');
        }
      }
    }
    return recovered;
  }

  /**
   * Keeps a refused file with the reason beside it. `reason` is a code and a message that never carries a value from
   * the file. The log names the file by its quarantine id only: a watched file's own name is often the patient's.
   */
  async quarantine(file: string, reason: string, name?: string): Promise<string> {
    const id = `${new Date().toISOString().replace(/[:.]/gu, '-')}-${randomUUID().slice(0, 8)}`;
    const base = `${id}-${name ? sanitize(name) : path.basename(file)}`;
    const target = path.join(this.dirs.quarantine, base);
    await rename(file, target);
    // A watched file keeps the mode its writer gave it: made private here.
    await chmod(target, PRIVATE_FILE_MODE);
    await writeFile(`${target}.reason.txt`, `${reason}\n`, { mode: PRIVATE_FILE_MODE });
    this.#log.warn({ quarantined: id, reason }, 'file quarantined');
    return target;
  }

  /** The refusal of a received file that did not fit; the guard looks at the free space at once. */
  #noRoom(message: string, cause: unknown): SpoolRefusal {
    void this.#disk?.check();
    return new SpoolRefusal('out-of-resources', message, { cause });
  }

  absolute(relative: string): string {
    return path.join(this.#options.dataDir, relative);
  }
}

type NewInstanceHeader = Omit<NewInstance, 'contentSha256' | 'file' | 'size' | 'source' | 'callingAe'>;

function readHeader(bytes: Uint8Array, wireSopInstanceUid: string | undefined): NewInstanceHeader {
  const parsed = parseDicom(bytes);
  const info = readImageInfo(parsed);
  const ds: DicomDataset = parsed.dataset;
  const sopInstanceUid = info.sopInstanceUid ?? wireSopInstanceUid;
  if (!sopInstanceUid) throw new CxrError('CXR_MALFORMED', 'no SOP Instance UID');
  if (!parsed.pixelData) throw new CxrError('CXR_NO_PIXEL_DATA');
  // UIDs go into the gateway's URLs and the hospital's object keys: a value that is not a UID (a path, say) is
  // refused here, named by its tag and length, never echoed.
  checkUids([
    ['SOPInstanceUID', Tag.SopInstanceUid, sopInstanceUid],
    ['SOPInstanceUID of the C-STORE request', Tag.SopInstanceUid, wireSopInstanceUid],
    ['StudyInstanceUID', Tag.StudyInstanceUid, info.studyInstanceUid],
    ['SeriesInstanceUID', Tag.SeriesInstanceUid, info.seriesInstanceUid],
    ['SOPClassUID', Tag.SopClassUid, info.sopClassUid],
    ['TransferSyntaxUID', Tag.TransferSyntaxUid, info.transferSyntaxUid],
  ]);
  return {
    sopInstanceUid,
    // A study without its UID still needs one that the hospital takes: derived from the instance's, the same every time.
    studyInstanceUid: info.studyInstanceUid ?? derivedStudyUid(sopInstanceUid),
    seriesInstanceUid: info.seriesInstanceUid ?? null,
    sopClassUid: info.sopClassUid ?? null,
    transferSyntaxUid: info.transferSyntaxUid,
    modality: info.modality ?? null,
    bodyPart: info.bodyPartExamined ?? null,
    viewPosition: info.viewPosition ?? null,
    patientName: ds.string(Tag.PatientName)?.replace(/\^+/gu, ' ').trim() ?? null,
    patientId: ds.string(Tag.PatientId) ?? null,
    patientSex: ds.string(Tag.PatientSex) ?? null,
    patientBirthDate: ds.string(Tag.PatientBirthDate) ?? null,
    studyDate: ds.string(Tag.StudyDate) ?? null,
    studyTime: ds.string(Tag.StudyTime) ?? null,
    accessionNumber: ds.string(Tag.AccessionNumber) ?? null,
    studyDescription: ds.string(Tag.StudyDescription) ?? null,
  };
}

function checkUids(uids: readonly (readonly [name: string, tag: number, value: string | undefined])[]): void {
  const bad = uids.filter(([, , value]) => value !== undefined && !isValidUid(value));
  if (bad.length === 0) return;
  throw new CxrError('CXR_INVALID_UID', bad.map(([name, tag, value]) => `${name} ${formatTag(tag)} is not a DICOM UID (${value?.length ?? 0} characters)`).join('; '));
}

/** A UUID-derived UID (PS3.5 B.2, "2.25." and the UUID as one integer), from a name-based UUID of the SOP Instance UID. */
export function derivedStudyUid(sopInstanceUid: string): string {
  const uuid = createHash('sha256').update(`cxr-edge study of ${sopInstanceUid}`).digest().subarray(0, 16);
  uuid[6] = ((uuid[6] ?? 0) & 0x0f) | 0x50;
  uuid[8] = ((uuid[8] ?? 0) & 0x3f) | 0x80;
  return `2.25.${BigInt(`0x${uuid.toString('hex')}`).toString(10)}`;
}

async function fsyncPath(p: string): Promise<void> {
  const handle = await open(p, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

function sanitize(name: string): string {
  return path.basename(name).replace(/[^A-Za-z0-9._-]/gu, '_').slice(0, 100);
}
