/**
 * Every named crash point of the edge agent (src/crash-points.ts), crossed for real: the agent, linked to a real
 * gateway, receives an urgent chest film and is killed (SIGKILL) at the point; the X-ray unit sends again what it
 * got no Success for, as a unit does; the agent is started again and must end with the promises of
 * src/spool/invariants.ts kept, and the hospital holding the study once, with its consult, result, preview and DICOM.
 */
import { copyFileSync, mkdirSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crashPointLine } from '@cxr/inference';
import { EdgeCrashPoint, type EdgeCrashPointName } from '../src/crash-points.js';
import { OutboxDb } from '../src/outbox/outbox-db.js';
import { SpoolDb } from '../src/spool/db.js';
import { checkInvariants } from '../src/spool/invariants.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { startHospital, type Hospital, type Radiologist } from './support/hospital.js';

/** The DenseNet test model calls this chest urgent; 676 KB, so 64 KiB chunks make a resumable upload of 11. */
const urgentChest = path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm');
const studyUid = '1.3.6.1.4.1.5962.1.2.9.20040826185059.5457';
const consultPriorities = ['stat', 'urgent'] as const;

interface Study {
  studyInstanceUid: string;
  priority: string | null;
  instances: { status: string; previewUrl: string | null; previewPending: boolean }[];
  consult: null | { status: string };
}

let hospital: Hospital;
let doctor: Radiologist;
const exercised = new Set<string>();

beforeAll(async () => {
  hospital = await startHospital();
  doctor = await hospital.addRadiologist('bs.crash', 'mat-khau-dai-crash');
});
afterAll(async () => {
  await hospital?.close();
});

function agentArgs(station: { stationId: string; token: string }): string[] {
  return ['--gateway', hospital.url, '--station-id', station.stationId, '--station-token', station.token, '--upload-chunk-bytes', '65536', '--no-model-sync'];
}

/** The agent has nothing left to do: every instance complete, the outbox empty, the link up. */
async function settled(agent: AgentProcess): Promise<Study[]> {
  return waitFor(
    'the agent to finish its work and empty its outbox',
    async () => {
      const studies = await agent.api<Study[]>('/api/studies');
      const link = await agent.api<{ state: string; pending: number }>('/api/link');
      const done = studies.every((s) => s.instances.every((i) => i.status === 'failed' || (i.status === 'inferred' && i.previewUrl !== null && !i.previewPending)));
      return done && link.state === 'online' && link.pending === 0 && studies.length > 0 ? studies : undefined;
    },
    90_000,
  );
}

async function crashAt(point: EdgeCrashPointName, via: 'dicom' | 'folder'): Promise<void> {
  const station = await hospital.addStation(`tram-crash-${Object.values(EdgeCrashPoint).indexOf(point)}`);
  const dataDir = tempDir('cxr-edge-crash-');
  try {
    const doomed = await startAgent({ dataDir, args: agentArgs(station), env: { CXR_CRASH_POINT: point } });
    let acknowledged = false;
    if (via === 'dicom') acknowledged = (await storescu(doomed.dicomPort, [urgentChest])).code === 0;
    else {
      mkdirSync(path.join(dataDir, 'incoming'), { recursive: true });
      copyFileSync(urgentChest, path.join(dataDir, 'incoming', 'film.dcm'));
    }
    const signal = await waitFor('the crash', async () => doomed.child.signalCode ?? undefined, 60_000);
    expect(signal).toBe('SIGKILL');
    expect(doomed.output()).toContain(crashPointLine(point));
    exercised.add(point);

    const agent = await startAgent({ dataDir, args: agentArgs(station) });
    try {
      // The unit sends again what it got no Success for; a second send of the same film changes nothing.
      if (via === 'dicom' && !acknowledged) expect((await storescu(agent.dicomPort, [urgentChest])).code).toBe(0);
      const studies = await settled(agent);
      expect(studies).toHaveLength(1);
      expect(studies[0]).toMatchObject({ studyInstanceUid: studyUid, priority: 'urgent', consult: { status: 'queued' } });
      expect(studies[0]?.instances).toHaveLength(1);
      if (via === 'folder') expect(readdirSync(path.join(dataDir, 'incoming'))).toEqual([]);
      expect(readdirSync(path.join(dataDir, 'tmp'))).toEqual([]);
    } finally {
      expect(await agent.stop()).toBe(0);
    }

    const db = new SpoolDb(path.join(dataDir, 'edge.db'));
    try {
      const violations = checkInvariants({ db, outbox: new OutboxDb(db), absolute: (f) => path.join(dataDir, f) }, { enabled: true, consultPriorities });
      expect(violations).toEqual([]);
    } finally {
      db.close();
    }

    // The hospital has the study once: one consult on the worklist, with the result, preview, heatmap and DICOM.
    const worklist = await doctor.api<{ consultId: string; stationId: string; studyInstanceUid: string; priority: string }[]>('/api/v1/worklist');
    const mine = worklist.body.filter((c) => c.stationId === station.stationId);
    expect(mine).toMatchObject([{ studyInstanceUid: studyUid, priority: 'urgent' }]);
    const view = await doctor.api<{ instances: { result: { priority: string } | null; hasPreview: boolean; hasHeatmap: boolean; hasDicom: boolean }[] }>(`/api/v1/consults/${mine[0]?.consultId}`);
    expect(view.body.instances).toMatchObject([{ result: { priority: 'urgent' }, hasPreview: true, hasHeatmap: true, hasDicom: true }]);
  } finally {
    removeDir(dataDir);
  }
}

describe('the edge agent killed at each crash point recovers everything it acknowledged', () => {
  for (const point of Object.values(EdgeCrashPoint)) {
    const via = point === EdgeCrashPoint.IntakeRecorded ? 'folder' : 'dicom';
    it(`${point} (${via})`, () => crashAt(point, via), 240_000);
  }

  it('crossed every crash point of src/crash-points.ts', () => {
    expect([...exercised].sort()).toEqual(Object.values(EdgeCrashPoint).sort());
  });
});
