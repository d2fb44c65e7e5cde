/**
 * The two limits that keep one bad image from holding the others back: an analysis stopped after its time counts
 * from its own start (not from the queue), and an image during whose analysis the agent died three times is given
 * up instead of crashing it at every restart.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { crashPointLine, stallPointLine } from '@cxr/inference';
import { EdgeCrashPoint, EdgeStallPoint } from '../src/crash-points.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor } from './harness/agent-process.js';

interface Study {
  instances: { sopInstanceUid: string; status: string; error: { code: string } | null; previewPending: boolean }[];
}
const all = async (agent: { api<T>(r: string): Promise<T> }): Promise<Study['instances']> => (await agent.api<Study[]>('/api/studies')).flatMap((s) => s.instances);

const chests = ['cr_chest_pa_RG1_J2KI.dcm', 'cr_chest_CR-MONO1-10-chest.dcm', 'dx_chest_nih_secondary_capture.dcm'].map((f) => path.join(dicomDir, f));

describe('limits on one analysis', () => {
  it('stops an analysis that hangs at its limit, counted from its start: the images queued behind it are analysed', async () => {
    // The first film's decode never returns (a stall point, as a codec caught in a loop); one worker, so the other
    // two wait behind it for the whole limit, longer than the limit itself.
    const agent = await startAgent({ args: ['--inference-timeout-ms', '1500', '--workers', '1'], env: { CXR_STALL_POINT: `${EdgeStallPoint.Decoding}@1` } });
    try {
      expect((await storescu(agent.dicomPort, chests)).code).toBe(0);
      const instances = await waitFor('every analysis to end', async () => {
        const list = await all(agent);
        return list.length === 3 && list.every((i) => i.status !== 'received' && !i.previewPending) ? list : undefined;
      });
      expect(instances.find((i) => i.sopInstanceUid === '1.3.6.1.4.1.5962.1.1.9.1.3.20040826185059.5457')).toMatchObject({ status: 'failed', error: { code: 'CXR_INFERENCE_TIMEOUT' } });
      expect(instances.filter((i) => i.status === 'inferred')).toHaveLength(2);
      expect(agent.output()).toContain(stallPointLine(EdgeStallPoint.Decoding));
      expect((await agent.api<{ status: string }>('/api/health')).status).toBe('ok');
    } finally {
      await agent.stop();
      removeDir(agent.dataDir);
    }
  });

  it('gives up an image the agent died analysing three times, and carries on with the others', async () => {
    const dataDir = tempDir('cxr-edge-crash-loop-');
    try {
      // The first start takes the film, then dies analysing it; so do the next two, as a service manager restarts it.
      for (let life = 1; life <= 3; life++) {
        let output: string;
        try {
          const doomed = await startAgent({ dataDir, env: { CXR_CRASH_POINT: EdgeCrashPoint.PreviewWritten } });
          if (life === 1) await storescu(doomed.dicomPort, [chests[1] ?? '']);
          await waitFor('the crash', async () => doomed.child.signalCode ?? undefined);
          output = doomed.output();
        } catch (err) {
          // After a restart the unfinished film is analysed at once: the agent may die before it says it is ready.
          output = (err as Error).message;
        }
        expect(output).toContain(crashPointLine(EdgeCrashPoint.PreviewWritten));
      }
      const agent = await startAgent({ dataDir });
      try {
        const [given] = await all(agent);
        expect(given).toMatchObject({ status: 'failed', error: { code: 'CXR_INFERENCE_ABANDONED' } });
        expect(agent.output()).toContain('analysis abandoned');
        // The agent carries on with new films.
        expect((await storescu(agent.dicomPort, [chests[0] ?? ''])).code).toBe(0);
        await waitFor('the new film analysed', async () => ((await all(agent)).some((i) => i.status === 'inferred' && !i.previewPending) ? true : undefined));
      } finally {
        expect(await agent.stop()).toBe(0);
      }
    } finally {
      removeDir(dataDir);
    }
  });
});
