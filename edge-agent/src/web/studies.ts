import type { Priority, TriageResult } from '@cxr/inference';
import { higherPriority } from '@cxr/inference';
import type { ConsultRecord } from '../outbox/outbox-db.js';
import type { InstanceRecord, InstanceStatus } from '../spool/db.js';

/** One instance as the page and outside checks see it. */
export interface InstanceView {
  readonly id: number;
  readonly sopInstanceUid: string;
  readonly status: InstanceStatus;
  readonly result: TriageResult | null;
  readonly error: { readonly code: string; readonly message: string } | null;
  readonly version: number;
  /** Another instance with this SOP Instance UID but different content was received. */
  readonly conflict: boolean;
  readonly receivedAt: string;
  readonly processedAt: string | null;
  readonly source: 'dicom' | 'folder';
  readonly viewPosition: string | null;
  readonly bodyPart: string | null;
  readonly modality: string | null;
  readonly previewUrl: string | null;
  readonly heatmapUrl: string | null;
  /** The result is in; the preview and heatmap are still being drawn. */
  readonly previewPending: boolean;
  /** Code of the label the heatmap shows (the most probable positive finding, else the most probable label). */
  readonly heatmapLabel: string | null;
}

export interface StudyView {
  readonly studyInstanceUid: string;
  /** Highest priority among the study's AI results; null until an instance has an applicable result. */
  readonly priority: Priority | null;
  /** When the first image of the study arrived. */
  readonly receivedAt: string;
  /** When the latest image arrived (the list is ordered by this, newest first). */
  readonly lastReceivedAt: string;
  readonly updatedAt: string;
  readonly patient: { readonly name: string | null; readonly id: string | null; readonly sex: string | null; readonly birthDate: string | null };
  readonly studyDate: string | null;
  readonly studyTime: string | null;
  readonly accessionNumber: string | null;
  readonly description: string | null;
  readonly instances: readonly InstanceView[];
  /** The consult with the hospital: null when none was asked; `report` once a radiologist signed. */
  readonly consult: null | {
    readonly status: 'pending' | 'queued' | 'claimed' | 'reported';
    readonly reason: 'policy' | 'requested';
    readonly note: string | null;
    readonly requestedAt: string;
    readonly report?: Record<string, unknown>;
  };
}

export function toStudyView(studyInstanceUid: string, records: readonly InstanceRecord[], consult?: ConsultRecord): StudyView {
  const first = records[0];
  let priority: Priority | null = null;
  for (const r of records) {
    if (r.status === 'inferred' && r.result?.applicable) priority = priority ? higherPriority(priority, r.result.priority) : r.result.priority;
  }
  const times = records.flatMap((r) => [r.receivedAt, r.processedAt ?? r.receivedAt]).sort();
  return {
    studyInstanceUid,
    priority,
    receivedAt: records.map((r) => r.receivedAt).sort()[0] ?? '',
    lastReceivedAt: records.map((r) => r.receivedAt).sort().at(-1) ?? '',
    updatedAt: times[times.length - 1] ?? '',
    patient: { name: first?.patientName ?? null, id: first?.patientId ?? null, sex: first?.patientSex ?? null, birthDate: first?.patientBirthDate ?? null },
    studyDate: first?.studyDate ?? null,
    studyTime: first?.studyTime ?? null,
    accessionNumber: first?.accessionNumber ?? null,
    description: first?.studyDescription ?? null,
    instances: records.map(toInstanceView),
    consult: consult
      ? { status: consult.status, reason: consult.reason, note: consult.note, requestedAt: consult.requestedAt, ...(consult.report ? { report: consult.report } : {}) }
      : null,
  };
}

function toInstanceView(r: InstanceRecord): InstanceView {
  return {
    id: r.id,
    sopInstanceUid: r.sopInstanceUid,
    status: r.status,
    result: r.result,
    error: r.errorCode ? { code: r.errorCode, message: r.errorMessage ?? '' } : null,
    version: r.version,
    conflict: r.conflict,
    receivedAt: r.receivedAt,
    processedAt: r.processedAt,
    source: r.source,
    viewPosition: r.viewPosition,
    bodyPart: r.bodyPart,
    modality: r.modality,
    previewUrl: r.previewFile ? `/api/instances/${r.id}/preview.png` : null,
    heatmapUrl: r.heatmapFile ? `/api/instances/${r.id}/heatmap.png` : null,
    previewPending: r.status === 'inferred' && !r.complete,
    heatmapLabel: r.heatmapLabel,
  };
}
