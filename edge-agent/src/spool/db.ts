import Database from 'better-sqlite3';
import type { Priority, TriageResult } from '@cxr/inference';

export type InstanceStatus = 'received' | 'inferred' | 'failed';
export type InstanceSource = 'dicom' | 'folder';

/** What the spool knows of one stored instance. Patient fields are for the local page only, never for logs. */
export interface InstanceRecord {
  readonly id: number;
  readonly sopInstanceUid: string;
  readonly version: number;
  readonly conflict: boolean;
  readonly contentSha256: string;
  readonly file: string;
  readonly size: number;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string | null;
  readonly sopClassUid: string | null;
  readonly transferSyntaxUid: string | null;
  readonly modality: string | null;
  readonly bodyPart: string | null;
  readonly viewPosition: string | null;
  readonly patientName: string | null;
  readonly patientId: string | null;
  readonly patientSex: string | null;
  readonly patientBirthDate: string | null;
  readonly studyDate: string | null;
  readonly studyTime: string | null;
  readonly accessionNumber: string | null;
  readonly studyDescription: string | null;
  readonly source: InstanceSource;
  readonly callingAe: string | null;
  readonly status: InstanceStatus;
  readonly receivedAt: string;
  readonly processedAt: string | null;
  readonly result: TriageResult | null;
  readonly priority: Priority | null;
  readonly errorCode: string | null;
  readonly errorMessage: string | null;
  readonly previewFile: string | null;
  readonly heatmapFile: string | null;
  readonly heatmapLabel: string | null;
}

export type NewInstance = Pick<
  InstanceRecord,
  | 'sopInstanceUid'
  | 'contentSha256'
  | 'file'
  | 'size'
  | 'studyInstanceUid'
  | 'seriesInstanceUid'
  | 'sopClassUid'
  | 'transferSyntaxUid'
  | 'modality'
  | 'bodyPart'
  | 'viewPosition'
  | 'patientName'
  | 'patientId'
  | 'patientSex'
  | 'patientBirthDate'
  | 'studyDate'
  | 'studyTime'
  | 'accessionNumber'
  | 'studyDescription'
  | 'source'
  | 'callingAe'
>;

interface Row {
  id: number;
  sop_instance_uid: string;
  version: number;
  conflict: number;
  content_sha256: string;
  file: string;
  size: number;
  study_instance_uid: string;
  series_instance_uid: string | null;
  sop_class_uid: string | null;
  transfer_syntax_uid: string | null;
  modality: string | null;
  body_part: string | null;
  view_position: string | null;
  patient_name: string | null;
  patient_id: string | null;
  patient_sex: string | null;
  patient_birth_date: string | null;
  study_date: string | null;
  study_time: string | null;
  accession_number: string | null;
  study_description: string | null;
  source: InstanceSource;
  calling_ae: string | null;
  status: InstanceStatus;
  received_at: string;
  processed_at: string | null;
  result_json: string | null;
  priority: Priority | null;
  error_code: string | null;
  error_message: string | null;
  preview_file: string | null;
  heatmap_file: string | null;
  heatmap_label: string | null;
}

const migrations = [
  `CREATE TABLE instances (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     sop_instance_uid TEXT NOT NULL,
     version INTEGER NOT NULL,
     conflict INTEGER NOT NULL DEFAULT 0,
     content_sha256 TEXT NOT NULL,
     file TEXT NOT NULL,
     size INTEGER NOT NULL,
     study_instance_uid TEXT NOT NULL,
     series_instance_uid TEXT, sop_class_uid TEXT, transfer_syntax_uid TEXT,
     modality TEXT, body_part TEXT, view_position TEXT,
     patient_name TEXT, patient_id TEXT, patient_sex TEXT, patient_birth_date TEXT,
     study_date TEXT, study_time TEXT, accession_number TEXT, study_description TEXT,
     source TEXT NOT NULL, calling_ae TEXT,
     status TEXT NOT NULL DEFAULT 'received',
     received_at TEXT NOT NULL,
     processed_at TEXT,
     result_json TEXT, priority TEXT,
     error_code TEXT, error_message TEXT,
     preview_file TEXT, heatmap_file TEXT,
     UNIQUE (sop_instance_uid, content_sha256)
   )`,
  'CREATE INDEX instances_study ON instances (study_instance_uid)',
  'CREATE INDEX instances_status ON instances (status)',
  'CREATE INDEX instances_received ON instances (received_at)',
  'ALTER TABLE instances ADD COLUMN heatmap_label TEXT',
  `CREATE TABLE outbox (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     kind TEXT NOT NULL,
     instance_id INTEGER,
     study_instance_uid TEXT NOT NULL,
     phase INTEGER NOT NULL,
     priority_rank INTEGER NOT NULL,
     created_at TEXT NOT NULL,
     attempts INTEGER NOT NULL DEFAULT 0,
     next_attempt_at INTEGER NOT NULL DEFAULT 0,
     last_error TEXT,
     done_at TEXT,
     failed INTEGER NOT NULL DEFAULT 0,
     UNIQUE (kind, instance_id, study_instance_uid)
   )`,
  'CREATE INDEX outbox_due ON outbox (done_at, failed, phase, priority_rank, created_at)',
  `CREATE TABLE consults (
     study_instance_uid TEXT PRIMARY KEY,
     consult_id TEXT,
     status TEXT NOT NULL,
     reason TEXT NOT NULL,
     note TEXT,
     priority TEXT NOT NULL,
     requested_at TEXT NOT NULL,
     updated_at TEXT NOT NULL,
     report_json TEXT
   )`,
];

function toRecord(row: Row): InstanceRecord {
  return {
    id: row.id,
    sopInstanceUid: row.sop_instance_uid,
    version: row.version,
    conflict: row.conflict === 1,
    contentSha256: row.content_sha256,
    file: row.file,
    size: row.size,
    studyInstanceUid: row.study_instance_uid,
    seriesInstanceUid: row.series_instance_uid,
    sopClassUid: row.sop_class_uid,
    transferSyntaxUid: row.transfer_syntax_uid,
    modality: row.modality,
    bodyPart: row.body_part,
    viewPosition: row.view_position,
    patientName: row.patient_name,
    patientId: row.patient_id,
    patientSex: row.patient_sex,
    patientBirthDate: row.patient_birth_date,
    studyDate: row.study_date,
    studyTime: row.study_time,
    accessionNumber: row.accession_number,
    studyDescription: row.study_description,
    source: row.source,
    callingAe: row.calling_ae,
    status: row.status,
    receivedAt: row.received_at,
    processedAt: row.processed_at,
    result: row.result_json ? (JSON.parse(row.result_json) as TriageResult) : null,
    priority: row.priority,
    errorCode: row.error_code,
    errorMessage: row.error_message,
    previewFile: row.preview_file,
    heatmapFile: row.heatmap_file,
    heatmapLabel: row.heatmap_label,
  };
}

export type InsertOutcome =
  | { readonly kind: 'stored'; readonly record: InstanceRecord }
  /** The same SOP Instance UID with the same content: acknowledged, stored once. */
  | { readonly kind: 'duplicate'; readonly record: InstanceRecord };

/** The agent's embedded database: SQLite in WAL mode with synchronous=FULL, so a committed row survives power loss. */
export class SpoolDb {
  readonly #db: Database.Database;

  constructor(file: string) {
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    const apply = this.#db.transaction(() => {
      for (let i = version; i < migrations.length; i++) this.#db.exec(migrations[i] as string);
      this.#db.pragma(`user_version = ${migrations.length}`);
    });
    apply();
  }

  /** Records a durable file. Same UID and content: a duplicate. Same UID, other content: a new, flagged version. */
  insert(instance: NewInstance, receivedAt: Date): InsertOutcome {
    const tx = this.#db.transaction((): InsertOutcome => {
      const existing = this.#db
        .prepare('SELECT * FROM instances WHERE sop_instance_uid = ? AND content_sha256 = ?')
        .get(instance.sopInstanceUid, instance.contentSha256) as Row | undefined;
      if (existing) return { kind: 'duplicate', record: toRecord(existing) };
      const previous = this.#db
        .prepare('SELECT MAX(version) AS v FROM instances WHERE sop_instance_uid = ?')
        .get(instance.sopInstanceUid) as { v: number | null };
      const version = (previous.v ?? 0) + 1;
      if (version > 1) this.#db.prepare('UPDATE instances SET conflict = 1 WHERE sop_instance_uid = ?').run(instance.sopInstanceUid);
      const info = this.#db
        .prepare(
          `INSERT INTO instances (sop_instance_uid, version, conflict, content_sha256, file, size, study_instance_uid,
             series_instance_uid, sop_class_uid, transfer_syntax_uid, modality, body_part, view_position,
             patient_name, patient_id, patient_sex, patient_birth_date, study_date, study_time, accession_number,
             study_description, source, calling_ae, status, received_at)
           VALUES (@sopInstanceUid, @version, @conflict, @contentSha256, @file, @size, @studyInstanceUid,
             @seriesInstanceUid, @sopClassUid, @transferSyntaxUid, @modality, @bodyPart, @viewPosition,
             @patientName, @patientId, @patientSex, @patientBirthDate, @studyDate, @studyTime, @accessionNumber,
             @studyDescription, @source, @callingAe, 'received', @receivedAt)`,
        )
        .run({ ...instance, version, conflict: version > 1 ? 1 : 0, receivedAt: receivedAt.toISOString() });
      return { kind: 'stored', record: this.get(Number(info.lastInsertRowid)) as InstanceRecord };
    });
    return tx.immediate();
  }

  get(id: number): InstanceRecord | undefined {
    const row = this.#db.prepare('SELECT * FROM instances WHERE id = ?').get(id) as Row | undefined;
    return row ? toRecord(row) : undefined;
  }

  /** Every stored version of one SOP Instance UID, oldest first. */
  versions(sopInstanceUid: string): InstanceRecord[] {
    return (this.#db.prepare('SELECT * FROM instances WHERE sop_instance_uid = ? ORDER BY version').all(sopInstanceUid) as Row[]).map(toRecord);
  }

  hasFile(file: string): boolean {
    return this.#db.prepare('SELECT 1 FROM instances WHERE file = ? LIMIT 1').get(file) !== undefined;
  }

  /** Instances received but not yet processed, oldest first: the work a restart must finish. */
  pending(): InstanceRecord[] {
    return (this.#db.prepare("SELECT * FROM instances WHERE status = 'received' ORDER BY id").all() as Row[]).map(toRecord);
  }

  markInferred(id: number, result: TriageResult, files: { preview: string | null; heatmap: string | null; heatmapLabel?: string | null }): void {
    this.#db
      .prepare(
        `UPDATE instances SET status = 'inferred', processed_at = ?, result_json = ?, priority = ?, error_code = NULL,
           error_message = NULL, preview_file = ?, heatmap_file = ?, heatmap_label = ? WHERE id = ?`,
      )
      .run(new Date().toISOString(), JSON.stringify(result), result.applicable ? result.priority : null, files.preview, files.heatmap, files.heatmapLabel ?? null, id);
  }

  markFailed(id: number, error: { code: string; message: string }, files: { preview: string | null } = { preview: null }): void {
    this.#db
      .prepare(`UPDATE instances SET status = 'failed', processed_at = ?, error_code = ?, error_message = ?, preview_file = ? WHERE id = ?`)
      .run(new Date().toISOString(), error.code, error.message, files.preview, id);
  }

  /** Studies with their instances, newest first (by the latest instance received). */
  studies(options: { limit?: number; since?: Date } = {}): { studyInstanceUid: string; instances: InstanceRecord[] }[] {
    const since = options.since?.toISOString() ?? '';
    const limit = options.limit ?? 500;
    const uids = this.#db
      .prepare(
        `SELECT study_instance_uid AS uid, MAX(received_at) AS last FROM instances WHERE received_at >= ?
         GROUP BY study_instance_uid ORDER BY last DESC LIMIT ?`,
      )
      .all(since, limit) as { uid: string }[];
    const byStudy = this.#db.prepare('SELECT * FROM instances WHERE study_instance_uid = ? ORDER BY id');
    return uids.map(({ uid }) => ({ studyInstanceUid: uid, instances: (byStudy.all(uid) as Row[]).map(toRecord) }));
  }

  study(studyInstanceUid: string): InstanceRecord[] {
    return (this.#db.prepare('SELECT * FROM instances WHERE study_instance_uid = ? ORDER BY id').all(studyInstanceUid) as Row[]).map(toRecord);
  }

  counts(): Record<InstanceStatus, number> {
    const rows = this.#db.prepare('SELECT status, COUNT(*) AS n FROM instances GROUP BY status').all() as { status: InstanceStatus; n: number }[];
    const out: Record<InstanceStatus, number> = { received: 0, inferred: 0, failed: 0 };
    for (const r of rows) out[r.status] = r.n;
    return out;
  }

  close(): void {
    this.#db.close();
  }

  /** The connection itself, for the outbox tables that share this database. */
  get raw(): Database.Database {
    return this.#db;
  }
}

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

const rankOf: Record<Priority, number> = { stat: 0, urgent: 1, routine: 2 };

/** The outbox and consult state live in the same database as the spool: one commit covers both. */
export class OutboxDb {
  readonly #db: Database.Database;

  constructor(spool: SpoolDb) {
    this.#db = spool.raw;
  }

  /** Idempotent: an item already queued (or sent) for this instance and kind is not added again. */
  add(item: { kind: OutboxKind; instanceId: number | null; studyInstanceUid: string; priority: Priority }): void {
    // Results, previews and consult requests go before the DICOM files.
    const phase = item.kind === 'dicom' ? 1 : 0;
    this.#db
      .prepare(
        `INSERT OR IGNORE INTO outbox (kind, instance_id, study_instance_uid, phase, priority_rank, created_at)
         VALUES (?, ?, ?, ?, ?, ?)`,
      )
      .run(item.kind, item.instanceId ?? -1, item.studyInstanceUid, phase, rankOf[item.priority], new Date().toISOString());
  }

  /** The next item due: results before files, stat before urgent before routine, then oldest. */
  next(now: number): OutboxItem | undefined {
    const row = this.#db
      .prepare(
        `SELECT id, kind, instance_id, study_instance_uid, attempts, created_at FROM outbox
         WHERE done_at IS NULL AND failed = 0 AND next_attempt_at <= ?
         ORDER BY phase, priority_rank, created_at, id LIMIT 1`,
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

  done(id: number): void {
    this.#db.prepare('UPDATE outbox SET done_at = ?, last_error = NULL WHERE id = ?').run(new Date().toISOString(), id);
  }

  retryLater(id: number, error: string, at: number): void {
    this.#db.prepare('UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?').run(error, at, id);
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

  /** Consults sent and not yet answered: the ones to ask the gateway about. */
  openConsults(): ConsultRecord[] {
    const uids = this.#db.prepare("SELECT study_instance_uid FROM consults WHERE consult_id IS NOT NULL AND status != 'reported'").all() as { study_instance_uid: string }[];
    return uids.map((u) => this.consult(u.study_instance_uid)).filter((c): c is ConsultRecord => c !== undefined);
  }

  updateConsult(studyInstanceUid: string, update: { consultId?: string; status: ConsultStatus; report?: Record<string, unknown> | null }): void {
    this.#db
      .prepare('UPDATE consults SET consult_id = COALESCE(?, consult_id), status = ?, report_json = COALESCE(?, report_json), updated_at = ? WHERE study_instance_uid = ?')
      .run(update.consultId ?? null, update.status, update.report ? JSON.stringify(update.report) : null, new Date().toISOString(), studyInstanceUid);
  }
}
