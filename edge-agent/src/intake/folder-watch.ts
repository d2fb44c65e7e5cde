import { chmod, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { watch, type FSWatcher } from 'chokidar';
import { crashPoint, CxrError, parseDicom } from '@cxr/inference';
import { EdgeCrashPoint } from '../crash-points.js';
import type { Logger } from '../log.js';
import type { InstanceRecord } from '../spool/db.js';
import { isDiskFull } from '../spool/disk-guard.js';
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, privateDir } from '../spool/modes.js';
import { SpoolRefusal, type Spool } from '../spool/spool.js';

/** How many stable periods a file that ends early is waited for after its last write. */
const TRUNCATED_GRACE_STABLE_PERIODS = 20;

export interface FolderIntakeDeps {
  readonly spool: Spool;
  readonly log: Logger;
  readonly onStored: (record: InstanceRecord) => void;
}

export interface FolderIntakeOptions {
  /** the watched folder */
  readonly dir: string;
  /** where taken files go once they are durable in the spool */
  readonly doneDir: string;
  /** ms a file's size must stay unchanged before it is taken (a file still being copied is left alone) */
  readonly stableMs: number;
}

/**
 * A folder the unit (or a person) drops DICOM files into. A file is taken only once it stopped growing, made
 * durable in the spool, then moved out of the way; an unreadable one goes to quarantine with the reason.
 */
export class FolderIntake {
  readonly #deps: FolderIntakeDeps;
  readonly #options: FolderIntakeOptions;
  #watcher: FSWatcher | undefined;
  readonly #busy = new Set<Promise<void>>();
  /** files being taken now, so that a rescan does not take one twice */
  readonly #taking = new Set<string>();
  /** files left in place for want of room, taken again by `rescan()` */
  readonly #leftForRoom = new Set<string>();
  /** checks again of files that ended early while they were young (a copy that paused), by file */
  readonly #recheck = new Map<string, NodeJS.Timeout>();
  #stopped = false;

  constructor(deps: FolderIntakeDeps, options: FolderIntakeOptions) {
    this.#deps = deps;
    this.#options = options;
  }

  async start(): Promise<void> {
    // The watched folder is the sender's to write to (a share, another account): its mode is left to whoever set it up.
    await mkdir(this.#options.dir, { recursive: true });
    await privateDir(this.#options.doneDir);
    const watcher = watch(this.#options.dir, {
      ignoreInitial: false,
      depth: 8,
      awaitWriteFinish: { stabilityThreshold: this.#options.stableMs, pollInterval: Math.min(250, this.#options.stableMs) },
      // Partial downloads and hidden files are still being written by someone.
      ignored: (file: string) => /(^|[/\\])\.|\.(part|tmp|crdownload)$/iu.test(path.basename(file)),
    });
    watcher.on('add', (file: string) => this.#schedule(file));
    // A copy that paused longer than stableMs and then went on: its file ended early when it was looked at.
    watcher.on('change', (file: string) => this.#schedule(file));
    watcher.on('error', (err: unknown) => this.#deps.log.warn({ err: (err as Error).message }, 'watched folder error'));
    await new Promise<void>((resolve) => watcher.once('ready', () => resolve()));
    this.#watcher = watcher;
  }

  /** Takes again the files left in place while the disk was full (the watcher does not announce them twice). */
  async rescan(): Promise<void> {
    const left = [...this.#leftForRoom];
    this.#leftForRoom.clear();
    for (const file of left) this.#schedule(file);
    await Promise.allSettled([...this.#busy]);
  }

  #schedule(file: string): void {
    clearTimeout(this.#recheck.get(file));
    this.#recheck.delete(file);
    if (this.#stopped || this.#taking.has(file)) return;
    this.#taking.add(file);
    const job = this.#take(file).finally(() => {
      this.#taking.delete(file);
      this.#busy.delete(job);
    });
    this.#busy.add(job);
  }

  async #take(file: string): Promise<void> {
    const { spool, log } = this.#deps;
    const name = path.relative(this.#options.dir, file);
    let bytes: Buffer;
    try {
      bytes = await readFile(file);
    } catch (err) {
      // Neither the name nor the message (which holds the path): file names often carry the patient's name.
      log.warn({ code: (err as NodeJS.ErrnoException).code }, 'watched file unreadable');
      return;
    }
    if (await this.#stillArriving(file, bytes)) {
      log.debug({ bytes: bytes.length }, 'watched file ends early and is recent: waiting for the rest');
      this.#recheck.set(
        file,
        setTimeout(() => this.#schedule(file), this.#options.stableMs),
      );
      return;
    }
    try {
      await spool.checkSpace();
      const written = await spool.writeBytes(bytes);
      const outcome = await spool.commit(written, { source: 'folder', callingAe: null, name });
      if (outcome.kind === 'stored') this.#deps.onStored(outcome.record);
      crashPoint(EdgeCrashPoint.IntakeRecorded);
      const done = path.join(this.#options.doneDir, `${new Date().toISOString().slice(0, 10)}`, path.basename(file));
      await mkdir(path.dirname(done), { recursive: true, mode: PRIVATE_DIR_MODE });
      await rename(file, `${done}.${outcome.record.id}`).then(
        () => chmod(`${done}.${outcome.record.id}`, PRIVATE_FILE_MODE),
        () => rm(file, { force: true }),
      );
    } catch (err) {
      if ((err instanceof SpoolRefusal && err.reason === 'out-of-resources') || isDiskFull(err)) {
        // Left in place: taken again once there is room.
        this.#leftForRoom.add(file);
        log.error({ waiting: this.#leftForRoom.size, message: (err as Error).message }, 'watched file left in place: disk full');
        return;
      }
      if (err instanceof SpoolRefusal) {
        // Unreadable: its copy is in quarantine with the reason already (Spool.commit); the watched file goes.
        await rm(file, { force: true }).catch((e: unknown) => log.error({ code: (e as NodeJS.ErrnoException).code }, 'could not remove a quarantined watched file'));
        return;
      }
      const reason = `${(err as { code?: string }).code ?? 'CXR_INTERNAL'}: ${(err as Error).message}`;
      await spool.quarantine(file, reason, name).catch((e: unknown) => log.error({ code: (e as NodeJS.ErrnoException).code }, 'quarantine failed'));
    }
  }

  /**
   * A file that ends before its data does (CXR_TRUNCATED, or native Pixel Data cut short) and was written to within the last `20 x stableMs` is taken
   * for a copy that paused (a network share, a slow unit), not for a broken file: it is looked at again rather than
   * quarantined. Older than that, it is what it is and goes to quarantine like any unreadable file.
   */
  async #stillArriving(file: string, bytes: Buffer): Promise<boolean> {
    let endsEarly: boolean;
    try {
      const { pixelData } = parseDicom(bytes);
      // Native Pixel Data cut short parses (the decoder says CXR_PIXEL_DATA_SHORT): the file still ends early.
      endsEarly = pixelData !== undefined && !pixelData.encapsulated && pixelData.bytes.length < pixelData.declaredLength;
    } catch (err) {
      endsEarly = err instanceof CxrError && err.code === 'CXR_TRUNCATED';
    }
    if (!endsEarly) return false;
    const modified = await stat(file).then(
      (s) => s.mtimeMs,
      () => 0,
    );
    return Date.now() - modified < TRUNCATED_GRACE_STABLE_PERIODS * this.#options.stableMs;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#watcher?.close();
    await Promise.allSettled([...this.#busy]);
    for (const timer of this.#recheck.values()) clearTimeout(timer);
    this.#recheck.clear();
  }
}
