/**
 * The spool's UID check at intake, every UID it takes from a file or the wire (issue 15, defect 4): the real spool
 * and database on a temporary folder, files made by the test DICOM writer.
 */
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isValidUid } from '@cxr/inference';
import * as W from '../../inference/src/test-support/dicom-writer.js';
import { createLogger } from '../src/log.js';
import { SpoolDb } from '../src/spool/db.js';
import { Spool, SpoolRefusal } from '../src/spool/spool.js';
import { removeDir, tempDir } from './harness/agent-process.js';

const SOP = '1.2.826.0.1.3680043.10.1417.99.90';

/** A small CR image; `uids` replaces or adds UID elements by tag (undefined: left out). */
function image(uids: Record<number, string | undefined>, meta: { sopInstanceUid?: string; fill?: number } = {}): Uint8Array {
  const base = W.imageModule({ rows: 8, columns: 8, bitsAllocated: 16 }).filter((e) => !(e.tag in uids));
  const added = Object.entries(uids)
    .filter((entry): entry is [string, string] => entry[1] !== undefined)
    .map(([tag, value]) => W.text(Number(tag), 'UI', value));
  return W.writePart10([...[...base, ...added].sort((a, b) => a.tag - b.tag), W.pixelWords(new Array(64).fill(meta.fill ?? 1))], {
    transferSyntaxUid: W.Syntax.ExplicitLE,
    sopInstanceUid: meta.sopInstanceUid ?? SOP,
  });
}

describe('UIDs at intake', () => {
  let dataDir: string;
  let db: SpoolDb;
  let spool: Spool;
  beforeAll(async () => {
    dataDir = tempDir('cxr-edge-spool-uids-');
    db = new SpoolDb(path.join(dataDir, 'edge.db'));
    spool = new Spool({ db, log: createLogger({ level: 'silent' }) }, { dataDir, minFreeBytes: 0 });
    await spool.init();
  });
  afterAll(() => {
    db.close();
    removeDir(dataDir);
  });

  const commit = async (bytes: Uint8Array, wireSop?: string) =>
    spool.commit(await spool.writeBytes(bytes), { source: 'dicom', callingAe: null, ...(wireSop ? { sopInstanceUid: wireSop } : {}) });

  it.each([
    ['SOPInstanceUID', { 0x00080018: '1.2.3.04' }, undefined, /SOPInstanceUID \(0008,0018\) is not a DICOM UID \(8 characters\)/u],
    ['SeriesInstanceUID', { 0x00080018: SOP, 0x0020000e: '1.2..3' }, undefined, /SeriesInstanceUID \(0020,000E\)/u],
    ['SOPClassUID', { 0x00080016: '1.2.840.10008.5.1.4.1.1.1/..' }, undefined, /SOPClassUID \(0008,0016\)/u],
    ['StudyInstanceUID of 65 characters', { 0x00080018: SOP, 0x0020000d: `1.${'2'.repeat(63)}` }, undefined, /StudyInstanceUID \(0020,000D\) is not a DICOM UID \(65 characters\)/u],
    ['SOP Instance UID in the C-STORE request', { 0x00080018: SOP }, '../x', /SOPInstanceUID of the C-STORE request/u],
  ] as const)('refuses a %s that is not a UID, and keeps the file in quarantine with the reason', async (_name, uids, wireSop, detail) => {
    const before = readdirSync(spool.dirs.quarantine).length;
    const refusal = await commit(image(uids), wireSop).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(refusal).toBeInstanceOf(SpoolRefusal);
    expect((refusal as SpoolRefusal).reason).toBe('unreadable');
    expect((refusal as SpoolRefusal).message).toMatch(/^CXR_INVALID_UID: /u);
    expect((refusal as SpoolRefusal).message).toMatch(detail);
    const reasons = readdirSync(spool.dirs.quarantine).filter((f) => f.endsWith('.reason.txt'));
    expect(readdirSync(spool.dirs.quarantine)).toHaveLength(before + 2);
    const texts = reasons.map((f) => readFileSync(path.join(spool.dirs.quarantine, f), 'utf8'));
    expect(texts.some((t) => detail.test(t))).toBe(true);
    expect(db.all().filter((r) => r.sopInstanceUid === SOP)).toHaveLength(0);
  });

  it('gives a study without its UID a UUID-derived UID the hospital takes, the same on every send', async () => {
    const first = await commit(image({ 0x00080018: SOP, 0x0020000d: undefined }));
    expect(first.kind).toBe('stored');
    expect(first.record.studyInstanceUid).toMatch(/^2\.25\.[1-9][0-9]*$/u);
    expect(isValidUid(first.record.studyInstanceUid)).toBe(true);
    // Another version of the same instance is the same study; another instance without a Study UID is another study.
    const again = await commit(image({ 0x00080018: SOP, 0x0020000d: undefined }, { fill: 2 }));
    expect(again).toMatchObject({ kind: 'stored', record: { version: 2 } });
    expect(again.record.studyInstanceUid).toBe(first.record.studyInstanceUid);
    const other = await commit(image({ 0x00080018: `${SOP}.1`, 0x0020000d: undefined }, { sopInstanceUid: `${SOP}.1` }));
    expect(other.record.studyInstanceUid).not.toBe(first.record.studyInstanceUid);
  });
});
