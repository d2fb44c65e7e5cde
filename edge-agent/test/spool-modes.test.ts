/**
 * The spool's folders are 0700 and every file it and its database write is 0600 (issue 15, defect 11: data files and
 * DICOM were created 0644, readable by every account on the station PC). The modes are the spool's own, not the
 * process umask's: the test runs with umask 000, under which anything not given a mode comes out 0666 or 0777.
 * Real parts, in this process: the spool and its SQLite database, the watched folder, an inference worker's task
 * (preview and heatmap), the disk guard's reserve; and an older agent's folders and database, tightened at start.
 */
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FolderIntake } from '../src/intake/folder-watch.js';
import { createLogger } from '../src/log.js';
import infer from '../src/pipeline/worker.js';
import { SpoolDb, type InstanceRecord } from '../src/spool/db.js';
import { DiskGuard } from '../src/spool/disk-guard.js';
import { Spool } from '../src/spool/spool.js';
import { densenet, dicomDir, removeDir, tempDir, waitFor } from './harness/agent-process.js';

const chest = path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm');
const modeOf = (p: string): number => statSync(p).mode & 0o777;

/** Every folder and file under `dir`, recursively. */
function walk(dir: string): { dirs: string[]; files: string[] } {
  const out = { dirs: [dir], files: [] as string[] };
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      const inner = walk(full);
      out.dirs.push(...inner.dirs);
      out.files.push(...inner.files);
    } else out.files.push(full);
  }
  return out;
}

describe('spool file modes', () => {
  let umask: number;
  let dataDir: string;
  beforeAll(() => {
    umask = process.umask(0o000);
    dataDir = tempDir('cxr-edge-modes-');
  });
  afterAll(() => {
    process.umask(umask);
    removeDir(dataDir);
  });

  it('makes the spool folders 0700 and every file it writes 0600, whatever the umask', async () => {
    // What an older agent left: open folders and an open database.
    mkdirSync(path.join(dataDir, 'objects'), { mode: 0o755 });
    chmodSync(path.join(dataDir, 'objects'), 0o755);
    closeSync(openSync(path.join(dataDir, 'edge.db'), 'w', 0o644));
    chmodSync(path.join(dataDir, 'edge.db'), 0o644);

    const log = createLogger({ level: 'silent' });
    const disk = new DiskGuard({ log }, { dataDir, minFreeBytes: 0, reserveBytes: 64 * 1024 });
    await disk.start();
    disk.stop();
    const db = new SpoolDb(path.join(dataDir, 'edge.db'));
    const spool = new Spool({ db, log }, { dataDir, minFreeBytes: 0 });
    await spool.init();
    const stored: InstanceRecord[] = [];

    // As C-STORE writes: streamed behind a header, then committed.
    const writer = spool.beginWrite(undefined);
    writer.stream.end(readFileSync(chest));
    const outcome = await spool.commit(await writer.finished(), { source: 'dicom', callingAe: 'MODALITY' });
    stored.push(outcome.record);
    // Not DICOM: kept in quarantine with its reason.
    await expect(spool.commit(await spool.writeBytes(Buffer.from('not an image at all, only text')), { source: 'dicom', callingAe: null })).rejects.toThrow(/CXR_/u);

    // The watched folder: one file taken, one refused.
    const watchDir = path.join(dataDir, 'incoming');
    const intake = new FolderIntake({ spool, log, onStored: (record) => stored.push(record) }, { dir: watchDir, doneDir: path.join(dataDir, 'intake-done'), stableMs: 100 });
    await intake.start();
    const copy = readFileSync(path.join(dicomDir, 'derived', 'derived_cr_chest_pa_RG1_explicitLE.dcm'));
    writeFileSync(path.join(dataDir, 'next.dcm'), copy, { mode: 0o644 });
    renameSync(path.join(dataDir, 'next.dcm'), path.join(watchDir, 'next.dcm'));
    writeFileSync(path.join(dataDir, 'notes.txt'), 'not DICOM either', { mode: 0o644 });
    renameSync(path.join(dataDir, 'notes.txt'), path.join(watchDir, 'notes.txt'));
    await waitFor('the watched files taken', async () => (readdirSync(watchDir).length === 0 && stored.length === 2 ? true : undefined));
    await intake.stop();

    // An inference worker's task: the preview and the heatmap.
    const [first] = stored;
    if (!first) throw new Error('nothing stored');
    const analysed = await infer({ instanceId: first.id, file: spool.absolute(first.file), derivedDir: path.join(spool.dirs.derived, String(first.id)), modelDir: densenet, threads: 1 });
    expect(analysed).toMatchObject({ ok: true });

    const spoolDirs = ['tmp', 'objects', 'derived', 'quarantine', 'intake-done'].map((d) => walk(path.join(dataDir, d)));
    const dirs = spoolDirs.flatMap((w) => w.dirs);
    const files = [...spoolDirs.flatMap((w) => w.files), ...['edge.db', 'edge.db-wal', 'edge.db-shm', 'reserve.bin'].map((f) => path.join(dataDir, f))];
    // Everything the steps above should have written is there.
    const under = (d: string): string[] => files.filter((f) => f.startsWith(path.join(dataDir, d) + path.sep));
    expect(under('objects')).toHaveLength(2);
    expect(under('intake-done')).toHaveLength(1);
    expect(under('quarantine').filter((f) => f.endsWith('.reason.txt'))).toHaveLength(2);
    expect(under('quarantine')).toHaveLength(4);
    expect(under('derived').filter((f) => f.endsWith('.png'))).toHaveLength(2);
    expect(dirs.length).toBeGreaterThanOrEqual(8);
    for (const dir of dirs) expect(`${path.relative(dataDir, dir)} ${modeOf(dir).toString(8)}`).toBe(`${path.relative(dataDir, dir)} 700`);
    // The database's WAL and shared-memory files exist while it is open.
    for (const file of files) expect(`${path.relative(dataDir, file)} ${modeOf(file).toString(8)}`).toBe(`${path.relative(dataDir, file)} 600`);
    db.close();
  }, 120_000);
});
