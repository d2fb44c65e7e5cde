import { existsSync } from 'node:fs';
import type { Priority } from '@cxr/inference';
import type { OutboxDb } from '../outbox/outbox-db.js';
import type { InstanceRecord, SpoolDb } from './db.js';
import { asksForConsult, isForwardable, owedItems, studyPriority, type ForwardingPolicy } from '../outbox/policy.js';

/** One broken promise of the spool, by instance or study id (never patient data). */
export interface InvariantViolation {
  readonly rule:
    | 'unfinished' // an instance with a stage still to do
    | 'file-missing' // a file the record names is not on disk
    | 'no-preview' // analysed, but no preview to show
    | 'not-forwarded' // something owed to the hospital is neither waiting in the outbox nor acknowledged
    | 'refused' // the gateway refused an item for good: it will not get there by itself
    | 'no-consult'; // a study whose priority asks for a consult has none waiting or sent
  readonly instanceId?: number;
  readonly studyInstanceUid?: string;
  readonly detail: string;
}

/**
 * The promises the agent keeps after any crash, once its work has settled: every acknowledged instance ends with
 * its result and preview (or its failure) and its files on disk; with a gateway, everything an analysed instance
 * owes the hospital, and the consult of every study that asks for one, is either waiting in the outbox or
 * acknowledged by the gateway. Tests and drills check this after every crash; `cxr-edge check` runs it by hand.
 */
export function checkInvariants(deps: { db: SpoolDb; outbox: OutboxDb; absolute: (relative: string) => string }, policy: ForwardingPolicy): InvariantViolation[] {
  const { db, outbox } = deps;
  const violations: InvariantViolation[] = [];
  const byStudy = new Map<string, InstanceRecord[]>();
  for (const record of db.all()) {
    byStudy.set(record.studyInstanceUid, [...(byStudy.get(record.studyInstanceUid) ?? []), record]);
    const at = { instanceId: record.id, studyInstanceUid: record.studyInstanceUid };
    if (!record.complete) violations.push({ rule: 'unfinished', ...at, detail: `status ${record.status}, not complete` });
    for (const file of [record.file, record.previewFile, record.heatmapFile]) {
      if (file && !existsSync(deps.absolute(file))) violations.push({ rule: 'file-missing', ...at, detail: file });
    }
    if (record.status === 'inferred' && record.complete && !record.previewFile) violations.push({ rule: 'no-preview', ...at, detail: 'analysed without a preview' });
    if (!policy.enabled || !isForwardable(record)) continue;
    const items = outbox.itemsOf(record.id, record.studyInstanceUid);
    for (const kind of owedItems(record, { images: record.complete })) {
      const item = items.find((i) => i.kind === kind);
      if (!item) violations.push({ rule: 'not-forwarded', ...at, detail: `no ${kind} item` });
      else if (item.failed) violations.push({ rule: 'refused', ...at, detail: `${kind} refused by the gateway` });
    }
  }
  if (policy.enabled) {
    for (const [studyInstanceUid, records] of byStudy) {
      const asking = records.filter((r) => asksForConsult(r, policy));
      if (asking.length === 0) continue;
      const priority: Priority = studyPriority(asking);
      const consult = outbox.consult(studyInstanceUid);
      const item = outbox.itemsOf(null, studyInstanceUid).find((i) => i.kind === 'consult');
      if (!consult || !item) violations.push({ rule: 'no-consult', studyInstanceUid, detail: `${priority} study without a consult request` });
      else if (item.failed) violations.push({ rule: 'refused', studyInstanceUid, detail: 'consult request refused by the gateway' });
    }
  }
  return violations;
}
