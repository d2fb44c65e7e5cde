/**
 * The whole loop for a drill, as real processes: Redis, a gateway over a folder store, a station account, a
 * radiologist, and the station's `cxr-edge` (the edge tests' own launchers, so drills and tests start them the same
 * way). Plus what a drill reads afterwards: the edge's database with its invariants, and what the gateway holds.
 */
import { createHash } from 'node:crypto';
import path from 'node:path';
import { checkInvariants, OutboxDb, SpoolDb, type InvariantViolation } from '@cxr/edge-agent';
import { storeFromUrl } from '@cxr/gateway';
import { startAgent, type AgentProcess } from '../../../edge-agent/test/harness/agent-process.js';
import { startHospital, type Hospital, type Radiologist } from '../../../edge-agent/test/support/hospital.js';
import { squeezenet } from './films.js';

export { startAgent, storescu, waitFor, type AgentProcess } from '../../../edge-agent/test/harness/agent-process.js';
export type { Hospital } from '../../../edge-agent/test/support/hospital.js';

export const consultPriorities = ['stat', 'urgent'] as const;

export interface Site {
  readonly hospital: Hospital;
  readonly doctor: Radiologist;
  readonly station: { readonly stationId: string; readonly token: string };
  /** Starts the station's agent on `dataDir`, linked to the gateway; `env` for crash points. */
  startEdge(dataDir: string, options?: { env?: NodeJS.ProcessEnv; args?: readonly string[] }): Promise<AgentProcess>;
  close(): Promise<void>;
}

export async function startSite(stationId = 'tram-drill'): Promise<Site> {
  const hospital = await startHospital();
  const station = await hospital.addStation(stationId);
  const doctor = await hospital.addRadiologist('bs.drill', 'mat-khau-dai-drill');
  return {
    hospital,
    doctor,
    station,
    startEdge: (dataDir, options = {}) =>
      startAgent({
        dataDir,
        env: { CXR_EDGE_GATEWAY_POLL_MS: '1000', ...options.env },
        args: [
          '--model', squeezenet, '--no-model-sync', '--log-level', 'warn',
          '--gateway', hospital.url, '--station-id', station.stationId, '--station-token', station.token,
          // Every DICOM file goes up in resumable chunks: a kill can land between any two.
          '--upload-chunk-bytes', String(64 * 1024), '--link-retry-max-ms', '2000',
          ...(options.args ?? []),
        ],
      }),
    close: () => hospital.close(),
  };
}

/** What the edge's database holds: its instances by SOP Instance UID, and the invariants it breaks. */
export interface EdgeDbView {
  readonly instances: Map<string, { count: number; complete: boolean; status: string; contentSha256: string }>;
  readonly violations: InvariantViolation[];
  readonly pendingItems: number;
}

/** Opens the edge's database while the agent is not running (after a kill, or after it stopped). */
export function readEdgeDb(dataDir: string): EdgeDbView {
  const db = new SpoolDb(path.join(dataDir, 'edge.db'));
  try {
    const outbox = new OutboxDb(db);
    const instances = new Map<string, { count: number; complete: boolean; status: string; contentSha256: string }>();
    for (const record of db.all()) {
      const seen = instances.get(record.sopInstanceUid);
      instances.set(record.sopInstanceUid, { count: (seen?.count ?? 0) + 1, complete: record.complete, status: record.status, contentSha256: record.contentSha256 });
    }
    const violations = checkInvariants({ db, outbox, absolute: (f) => path.join(dataDir, f) }, { enabled: true, consultPriorities });
    return { instances, violations, pendingItems: outbox.pendingCount() };
  } finally {
    db.close();
  }
}

/** What the gateway's store holds for one station: per SOP Instance UID, the content versions and their files. */
export async function readGatewayStore(storeDir: string, stationId: string): Promise<Map<string, Map<string, Set<string>>>> {
  const store = await storeFromUrl(storeDir);
  const bySop = new Map<string, Map<string, Set<string>>>();
  try {
    const prefix = `studies/${stationId}/`;
    for await (const info of store.list(prefix)) {
      // studies/<station>/<study>/instances/<sop>/<sha>/<file>
      const [, , , instances, sop, sha, file] = info.key.split('/');
      if (instances !== 'instances' || !sop || !sha || !file) continue;
      const versions = bySop.get(sop) ?? new Map<string, Set<string>>();
      versions.set(sha, (versions.get(sha) ?? new Set()).add(file));
      bySop.set(sop, versions);
    }
  } finally {
    await store.close();
  }
  return bySop;
}

/** sha256 of a DICOM file as the gateway keys and checks it: the whole file. */
export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}
