import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';

interface Instance {
  id: number;
  sopInstanceUid: string;
  status: 'received' | 'inferred' | 'failed';
  result: { applicable: boolean; reason?: string; priority: string; model: { name: string }; findings: unknown[] } | null;
  error: { code: string; message: string } | null;
  version: number;
  conflict: boolean;
  source: string;
  previewUrl: string | null;
  heatmapUrl: string | null;
}
interface Study {
  studyInstanceUid: string;
  priority: string | null;
  instances: Instance[];
}

const allFiles = [
  ...readdirSync(dicomDir).filter((f) => f.endsWith('.dcm')).map((f) => path.join(dicomDir, f)),
  ...readdirSync(path.join(dicomDir, 'derived')).map((f) => path.join(dicomDir, 'derived', f)),
];

const instances = (studies: Study[]): Instance[] => studies.flatMap((s) => s.instances);
/** Every instance processed, and its preview drawn (the result is shown a moment before the images). */
const settled = (studies: Study[]): boolean => instances(studies).every((i) => i.status === 'failed' || (i.status === 'inferred' && i.previewUrl !== null));

describe('edge agent with DCMTK as the X-ray unit', () => {
  let agent: AgentProcess;
  beforeAll(async () => {
    agent = await startAgent();
  });
  afterAll(async () => {
    expect(await agent.stop()).toBe(0);
    removeDir(agent.dataDir);
  });

  it('answers C-ECHO and reports itself ready with the model it runs', async () => {
    await promisify(execFile)('echoscu', ['-aec', 'CXR_EDGE', '127.0.0.1', String(agent.dicomPort)]);
    const health = await agent.api<{ ready: boolean; model: { name: string; version: string; sha256: string } }>('/api/health');
    expect(health).toMatchObject({ ready: true, model: { name: 'densenet121-cxr18-random', version: '0.1.0' } });
  });

  it('refuses an association to another called AE title', async () => {
    const { code, stderr } = await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')], ['-aec', 'NOT_US']);
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/Called AE Title Not Recognized|Association Rejected/iu);
  });

  it('receives every shared file in its own transfer syntax and shows a result for each', async () => {
    const { code, stderr } = await storescu(agent.dicomPort, allFiles);
    expect(stderr).not.toMatch(/Store Failed|Status: [^0]/u);
    expect(code).toBe(0);
    const studies = await waitFor('all results', async () => {
      const s = await agent.api<Study[]>('/api/studies');
      return instances(s).length >= 17 && settled(s) ? s : undefined;
    });
    const all = instances(studies);
    expect(all.every((i) => i.status === 'inferred')).toBe(true);
    // The headerless chest and its Part 10 twin carry the same dataset: stored once.
    const mono1 = all.filter((i) => i.sopInstanceUid === '1.2.392.200036.9125.0.19950720112207');
    expect(mono1).toHaveLength(1);
    expect(all).toHaveLength(17);
    // The RG1 chest JLSN and its 5 lossless re-encodings share one SOP Instance UID, and their decoded pixels are
    // bit-identical. The re-encodings are one instance (equal attributes, equal samples): stored once. The transcoder
    // added Lossy Image Compression Method (0028,2114), which the JLSN original lacks: an attribute differs, so the
    // original and the re-encodings are two versions, flagged.
    const rg1 = all.filter((i) => i.sopInstanceUid === '1.3.6.1.4.1.5962.1.1.9.1.7.20040826185059.5457');
    expect(rg1.map((i) => i.version).sort()).toEqual([1, 2]);
    expect(rg1.every((i) => i.conflict)).toBe(true);
    // Not-chest images are shown, with the reason, never with a score.
    const hips = all.filter((i) => i.result?.reason?.includes('HIP'));
    expect(hips.length).toBe(5);
    for (const hip of hips) expect(hip).toMatchObject({ result: { applicable: false, findings: [] }, previewUrl: expect.stringMatching(/preview\.png$/u) });
    // Every applicable result has a preview and a heatmap the page can load.
    const chest = all.find((i) => i.result?.applicable);
    expect(chest?.heatmapUrl).toBeTruthy();
    const png = await fetch(`http://127.0.0.1:${agent.httpPort}${chest?.previewUrl ?? ''}`);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect((await png.arrayBuffer()).byteLength).toBeGreaterThan(1000);
    const study = studies.find((s) => s.instances.some((i) => i.result?.applicable));
    expect(study?.priority).toMatch(/^(stat|urgent|routine)$/u);
  });

  it('acknowledges an identical re-send and keeps one copy', async () => {
    const file = path.join(dicomDir, 'cr_hip_RG2_JPLY.dcm');
    const before = instances(await agent.api<Study[]>('/api/studies')).length;
    expect((await storescu(agent.dicomPort, [file])).code).toBe(0);
    expect((await storescu(agent.dicomPort, [file])).code).toBe(0);
    expect(instances(await agent.api<Study[]>('/api/studies')).length).toBe(before);
  });

  it('keeps the same SOP Instance UID with other content as a flagged new version, and reports a broken codestream in words', async () => {
    const dir = tempDir('cxr-corrupt-');
    const source = readFileSync(path.join(dicomDir, 'cr_extremity_RG3_JLSL.dcm'));
    const corrupt = Buffer.from(source);
    // Damage the middle of the JPEG-LS codestream: the header stays readable, the pixels do not decode.
    corrupt.fill(0xff, Math.floor(corrupt.length / 2), Math.floor(corrupt.length / 2) + 4000);
    const file = path.join(dir, 'corrupt.dcm');
    writeFileSync(file, corrupt);
    expect((await storescu(agent.dicomPort, [file])).code).toBe(0);
    const broken = await waitFor('the corrupt instance', async () => {
      const all = instances(await agent.api<Study[]>('/api/studies'));
      const mine = all.filter((i) => i.conflict && i.status !== 'received' && i.source === 'dicom' && i.version > 1 && i.error);
      return mine[0];
    });
    expect(broken.status).toBe('failed');
    expect(broken.error?.code).toBe('CXR_DECODE_FAILED');
    removeDir(dir);
  });
});

describe('watched folder', () => {
  let agent: AgentProcess;
  let watchDir: string;
  beforeAll(async () => {
    watchDir = tempDir('cxr-watch-');
    agent = await startAgent({ args: ['--watch-dir', watchDir] });
  });
  afterAll(async () => {
    await agent.stop();
    removeDir(agent.dataDir);
    removeDir(watchDir);
  });

  it('takes a finished file, moves it out of the way and shows its result', async () => {
    copyFileSync(path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm'), path.join(watchDir, 'nih.dcm'));
    const found = await waitFor('the folder instance', async () => instances(await agent.api<Study[]>('/api/studies')).find((i) => i.source === 'folder' && i.status === 'inferred'));
    expect(found.result?.applicable).toBe(true);
    await waitFor('the file to leave the folder', async () => (existsSync(path.join(watchDir, 'nih.dcm')) ? undefined : true));
  });

  it('waits for the rest of a file whose copy paused for longer than the stable time, then takes it whole', async () => {
    const bytes = readFileSync(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm'));
    const target = path.join(watchDir, 'slow.dcm');
    writeFileSync(target, bytes.subarray(0, 10_000));
    // A pause of ten stable periods (300 ms each here): the agent has looked at the file and found it ends early.
    await new Promise((r) => setTimeout(r, 3000));
    expect(existsSync(target)).toBe(true);
    writeFileSync(target, bytes);
    const found = await waitFor('the slowly written instance', async () =>
      instances(await agent.api<Study[]>('/api/studies')).find((i) => i.sopInstanceUid === '1.2.392.200036.9125.0.19950720112207' && i.status !== 'received'),
    );
    expect(found.status).toBe('inferred');
    expect(readdirSync(path.join(agent.dataDir, 'quarantine')).filter((f) => f.includes('slow'))).toEqual([]);
  });

  it('takes a file that stays cut short once no one has written to it for 20 stable periods, and says what is wrong', async () => {
    const bytes = readFileSync(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm'));
    const cut = Buffer.from(bytes.subarray(0, 20_000));
    // Its own SOP Instance UID (same length), so that it is not the whole film of the test above.
    const uid = Buffer.from('1.2.392.200036.9125.0.19950720112207');
    for (let at = cut.indexOf(uid); at >= 0; at = cut.indexOf(uid, at + 1)) cut.set(Buffer.from('1.2.392.200036.9125.0.19950720112299'), at);
    writeFileSync(path.join(watchDir, 'cut.dcm'), cut);
    await waitFor('the file to leave the folder', async () => (existsSync(path.join(watchDir, 'cut.dcm')) ? undefined : true));
    const failed = await waitFor('the cut film', async () =>
      instances(await agent.api<Study[]>('/api/studies')).find((i) => i.sopInstanceUid === '1.2.392.200036.9125.0.19950720112299' && i.status !== 'received'),
    );
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'CXR_PIXEL_DATA_SHORT' } });
  });

  it('puts a file that is not DICOM in quarantine with the reason', async () => {
    writeFileSync(path.join(watchDir, 'notes.txt'), 'this is not an image');
    const reason = await waitFor('the quarantined file', async () => {
      const files = readdirSync(path.join(agent.dataDir, 'quarantine')).filter((f) => f.endsWith('notes.txt.reason.txt'));
      return files[0] ? readFileSync(path.join(agent.dataDir, 'quarantine', files[0]), 'utf8') : undefined;
    });
    expect(reason).toMatch(/^CXR_NOT_DICOM/u);
    expect(existsSync(path.join(watchDir, 'notes.txt'))).toBe(false);
  });
});

describe('durability', () => {
  it('after kill -9 right after storescu returns, every acknowledged instance is there and gets its result', async () => {
    const dataDir = tempDir('cxr-crash-');
    const first = await startAgent({ dataDir });
    const files = ['cr_chest_pa_RG1_JLSN.dcm', 'cr_extremity_RG3_RLE.dcm', 'cr_hip_RG2_JLSL.dcm', 'dx_chest_nih_secondary_capture.dcm'].map((f) => path.join(dicomDir, f));
    const sent = await storescu(first.dicomPort, files);
    expect(sent.code).toBe(0);
    await first.stop('SIGKILL');
    const second = await startAgent({ dataDir });
    try {
      const studies = await waitFor('recovered results', async () => {
        const s = await second.api<Study[]>('/api/studies');
        return instances(s).length === 4 && settled(s) ? s : undefined;
      });
      expect(instances(studies).map((i) => i.status)).toEqual(['inferred', 'inferred', 'inferred', 'inferred']);
    } finally {
      await second.stop();
      removeDir(dataDir);
    }
  });

  it('refuses with "out of resources" when the disk is nearly full, never a false success', async () => {
    const agent = await startAgent({ args: ['--min-free-bytes', String(Number.MAX_SAFE_INTEGER)] });
    try {
      const { code, stderr } = await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')], ['-v']);
      expect(stderr).toContain('Received Store Response (Refused: OutOfResources)');
      expect(code).not.toBe(0);
      expect(instances(await agent.api<Study[]>('/api/studies'))).toHaveLength(0);
    } finally {
      await agent.stop();
      removeDir(agent.dataDir);
    }
  });

  it('refuses when the disk fills up during the transfer (a 1 MiB filesystem)', async (ctx) => {
    const mountPoint = tempDir('cxr-tiny-');
    try {
      await promisify(execFile)('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', mountPoint]);
    } catch {
      removeDir(mountPoint);
      ctx.skip();
      return;
    }
    const dataDir = path.join(mountPoint, 'data');
    mkdirSync(dataDir);
    const agent = await startAgent({ dataDir, args: ['--min-free-bytes', '0'], env: { TMPDIR: mountPoint } });
    try {
      const { stderr } = await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_extremity_RG3_UNC.dcm')], ['-v']);
      expect(stderr).toContain('Received Store Response (Refused: OutOfResources)');
      expect(instances(await agent.api<Study[]>('/api/studies'))).toHaveLength(0);
      // What fits still goes in: the disk error lost nothing else.
      expect((await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')])).code).toBe(0);
    } finally {
      await agent.stop();
      await promisify(execFile)('umount', [mountPoint]).catch(() => undefined);
      removeDir(mountPoint);
    }
  });
});

describe('operation', () => {
  it('lists every configuration problem at once and exits 2', async () => {
    const run = promisify(execFile);
    const bin = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'cxr-edge.js');
    const err = await run(process.execPath, [bin, '--dicom-port', '99999', '--ae-title', 'WAY_TOO_LONG_AE_TITLE_X']).catch((e: { code: number; stderr: string }) => e);
    expect(err).toMatchObject({ code: 2 });
    const stderr = (err as { stderr: string }).stderr;
    expect(stderr).toContain('dataDir');
    expect(stderr).toContain('modelDir');
    expect(stderr).toContain('aeTitle');
  });

  it('stops cleanly on SIGTERM while a page holds its event stream open', async () => {
    const agent = await startAgent();
    const events = await fetch(`http://127.0.0.1:${agent.httpPort}/api/events`);
    expect(events.headers.get('content-type')).toBe('text/event-stream');
    expect(await agent.stop('SIGTERM')).toBe(0);
    removeDir(agent.dataDir);
  });

  it("prints the edge-agent package's version", async () => {
    const bin = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'cxr-edge.js');
    const { version } = JSON.parse(readFileSync(path.join(path.dirname(bin), '..', 'package.json'), 'utf8')) as { version: string };
    const { stdout } = await promisify(execFile)(bin, ['--version']);
    expect(stdout).toBe(`${version}\n`);
  });

  it('says in its log when node was started without the flags inference needs, and not when started as npx or start.sh start it', async () => {
    const plain = await startAgent({ launch: 'plain-node' });
    expect(await plain.stop()).toBe(0);
    expect(plain.output()).toContain('node was started without these flags');
    expect(plain.output()).toContain('--single-threaded-gc');
    removeDir(plain.dataDir);
    for (const launch of ['shebang', 'node-with-flags'] as const) {
      const agent = await startAgent({ launch });
      expect(await agent.stop()).toBe(0);
      expect(agent.output()).toContain('edge agent ready');
      expect(agent.output()).not.toContain('node was started without these flags');
      removeDir(agent.dataDir);
    }
  });

  it('`cxr-edge check` finds every promise kept after a run, and says which one a lost file breaks', async () => {
    const agent = await startAgent();
    const bin = path.join(path.dirname(new URL(import.meta.url).pathname), '..', 'bin', 'cxr-edge.js');
    const check = async (): Promise<{ code: number; stdout: string; stderr: string }> => {
      try {
        const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, 'check', '--data-dir', agent.dataDir]);
        return { code: 0, stdout, stderr };
      } catch (err) {
        return err as { code: number; stdout: string; stderr: string };
      }
    };
    try {
      expect((await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')])).code).toBe(0);
      await waitFor('the result and its images', async () => {
        const s = await agent.api<Study[]>('/api/studies');
        return instances(s).length === 1 && settled(s) ? true : undefined;
      });
      // While it runs: a read beside the agent, as a technician would.
      expect(await check()).toMatchObject({ code: 0, stdout: '', stderr: '1 instances, 0 broken promises\n' });
      const [instance] = instances(await agent.api<Study[]>('/api/studies'));
      expect(await agent.stop()).toBe(0);
      rmSync(path.join(agent.dataDir, 'derived', String(instance?.id), 'preview.png'));
      const broken = await check();
      expect(broken.code).toBe(1);
      expect(broken.stdout).toMatch(new RegExp(`^file-missing: instance ${instance?.id} study [0-9.]+: derived/${instance?.id}/preview.png\n$`, 'u'));
    } finally {
      await agent.stop();
      removeDir(agent.dataDir);
    }
  });

  it('never writes patient identifiers to its log', async () => {
    const agent = await startAgent({ args: ['--log-level', 'debug'] });
    // The NIH file's patient name and ID are "Covid0000".
    await storescu(agent.dicomPort, [path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm')]);
    await waitFor('the result', async () => (settled(await agent.api<Study[]>('/api/studies')) && instances(await agent.api<Study[]>('/api/studies')).length === 1 ? true : undefined));
    expect(await agent.stop()).toBe(0);
    expect(agent.output()).toContain('inferred');
    expect(agent.output()).not.toContain('Covid0000');
    removeDir(agent.dataDir);
  });
});
