import { higherPriority, type Priority } from '@cxr/inference';
import type { InstanceRecord } from '../spool/db.js';
import type { OutboxKind } from './outbox-db.js';

/**
 * What the station owes the hospital, in one place: the stages that queue it (spool/stages.ts) and the invariants
 * that check it after a crash (spool/invariants.ts) read the same rules, so they cannot drift apart.
 */

/** What goes to the hospital, and when a study asks for a consult by itself. */
export interface ForwardingPolicy {
  /** false when the agent works alone: nothing is queued for a gateway */
  readonly enabled: boolean;
  /** AI priorities whose studies ask for a consult without anyone pressing the button */
  readonly consultPriorities: readonly Priority[];
}

export type InstanceItemKind = Exclude<OutboxKind, 'consult'>;

/** Only an instance the model analysed owes the hospital anything; a failed one stays at the station. */
export function isForwardable(record: InstanceRecord): boolean {
  return record.status === 'inferred' && record.result !== null;
}

/**
 * What an analysed instance owes the hospital: the result at once (the early result); its images and DICOM file
 * once complete (`images`). Nothing for an instance that was not analysed.
 */
export function owedItems(record: InstanceRecord, stage: { images: boolean }): InstanceItemKind[] {
  if (!isForwardable(record)) return [];
  const kinds: InstanceItemKind[] = ['result'];
  if (!stage.images) return kinds;
  if (record.previewFile) kinds.push('preview');
  if (record.heatmapFile) kinds.push('heatmap');
  kinds.push('dicom');
  return kinds;
}

/** The priority an instance's items travel at: its AI priority, routine when the model did not apply to it. */
export function instancePriority(record: InstanceRecord): Priority {
  return record.result?.applicable ? record.result.priority : 'routine';
}

/** Whether the instance's own finding asks for a consult, without anyone pressing the button. */
export function asksForConsult(record: InstanceRecord, policy: ForwardingPolicy): boolean {
  return policy.enabled && isForwardable(record) && record.result?.applicable === true && policy.consultPriorities.includes(record.result.priority);
}

/** The highest AI priority among a study's applicable results, routine when none: a consult's priority. */
export function studyPriority(records: readonly InstanceRecord[]): Priority {
  let priority: Priority = 'routine';
  for (const r of records) if (r.result?.applicable) priority = higherPriority(priority, r.result.priority);
  return priority;
}
