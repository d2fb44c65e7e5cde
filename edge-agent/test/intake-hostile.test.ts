/**
 * Hostile files at the edge's intake, through a real agent (issue 15, defects 6 and 9).
 *
 * - A deflate bomb (522 KB inflating to 512 MiB) dropped in the watched folder is refused at intake with
 *   CXR_LIMIT_EXCEEDED: the agent's peak memory hardly moves. It once took gigabytes and failed late.
 * - Files full of planted identifiers (patient name, ID, birth date, accession number, ...: unique marker strings)
 *   go in through C-STORE and the watched folder, are stored, analysed, failed or quarantined; the markers appear in
 *   no log line and no quarantine reason. Among them is the file that once carried 64 KB of its header (the patient's
 *   name and birth date) into the log and a `.reason.txt`: a Transfer Syntax UID element whose length swallows the
 *   dataset. Then every stored record, patient fields and all, goes through the agent's own logger as a careless log
 *   call would pass it: the redact list must hold it back.
 */
import { existsSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as W from '../../inference/src/test-support/dicom-writer.js';
import { createLogger } from '../src/log.js';
import { SpoolDb } from '../src/spool/db.js';
import { removeDir, startAgent, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { RawStoreScu } from './support/raw-store-scu.js';

const MiB = 1 << 20;
const CR = '1.2.840.10008.5.1.4.1.1.1';
const JPEG_BASELINE = '1.2.840.10008.1.2.4.50';

/** Unique strings planted in the identifying elements; none may reach a log line or a reason file. */
const planted = {
  patientName: 'QXNAME^PLANTED',
  patientId: 'QXPID7731',
  birthDate: '18870123',
  accession: 'QXACC7731',
  otherIds: 'QXOTHER7731',
  institution: 'QXINST7731',
  referring: 'QXREF^DOCTOR',
  address: 'QXADDR7731',
  description: 'QXDESC7731',
  studyUid: '1.2.7731.QXSTUDY7731',
};
const markers = ['QXNAME', 'PLANTED', 'QXPID7731', '18870123', 'QXACC7731', 'QXOTHER7731', 'QXINST7731', 'QXREF', 'QXADDR7731', 'QXDESC7731', 'QXSTUDY7731'];

/** The identifying elements, each with a marker. */
function identity(overrides: { studyUid?: string; patientNameLength?: number } = {}): W.WriterElement[] {
  const name = W.text(0x00100010, 'PN', planted.patientName);
  return [
    W.text(0x00080050, 'SH', planted.accession),
    W.text(0x00080080, 'LO', planted.institution),
    W.text(0x00080090, 'PN', planted.referring),
    W.text(0x00081030, 'LO', planted.description),
    overrides.patientNameLength === undefined ? name : { ...name, lengthOverride: overrides.patientNameLength },
    W.text(0x00100020, 'LO', planted.patientId),
    W.text(0x00100030, 'DA', planted.birthDate),
    W.text(0x00101000, 'LO', planted.otherIds),
    W.text(0x00101040, 'LO', planted.address),
    W.text(0x0020000d, 'UI', overrides.studyUid ?? '1.2.826.0.1.3680043.10.1417.99.77'),
  ];
}

/** A small CR image (Explicit VR Little Endian elements, in tag order) with the planted identifiers. */
function plantedImage(sopUid: string, options: { studyUid?: string; patientNameLength?: number; rows?: number } = {}): W.WriterNode[] {
  const rows = options.rows ?? 64;
  const module = W.imageModule({ rows, columns: rows, bitsAllocated: 16, bitsStored: 12 }).map((e) => (e.tag === 0x00080018 ? W.text(0x00080018, 'UI', sopUid) : e));
  const elements = [...module, ...identity(options)].sort((a, b) => a.tag - b.tag);
  return [...elements, W.pixelWords(Array.from({ length: rows * rows }, (_, i) => (i * 37) % 4096))];
}

async function storeRaw(port: number, transferSyntaxUid: string, sopInstanceUid: string, dataset: Uint8Array): Promise<number | undefined> {
  const scu = await RawStoreScu.associate({ port, sopClassUid: CR, transferSyntaxUid });
  try {
    return (await scu.storeRaw({ sopInstanceUid, dataset })).status;
  } finally {
    await scu.release();
  }
}

/** Peak resident set size of a process so far (VmHWM), bytes. */
function peakRss(pid: number): number {
  const kb = /VmHWM:\s+(\d+) kB/u.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

interface Study {
  instances: { status: string; previewUrl: string | null; error: { code: string } | null }[];
}

describe('hostile files at intake', () => {
  let agent: AgentProcess;
  let work: string;
  let watchDir: string;
  beforeAll(async () => {
    work = tempDir('cxr-edge-hostile-');
    agent = await startAgent({ args: ['--log-level', 'debug'] });
    watchDir = path.join(agent.dataDir, 'incoming');
  });
  afterAll(async () => {
    await agent.stop();
    removeDir(agent.dataDir);
    removeDir(work);
  });

  /** Drops a file in the watched folder whole (written beside it, then renamed in). */
  const drop = (name: string, bytes: Uint8Array): void => {
    writeFileSync(path.join(work, name), bytes);
    renameSync(path.join(work, name), path.join(watchDir, name));
  };
  const reasons = (): Map<string, string> =>
    new Map(
      readdirSync(path.join(agent.dataDir, 'quarantine'))
        .filter((f) => f.endsWith('.reason.txt'))
        .map((f) => [f, readFileSync(path.join(agent.dataDir, 'quarantine', f), 'utf8')]),
    );

  it('refuses a deflate bomb from the watched folder at intake (CXR_LIMIT_EXCEEDED) without inflating it', async () => {
    const pid = agent.child.pid ?? 0;
    const bomb = path.join(work, 'bomb.dcm');
    // 16384 x 16384 x 16 bits of zeros: 512 MiB inflated, about 0.5 MB on disk.
    const header = [...W.imageModule({ rows: 16384, columns: 16384, bitsAllocated: 16 }), ...identity()].sort((a, b) => a.tag - b.tag);
    await W.writeDeflateBomb(bomb, header, { zeroBytes: 512 * MiB, sopInstanceUid: '1.2.826.0.1.3680043.10.1417.99.78' });
    const before = peakRss(pid);
    renameSync(bomb, path.join(watchDir, 'bomb.dcm'));
    const reason = await waitFor('the bomb in quarantine', async () => [...reasons()].find(([f]) => f.includes('bomb.dcm'))?.[1]);
    expect(reason).toMatch(/^CXR_LIMIT_EXCEEDED: /u);
    expect(existsSync(path.join(watchDir, 'bomb.dcm'))).toBe(false);
    // Refused from its header: the agent grew by a few MiB at most, not by the 512 MiB the file inflates to.
    expect(peakRss(pid) - before).toBeLessThan(128 * MiB);
    expect(await agent.api<Study[]>('/api/studies')).toEqual([]);
  });

  it('leaves no planted identifier in any log line or quarantine reason, through C-STORE, the watched folder and analysis', async () => {
    const port = agent.dicomPort;
    const explicitLE = (nodes: W.WriterNode[]): Uint8Array => W.writeDataset(nodes, W.explicitLE);
    // Through C-STORE: a readable image (analysed), an image whose decode fails, a Study UID that is not a UID, and a
    // patient name whose length runs past the end of the dataset.
    expect(await storeRaw(port, W.Syntax.ExplicitLE, '1.2.826.0.1.3680043.10.1417.99.81', explicitLE(plantedImage('1.2.826.0.1.3680043.10.1417.99.81')))).toBe(0);
    const jpeg = [...plantedImage('1.2.826.0.1.3680043.10.1417.99.82').slice(0, -1), W.encapsulated([Uint8Array.of(0xff, 0xd8, 0xff, 0x01, 0, 0, 0, 0)])];
    expect(await storeRaw(port, JPEG_BASELINE, '1.2.826.0.1.3680043.10.1417.99.82', explicitLE(jpeg))).toBe(0);
    expect(await storeRaw(port, W.Syntax.ExplicitLE, '1.2.826.0.1.3680043.10.1417.99.83', explicitLE(plantedImage('1.2.826.0.1.3680043.10.1417.99.83', { studyUid: planted.studyUid })))).toBe(0xc000);
    expect(await storeRaw(port, W.Syntax.ExplicitLE, '1.2.826.0.1.3680043.10.1417.99.84', explicitLE(plantedImage('1.2.826.0.1.3680043.10.1417.99.84', { patientNameLength: 0xfff0 })))).toBe(0xc000);

    // Through the watched folder: a readable image, and the Transfer Syntax UID whose length (65 520 bytes) swallows
    // the dataset: its "value" is the patient's name, ID, birth date and the rest.
    drop('planted-ok.dcm', W.writePart10(plantedImage('1.2.826.0.1.3680043.10.1417.99.85'), { transferSyntaxUid: W.Syntax.ExplicitLE, sopInstanceUid: '1.2.826.0.1.3680043.10.1417.99.85' }));
    const meta = W.writeDataset(
      [
        W.bytes(0x00020001, 'OB', Uint8Array.of(0, 1)),
        W.text(0x00020002, 'UI', CR),
        W.text(0x00020003, 'UI', '1.2.826.0.1.3680043.10.1417.99.86'),
        { ...W.text(0x00020010, 'UI', ''), lengthOverride: 0xfff0 },
      ],
      W.explicitLE,
    );
    drop('planted-huge-ts.dcm', W.part10Raw(meta, explicitLE(plantedImage('1.2.826.0.1.3680043.10.1417.99.86', { rows: 256 }))));

    const studies = await waitFor('every planted file stored and analysed, or refused', async () => {
      const all = await agent.api<Study[]>('/api/studies');
      const instances = all.flatMap((s) => s.instances);
      const settled = instances.length === 3 && instances.every((i) => i.status === 'failed' || (i.status === 'inferred' && i.previewUrl !== null));
      // The log comes through a pipe, maybe after the page's answer: its lines are waited for as well.
      const logged = (message: string): number => agent.output().split(`"msg":"${message}"`).length - 1;
      const done = settled && reasons().size === 4 && readdirSync(watchDir).length === 0 && logged('file quarantined') === 4 && logged('inferred') === 2;
      return done ? all : undefined;
    });
    const outcomes = studies.flatMap((s) => s.instances).map((i) => i.error?.code ?? i.status);
    expect(outcomes.sort()).toEqual(['CXR_DECODE_FAILED', 'inferred', 'inferred']);
    const why = [...reasons().values()].map((r) => r.split(':')[0]).sort();
    expect(why).toEqual(['CXR_INVALID_UID', 'CXR_LIMIT_EXCEEDED', 'CXR_TRUNCATED', 'CXR_UNSUPPORTED_TRANSFER_SYNTAX']);

    const log = agent.output();
    expect(log).toContain('file quarantined');
    expect(log).toContain('inferred');
    for (const marker of markers) {
      expect(log.includes(marker), `${marker} in the log`).toBe(false);
      for (const [file, text] of reasons()) expect(text.includes(marker), `${marker} in ${file}`).toBe(false);
    }
  });

  it("holds back every patient field of the stored records in the agent's logger (the redact list)", () => {
    const db = new SpoolDb(path.join(agent.dataDir, 'edge.db'));
    const records = db.all();
    db.close();
    // The records do hold the planted values (the page shows them)...
    expect(records.map((r) => r.patientName)).toContain('QXNAME PLANTED');
    expect(records.map((r) => r.accessionNumber)).toContain(planted.accession);
    let written = '';
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        written += chunk.toString();
        callback();
      },
    });
    const log = createLogger({ level: 'info', destination: sink });
    // ...and a log call handed a record, at the top or one level down, writes none of them.
    for (const record of records) {
      log.info(record, 'instance');
      log.info({ instance: record }, 'instance');
      log.info({ patient: { name: record.patientName, id: record.patientId, birthDate: record.patientBirthDate } }, 'patient');
    }
    expect(written.split('\n').filter(Boolean)).toHaveLength(records.length * 3);
    for (const marker of markers) expect(written.includes(marker), `${marker} in the log`).toBe(false);
  });
});
