import { EventEmitter } from 'node:events';
import { open, rename, rm, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../log.js';
import { PRIVATE_FILE_MODE } from './modes.js';

/** Errors that mean "no room on the disk", from the file system or from SQLite. */
export function isDiskFull(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'ENOSPC' || code === 'EDQUOT' || code === 'SQLITE_FULL';
}

export interface DiskState {
  /** true while the agent refuses new images for want of room */
  readonly full: boolean;
  /** why: free space under the minimum, or a write that failed for want of room */
  readonly reason: 'below-minimum' | 'write-failed' | null;
  /** when it became full (ISO 8601), null when not */
  readonly since: string | null;
  readonly freeBytes: number | null;
  readonly minFreeBytes: number;
}

export interface DiskGuardOptions {
  /** the data folder: its disk is watched, the reserve file lives in it */
  readonly dataDir: string;
  /** bytes that must stay free for new images to be taken */
  readonly minFreeBytes: number;
  /**
   * bytes held back in DATA_DIR/reserve.bin and given up when the disk fills, so the database can still write.
   * Default 16 MiB, and never more than 1 % of the disk.
   */
  readonly reserveBytes?: number;
  /** ms between checks of the free space. Default 5 000. */
  readonly checkMs?: number;
}

/**
 * Knows whether the spool's disk has room, and keeps the agent alive when it has none. Full when less than
 * `minFreeBytes` is free or a write failed with ENOSPC/SQLITE_FULL; then new images are refused (C-STORE A700),
 * `/api/health` says degraded, and the reserve file is deleted so that the database and the work in progress still
 * have room to finish. It checks every `checkMs` and comes back by itself once there is room again and the reserve
 * could be written back (a real write, not only a statfs figure) with the minimum and the reserve's size again free.
 * Emits `change` with the new state.
 */
export class DiskGuard extends EventEmitter<{ change: [DiskState] }> {
  readonly #log: Logger;
  readonly #options: Required<DiskGuardOptions>;
  readonly #reserveFile: string;
  #full = false;
  #reason: DiskState['reason'] = null;
  #since: number | null = null;
  #freeBytes: number | null = null;
  /** the reserve's size on this disk, known after the first check */
  #reserveBytes: number;
  #timer: NodeJS.Timeout | undefined;
  #checking: Promise<void> | undefined;

  constructor(deps: { log: Logger }, options: DiskGuardOptions) {
    super();
    this.#log = deps.log;
    this.#options = { reserveBytes: 16 * 1024 * 1024, checkMs: 5_000, ...options };
    this.#reserveFile = path.join(options.dataDir, 'reserve.bin');
    this.#reserveBytes = this.#options.reserveBytes;
  }

  /** Checks the disk once (before anything else writes at start), then every `checkMs`. */
  async start(): Promise<void> {
    await this.check();
    this.#timer = setInterval(() => void this.check(), this.#options.checkMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  state(): DiskState {
    return {
      full: this.#full,
      reason: this.#reason,
      since: this.#since === null ? null : new Date(this.#since).toISOString(),
      freeBytes: this.#freeBytes,
      minFreeBytes: this.#options.minFreeBytes,
    };
  }

  get full(): boolean {
    return this.#full;
  }

  /**
   * Told of one of the agent's own writes that failed (the database, an image drawn, a stage): true, and the disk is
   * full from now until a check finds room, when it failed for want of room; false for any other error, which the
   * caller handles as before. A received file too big for the room left is not this: that transfer is refused and
   * `check()` decides from the free space whether the disk is full.
   */
  report(err: unknown): boolean {
    if (!isDiskFull(err)) return false;
    if (!this.#full) {
      this.#log.error({ code: (err as { code: string }).code }, 'disk full: refusing new images until there is room');
      void this.#becomeFull('write-failed');
    }
    return true;
  }

  /** Reads the free space and moves between full and not; one check at a time. */
  check(): Promise<void> {
    this.#checking ??= this.#check().finally(() => (this.#checking = undefined));
    return this.#checking;
  }

  async #check(): Promise<void> {
    let free: number;
    try {
      const stats = await statfs(this.#options.dataDir);
      free = stats.bavail * stats.bsize;
      this.#reserveBytes = Math.min(this.#options.reserveBytes, Math.floor((stats.blocks * stats.bsize) / 100));
    } catch (err) {
      this.#log.warn({ err: (err as Error).message }, 'cannot read the free space of the data disk');
      return;
    }
    this.#freeBytes = free;
    const reserveHeld = await fileSize(this.#reserveFile);
    if (free < this.#options.minFreeBytes) {
      if (!this.#full) {
        this.#log.error({ freeBytes: free, minFreeBytes: this.#options.minFreeBytes }, 'disk full: refusing new images until there is room');
        await this.#becomeFull('below-minimum');
      }
      return;
    }
    if (!this.#full) {
      // Hold the reserve back while there is room for it (it is made at the first start, and again after a recovery).
      if (reserveHeld < this.#reserveBytes && free - (this.#reserveBytes - reserveHeld) >= this.#options.minFreeBytes) await this.#writeReserve();
      return;
    }
    // Room again: back once, the reserve written back in full (a write that proves the room is real), the minimum
    // and as much again as the reserve are free: a disk that only just has room would fill again at once.
    if (free - (this.#reserveBytes - reserveHeld) < this.#options.minFreeBytes + this.#reserveBytes) return;
    if (!(await this.#writeReserve())) return;
    const downMs = this.#since === null ? 0 : Date.now() - this.#since;
    this.#full = false;
    this.#reason = null;
    this.#since = null;
    this.#freeBytes = free - this.#reserveBytes + reserveHeld;
    this.#log.warn({ freeBytes: this.#freeBytes, downMs }, 'disk has room again: taking new images');
    this.emit('change', this.state());
  }

  async #becomeFull(reason: 'below-minimum' | 'write-failed'): Promise<void> {
    this.#full = true;
    this.#reason = reason;
    this.#since = Date.now();
    this.emit('change', this.state());
    // The reserve's room goes to the database and the images being analysed, so they can finish.
    await rm(this.#reserveFile, { force: true }).catch(() => undefined);
  }

  /** Writes the reserve file whole and fsyncs it; false when the disk has not the room. */
  async #writeReserve(): Promise<boolean> {
    const tmp = `${this.#reserveFile}.tmp`;
    try {
      const handle = await open(tmp, 'w', PRIVATE_FILE_MODE);
      try {
        const block = Buffer.alloc(1024 * 1024);
        for (let written = 0; written < this.#reserveBytes; written += block.length) {
          await handle.write(block, 0, Math.min(block.length, this.#reserveBytes - written));
        }
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(tmp, this.#reserveFile);
      return true;
    } catch (err) {
      await rm(tmp, { force: true }).catch(() => undefined);
      if (!isDiskFull(err)) this.#log.warn({ err: (err as Error).message }, 'cannot write the disk reserve');
      return false;
    }
  }
}

async function fileSize(file: string): Promise<number> {
  return stat(file).then(
    (s) => s.size,
    () => 0,
  );
}
