/**
 * `--calling-ae`: only the named devices may send DICOM, with DCMTK's storescu and echoscu as the X-ray unit and as a
 * stranger on the station's network. Without it, any device may (the warning at start is checked in lan-access).
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dicomDir, removeDir, sharedDir, startAgent, waitFor, type AgentProcess } from './harness/agent-process.js';
import { lanAddress, runEdge, squeezenet } from './support/lan.js';

const lan = lanAddress();
const chest = path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm');
const hip = path.join(dicomDir, 'cr_hip_RG2_JLSL.dcm');

interface Study {
  instances: { sopInstanceUid: string }[];
}

/** storescu from this machine to `address`, calling itself `aet`. */
async function send(port: number, aet: string, file: string, address = '127.0.0.1'): Promise<{ code: number; stderr: string }> {
  const args = ['-xf', path.join(sharedDir, 'dcmtk', 'storescu-all-ts.cfg'), 'AllTS', '-aet', aet, '-aec', 'CXR_EDGE', address, String(port), file];
  try {
    await promisify(execFile)('storescu', args);
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

describe('--calling-ae', () => {
  let agent: AgentProcess;
  beforeAll(async () => {
    // XRAY from anywhere; PORTABLE only from the network address (a request to it comes from it).
    agent = await startAgent({ args: ['--model', squeezenet, '--calling-ae', 'XRAY', '--calling-ae', `PORTABLE@${lan ?? '192.0.2.250'}`] });
  });
  afterAll(async () => {
    await agent?.stop();
    if (agent) removeDir(agent.dataDir);
  });

  it('takes studies from an allowed AE title, and rejects an association from any other (Calling AE Title Not Recognized)', async () => {
    expect((await send(agent.dicomPort, 'XRAY', chest)).code).toBe(0);
    const stranger = await send(agent.dicomPort, 'OTHER', hip);
    expect(stranger.code).not.toBe(0);
    expect(stranger.stderr).toMatch(/Calling AE Title Not Recognized/iu);
    // C-ECHO too: a stranger learns nothing of the station.
    const echo = await promisify(execFile)('echoscu', ['-aet', 'OTHER', '-aec', 'CXR_EDGE', '127.0.0.1', String(agent.dicomPort)]).then(
      () => 0,
      (err: { code: number }) => err.code,
    );
    expect(echo).not.toBe(0);
    await promisify(execFile)('echoscu', ['-aet', 'XRAY', '-aec', 'CXR_EDGE', '127.0.0.1', String(agent.dicomPort)]);
    const studies = await agent.api<Study[]>('/api/studies');
    expect(studies.flatMap((s) => s.instances).map((i) => i.sopInstanceUid)).toEqual(['1.2.392.200036.9125.0.19950720112207']);
    await waitFor('the log line', async () => (agent.output().includes('calling AE title not allowed') ? true : undefined), 5_000);
    expect(agent.output()).toMatch(/"callingAe":"OTHER","address":"127\.0\.0\.1","msg":"association rejected: calling AE title not allowed \(--calling-ae\)"/u);
  });

  it('holds an AE title to its address when one is given', async (ctx) => {
    // From 127.0.0.1: the right title from the wrong machine.
    const elsewhere = await send(agent.dicomPort, 'PORTABLE', hip);
    expect(elsewhere.stderr).toMatch(/Calling AE Title Not Recognized/iu);
    if (!lan) return ctx.skip();
    expect((await send(agent.dicomPort, 'PORTABLE', hip, lan)).code).toBe(0);
  });

  it('refuses an entry that is neither AETITLE nor AETITLE@IP, with every problem at once', async () => {
    const out = await runEdge(['--data-dir', '/tmp/unused', '--model', squeezenet, '--calling-ae', 'XRAY@not-an-ip-and-way-too-long-for-an-ae', '--calling-ae', 'BACK\\SLASH']);
    expect(out.code).toBe(2);
    expect(out.stderr).toContain('callingAe: "XRAY@not-an-ip-and-way-too-long-for-an-ae" is not AETITLE or AETITLE@IP');
    expect(out.stderr).toContain('callingAe: "BACK\\SLASH" is not AETITLE or AETITLE@IP');
  });
});
