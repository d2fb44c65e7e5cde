/**
 * What the agent leaves on the station PC's disk is its user's alone: the data folder 0700, and every file it makes
 * (the DICOM it received, its databases, previews, the accounts file) readable by no other user of the PC.
 */
import { chmodSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { squeezenet } from './support/lan.js';

interface Study {
  instances: { status: string; previewUrl: string | null }[];
}

/** Every path under `dir` with its permission bits, folders included. */
function modes(dir: string): { path: string; mode: number; dir: boolean }[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    const entry = { path: path.relative(dir, full), mode: statSync(full).mode & 0o777, dir: e.isDirectory() };
    return e.isDirectory() ? [entry, ...modes(full).map((m) => ({ ...m, path: path.join(e.name, m.path) }))] : [entry];
  });
}

describe('files on the station PC', () => {
  let work: string;
  let agent: AgentProcess;
  beforeAll(async () => {
    work = tempDir('cxr-edge-private-');
    // An older agent's folder, open to everyone.
    const dataDir = path.join(work, 'data');
    mkdirSync(dataDir, { mode: 0o755 });
    chmodSync(dataDir, 0o755);
    agent = await startAgent({ dataDir, args: ['--model', squeezenet] });
    expect((await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm')])).code).toBe(0);
    await waitFor('the result and its preview', async () => {
      const [study] = await agent.api<Study[]>('/api/studies');
      return study?.instances[0]?.previewUrl ? true : undefined;
    });
  });
  afterAll(async () => {
    await agent?.stop();
    removeDir(work);
  });

  it('keeps the data folder and everything in it private to the agent user (0700 folders, no group or other bits on files)', () => {
    expect((statSync(agent.dataDir).mode & 0o777).toString(8)).toBe('700');
    const entries = modes(agent.dataDir);
    // The images, the spool's database and the accounts are all there.
    expect(entries.some((e) => e.path.startsWith('objects') && e.path.endsWith('.dcm'))).toBe(true);
    expect(entries.some((e) => e.path.endsWith('preview.png'))).toBe(true);
    expect(entries.map((e) => e.path)).toEqual(expect.arrayContaining(['edge.db', 'accounts.db']));
    const open = entries.filter((e) => (e.mode & 0o077) !== 0).map((e) => `${e.path} ${e.mode.toString(8)}`);
    expect(open).toEqual([]);
    expect(agent.output()).toContain('the data folder was open to other users of the PC: now 0700');
  });
});
