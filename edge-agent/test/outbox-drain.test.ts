/**
 * A long outage of the hospital link and what follows it: while the gateway is down the link is retried as a
 * whole, one log line a round, never item by item; once it answers, everything waiting goes at once, the urgent study
 * first though it came last.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolDb } from '../src/spool/db.js';
import { dicomDir, removeDir, startAgent, storescu, waitFor, type AgentProcess } from './harness/agent-process.js';
import { startHospital, type Hospital } from './support/hospital.js';

/** Not chest: analysed as "not applicable", sent as routine. */
const routineFilms = ['cr_hip_RG2_JLSL.dcm', 'cr_extremity_RG3_JLSL.dcm', 'cr_hip_RG2_RLE.dcm'].map((f) => path.join(dicomDir, f));
/** The DenseNet test model calls this chest urgent. */
const urgentChest = path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm');
const outageMs = 40_000;

interface LogLine {
  msg: string;
  round?: number;
}

let hospital: Hospital;
let agent: AgentProcess;

beforeAll(async () => {
  hospital = await startHospital();
  const station = await hospital.addStation('tram-outage');
  agent = await startAgent({
    args: ['--gateway', hospital.url, '--station-id', station.stationId, '--station-token', station.token, '--no-model-sync', '--link-retry-max-ms', '2000'],
    env: { CXR_EDGE_GATEWAY_POLL_MS: '1000' },
  });
});
afterAll(async () => {
  await agent?.stop();
  removeDir(agent.dataDir);
  await hospital?.close();
});

const logLines = (): LogLine[] =>
  agent
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as LogLine);

describe('after a long outage of the hospital link', () => {
  it('retries the link, not each item, then sends everything at once, most urgent first', async () => {
    await waitFor('the link to be online', async () => ((await agent.api<{ state: string }>('/api/link')).state === 'online' ? true : undefined), 20_000);
    await hospital.stopGateway();
    const outageStart = Date.now();
    // The routine films first, the urgent chest last.
    for (const film of [...routineFilms, urgentChest]) expect((await storescu(agent.dicomPort, [film])).code).toBe(0);
    const waiting = await waitFor('every film analysed and waiting for the link', async () => {
      const link = await agent.api<{ state: string; pending: number; pendingStudies: number; offlineSince: string | null }>('/api/link');
      return link.state === 'offline' && link.pendingStudies === 4 ? link : undefined;
    });
    expect(waiting.offlineSince).not.toBeNull();
    const logStart = logLines().length;
    await new Promise((r) => setTimeout(r, Math.max(0, outageMs - (Date.now() - outageStart))));

    await hospital.startGateway();
    const back = Date.now();
    await waitFor('the outbox to empty', async () => ((await agent.api<{ pending: number }>('/api/link')).pending === 0 ? true : undefined), 60_000);
    const drainMs = Date.now() - back;

    const outageLines = logLines().slice(logStart);
    const unreachable = outageLines.filter((l) => /unreachable/u.test(l.msg));
    // One line a round of checks (a round at most every 2 s here), whatever the number of items waiting.
    expect(unreachable.length).toBeGreaterThan(3);
    expect(unreachable.length).toBeLessThanOrEqual(Math.ceil(outageMs / 1000));
    expect(unreachable.every((l) => typeof l.round === 'number')).toBe(true);
    expect(outageLines.filter((l) => /will retry it/u.test(l.msg))).toEqual([]);
    // Once the link answers, nothing waits on an item's own backoff (which had grown past 30 s in the outage).
    expect(drainMs).toBeLessThan(15_000);

    expect(await agent.stop()).toBe(0);
    const db = new SpoolDb(path.join(agent.dataDir, 'edge.db'));
    try {
      const sent = db.raw
        .prepare('SELECT o.kind, o.done_at, i.priority, o.study_instance_uid FROM outbox o LEFT JOIN instances i ON i.id = o.instance_id ORDER BY o.done_at, o.id')
        .all() as { kind: string; done_at: string | null; priority: string | null; study_instance_uid: string }[];
      expect(sent.every((s) => s.done_at !== null)).toBe(true);
      const urgentStudy = sent.find((s) => s.priority === 'urgent')?.study_instance_uid;
      const lastUrgent = sent.map((s) => s.study_instance_uid === urgentStudy).lastIndexOf(true);
      const firstRoutine = sent.findIndex((s) => s.study_instance_uid !== urgentStudy);
      // The urgent study (its result, images, consult request and DICOM) before anything of the routine ones.
      expect(lastUrgent).toBeLessThan(firstRoutine);
      expect(sent.filter((s) => s.study_instance_uid === urgentStudy).map((s) => s.kind).sort()).toEqual(['consult', 'dicom', 'heatmap', 'preview', 'result']);
    } finally {
      db.close();
    }
  }, 180_000);
});
