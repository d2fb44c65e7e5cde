import { crashPoint } from '@cxr/inference';
import { GatewayCrashPoint } from '../crash-points.js';
import { GatewayError } from '../errors.js';
import type { ConsultRecord } from '../consults/types.js';
import { isObjectStoreError, type ObjectStore } from '../store/index.js';
import { consultKeys } from '../store/keys.js';
import type { ConsultJob, ConsultQueue } from './consults.js';

/** A claim as the object store records it (`consults/{id}/claim.json`): who holds the consult, until when. */
export interface ClaimRecord {
  readonly consultId: string;
  readonly username: string;
  /** when this radiologist first claimed it (ISO 8601) */
  readonly claimedAt: string;
  /** when the claim lapses unless renewed or reported (ISO 8601); a lapsed claim is no claim */
  readonly expiresAt: string;
}


export const jobOf = (record: ConsultRecord): ConsultJob => ({
  consultId: record.consultId,
  stationId: record.stationId,
  studyInstanceUid: record.studyInstanceUid,
  priority: record.priority,
  receivedAt: record.receivedAt,
});

/** The object, parsed, or undefined when there is none (also when it went between a listing and the read). */
export async function readJsonIfAny<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  try {
    return JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as T;
  } catch (err) {
    if (isObjectStoreError(err, 'CXR_STORE_NOT_FOUND')) return undefined;
    throw err;
  }
}

/**
 * Where the consult queue (Redis, the fast path) meets the record (the object store): claims are written to both,
 * so a Redis that lost its data loses no claim, and nothing reported goes back on the queue. Every gateway process
 * has its own desk over the shared Redis and store; it keeps no state.
 */
export class ConsultDesk {
  readonly #store: ObjectStore;
  readonly #queue: ConsultQueue;

  constructor(deps: { store: ObjectStore; queue: ConsultQueue }) {
    this.#store = deps.store;
    this.#queue = deps.queue;
  }

  /**
   * Puts an open consult on the queue (idempotent; with `last`, behind every consult of its priority already
   * there). False, and the consult left off, when it has a report.
   */
  async enqueue(record: ConsultRecord, options: { last?: boolean } = {}): Promise<boolean> {
    const keys = consultKeys(record.consultId);
    if (await this.#store.head(keys.report)) return false;
    if (options.last) await this.#queue.enqueueLast(jobOf(record));
    else await this.#queue.enqueue(jobOf(record));
    // A report stored between the check above and the add would leave its consult back on the queue. The report
    // route stores the report before it takes the consult off, so either that removal follows this add or this
    // check sees the report.
    if (await this.#store.head(keys.report)) {
      await this.#queue.remove(record.consultId);
      return false;
    }
    return true;
  }

  /** The claim in the record, if it has not lapsed. */
  async recordedClaim(consultId: string, now = Date.now()): Promise<ClaimRecord | undefined> {
    const claim = await readJsonIfAny<ClaimRecord>(this.#store, consultKeys(consultId).claim);
    return claim && Date.parse(claim.expiresAt) > now ? claim : undefined;
  }

  /** Who holds the consult: Redis's claim, or else the record's (Redis may have lost it). */
  async holder(consultId: string): Promise<string | null> {
    return (await this.#queue.claimedBy(consultId)) ?? (await this.recordedClaim(consultId))?.username ?? null;
  }

  /**
   * Claims an open consult for `username` (again: renews the claim). Refused (CXR_CONFLICT) while another
   * radiologist holds it, in Redis or in the record; CXR_NOT_FOUND when it is not open.
   */
  async claim(consultId: string, username: string): Promise<ClaimRecord> {
    const keys = consultKeys(consultId);
    if (!(await this.#queue.has(consultId))) {
      // Not on the queue: reported, unknown, or on a Redis that lost its data and was not rebuilt yet (the record
      // says which).
      const record = await readJsonIfAny<ConsultRecord>(this.#store, keys.consult);
      if (!record || !(await this.enqueue(record))) throw new GatewayError('CXR_NOT_FOUND', `no open consult ${consultId}`);
    }
    const recorded = await this.recordedClaim(consultId);
    if (recorded && recorded.username !== username) {
      // Redis lost this claim: put it back so that every process shows it again.
      await this.restoreClaim(recorded);
      throw new GatewayError('CXR_CONFLICT', `claimed by ${recorded.username}`);
    }
    const { expiresAt } = await this.#queue.claim(consultId, username);
    const claim: ClaimRecord = { consultId, username, claimedAt: recorded?.claimedAt ?? new Date().toISOString(), expiresAt: expiresAt.toISOString() };
    await this.#store.put(keys.claim, Buffer.from(JSON.stringify(claim)), { contentType: 'application/json' });
    crashPoint(GatewayCrashPoint.claimRecorded);
    return claim;
  }

  /** Gives a claim back; CXR_CONFLICT unless `username` holds it. */
  async release(consultId: string, username: string): Promise<void> {
    const inRedis = await this.#queue.claimedBy(consultId);
    const recorded = await this.recordedClaim(consultId);
    if (inRedis !== username && !(inRedis === null && recorded?.username === username)) throw new GatewayError('CXR_CONFLICT', 'not claimed by you');
    // The record first: a crash in between leaves a Redis claim that lapses or is released again, never a record
    // that would refuse everyone else after Redis let the consult go.
    if (recorded?.username === username) await this.#store.delete(consultKeys(consultId).claim);
    await this.#queue.dropClaim(consultId, username);
  }

  /** CXR_CONFLICT unless `username` holds the consult: in Redis, or in the record when Redis has no claim. */
  async assertClaimant(consultId: string, username: string): Promise<void> {
    const inRedis = await this.#queue.claimedBy(consultId);
    if (inRedis === username) return;
    if (inRedis === null && (await this.recordedClaim(consultId))?.username === username) return;
    throw new GatewayError('CXR_CONFLICT', 'claim the consult before reporting');
  }

  /** After its report is stored: the consult leaves the queue and its claim the record. Idempotent. */
  async finishReported(consultId: string): Promise<void> {
    await this.#queue.remove(consultId);
    await this.#store.delete(consultKeys(consultId).claim);
  }

  /**
   * Puts a recorded claim back in Redis for its remaining time, unless someone holds the consult there. True when
   * it did. A release between reading the record and this is caught by reading the record again.
   */
  async restoreClaim(claim: ClaimRecord): Promise<boolean> {
    if (!(await this.#queue.restoreClaim(claim.consultId, claim.username, Date.parse(claim.expiresAt) - Date.now()))) return false;
    if ((await this.recordedClaim(claim.consultId))?.username === claim.username) return true;
    await this.#queue.dropClaim(claim.consultId, claim.username);
    return false;
  }
}
