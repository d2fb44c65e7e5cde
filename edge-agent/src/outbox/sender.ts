import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, readFile, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { crashPoint, isValidUid } from '@cxr/inference';
import { EdgeCrashPoint } from '../crash-points.js';
import type { Logger } from '../log.js';
import type { InstanceRecord, SpoolDb } from '../spool/db.js';
import type { OutboxDb, OutboxItem } from './outbox-db.js';
import type { Spool } from '../spool/spool.js';
import { createGatewayFetch, type GatewayFetch, type GatewayTls } from './gateway-fetch.js';

export interface GatewayLink {
  /** e.g. https://gateway.benhvien.vn */
  readonly url: string;
  readonly stationId: string;
  readonly token: string;
}

export interface SenderOptions {
  readonly gateway: GatewayLink;
  /** ms between rounds of asking the gateway about open consults, from the end of one to the start of the next. Default 15 000. */
  readonly pollMs?: number;
  /**
   * open consults asked about per round, those asked least recently first. Default 50: a station with hundreds open
   * (days offline, a hospital slow to read) keeps sending its studies between rounds instead of only asking.
   */
  readonly consultChecksPerRound?: number;
  /**
   * longest wait between retries of one item that the gateway, reachable, fails with a 5xx, ms. Default 300 000
   * (5 minutes). Items never wait on their own while the link is down: the link is retried instead.
   */
  readonly maxBackoffMs?: number;
  /** longest wait between two checks of a link that is down, ms (1 s, doubling up to this). Default 30 000. */
  readonly linkRetryMaxMs?: number;
  /** one request's time limit, ms. Default 120 000. */
  readonly requestTimeoutMs?: number;
  /** time limit of a link check (`GET /api/v1/me`), ms. Default 10 000. */
  readonly probeTimeoutMs?: number;
  /** DICOM files larger than this go up in resumable chunks of this many bytes. Default 8 MiB. */
  readonly uploadChunkBytes?: number;
  /** CA and client certificate for the gateway (mTLS); default: plain HTTPS with the system's CAs */
  readonly tls?: GatewayTls;
}

export type LinkState = 'online' | 'offline' | 'unauthorized';

export interface LinkStatus {
  readonly state: LinkState;
  /** items waiting to be sent, and the studies they belong to */
  readonly pending: number;
  readonly pendingStudies: number;
  /** items the gateway refused for good (shown to the technician) */
  readonly failed: number;
  readonly lastSuccessAt: string | null;
  readonly lastError: string | null;
  /** when the link went down (null while online) */
  readonly offlineSince: string | null;
  /** when the link is checked next while down (null while online) */
  readonly nextRetryAt: string | null;
}

export interface SenderDeps {
  readonly db: SpoolDb;
  readonly outbox: OutboxDb;
  readonly spool: Spool;
  readonly log: Logger;
  /** Told of a write that failed: true when for want of room on the disk. */
  readonly disk: { report(err: unknown): boolean };
  readonly onChange: (studyInstanceUid: string) => void;
}

class TransientError extends Error {}
class PermanentError extends Error {}
/** An item this station will not send as it stands (a row an older agent stored with a UID that is not a UID). */
class HeldBackError extends PermanentError {
  constructor(readonly code: string, message: string) {
    super(`${code}: ${message}`);
  }
}

/**
 * A gateway route from a template: every value put into it is one path segment, percent-encoded, so that no value
 * (a UID from a file, a consult id from an answer) can add segments or climb out of /api/v1/ (`new URL()` resolves
 * `..`, and `%2e%2e` too, so those are refused outright).
 */
export function gatewayRoute(strings: TemplateStringsArray, ...values: readonly string[]): string {
  return strings.reduce((route, text, i) => {
    if (i === 0) return text;
    const value = values[i - 1] ?? '';
    if (value === '' || value === '.' || value === '..') throw new HeldBackError('CXR_INVALID_UID', `an empty or dot segment in a gateway route`);
    return `${route}${encodeURIComponent(value)}${text}`;
  }, '');
}
class UnauthorizedError extends TransientError {}
/** The gateway holds another part of a resumable upload than we thought: carry on from its offset. */
class UploadOffsetError extends TransientError {
  constructor(
    message: string,
    readonly offset: number,
  ) {
    super(message);
  }
}

/**
 * Sends the outbox to the gateway, one item at a time, in order: stat before urgent before routine, within one
 * results and previews before DICOM files, then oldest. When the link is down the link is retried, not each item:
 * one check (`GET /api/v1/me`) per round, 1 s doubling up to `linkRetryMaxMs`, one log line a round; once it
 * answers, every waiting item is due at once, in that order. An item that fails with a 5xx while the link is up
 * backs off by itself (up to `maxBackoffMs`); a refusal (4xx) is kept as failed with its reason. Every item is
 * idempotent on the gateway, so a retry after a lost answer does not send anything twice in effect.
 */
export class OutboxSender {
  readonly #deps: SenderDeps;
  readonly #options: Required<Omit<SenderOptions, 'tls'>>;
  readonly #fetch: GatewayFetch;
  /** Unknown until the first check, which runs at once. */
  #state: LinkState = 'offline';
  #lastSuccessAt: string | null = null;
  #lastError: string | null = null;
  #offlineSince: number | null = Date.now();
  /** rounds of link checks failed in a row */
  #failedRounds = 0;
  #linkRetryAt = 0;
  #stopped = false;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #lastPoll = 0;
  readonly #inflight = new AbortController();

  constructor(deps: SenderDeps, options: SenderOptions) {
    this.#deps = deps;
    this.#options = { pollMs: 15_000, consultChecksPerRound: 50, maxBackoffMs: 300_000, linkRetryMaxMs: 30_000, requestTimeoutMs: 120_000, probeTimeoutMs: 10_000, uploadChunkBytes: 8 * 1024 * 1024, ...options };
    this.#fetch = createGatewayFetch(options.tls);
  }

  status(): LinkStatus {
    const { outbox } = this.#deps;
    return {
      state: this.#state,
      pending: outbox.pendingCount(),
      pendingStudies: outbox.pendingStudies(),
      failed: outbox.failedCount(),
      lastSuccessAt: this.#lastSuccessAt,
      lastError: this.#lastError,
      offlineSince: this.#state === 'online' || this.#offlineSince === null ? null : new Date(this.#offlineSince).toISOString(),
      nextRetryAt: this.#state === 'online' ? null : new Date(this.#linkRetryAt).toISOString(),
    };
  }

  start(): void {
    this.#loop ??= this.#run();
  }

  /** New work: send now rather than at the next retry time. */
  kick(): void {
    this.#wake?.();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#inflight.abort();
    this.#wake?.();
    await this.#loop;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#step();
      } catch (err) {
        // Never let the loop die: a disk without room for the outbox's own bookkeeping pauses it, no more.
        if (this.#deps.disk.report(err)) this.#deps.log.warn({}, 'disk full: outbox paused');
        else this.#deps.log.error({ err: (err as Error).message }, 'outbox step failed');
        await this.#sleep(5_000);
      }
    }
  }

  async #step(): Promise<void> {
    if (this.#state !== 'online') {
      const wait = this.#linkRetryAt - Date.now();
      // New work does not hurry a link that is down: only the next round's check does.
      if (wait > 0) await this.#sleep(wait);
      else await this.#checkLink();
      return;
    }
    if (Date.now() - this.#lastPoll >= this.#options.pollMs) {
      await this.#pollConsults();
      return;
    }
    const item = this.#deps.outbox.next(Date.now());
    if (!item) {
      const due = this.#deps.outbox.nextDueAt();
      const untilPoll = this.#options.pollMs - (Date.now() - this.#lastPoll);
      await this.#sleep(Math.max(50, Math.min(untilPoll, due !== undefined ? due - Date.now() : Number.POSITIVE_INFINITY)));
      return;
    }
    await this.#send(item);
  }

  /** One round of checking a link that is down: up, every waiting item is due; down, the next round is later. */
  async #checkLink(): Promise<void> {
    try {
      await this.#request('GET', '/api/v1/me', {}, this.#options.probeTimeoutMs);
      this.#linkUp();
    } catch (err) {
      if (!this.#stopped) this.#linkDown(err);
    }
  }

  async #send(item: OutboxItem): Promise<void> {
    const { outbox, log } = this.#deps;
    try {
      await this.#deliver(item);
      crashPoint(EdgeCrashPoint.ItemDelivered);
      outbox.done(item.id);
      this.#linkUp();
      this.#deps.onChange(item.studyInstanceUid);
    } catch (err) {
      if (this.#stopped) return;
      const message = (err as Error).message;
      if (err instanceof HeldBackError) {
        outbox.fail(item.id, message);
        log.warn({ outboxId: item.id, kind: item.kind, code: err.code }, 'item held back, not sent');
        this.#deps.onChange(item.studyInstanceUid);
        return;
      }
      if (err instanceof PermanentError) {
        outbox.fail(item.id, message);
        log.warn({ outboxId: item.id, kind: item.kind, error: message }, 'gateway refused an item');
        this.#deps.onChange(item.studyInstanceUid);
        return;
      }
      // The link or this item? A link that is down is retried as a whole, the item keeping its place in the order.
      try {
        if (err instanceof UnauthorizedError) throw err;
        await this.#request('GET', '/api/v1/me', {}, this.#options.probeTimeoutMs);
      } catch (linkErr) {
        outbox.attempted(item.id, message);
        this.#linkDown(linkErr);
        return;
      }
      const backoff = Math.min(this.#options.maxBackoffMs, 1000 * 2 ** Math.min(item.attempts, 16));
      outbox.retryLater(item.id, message, Date.now() + backoff * (0.8 + Math.random() * 0.4));
      log.warn({ outboxId: item.id, kind: item.kind, attempts: item.attempts + 1, retryInMs: Math.round(backoff), error: message }, 'gateway failed an item, will retry it');
    }
  }

  async #deliver(item: OutboxItem): Promise<void> {
    const { gateway } = this.#options;
    // Rows stored before intake checked UIDs may hold anything: checked here too, and never sent as they are.
    if (!isValidUid(item.studyInstanceUid)) throw new HeldBackError('CXR_INVALID_UID', "the item's StudyInstanceUID is not a DICOM UID");
    if (item.kind === 'consult') {
      const consult = this.#deps.outbox.consult(item.studyInstanceUid);
      if (!consult) return;
      const res = await this.#request('POST', gatewayRoute`/api/v1/stations/${gateway.stationId}/consults`, {
        body: JSON.stringify({ studyInstanceUid: item.studyInstanceUid, priority: consult.priority, reason: consult.reason, ...(consult.note ? { note: consult.note } : {}) }),
        headers: { 'content-type': 'application/json' },
      });
      const { consultId } = (await res.json()) as { consultId: string };
      // A crash here repeats the request, which the gateway answers with the same consult (one per station and study).
      this.#deps.outbox.updateConsult(item.studyInstanceUid, { consultId, status: consult.status === 'pending' ? 'queued' : consult.status });
      return;
    }
    const record = item.instanceId === null ? undefined : this.#deps.db.get(item.instanceId);
    if (!record) return;
    if (!isValidUid(record.studyInstanceUid) || !isValidUid(record.sopInstanceUid)) {
      throw new HeldBackError('CXR_INVALID_UID', "the instance's Study or SOP Instance UID is not a DICOM UID");
    }
    const base = gatewayRoute`/api/v1/stations/${gateway.stationId}/studies/${record.studyInstanceUid}/instances/${record.sopInstanceUid}/${record.contentSha256}`;
    if (item.kind === 'result') {
      if (!record.result) return;
      await this.#request('PUT', `${base}/result`, { body: JSON.stringify({ result: record.result }), headers: { 'content-type': 'application/json' } });
      return;
    }
    const file = fileOf(record, item.kind);
    if (!file) return;
    const path = this.#deps.spool.absolute(file);
    if (item.kind === 'dicom') {
      // Large files stream from disk; the hash is taken in a first pass so the gateway can verify the body.
      const sha256 = await hashFile(path);
      const { size } = await stat(path);
      if (size > this.#options.uploadChunkBytes) {
        await this.#uploadInChunks(`${base}/dicom/upload`, path, size, sha256, item.id);
        return;
      }
      const body = Readable.toWeb(createReadStream(path)) as ReadableStream<Uint8Array>;
      await this.#request('PUT', `${base}/dicom`, { body, headers: { 'content-type': 'application/dicom', 'content-length': String(size), 'x-content-sha256': sha256 } });
      return;
    }
    const bytes = await readFile(path);
    await this.#request('PUT', `${base}/${item.kind}`, {
      body: bytes,
      headers: { 'content-type': 'image/png', 'x-content-sha256': createHash('sha256').update(bytes).digest('hex') },
    });
  }

  /**
   * A big file goes up in chunks from where the gateway says it stands, so a link that drops every few minutes
   * still gets a 30 MB study through: each retry costs at most one chunk, not the whole file.
   */
  async #uploadInChunks(upload: string, path: string, size: number, sha256: string, outboxId: number): Promise<void> {
    const status = (await (await this.#request('GET', upload, {})).json()) as { offset: number; complete: boolean };
    if (status.complete) return;
    let offset = status.offset;
    if (offset > 0) this.#deps.log.info({ outboxId, offset, size }, 'resuming a DICOM upload');
    const file = await open(path, 'r');
    try {
      for (let rounds = 0; rounds < 3; rounds++) {
        while (offset < size) {
          const length = Math.min(this.#options.uploadChunkBytes, size - offset);
          const chunk = Buffer.alloc(length);
          const { bytesRead } = await file.read(chunk, 0, length, offset);
          if (bytesRead !== length) throw new TransientError(`the spooled file ended at ${offset + bytesRead} of ${size} bytes`);
          try {
            const res = await this.#request('PUT', `${upload}?offset=${offset}`, {
              body: chunk,
              headers: { 'content-type': 'application/octet-stream', 'x-upload-length': String(size) },
            });
            offset = ((await res.json()) as { offset: number }).offset;
            crashPoint(EdgeCrashPoint.ChunkDelivered);
          } catch (err) {
            // The same offset back would loop for ever: retry later instead, like any other transient failure.
            if (!(err instanceof UploadOffsetError) || err.offset === offset) throw err;
            offset = err.offset;
          }
        }
        try {
          await this.#request('POST', `${upload}/complete`, { headers: { 'x-content-sha256': sha256, 'x-upload-length': String(size) } });
          return;
        } catch (err) {
          if (!(err instanceof UploadOffsetError)) throw err;
          offset = err.offset;
        }
      }
      throw new TransientError('the resumable upload did not converge');
    } finally {
      await file.close();
    }
  }

  async #pollConsults(): Promise<void> {
    try {
      await this.#pollConsultsRound();
    } finally {
      // Counted from the end of the round: a round never follows another without sending in between.
      this.#lastPoll = Date.now();
    }
  }

  async #pollConsultsRound(): Promise<void> {
    const { outbox, log } = this.#deps;
    // The page shows whether the hospital is reachable, and accepts this station's token, even with nothing to send.
    try {
      await this.#request('GET', '/api/v1/me', {}, this.#options.probeTimeoutMs);
      this.#linkUp();
    } catch (err) {
      if (!this.#stopped) this.#linkDown(err);
      return;
    }
    for (const consult of outbox.consultsToCheck(this.#options.consultChecksPerRound)) {
      outbox.markChecked(consult.studyInstanceUid);
      try {
        const res = await this.#request('GET', gatewayRoute`/api/v1/stations/${this.#options.gateway.stationId}/consults/${consult.consultId ?? ''}`, {});
        const answer = (await res.json()) as { status: 'queued' | 'claimed' | 'reported'; report?: Record<string, unknown> };
        if (answer.status !== consult.status) {
          outbox.updateConsult(consult.studyInstanceUid, { status: answer.status, report: answer.report ?? null });
          log.info({ consultId: consult.consultId, status: answer.status }, 'consult updated');
          this.#deps.onChange(consult.studyInstanceUid);
        }
        this.#linkUp();
      } catch (err) {
        if (!(err instanceof PermanentError)) {
          if (!this.#stopped) this.#linkDown(err);
          return;
        }
      }
    }
  }

  async #request(method: string, route: string, init: { body?: RequestInit['body']; headers?: Record<string, string> }, timeoutMs = this.#options.requestTimeoutMs): Promise<Response> {
    let res: Response;
    try {
      res = await this.#fetch(new URL(route, this.#options.gateway.url), {
        method,
        ...init,
        headers: { ...init.headers, authorization: `Bearer ${this.#options.gateway.token}` },
        signal: AbortSignal.any([this.#inflight.signal, AbortSignal.timeout(timeoutMs)]),
        ...(init.body instanceof ReadableStream ? { duplex: 'half' } : {}),
      } as RequestInit);
    } catch (err) {
      throw new TransientError(`gateway unreachable: ${(err as Error).message}`);
    }
    if (res.ok) return res;
    const text = await res.text().catch(() => '');
    const detail = `${method} ${route.split('/').slice(0, 5).join('/')}…: ${res.status} ${text.slice(0, 200)}`;
    if (res.status === 401 || res.status === 403) throw new UnauthorizedError(detail);
    const uploadOffset = res.headers.get('x-upload-offset');
    if (res.status === 409 && uploadOffset !== null) throw new UploadOffsetError(detail, Number(uploadOffset));
    if (res.status >= 500 || res.status === 408 || res.status === 429) throw new TransientError(detail);
    throw new PermanentError(detail);
  }

  #linkUp(): void {
    const wasDown = this.#state !== 'online';
    this.#state = 'online';
    this.#lastSuccessAt = new Date().toISOString();
    this.#lastError = null;
    if (!wasDown) return;
    // Whatever waited on the link goes now, most urgent first; consults are asked about at once too.
    const due = this.#deps.outbox.dueNow();
    const downMs = this.#offlineSince === null ? 0 : Date.now() - this.#offlineSince;
    this.#deps.log.info({ pending: this.#deps.outbox.pendingCount(), madeDue: due, downMs, rounds: this.#failedRounds }, 'gateway reachable');
    this.#offlineSince = null;
    this.#failedRounds = 0;
    this.#lastPoll = 0;
  }

  /** A round failed: the link is down (or refuses our token) until a later round's check answers. One log line. */
  #linkDown(err: unknown): void {
    const wasUp = this.#state === 'online';
    this.#state = err instanceof UnauthorizedError ? 'unauthorized' : 'offline';
    this.#lastError = (err as Error).message;
    this.#offlineSince ??= Date.now();
    this.#failedRounds += 1;
    const backoff = Math.min(this.#options.linkRetryMaxMs, 1000 * 2 ** Math.min(this.#failedRounds - 1, 16)) * (0.8 + Math.random() * 0.4);
    this.#linkRetryAt = Date.now() + backoff;
    const fields = { state: this.#state, round: this.#failedRounds, retryInMs: Math.round(backoff), pending: this.#deps.outbox.pendingCount(), error: this.#lastError };
    if (wasUp || this.#failedRounds === 1) this.#deps.log.warn(fields, 'gateway unreachable');
    else this.#deps.log.info(fields, 'gateway still unreachable, will retry');
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

function fileOf(record: InstanceRecord, kind: 'preview' | 'heatmap' | 'dicom'): string | null {
  if (kind === 'dicom') return record.file;
  return kind === 'preview' ? record.previewFile : record.heatmapFile;
}

async function hashFile(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
