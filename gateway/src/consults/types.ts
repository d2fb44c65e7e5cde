import type { Priority } from '@cxr/inference';

/**
 * A consult as the gateway stores it (`consults/<id>/consult.json`, store/keys.ts): written by the station ingest
 * route, read by the radiologists' routes, the desk and the queue rebuild.
 */
export interface ConsultRecord {
  readonly consultId: string;
  readonly stationId: string;
  readonly studyInstanceUid: string;
  readonly priority: Priority;
  readonly reason: 'policy' | 'requested';
  readonly note: string | null;
  readonly receivedAt: string;
}

/** A radiologist's signed report (`consults/<id>/report.json`): immutable once stored. */
export interface Report {
  readonly consultId: string;
  readonly impression: string;
  readonly findings: readonly { code: string; agree: boolean }[];
  readonly addedFindings: readonly string[];
  readonly recommendation: string | null;
  readonly signedBy: string;
  readonly signedAt: string;
}
