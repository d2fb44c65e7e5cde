import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Tag, TransferSyntax, parseDicom } from '@cxr/inference';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';

interface Instance {
  sopInstanceUid: string;
  status: string;
  version: number;
  conflict: boolean;
  previewUrl: string | null;
}
interface Study {
  instances: Instance[];
}

const run = promisify(execFile);

/** storescu offering only the one uncompressed syntax asked for, so the dataset goes on the wire in that encoding. */
async function storescuAs(port: number, file: string, syntax: '-xe' | '-xi'): Promise<string> {
  const { stderr } = await run('storescu', [syntax, '-aec', 'CXR_EDGE', '127.0.0.1', String(port), file]);
  return stderr;
}

describe('a re-send of the same image in another transfer syntax', () => {
  let agent: AgentProcess;
  let work: string;
  beforeAll(async () => {
    agent = await startAgent();
    work = tempDir('cxr-same-instance-');
  });
  afterAll(async () => {
    expect(await agent.stop()).toBe(0);
    removeDir(agent.dataDir);
    removeDir(work);
  });

  const mine = async (uid: string): Promise<Instance[]> =>
    (await agent.api<Study[]>('/api/studies')).flatMap((s) => s.instances).filter((i) => i.sopInstanceUid === uid);

  it('is acknowledged as a duplicate: one instance, version 1, no conflict', async () => {
    // The NIH chest as Explicit VR Little Endian, then the same file converted to Implicit VR by DCMTK.
    const explicit = path.join(work, 'explicit.dcm');
    const implicit = path.join(work, 'implicit.dcm');
    const rle = path.join(work, 'rle.dcm');
    await run('dcmconv', ['+te', path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm'), explicit]);
    await run('dcmconv', ['+ti', explicit, implicit]);
    await run('dcmcrle', [explicit, rle]);
    const uid = parseDicom(readFileSync(explicit)).dataset.string(Tag.SopInstanceUid) ?? '';

    expect(await storescuAs(agent.dicomPort, explicit, '-xe')).not.toMatch(/Store Failed|Status: [^0]/u);
    await waitFor('the first instance processed', async () => ((await mine(uid))[0]?.previewUrl ? true : undefined));

    expect(await storescuAs(agent.dicomPort, implicit, '-xi')).not.toMatch(/Store Failed|Status: [^0]/u);
    // A lossless RLE encoding of the same pixels is the same instance as well.
    const rleSend = await storescu(agent.dicomPort, [rle]);
    expect(rleSend.code).toBe(0);
    expect(rleSend.stderr).not.toMatch(/Store Failed|Status: [^0]/u);

    const instances = await mine(uid);
    expect(instances).toHaveLength(1);
    expect(instances[0]).toMatchObject({ version: 1, conflict: false, status: 'inferred' });
    // It really went on the wire in the other syntaxes, and was told apart from the stored file by its content.
    const duplicates = agent
      .output()
      .split('\n')
      .filter((line) => line.includes('"outcome":"duplicate"'))
      .map((line) => JSON.parse(line) as { transferSyntax: string; storedTransferSyntax: string });
    expect(duplicates.map((d) => [d.transferSyntax, d.storedTransferSyntax])).toEqual([
      [TransferSyntax.ImplicitVRLittleEndian, TransferSyntax.ExplicitVRLittleEndian],
      [TransferSyntax.RLELossless, TransferSyntax.ExplicitVRLittleEndian],
    ]);
    // Stored once: the first file kept, the re-sends' temporary files gone.
    const objects = readdirSync(path.join(agent.dataDir, 'objects'), { recursive: true }).filter((f) => String(f).endsWith('.dcm'));
    expect(objects).toHaveLength(1);
    expect(readdirSync(path.join(agent.dataDir, 'tmp'))).toEqual([]);
  });
});
