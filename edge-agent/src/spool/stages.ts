import { crashPoint, type Priority, type TriageResult } from '@cxr/inference';
import { EdgeCrashPoint } from '../crash-points.js';
import type { ConsultRecord, OutboxDb } from '../outbox/outbox-db.js';
import { asksForConsult, instancePriority, isForwardable, owedItems, studyPriority, type ForwardingPolicy } from '../outbox/policy.js';
import type { InstanceRecord, SpoolDb } from './db.js';

/**
 * The stages of an instance (received -> early result -> complete, or failed) and what each implies for the
 * hospital, written together: every stage change and its outbox items commit in one transaction, so a crash leaves
 * either the old stage or the new one with everything it owes the gateway, never a result the hospital will not
 * hear of. `unfinished()` is what a restart must take up again.
 */
export class InstanceStages {
  readonly #db: SpoolDb;
  readonly #outbox: OutboxDb;
  readonly #policy: ForwardingPolicy;

  constructor(deps: { db: SpoolDb; outbox: OutboxDb }, policy: ForwardingPolicy) {
    this.#db = deps.db;
    this.#outbox = deps.outbox;
    this.#policy = policy;
  }

  /**
   * The model has run; the images are still being drawn. The result and, for an urgent study, its consult
   * request go out now: a preview that fails to draw never holds back an urgent film. Undefined when the instance
   * had already moved on (a late message).
   */
  earlyResult(id: number, result: TriageResult): InstanceRecord | undefined {
    const record = this.#db.transaction(() => {
      if (!this.#db.setEarlyResult(id, result)) return undefined;
      const updated = this.#db.get(id);
      if (updated) this.#forward(updated, { images: false });
      return updated;
    });
    if (record) crashPoint(EdgeCrashPoint.EarlyResultCommitted);
    return record;
  }

  /**
   * The result with its preview and heatmap: the instance is complete, and all of it goes to the hospital. An
   * instance whose early result was recorded before a crash keeps that result: it is the one shown, and perhaps
   * already at the hospital, which keeps a result once; the run after the restart only draws the images (and no
   * heatmap when another model ran it, since it would not show what that result saw).
   */
  complete(id: number, result: TriageResult, files: { preview: string | null; heatmap: string | null; heatmapLabel: string | null }): InstanceRecord | undefined {
    const record = this.#db.transaction(() => {
      const earlier = this.#db.get(id)?.result;
      if (earlier && earlier.model.sha256 !== result.model.sha256) this.#db.setComplete(id, earlier, { ...files, heatmap: null, heatmapLabel: null });
      else this.#db.setComplete(id, earlier ?? result, files);
      const updated = this.#db.get(id);
      if (updated) this.#forward(updated, { images: true });
      return updated;
    });
    crashPoint(EdgeCrashPoint.CompleteCommitted);
    return record;
  }

  /** The instance cannot be analysed (its error is kept and shown); nothing of it goes out by itself. */
  failed(id: number, error: { code: string; message: string }, files: { preview: string | null }): InstanceRecord | undefined {
    return this.#db.transaction(() => {
      this.#db.setFailed(id, error, files);
      return this.#db.get(id);
    });
  }

  /**
   * A consult asked for by hand (the page's button): the request and every analysed instance of the study, in one
   * commit, even when its priority would not have sent them. One consult per study: asking again returns it.
   * Undefined for an unknown study.
   */
  requestConsult(studyInstanceUid: string, note: string | null): ConsultRecord | undefined {
    return this.#db.transaction(() => {
      const records = this.#db.study(studyInstanceUid);
      if (records.length === 0) return undefined;
      const existing = this.#outbox.consult(studyInstanceUid);
      if (existing) return existing;
      const priority = studyPriority(records);
      const consult = this.#outbox.requestConsult({ studyInstanceUid, reason: 'requested', note, priority });
      for (const record of records) this.#queueInstance(record, priority, { images: record.complete });
      return consult;
    });
  }

  /** A worker started analysing the instance: counted, so that one that keeps crashing the agent is given up. */
  analysisStarted(id: number): void {
    this.#db.countAttempt(id);
  }

  /** The analysis came back, whatever it found: only analyses the process died during count. */
  analysisEnded(id: number): void {
    this.#db.clearAttempts(id);
  }

  /** Instances a restart must finish: received, or with their early result only. */
  unfinished(): InstanceRecord[] {
    return this.#db.unfinished();
  }

  /**
   * At start: every complete instance has its outbox items (an agent that ran alone and is now linked sends what it
   * holds; a database written by an older version is made whole). Items already there are left as they are.
   * Returns the number of instances that lacked some.
   */
  reconcile(): number {
    if (!this.#policy.enabled) return 0;
    return this.#db.transaction(() => {
      let repaired = 0;
      for (const record of this.#db.completeWithResult()) {
        const have = new Set(this.#outbox.itemsOf(record.id, record.studyInstanceUid).map((i) => i.kind));
        if (owedItems(record, { images: true }).every((kind) => have.has(kind))) continue;
        this.#forward(record, { images: true });
        repaired += 1;
      }
      return repaired;
    });
  }

  #forward(record: InstanceRecord, stage: { images: boolean }): void {
    if (!this.#policy.enabled || !isForwardable(record)) return;
    this.#queueInstance(record, instancePriority(record), stage);
    if (asksForConsult(record, this.#policy)) {
      this.#outbox.requestConsult({ studyInstanceUid: record.studyInstanceUid, reason: 'policy', note: null, priority: instancePriority(record) });
    }
  }

  #queueInstance(record: InstanceRecord, priority: Priority, stage: { images: boolean }): void {
    for (const kind of owedItems(record, stage)) this.#outbox.add({ kind, instanceId: record.id, studyInstanceUid: record.studyInstanceUid, priority });
  }
}
