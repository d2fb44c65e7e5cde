import { randomUUID } from 'node:crypto';
import type { ObjectStore } from './store/index.js';
import { auditDayPrefix, auditKey } from './store/keys.js';

export type AuditAction =
  | 'login'
  | 'login.failed'
  | 'login.throttled'
  | 'account.add-user'
  | 'account.add-station'
  | 'account.set-password'
  | 'account.disable-user'
  | 'account.enable-user'
  | 'account.rotate-station-token'
  | 'account.revoke-station'
  | 'ingest.result'
  | 'ingest.preview'
  | 'ingest.dicom'
  | 'consult.request'
  | 'consult.view'
  | 'consult.claim'
  | 'consult.release'
  | 'consult.report'
  | 'registry.push'
  | 'registry.deploy'
  | 'registry.rollback'
  | 'registry.cohort';

export interface AuditEvent {
  readonly at: string;
  /** `user:NAME`, `station:ID`, or `admin-cli:OS_USER` for the admin commands */
  readonly actor: string;
  readonly action: AuditAction;
  /** what was acted on: a consult id, a study UID; never patient data */
  readonly target: string;
  readonly detail?: Record<string, string | number | boolean>;
}

/**
 * The append-only audit trail, in the object store: one object per event, keyed by time, never overwritten
 * (`ifNoneMatch`), so a day's trail is a sorted listing of `audit/YYYY-MM-DD/`.
 */
export class AuditTrail {
  readonly #store: ObjectStore;

  constructor(store: ObjectStore) {
    this.#store = store;
  }

  async record(event: Omit<AuditEvent, 'at'>): Promise<void> {
    const at = new Date().toISOString();
    const key = auditKey(at, randomUUID());
    await this.#store.put(key, Buffer.from(JSON.stringify({ at, ...event })), { contentType: 'application/json', ifNoneMatch: true });
  }

  async *day(date: string): AsyncIterable<AuditEvent> {
    for await (const info of this.#store.list(auditDayPrefix(date))) {
      yield JSON.parse(Buffer.from(await this.#store.getBytes(info.key)).toString('utf8')) as AuditEvent;
    }
  }
}
