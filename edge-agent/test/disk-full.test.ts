/**
 * A full disk, for real: the agent's data folder on a small tmpfs that the test fills with a file of its own, as
 * another program or a forgotten backup would. The agent must never die of it, start and serve on it degraded
 * (C-STORE refused with A700, /api/health degraded, a banner on the page), lose nothing it acknowledged, and come back
 * by itself once there is room. Needs `mount` (root, as the test command runs in CI); skipped where it is refused.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { crashPointLine } from '@cxr/inference';
import { EdgeCrashPoint } from '../src/crash-points.js';
import { OutboxDb } from '../src/outbox/outbox-db.js';
import { SpoolDb } from '../src/spool/db.js';
import { checkInvariants } from '../src/spool/invariants.js';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { launchChromium } from './support/browser.js';

const run = promisify(execFile);
const urgentChest = path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm');
const smallChest = path.join(dicomDir, 'cr_chest_CR-MONO1-10-chest.dcm');
const minFree = String(4 * 1024 * 1024);
const shots = '/tmp/edge-disk-full';

interface Health {
  status: string;
  ready: boolean;
  problems: { code: string }[];
  disk: { full: boolean; reason: string | null };
}
interface Study {
  instances: { status: string; previewUrl: string | null; previewPending: boolean }[];
}

let mountPoint: string;
let mounted = false;

beforeAll(async () => {
  mountPoint = tempDir('cxr-disk-full-');
  try {
    await run('mount', ['-t', 'tmpfs', '-o', 'size=48m', 'tmpfs', mountPoint]);
    mounted = true;
  } catch {
    mounted = false;
  }
  mkdirSync(shots, { recursive: true });
});
afterAll(async () => {
  if (mounted) await run('umount', [mountPoint]).catch(() => undefined);
  removeDir(mountPoint);
});

/** Fills the disk to the last byte with a file of its own, as another program would. */
async function fillDisk(file: string): Promise<void> {
  const handle = await open(file, 'w');
  const block = Buffer.alloc(256 * 1024, 7);
  try {
    for (;;) await handle.write(block);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    await handle.close();
  }
}

async function health(agent: AgentProcess): Promise<Health> {
  const res = await fetch(`http://127.0.0.1:${agent.httpPort}/api/health`);
  return (await res.json()) as Health;
}

const refusedOutOfResources = (stderr: string): boolean => stderr.includes('Refused: OutOfResources');

describe('a full disk', () => {
  it('never ends the agent: it starts degraded on a full disk, refuses with A700, shows it, and comes back by itself', async (ctx) => {
    if (!mounted) ctx.skip();
    const dataDir = path.join(mountPoint, 'data');
    const filler = path.join(mountPoint, 'filler.bin');
    const args = ['--min-free-bytes', minFree];
    let browser: Browser | undefined;

    // An acknowledged urgent film whose preview is not drawn yet when the agent dies...
    const doomed = await startAgent({ dataDir, args, env: { CXR_CRASH_POINT: EdgeCrashPoint.EarlyResultCommitted } });
    expect((await storescu(doomed.dicomPort, [urgentChest])).code).toBe(0);
    await waitFor('the crash', async () => doomed.child.signalCode ?? undefined);
    expect(doomed.output()).toContain(crashPointLine(EdgeCrashPoint.EarlyResultCommitted));

    // ...and while it is down the disk fills to the last byte.
    await fillDisk(filler);
    const agent = await startAgent({ dataDir, args });
    try {
      const degraded = await health(agent);
      expect(degraded).toMatchObject({ status: 'degraded', ready: false, problems: [{ code: 'CXR_DISK_FULL' }], disk: { full: true } });
      const refused = await storescu(agent.dicomPort, [smallChest], ['-v']);
      expect(refusedOutOfResources(refused.stderr)).toBe(true);
      expect(refused.code).not.toBe(0);

      browser = await launchChromium();
      const page = await browser.newPage({ viewport: { width: 1366, height: 768 } });
      await page.goto(`http://127.0.0.1:${agent.httpPort}/`);
      const banner = page.locator('#disk-banner');
      await banner.waitFor({ state: 'visible', timeout: 10_000 });
      expect(await banner.innerText()).toContain('Ổ đĩa của máy trạm AI đã đầy');
      await page.screenshot({ path: path.join(shots, 'disk-full-vi.png') });
      await page.locator('button[data-lang="en"]').click();
      expect(await banner.innerText()).toContain('The AI station disk is full');
      await page.screenshot({ path: path.join(shots, 'disk-full-en.png') });

      // Room again: no restart, no one touching the agent.
      await rm(filler);
      await waitFor('the agent to take images again', async () => ((await health(agent)).status === 'ok' ? true : undefined), 20_000);
      await banner.waitFor({ state: 'hidden', timeout: 10_000 });
      expect((await storescu(agent.dicomPort, [smallChest])).code).toBe(0);
      const studies = await waitFor('both films analysed with their previews', async () => {
        const s = await agent.api<Study[]>('/api/studies');
        const all = s.flatMap((x) => x.instances);
        return all.length === 2 && all.every((i) => i.status === 'inferred' && i.previewUrl && !i.previewPending) ? s : undefined;
      });
      expect(studies).toHaveLength(2);

      // Full again while it runs: noticed within a check, without any write failing first.
      await fillDisk(filler);
      await waitFor('health to say degraded', async () => ((await health(agent)).status === 'degraded' ? true : undefined), 15_000);
      expect(refusedOutOfResources((await storescu(agent.dicomPort, [urgentChest], ['-v'])).stderr)).toBe(true);
      await rm(filler);
      await waitFor('room again', async () => ((await health(agent)).status === 'ok' ? true : undefined), 20_000);
    } finally {
      await browser?.close();
      expect(await agent.stop()).toBe(0);
    }
    expect(readdirSync(path.join(dataDir, 'tmp'))).toEqual([]);
    const db = new SpoolDb(path.join(dataDir, 'edge.db'));
    try {
      expect(checkInvariants({ db, outbox: new OutboxDb(db), absolute: (f) => path.join(dataDir, f) }, { enabled: false, consultPriorities: [] })).toEqual([]);
    } finally {
      db.close();
    }
  }, 240_000);
});
