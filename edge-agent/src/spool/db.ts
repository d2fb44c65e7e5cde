import { closeSync, existsSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Priority, TriageResult } from '@cxr/inference';
import { PRIVATE_FILE_MODE, tightenFile } from './modes.js';

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
  /**
   * Every stage is done: the result and its images are stored (or the failure is). An `inferred` instance that is
   * not complete has its early result only; a restart finishes it.
   */
  readonly complete: boolean;
  /** analyses of this instance started and not finished, in every life of the process (a crash-loop guard) */
  readonly attempts: number;
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
  complete: number;
  attempts: number;
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
  'ALTER TABLE instances ADD COLUMN complete INTEGER NOT NULL DEFAULT 0',
  // Rows written before stages were recorded: an `inferred` row without a preview may be one a crash cut after its
  // early result, so it is finished again (running it twice gives the same result).
  "UPDATE instances SET complete = 1 WHERE status = 'failed' OR (status = 'inferred' AND preview_file IS NOT NULL)",
  'CREATE INDEX instances_unfinished ON instances (complete, id)',
  // The outbox goes by urgency first: a stat study's DICOM before a routine study's result.
  'DROP INDEX outbox_due',
  'CREATE INDEX outbox_due ON outbox (done_at, failed, priority_rank, phase, created_at)',
  // When the gateway was last asked about a consult: a round asks those asked least recently.
  'ALTER TABLE consults ADD COLUMN checked_at TEXT',
  'ALTER TABLE instances ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0',
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
    complete: row.complete === 1,
    attempts: row.attempts,
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
    // Patient data: the database is the agent's account's alone. Created 0600 before SQLite opens it (its WAL and
    // shared-memory files take the database file's mode), and tightened if an older agent left it open.
    if (file !== ':memory:') {
      if (!existsSync(file)) closeSync(openSync(file, 'a', PRIVATE_FILE_MODE));
      for (const each of [file, `${file}-wal`, `${file}-shm`]) tightenFile(each);
    }
    this.#db = new Database(file);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = FULL');
    this.#db.pragma('foreign_keys = ON');
    this.#db.pragma('busy_timeout = 5000');
    this.#migrate();
  }

  #migrate(): void {
    const version = this.#db.pragma('user_version', { simple: true }) as number;
    // A database a newer agent wrote keeps its version: writing ours back would run its migrations again later.
    if (version >= migrations.length) return;
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

  /** Instances with a stage still to do (received, or with their early result only), oldest first: a restart's work. */
  unfinished(): InstanceRecord[] {
    return (this.#db.prepare('SELECT * FROM instances WHERE complete = 0 ORDER BY id').all() as Row[]).map(toRecord);
  }

  /** Every instance, oldest first. */
  all(): InstanceRecord[] {
    return (this.#db.prepare('SELECT * FROM instances ORDER BY id').all() as Row[]).map(toRecord);
  }

  /** Every complete instance with a result, oldest first (for reconciling the outbox at start). */
  completeWithResult(): InstanceRecord[] {
    return (this.#db.prepare("SELECT * FROM instances WHERE complete = 1 AND status = 'inferred' ORDER BY id").all() as Row[]).map(toRecord);
  }

  /**
   * The early result: shown at once, while the preview and heatmap are drawn. Only a `received` row takes it, so a
   * late message never overwrites a final record. Returns whether the row changed. Call inside a transaction with the
   * outbox items it implies (spool/stages.ts).
   */
  setEarlyResult(id: number, result: TriageResult): boolean {
    const info = this.#db
      .prepare(
        `UPDATE instances SET status = 'inferred', processed_at = ?, result_json = ?, priority = ?, error_code = NULL, error_message = NULL
         WHERE id = ? AND status = 'received'`,
      )
      .run(new Date().toISOString(), JSON.stringify(result), result.applicable ? result.priority : null, id);
    return info.changes === 1;
  }

  /** The final record of an analysed instance: its result and the images drawn from it. */
  setComplete(id: number, result: TriageResult, files: { preview: string | null; heatmap: string | null; heatmapLabel: string | null }): void {
    this.#db
      .prepare(
        `UPDATE instances SET status = 'inferred', complete = 1, processed_at = ?, result_json = ?, priority = ?, error_code = NULL,
           error_message = NULL, preview_file = ?, heatmap_file = ?, heatmap_label = ? WHERE id = ?`,
      )
      .run(new Date().toISOString(), JSON.stringify(result), result.applicable ? result.priority : null, files.preview, files.heatmap, files.heatmapLabel, id);
  }

  setFailed(id: number, error: { code: string; message: string }, files: { preview: string | null }): void {
    this.#db
      .prepare(`UPDATE instances SET status = 'failed', complete = 1, processed_at = ?, error_code = ?, error_message = ?, preview_file = ? WHERE id = ?`)
      .run(new Date().toISOString(), error.code, error.message, files.preview, id);
  }

  /** A worker has started analysing the instance (committed before it can crash anything). */
  countAttempt(id: number): void {
    this.#db.prepare('UPDATE instances SET attempts = attempts + 1 WHERE id = ? AND complete = 0').run(id);
  }

  /** The analysis came back (whatever its outcome): it was not cut short. */
  clearAttempts(id: number): void {
    this.#db.prepare('UPDATE instances SET attempts = 0 WHERE id = ? AND attempts > 0').run(id);
  }

  /** Runs `fn` in one IMMEDIATE transaction: every write in it commits together or not at all. */
  transaction<T>(fn: () => T): T {
    return this.#db.transaction(fn).immediate();
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

