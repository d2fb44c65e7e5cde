/**
 * A full disk, N times: the edge's data folder is on a 64 MiB tmpfs of its own (more beyond 10 cycles, see tmpfsMiB) (`mount -t tmpfs`, as root; where
 * mount is refused the drill says it cannot run and fails). In each cycle a burst of films arrives from the X-ray
 * unit (storescu -v) and, at a random moment of it, the drill fills the disk to the last byte with a file of its
 * own, as another program would; more films arrive while it is full; after a few seconds the file is removed. The
 * edge is linked to a real gateway (site.ts) and runs with `--min-free-bytes 4 MiB` (its 200 MiB default is more than
 * the whole tmpfs). The unit sends again every film it got no Success for. `/api/health` is read every 100 ms.
 * Counted:
 * - films acknowledged (Success), refused with A700 ("Refused: OutOfResources"), any other failure;
 * - agent exits: the agent process ended by itself (it must live through it all, and is started again if not);
 * - full not noticed: /api/health never said degraded while the disk was full; health ok while full: reads of
 *   `ok` between the first `degraded` and the file's removal; not recovered: never `ok` again within 60 s after;
 *   the time to notice the full disk (from the file written) and to recover (from its removal);
 * - false successes: a Success for a film the edge does not then show;
 * - at the end, settled and stopped: acknowledged films lost (at the edge, or not at the gateway with their
 *   result and preview), stuck, doubled, and files left in the spool's tmp/.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, readdirSync, statfsSync } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { FilmFactory, type Film } from '../support/films.js';
import { countDelivery, edgeHealth, edgeInstances, settleEdge } from '../support/delivery.js';
import { seededRandom } from '../support/random.js';
import { startSite, storescu, type AgentProcess, type Site } from '../support/site.js';
import { report, type Drill, type DrillOptions, type DrillReport } from '../report.js';
import { median, mkdirWork, seconds, sleep } from '../support/util.js';

const run = promisify(execFile);
/**
 * 64 MiB, as the drill; the spool keeps every film (about 1 MiB each, 3 to 6 a cycle), so a run of more than
 * 10 cycles gets 4 MiB more a cycle, or the films themselves would fill the disk for good.
 */
const tmpfsMiB = (cycles: number): number => Math.max(64, 24 + 4 * cycles);
const MIN_FREE_BYTES = 4 * 1024 * 1024;
/** Longest waits for the agent to say degraded, then ok again (its disk check runs every 5 s). */
const NOTICE_TIMEOUT_MS = 30_000;
const RECOVER_TIMEOUT_MS = 60_000;

export const diskFullDrill: Drill = {
  name: 'disk-full',
  summary: "the edge's disk (a 64 MiB tmpfs) filled to the last byte mid-burst, then freed; A700, degraded health, recovery, nothing lost",
  run: (options) => runDiskFull(options),
};

interface Counts {
  sent: number;
  acknowledged: number;
  refusedA700: number;
  otherFailures: number;
  agentExits: number;
  fullNotNoticed: number;
  okWhileFull: number;
  notRecovered: number;
  falseSuccesses: number;
  noticeMs: number[];
  recoverMs: number[];
}

async function runDiskFull(options: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const cycles = options.cycles ?? (options.quick ? 2 : 10);
  const mountPoint = path.join(options.workDir, 'disk');
  mkdirSync(mountPoint, { recursive: true });
  try {
    await run('mount', ['-t', 'tmpfs', '-o', `size=${tmpfsMiB(cycles)}m`, 'tmpfs', mountPoint]);
  } catch (err) {
    const reason = ((err as { stderr?: string }).stderr ?? (err as Error).message).trim().split('\n')[0] ?? '';
    return report('disk-full', options, started, { cycles: 0 }, [], [`cannot run: mount of a ${tmpfsMiB(cycles)} MiB tmpfs was refused (needs root): ${reason}`]);
  }
  try {
    return await drill(options, started, cycles, mountPoint);
  } finally {
    await unmount(mountPoint);
  }
}

async function drill(options: DrillOptions, started: number, cycles: number, mountPoint: string): Promise<DrillReport> {
  const random = seededRandom(options.seed);
  const films = new FilmFactory(mkdirWork(options.workDir, 'films'));
  const dataDir = path.join(mountPoint, 'edge');
  const filler = path.join(mountPoint, 'filler.bin');
  const problems: string[] = [];
  const counts: Counts = { sent: 0, acknowledged: 0, refusedA700: 0, otherFailures: 0, agentExits: 0, fullNotNoticed: 0, okWhileFull: 0, notRecovered: 0, falseSuccesses: 0, noticeMs: [], recoverMs: [] };
  const acknowledged = new Map<string, Film>();
  let unsent: Film[] = [];
  const site = await startSite('tram-disk');
  const agent = new WatchedAgent(site, dataDir, counts, problems);
  try {
    await agent.start();
    for (let cycle = 1; cycle <= cycles; cycle++) {
      const fresh = Array.from({ length: random.int(2, options.quick ? 3 : 4) }, () => films.make(random.next() < 0.6 ? 'urgent' : 'routine'));
      const burst = [...unsent, ...fresh];
      unsent = [];
      const ackedThisCycle: Film[] = [];
      const send = async (film: Film): Promise<void> => {
        const outcome = await agent.send(film);
        if (outcome.kind === 'success') {
          if (!acknowledged.has(film.sopInstanceUid)) counts.acknowledged += 1;
          acknowledged.set(film.sopInstanceUid, film);
          ackedThisCycle.push(film);
        } else unsent.push(film);
        if (outcome.kind === 'other') options.progress(`cycle ${cycle}: ${film.sopInstanceUid}: ${outcome.detail}`);
      };

      // The disk fills at a random moment of the burst (a send takes ~100 ms).
      const fillAfterMs = random.int(0, 100 * burst.length);
      let fillStartAt = 0;
      let filledAt = 0;
      const filling = (async () => {
        await sleep(fillAfterMs);
        fillStartAt = Date.now();
        await fillDisk(filler);
        filledAt = Date.now();
      })();
      for (const film of burst) await send(film);
      await filling;

      // Full: the agent must say so; films arriving meanwhile are refused.
      const degradedAt = await agent.health.waitFor('degraded', fillStartAt, NOTICE_TIMEOUT_MS);
      if (degradedAt === undefined) {
        counts.fullNotNoticed += 1;
        problems.push(`cycle ${cycle}: /api/health did not say degraded within ${NOTICE_TIMEOUT_MS / 1000} s of the disk filling`);
      } else counts.noticeMs.push(Math.max(0, degradedAt - filledAt));
      const holdUntil = Date.now() + random.int(1000, options.quick ? 2000 : 5000);
      for (const film of Array.from({ length: random.int(1, 2) }, () => films.make(random.next() < 0.5 ? 'urgent' : 'routine'))) await send(film);
      await sleep(holdUntil - Date.now());

      const removedAt = Date.now();
      await rm(filler, { force: true });
      const okWhileFull = degradedAt === undefined ? 0 : agent.health.count('ok', degradedAt, removedAt);
      if (okWhileFull > 0) {
        counts.okWhileFull += okWhileFull;
        problems.push(`cycle ${cycle}: /api/health said ok ${okWhileFull} times while the disk was full`);
      }
      const okAt = await agent.health.waitFor('ok', removedAt, RECOVER_TIMEOUT_MS);
      if (okAt === undefined) {
        counts.notRecovered += 1;
        problems.push(`cycle ${cycle}: /api/health not ok within ${RECOVER_TIMEOUT_MS / 1000} s of the space returning`);
      } else counts.recoverMs.push(okAt - removedAt);

      await checkSuccesses(agent, ackedThisCycle, counts, problems, cycle);
      const leftInTmp = tmpFiles(dataDir);
      if (leftInTmp.length > 0) options.progress(`cycle ${cycle}: ${leftInTmp.length} files in tmp/ with no transfer open`);
      options.progress(`disk full: ${cycle}/${cycles}, ${counts.acknowledged} acknowledged, ${counts.refusedA700} refused A700, ${counts.otherFailures} other failures`);
    }

    // The end: room, the unit sends what is left, everything settles and is counted with the agent stopped.
    await rm(filler, { force: true });
    for (const film of unsent) {
      let outcome = await agent.send(film);
      for (let tries = 0; outcome.kind !== 'success' && tries < 10; tries++) {
        await sleep(1000);
        outcome = await agent.send(film);
      }
      if (outcome.kind === 'success') {
        if (!acknowledged.has(film.sopInstanceUid)) counts.acknowledged += 1;
        acknowledged.set(film.sopInstanceUid, film);
      } else problems.push(`a film got no Success with room on the disk: ${film.sopInstanceUid} (${outcome.kind === 'other' ? outcome.detail : 'A700'})`);
    }
    const edge = agent.current;
    const settleMs = edge ? await settleEdge(edge) : undefined;
    if (settleMs === undefined) problems.push('the edge did not settle within 10 minutes');
    const stopped = await agent.stop();
    if (stopped !== 0) problems.push(`the edge exited ${stopped} on SIGTERM`);
    const leftInTmp = tmpFiles(dataDir);
    for (const file of leftInTmp.slice(0, 5)) problems.push(`left in tmp/: ${file}`);
    const delivery = await countDelivery(site, dataDir, acknowledged.values(), problems);
    const disk = statfsSync(mountPoint);
    const sorted = (values: number[]): number[] => [...values].sort((x, y) => x - y);
    return report(
      'disk-full',
      options,
      started,
      {
        cycles,
        diskMiB: Math.round((disk.blocks * disk.bsize) / 1024 / 1024),
        filmsSent: counts.sent,
        acknowledged: counts.acknowledged,
        refusedA700: counts.refusedA700,
        otherFailures: counts.otherFailures,
        agentExits: counts.agentExits,
        noticeFullMedianS: seconds(median(sorted(counts.noticeMs))),
        noticeFullWorstS: seconds(sorted(counts.noticeMs).at(-1) ?? 0),
        recoverMedianS: seconds(median(sorted(counts.recoverMs))),
        recoverWorstS: seconds(sorted(counts.recoverMs).at(-1) ?? 0),
        fullNotNoticed: counts.fullNotNoticed,
        healthOkWhileFull: counts.okWhileFull,
        notRecovered: counts.notRecovered,
        falseSuccesses: counts.falseSuccesses,
        reachedTheHospital: delivery.reached,
        acknowledgedLost: delivery.lost,
        stuck: delivery.stuck,
        duplicated: delivery.duplicated,
        tmpFilesLeft: leftInTmp.length,
        spoolUsedMiB: Math.round(((disk.blocks - disk.bfree) * disk.bsize) / 1024 / 1024),
      },
      ['agentExits', 'acknowledgedLost', 'stuck', 'falseSuccesses', 'duplicated', 'tmpFilesLeft', 'fullNotNoticed', 'healthOkWhileFull', 'notRecovered'],
      problems,
    );
  } finally {
    await agent.kill();
    await site.close();
  }
}

/** How a send ended: Success, refused with A700, or another failure and what storescu said of it. */
type SendOutcome = { readonly kind: 'success' } | { readonly kind: 'refused' } | { readonly kind: 'other'; readonly detail: string };

/**
 * The station's agent, watched: its exits counted (and it is started again, so the drill goes on), its health read
 * every 100 ms, films sent to it with storescu -v.
 */
class WatchedAgent {
  readonly health = new HealthLog();
  readonly #site: Site;
  readonly #dataDir: string;
  readonly #counts: Counts;
  readonly #problems: string[];
  #edge: AgentProcess | undefined;
  #stopping = false;

  constructor(site: Site, dataDir: string, counts: Counts, problems: string[]) {
    this.#site = site;
    this.#dataDir = dataDir;
    this.#counts = counts;
    this.#problems = problems;
  }

  get current(): AgentProcess | undefined {
    return this.#edge;
  }

  async start(): Promise<void> {
    const edge = await this.#site.startEdge(this.#dataDir, { args: ['--min-free-bytes', String(MIN_FREE_BYTES)] });
    this.#edge = edge;
    edge.child.once('exit', (code, signal) => {
      if (this.#stopping) return;
      this.#counts.agentExits += 1;
      const last = edge.output().trim().split('\n').slice(-3).join(' | ').slice(0, 400);
      this.#problems.push(`the agent exited (code ${code}, signal ${signal}): ${last}`);
      this.#edge = undefined;
      void this.start().catch((err: unknown) => this.#problems.push(`the agent did not start again: ${(err as Error).message.split('\n')[0] ?? ''}`));
    });
    this.health.watch(() => this.#edge);
  }

  async send(film: Film): Promise<SendOutcome> {
    this.#counts.sent += 1;
    const edge = this.#edge;
    if (!edge) {
      this.#counts.otherFailures += 1;
      return { kind: 'other', detail: 'the agent is down' };
    }
    const outcome = await storescu(edge.dicomPort, [film.file], ['-v']);
    const said = `${outcome.stdout}\n${outcome.stderr}`;
    if (outcome.code === 0 && !said.includes('Refused')) return { kind: 'success' };
    if (said.includes('Refused: OutOfResources')) {
      this.#counts.refusedA700 += 1;
      return { kind: 'refused' };
    }
    this.#counts.otherFailures += 1;
    const line = said.split('\n').find((l) => /(Failed|Error|Refused|Warning)/u.test(l)) ?? `exit ${outcome.code}`;
    return { kind: 'other', detail: line.trim().slice(0, 200) };
  }

  async stop(): Promise<number | null> {
    this.#stopping = true;
    this.health.stop();
    const edge = this.#edge;
    this.#edge = undefined;
    return edge ? edge.stop() : null;
  }

  async kill(): Promise<void> {
    this.#stopping = true;
    this.health.stop();
    const edge = this.#edge;
    this.#edge = undefined;
    if (edge && edge.child.exitCode === null && edge.child.signalCode === null) await edge.stop('SIGKILL');
  }
}

/** `/api/health` read every 100 ms: each answer's status and when. */
class HealthLog {
  readonly #samples: { at: number; status: string }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #reading = false;

  watch(edge: () => AgentProcess | undefined): void {
    if (this.#timer) return;
    this.#timer = setInterval(() => {
      const current = edge();
      if (!current || this.#reading) return;
      this.#reading = true;
      edgeHealth(current)
        .then((h) => this.#samples.push({ at: Date.now(), status: h.status }))
        .catch(() => undefined)
        .finally(() => (this.#reading = false));
    }, 100);
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** When the agent first answered `status` at or after `from`; undefined if not within `timeoutMs`. */
  async waitFor(status: string, from: number, timeoutMs: number): Promise<number | undefined> {
    const deadline = from + timeoutMs;
    for (;;) {
      const seen = this.#samples.find((s) => s.at >= from && s.status === status);
      if (seen) return seen.at;
      if (Date.now() > deadline) return undefined;
      await sleep(100);
    }
  }

  count(status: string, from: number, until: number): number {
    return this.#samples.filter((s) => s.at >= from && s.at < until && s.status === status).length;
  }
}

/** Fills the disk to the last byte with a file of its own (blocks of 1 MiB down to 1 byte, each until ENOSPC). */
async function fillDisk(file: string): Promise<void> {
  const handle = await open(file, 'a');
  try {
    for (const size of [1024 * 1024, 64 * 1024, 4096, 512, 1]) {
      const block = Buffer.alloc(size, 7);
      try {
        for (;;) await handle.write(block);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    await handle.close();
  }
}

/** Every film the unit got a Success for this cycle must be shown by the agent (else it was a false success). */
async function checkSuccesses(agent: WatchedAgent, films: readonly Film[], counts: Counts, problems: string[], cycle: number): Promise<void> {
  const edge = agent.current;
  if (!edge || films.length === 0) return;
  const instances = await edgeInstances(edge);
  for (const film of films) {
    if (instances.has(film.sopInstanceUid)) continue;
    counts.falseSuccesses += 1;
    problems.push(`cycle ${cycle}: Success for ${film.sopInstanceUid}, which the edge does not show`);
  }
}

function tmpFiles(dataDir: string): string[] {
  try {
    return readdirSync(path.join(dataDir, 'tmp'));
  } catch {
    return [];
  }
}

/** Unmounts the tmpfs (again after a moment while a process still holds a file there). */
async function unmount(mountPoint: string): Promise<void> {
  for (let tries = 0; tries < 10; tries++) {
    try {
      await run('umount', [mountPoint]);
      return;
    } catch {
      await sleep(500);
    }
  }
  await run('umount', ['-l', mountPoint]).catch(() => undefined);
}
