import type Database from 'better-sqlite3';
import { urgencyRank, type Priority } from '@cxr/inference';
import type { SpoolDb } from '../spool/db.js';

export type OutboxKind = 'result' | 'preview' | 'heatmap' | 'dicom' | 'consult';

export interface OutboxItem {
  readonly id: number;
  readonly kind: OutboxKind;
  readonly instanceId: number | null;
  readonly studyInstanceUid: string;
  readonly attempts: number;
  readonly createdAt: string;
}

export type ConsultStatus = 'pending' | 'queued' | 'claimed' | 'reported';

export interface ConsultRecord {
  readonly studyInstanceUid: string;
  readonly consultId: string | null;
  readonly status: ConsultStatus;
  readonly reason: 'policy' | 'requested';
  readonly note: string | null;
  readonly priority: Priority;
  readonly requestedAt: string;
  readonly updatedAt: string;
  readonly report: Record<string, unknown> | null;
}

/** The outbox and consult state live in the same database as the spool: one commit covers both. */
export class OutboxDb {
  readonly #db: Database.Database;

  constructor(spool: SpoolDb) {
    this.#db = spool.raw;
  }

  /**
   * Idempotent: an item already queued (or sent) for this instance and kind is not added again. The study's
   * waiting items are raised to this priority, so an urgent finding carries the whole study forward.
   */
  add(item: { kind: OutboxKind; instanceId: number | null; studyInstanceUid: string; priority: Priority }): void {
    // Results, previews and consult requests go before the DICOM files of the same urgency.
    const phase = item.kind === 'dicom' ? 1 : 0;
    const rank = urgencyRank(item.priority);
    this.#db
      .prepare(
        `INSERT OR IGNORE INTO outbox (kind, instance_id, study_instance_uid, phase, priority_rank, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(item.kind, item.instanceId ?? -1, item.studyInstanceUid, phase, rank, new Date().toISOString());
    this.#db.prepare('UPDATE outbox SET priority_rank = ? WHERE study_instance_uid = ? AND done_at IS NULL AND priority_rank > ?').run(rank, item.studyInstanceUid, rank);
  }

  /** The next item due: stat before urgent before routine; within one, results before files, then oldest. */
  next(now: number): OutboxItem | undefined {
    const row = this.#db
      .prepare(
        `SELECT id, kind, instance_id, study_instance_uid, attempts, created_at FROM outbox
         WHERE done_at IS NULL AND failed = 0 AND next_attempt_at <= ?
         ORDER BY priority_rank, phase, created_at, id LIMIT 1`,
      )
      .get(now) as { id: number; kind: OutboxKind; instance_id: number; study_instance_uid: string; attempts: number; created_at: string } | undefined;
    return row
      ? { id: row.id, kind: row.kind, instanceId: row.instance_id === -1 ? null : row.instance_id, studyInstanceUid: row.study_instance_uid, attempts: row.attempts, createdAt: row.created_at }
      : undefined;
  }

  /** Soonest retry time of the items waiting, for the sender's sleep. */
  nextDueAt(): number | undefined {
    const row = this.#db.prepare('SELECT MIN(next_attempt_at) AS t FROM outbox WHERE done_at IS NULL AND failed = 0').get() as { t: number | null };
    return row.t ?? undefined;
  }

  /** Makes every waiting item due now (the link is back: nothing waits on an old backoff). Returns how many. */
  dueNow(): number {
    return this.#db.prepare('UPDATE outbox SET next_attempt_at = 0 WHERE done_at IS NULL AND failed = 0 AND next_attempt_at > 0').run().changes;
  }

  done(id: number): void {
    this.#db.prepare('UPDATE outbox SET done_at = ?, last_error = NULL WHERE id = ?').run(new Date().toISOString(), id);
  }

  retryLater(id: number, error: string, at: number): void {
    this.#db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?').run(error, at, id);
  }

  /** An attempt that failed because the link is down: counted, but the item keeps its place (the link backs off). */
  attempted(id: number, error: string): void {
    this.#db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?').run(error, id);
  }

  fail(id: number, error: string): void {
    this.#db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ?, failed = 1 WHERE id = ?').run(error, id);
  }

  pendingCount(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM outbox WHERE done_at IS NULL AND failed = 0').get() as { n: number }).n;
  }

  pendingStudies(): number {
    return (this.#db.prepare('SELECT COUNT(DISTINCT study_instance_uid) AS n FROM outbox WHERE done_at IS NULL AND failed = 0').get() as { n: number }).n;
  }

  failedCount(): number {
    return (this.#db.prepare('SELECT COUNT(*) AS n FROM outbox WHERE failed = 1').get() as { n: number }).n;
  }

  /** The items of one instance (or of a study's consult, `instanceId` null), for checks of what was forwarded. */
  itemsOf(instanceId: number | null, studyInstanceUid: string): { kind: OutboxKind; done: boolean; failed: boolean }[] {
    const rows = this.#db
      .prepare('SELECT kind, done_at, failed FROM outbox WHERE instance_id = ? AND study_instance_uid = ?')
      .all(instanceId ?? -1, studyInstanceUid) as { kind: OutboxKind; done_at: string | null; failed: number }[];
    return rows.map((r) => ({ kind: r.kind, done: r.done_at !== null, failed: r.failed === 1 }));
  }

  /** Records a consult to ask for and queues its request; asking again keeps the first and adds a hand request's note. */
  requestConsult(input: { studyInstanceUid: string; reason: 'policy' | 'requested'; note: string | null; priority: Priority }): ConsultRecord {
    const now = new Date().toISOString();
    this.#db
      .prepare(
        `INSERT INTO consults (study_instance_uid, consult_id, status, reason, note, priority, requested_at, updated_at)
         VALUES (?, NULL, 'pending', ?, ?, ?, ?, ?)
         ON CONFLICT (study_instance_uid) DO UPDATE SET
           note = COALESCE(excluded.note, consults.note),
           reason = CASE WHEN excluded.reason = 'requested' THEN 'requested' ELSE consults.reason END`,
      )
      .run(input.studyInstanceUid, input.reason, input.note, input.priority, now, now);
    this.add({ kind: 'consult', instanceId: null, studyInstanceUid: input.studyInstanceUid, priority: input.priority });
    return this.consult(input.studyInstanceUid) as ConsultRecord;
  }

  consult(studyInstanceUid: string): ConsultRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM consults WHERE study_instance_uid = ?').get(studyInstanceUid) as
      | { study_instance_uid: string; consult_id: string | null; status: ConsultStatus; reason: 'policy' | 'requested'; note: string | null; priority: Priority; requested_at: string; updated_at: string; report_json: string | null }
      | undefined;
    if (!row) return undefined;
    return {
      studyInstanceUid: row.study_instance_uid,
      consultId: row.consult_id,
      status: row.status,
      reason: row.reason,
      note: row.note,
      priority: row.priority,
      requestedAt: row.requested_at,
      updatedAt: row.updated_at,
      report: row.report_json ? (JSON.parse(row.report_json) as Record<string, unknown>) : null,
    };
  }

  /** Consults sent and not yet answered, to ask the gateway about: `limit` of them, those asked least recently first. */
  consultsToCheck(limit: number): ConsultRecord[] {
    const uids = this.#db
      .prepare(
        `SELECT study_instance_uid FROM consults WHERE consult_id IS NOT NULL AND status != 'reported'
         ORDER BY checked_at IS NOT NULL, checked_at, requested_at LIMIT ?`,
      )
      .all(limit) as { study_instance_uid: string }[];
    return uids.map((u) => this.consult(u.study_instance_uid)).filter((c): c is ConsultRecord => c !== undefined);
  }

  markChecked(studyInstanceUid: string): void {
    // Strictly after the last check, even within one millisecond: the least recently asked must stay first.
    const last = (this.#db.prepare('SELECT MAX(checked_at) AS t FROM consults').get() as { t: string | null }).t;
    const at = Math.max(Date.now(), last === null ? 0 : Date.parse(last) + 1);
    this.#db.prepare('UPDATE consults SET checked_at = ? WHERE study_instance_uid = ?').run(new Date(at).toISOString(), studyInstanceUid);
  }

  updateConsult(studyInstanceUid: string, update: { consultId?: string; status: ConsultStatus; report?: Record<string, unknown> | null }): void {
    this.#db
      .prepare('UPDATE consults SET consult_id = COALESCE(?, consult_id), status = ?, report_json = COALESCE(?, report_json), updated_at = ? WHERE study_instance_uid = ?')
      .run(update.consultId ?? null, update.status, update.report ? JSON.stringify(update.report) : null, new Date().toISOString(), studyInstanceUid);
  }
}
