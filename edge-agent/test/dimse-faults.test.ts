import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { SopClass, Tag, TransferSyntax, parseDicom } from '@cxr/inference';
import { datasetOffset } from '../src/spool/part10.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { RawStoreScu } from './support/raw-store-scu.js';

interface Instance {
  sopInstanceUid: string;
  status: string;
}
interface Study {
  instances: Instance[];
}

/** The sender goes silent for longer than this: the agent must give up on the transfer. */
const idleLimitMs = 1500;

/** A 6 MB Explicit VR Little Endian CR: large enough that a cut at 1 MB is mid-dataset. */
const unc = readFileSync(path.join(dicomDir, 'cr_extremity_RG3_UNC.dcm'));
const uncDataset = unc.subarray(datasetOffset(unc));
const uncUid = parseDicom(unc).dataset.string(Tag.SopInstanceUid) ?? '';
const partialBytes = 1_000_000;

describe('transfers that end before their last byte leave nothing behind', () => {
  let agent: AgentProcess;
  let tmpDir: string;
  beforeAll(async () => {
    agent = await startAgent({ env: { CXR_EDGE_DIMSE_TIMEOUT_MS: String(idleLimitMs) } });
    tmpDir = path.join(agent.dataDir, 'tmp');
  });
  afterAll(async () => {
    expect(await agent.stop()).toBe(0);
    removeDir(agent.dataDir);
  });

  const instances = async (): Promise<Instance[]> => (await agent.api<Study[]>('/api/studies')).flatMap((s) => s.instances);
  /** Files the agent process holds open under DATA_DIR/tmp (a deleted one reads "... (deleted)"). */
  const openTmpFiles = (): string[] => {
    const fdDir = `/proc/${agent.child.pid}/fd`;
    const open: string[] = [];
    for (const fd of readdirSync(fdDir)) {
      try {
        const target = readlinkSync(path.join(fdDir, fd));
        if (target.startsWith(`${tmpDir}${path.sep}`)) open.push(target);
      } catch {
        // closed between the listing and the read
      }
    }
    return open;
  };
  const partFiles = (): string[] => readdirSync(tmpDir);
  /** The transfer is real: one partial file in tmp/, held open by the agent, with the bytes sent so far. */
  const partialFileOpen = async (): Promise<void> => {
    await waitFor('the partial file', async () => (partFiles().length === 1 && openTmpFiles().length === 1 && partSize() >= partialBytes ? true : undefined), 5000, 20);
  };
  const partSize = (): number => {
    const [name] = partFiles();
    return name ? statSync(path.join(tmpDir, name)).size : 0;
  };

  /** Within two seconds: no file in tmp/, no descriptor on one; nothing recorded, nothing quarantined. */
  async function expectNothingLeft(): Promise<void> {
    await waitFor('tmp/ empty and no descriptor open on it', async () => (partFiles().length === 0 && openTmpFiles().length === 0 ? true : undefined), 2000, 50).catch(
      (err: unknown) => {
        throw new Error(`${(err as Error).message}: tmp/ holds ${JSON.stringify(partFiles())}, open: ${JSON.stringify(openTmpFiles())}`);
      },
    );
    expect((await instances()).filter((i) => i.sopInstanceUid === uncUid)).toEqual([]);
    expect(readdirSync(path.join(agent.dataDir, 'quarantine'))).toEqual([]);
  }

  /** The unit's next file goes through as usual. */
  async function expectNextFileReceived(file: string): Promise<void> {
    const outcome = await storescu(agent.dicomPort, [path.join(dicomDir, file)]);
    expect(outcome.stderr).not.toMatch(/Store Failed|Status: [^0]/u);
    expect(outcome.code).toBe(0);
    const uid = parseDicom(readFileSync(path.join(dicomDir, file))).dataset.string(Tag.SopInstanceUid);
    expect((await instances()).some((i) => i.sopInstanceUid === uid)).toBe(true);
  }

  const associate = (): Promise<RawStoreScu> =>
    RawStoreScu.associate({ port: agent.dicomPort, sopClassUid: SopClass.ComputedRadiographyImageStorage, transferSyntaxUid: TransferSyntax.ExplicitVRLittleEndian, timeoutMs: 10_000 });

  it('takes the idle limit from --dimse-timeout-ms too, and refuses one below 100 ms', async () => {
    const dataDir = tempDir('cxr-edge-');
    onTestFinished(() => removeDir(dataDir));
    await expect(startAgent({ dataDir, args: ['--dimse-timeout-ms', '50'] })).rejects.toThrow(/exited with 2[\s\S]*dimseTimeoutMs: Expected integer to be greater or equal to 100 \(flag --dimse-timeout-ms or CXR_EDGE_DIMSE_TIMEOUT_MS\)/u);
  });

  it('takes a whole dataset from the raw sender (the sender itself works)', async () => {
    const barre = readFileSync(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm'));
    const scu = await RawStoreScu.associate({ port: agent.dicomPort, sopClassUid: SopClass.ComputedRadiographyImageStorage, transferSyntaxUid: TransferSyntax.ImplicitVRLittleEndian });
    const result = await scu.storeRaw({ sopInstanceUid: '1.2.392.200036.9125.0.19950720112207', dataset: barre });
    expect(result).toMatchObject({ end: 'response', status: 0, datasetBytesSent: barre.length });
    await scu.release();
    expect(partFiles()).toEqual([]);
  });

  it('a connection cut mid-dataset: the partial file is closed and deleted at once', async () => {
    const scu = await associate();
    const result = await scu.storeRaw({ sopInstanceUid: uncUid, dataset: uncDataset, cutAfterBytes: partialBytes, beforeFault: partialFileOpen });
    expect(result.datasetBytesSent).toBe(partialBytes);
    expect(result.end).toBe('cut');
    expect(result.status).toBeUndefined();
    await expectNothingLeft();
    await expectNextFileReceived('cr_hip_RG2_JPLY.dcm');
  });

  it('a connection reset mid-dataset (the socket errors): the partial file is closed and deleted at once', async () => {
    const scu = await associate();
    const result = await scu.storeRaw({ sopInstanceUid: uncUid, dataset: uncDataset, resetAfterBytes: partialBytes, beforeFault: partialFileOpen });
    expect(result.end).toBe('reset');
    await expectNothingLeft();
    expect(agent.output()).toMatch(/"reason":"network error".*partial file removed/u);
    await expectNextFileReceived('cr_hip_RG2_JLSL.dcm');
  });

  it('an A-ABORT mid-dataset: the partial file is closed and deleted at once', async () => {
    const scu = await associate();
    const result = await scu.storeRaw({ sopInstanceUid: uncUid, dataset: uncDataset, abortAfterBytes: partialBytes, beforeFault: partialFileOpen });
    expect(result.end).toBe('aborted');
    expect(result.status).toBeUndefined();
    await expectNothingLeft();
    await expectNextFileReceived('cr_extremity_RG3_JPLY.dcm');
  });

  it('a sender silent past the idle limit: aborted, the partial file closed and deleted', async () => {
    const scu = await associate();
    const result = await scu.storeRaw({ sopInstanceUid: uncUid, dataset: uncDataset, stallAfterBytes: partialBytes, beforeFault: partialFileOpen });
    expect(result.status).toBeUndefined();
    expect(['peer-aborted', 'peer-closed']).toContain(result.end);
    expect(result.waitedMs).toBeGreaterThanOrEqual(idleLimitMs - 200);
    expect(result.waitedMs).toBeLessThan(idleLimitMs + 3000);
    await expectNothingLeft();
    expect(agent.output()).toMatch(/"reason":"stalled".*partial file removed/u);
    await expectNextFileReceived('dx_chest_nih_secondary_capture.dcm');
  });

  it('bytes that are not a dataset, sent whole: Cannot Understand, kept in quarantine, nothing left in tmp/', async () => {
    const scu = await associate();
    const result = await scu.storeRaw({ sopInstanceUid: '1.2.826.0.1.3680043.10.1417.99.1', dataset: Buffer.alloc(64 * 1024, 0x41) });
    expect(result).toMatchObject({ end: 'response', status: 0xc000 });
    await scu.release();
    expect(partFiles()).toEqual([]);
    expect(openTmpFiles()).toEqual([]);
    expect(readdirSync(path.join(agent.dataDir, 'quarantine')).filter((f) => f.endsWith('.reason.txt'))).toHaveLength(1);
  });
});
