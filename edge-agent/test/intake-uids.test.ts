/**
 * UIDs from the wire never become paths at the hospital (issue 15, defect 4). A DICOM whose StudyInstanceUID is
 * `../../../../outside-api/x` once made the edge send its station token and the file to `PUT /outside-api/x/...`:
 * `new URL()` resolves `..`. Now it is refused at intake (C-STORE error status, kept in quarantine with the reason),
 * and a row already in the outbox from an older agent is never sent raw. The hospital here is a plain HTTP server
 * that records every request it gets.
 */
import { execFile } from 'node:child_process';
import { copyFileSync, chmodSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TriageResult } from '@cxr/inference';
import { SpoolDb } from '../src/spool/db.js';
import { OutboxDb } from '../src/outbox/outbox-db.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor } from './harness/agent-process.js';

const run = promisify(execFile);
const STATION = 'tram-uid';
const TOKEN = 'station-token-for-the-uid-test';
const HOSTILE_STUDY = '../../../../outside-api/x';

interface Recorded {
  readonly method: string;
  readonly url: string;
  readonly authorization: string | undefined;
}

/** The hospital: answers every request as a gateway would (200, JSON) and records its method and path. */
async function startRecordingHospital(): Promise<{ url: string; requests: Recorded[]; close(): Promise<void> }> {
  const requests: Recorded[] = [];
  const server: Server = createServer((req, res) => {
    requests.push({ method: req.method ?? '', url: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      if (req.url === '/api/v1/me') res.end(JSON.stringify({ kind: 'station', stationId: STATION }));
      else if (req.method === 'POST' && /\/consults$/u.test(req.url ?? '')) res.end(JSON.stringify({ consultId: `${STATION}-1` }));
      else res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

interface LinkView {
  state: string;
  pending: number;
  failed: number;
}

/** A copy of the small uncompressed chest with the given Study and SOP Instance UIDs (DCMTK's dcmodify). */
async function chestWith(dir: string, name: string, studyUid: string, sopUid: string): Promise<string> {
  const file = path.join(dir, name);
  copyFileSync(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm'), file);
  chmodSync(file, 0o644);
  await run('dcmodify', ['-nb', '-m', `(0020,000d)=${studyUid}`, '-m', `(0008,0018)=${sopUid}`, file]);
  return file;
}

describe('UIDs that are not DICOM UIDs', () => {
  let work: string;
  beforeAll(() => {
    work = tempDir('cxr-edge-uids-');
  });
  afterAll(() => removeDir(work));

  it('refuses a C-STORE whose StudyInstanceUID is a path, quarantines it with the reason, and sends nothing outside /api/v1/', async () => {
    const hospital = await startRecordingHospital();
    const hostile = await chestWith(work, 'hostile.dcm', HOSTILE_STUDY, '1.2.826.0.1.3680043.10.1417.99.41');
    const good = await chestWith(work, 'good.dcm', '1.2.826.0.1.3680043.10.1417.99.42', '1.2.826.0.1.3680043.10.1417.99.42.1');
    const agent = await startAgent({
      args: ['--gateway', hospital.url, '--station-id', STATION, '--consult-priorities', '', '--no-model-sync'],
      env: { CXR_EDGE_STATION_TOKEN: TOKEN },
    });
    try {
      const refused = await storescu(agent.dicomPort, [hostile], ['-v']);
      // storescu reports the status the SCP answered: an error (Cannot Understand), never a success.
      expect(refused.code).not.toBe(0);
      expect(`${refused.stdout}${refused.stderr}`).toMatch(/Received Store Response \(Error: CannotUnderstand\)/u);
      expect((await storescu(agent.dicomPort, [good])).code).toBe(0);

      // The good film goes to the hospital whole: the link works, and everything waiting has been sent.
      await waitFor('the good film at the hospital', async () =>
        hospital.requests.some((r) => r.method === 'PUT' && r.url.endsWith('/dicom') && r.url.includes('1.2.826.0.1.3680043.10.1417.99.42.1')) &&
        (await agent.api<LinkView>('/api/link')).pending === 0
          ? true
          : undefined,
      );
      for (const request of hospital.requests) {
        expect(request.url, `${request.method} ${request.url}`).toMatch(/^\/api\/v1\//u);
        expect(request.url).not.toContain('outside-api');
      }

      const quarantined = readdirSync(path.join(agent.dataDir, 'quarantine'));
      const reasonFile = quarantined.find((f) => f.endsWith('.reason.txt'));
      expect(quarantined).toHaveLength(2);
      const reason = readFileSync(path.join(agent.dataDir, 'quarantine', reasonFile ?? ''), 'utf8');
      expect(reason).toMatch(/^CXR_INVALID_UID: .*StudyInstanceUID \(0020,000D\)/u);
      expect(reason).not.toContain('outside-api');
      // The page lists the good study only.
      const studies = await agent.api<{ studyInstanceUid: string }[]>('/api/studies');
      expect(studies.map((s) => s.studyInstanceUid)).toEqual(['1.2.826.0.1.3680043.10.1417.99.42']);
    } finally {
      await agent.stop();
      await hospital.close();
      removeDir(agent.dataDir);
    }
  });

  it('never sends raw an outbox row an older agent stored with a bad UID: it is held back with the reason', async () => {
    const hospital = await startRecordingHospital();
    const dataDir = tempDir('cxr-edge-uids-old-');
    // What an agent before this check left behind: an analysed instance under a hostile Study UID, its result and
    // DICOM file waiting in the outbox.
    const relative = path.join('objects', 'aa', `${'a'.repeat(64)}.dcm`);
    mkdirSync(path.join(dataDir, 'objects', 'aa'), { recursive: true });
    copyFileSync(path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm'), path.join(dataDir, relative));
    const db = new SpoolDb(path.join(dataDir, 'edge.db'));
    const outbox = new OutboxDb(db);
    const nulls = {
      seriesInstanceUid: null,
      sopClassUid: null,
      transferSyntaxUid: null,
      modality: null,
      bodyPart: null,
      viewPosition: null,
      patientName: null,
      patientId: null,
      patientSex: null,
      patientBirthDate: null,
      studyDate: null,
      studyTime: null,
      accessionNumber: null,
      studyDescription: null,
      callingAe: null,
    };
    const { record } = db.insert(
      { ...nulls, sopInstanceUid: '1.2.826.0.1.3680043.10.1417.99.43', studyInstanceUid: HOSTILE_STUDY, contentSha256: 'a'.repeat(64), file: relative, size: 1, source: 'dicom' },
      new Date(),
    );
    const result = { schemaVersion: 1, applicable: true, priority: 'routine', findings: [], sopInstanceUid: record.sopInstanceUid, studyInstanceUid: HOSTILE_STUDY } as unknown as TriageResult;
    db.setComplete(record.id, result, { preview: null, heatmap: null, heatmapLabel: null });
    outbox.add({ kind: 'result', instanceId: record.id, studyInstanceUid: HOSTILE_STUDY, priority: 'routine' });
    outbox.add({ kind: 'dicom', instanceId: record.id, studyInstanceUid: HOSTILE_STUDY, priority: 'routine' });
    db.close();

    const agent = await startAgent({
      dataDir,
      args: ['--gateway', hospital.url, '--station-id', STATION, '--consult-priorities', '', '--no-model-sync'],
      env: { CXR_EDGE_STATION_TOKEN: TOKEN },
    });
    try {
      // The log lines come through a pipe, maybe after the answer of /api/link: waited for as well.
      const link = await waitFor('the outbox settled and both items logged', async () => {
        const view = await agent.api<LinkView>('/api/link');
        const logged = agent.output().split('item held back, not sent').length - 1;
        return view.state === 'online' && view.pending === 0 && logged === 2 ? view : undefined;
      });
      // Both items are held back for good, not sent and not retried.
      expect(link.failed).toBe(2);
      for (const request of hospital.requests) {
        expect(request.url, `${request.method} ${request.url}`).toMatch(/^\/api\/v1\//u);
        expect(request.url).not.toContain('outside-api');
      }
      expect(hospital.requests.some((r) => r.method === 'PUT')).toBe(false);
      expect(agent.output()).toContain('CXR_INVALID_UID');
      expect(agent.output()).not.toContain('outside-api');
    } finally {
      await agent.stop();
      await hospital.close();
      removeDir(dataDir);
    }
  });
});
