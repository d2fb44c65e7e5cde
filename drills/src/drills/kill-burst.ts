/**
 * kill -9 during bursts, N times: the X-ray unit (DCMTK storescu) sends a burst of new films, urgent and routine,
 * while the edge, linked to a real gateway, receives, analyses and forwards them in 64 KiB chunks; at a random moment
 * of the burst or just after it, the edge (`kill-edge`) or the gateway (`kill-gateway`) is killed with SIGKILL and
 * started again. The unit sends again every film it got no Success for, as a unit does.
 *
 * After every edge crash, before the restart, the edge's database must keep its promises (edge-agent's
 * src/spool/invariants.ts, all but "unfinished", which a restart finishes) and hold every film acknowledged so far.
 * At the end, with nothing killed, everything must settle, and it is counted:
 * - acknowledged lost: a film the unit got Success for that is missing at the edge or never reached the gateway;
 * - stuck: at the edge, an instance never finished or an outbox item never sent (or refused) once settled;
 * - duplicated: a film stored twice at the edge, or under two contents at the gateway, or an urgent study with more
 *   than one consult on the worklist;
 * - reached the hospital: acknowledged films whose DICOM, result and preview the gateway holds (all, when all is well).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { instanceFileKey, instancePrefix, storeFromUrl, type ObjectStore } from '@cxr/gateway';
import { countDelivery, settleEdge } from '../support/delivery.js';
import { FilmFactory, type Film } from '../support/films.js';
import { seededRandom } from '../support/random.js';
import { readEdgeDb, readGatewayStore, startSite, storescu, type AgentProcess, type Site } from '../support/site.js';
import { report, type Drill, type DrillOptions, type DrillReport } from '../report.js';
import { mkdirWork, sleep } from '../support/util.js';

export type KillTarget = 'edge' | 'gateway';

interface Counts {
  sent: number;
  acknowledged: number;
  refusedOrCut: number;
  resent: number;
  kills: number;
  crashChecks: number;
  crashViolations: number;
}

export function killBurstDrill(target: KillTarget): Drill {
  return {
    name: `kill-${target}`,
    summary:
      target === 'edge'
        ? 'kill -9 of the edge at a random moment of a burst of films, linked to a real gateway; the unit resends what got no Success'
        : 'kill -9 of the gateway at a random moment while the edge forwards a burst in resumable 64 KiB chunks',
    run: (options) => runKillBurst(target, options),
  };
}

async function runKillBurst(target: KillTarget, options: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const cycles = options.cycles ?? (options.quick ? 4 : 100);
  const random = seededRandom(options.seed);
  const films = new FilmFactory(mkdirWork(options.workDir, 'films'));
  const dataDir = mkdirWork(options.workDir, 'edge');
  const site = await startSite(`tram-${target}`);
  const problems: string[] = [];
  const counts: Counts = { sent: 0, acknowledged: 0, refusedOrCut: 0, resent: 0, kills: 0, crashChecks: 0, crashViolations: 0 };
  const acknowledged = new Map<string, Film>();
  let unsent: Film[] = [];
  let edge: AgentProcess | undefined;
  try {
    if (target === 'gateway') edge = await site.startEdge(dataDir);
    for (let cycle = 1; cycle <= cycles; cycle++) {
      if (target === 'edge') edge = await site.startEdge(dataDir);
      if (!edge) throw new Error('no edge agent');
      const fresh = Array.from({ length: random.int(1, 4) }, () => films.make(random.next() < 0.4 ? 'urgent' : 'routine'));
      const burst = [...unsent, ...fresh];
      counts.resent += unsent.length;
      unsent = [];
      // The kill lands anywhere from the first film to a while after the last: receiving (a send takes ~90 ms, so
      // two kills in five are aimed at the sends), analysing or forwarding.
      const killAfterMs = random.next() < 0.4 ? random.int(0, 90 * burst.length) : random.int(0, 200 * burst.length + 2000);
      const killed = (async () => {
        await sleep(killAfterMs);
        counts.kills += 1;
        if (target === 'edge') await killProcess(edge);
        else {
          await site.hospital.killGateway();
          await sleep(random.int(200, 2000));
          await site.hospital.startGateway();
        }
      })();
      for (const film of burst) {
        counts.sent += 1;
        const outcome = edge.child.exitCode === null && edge.child.signalCode === null ? await storescu(edge.dicomPort, [film.file]) : undefined;
        if (outcome?.code === 0) {
          if (!acknowledged.has(film.sopInstanceUid)) counts.acknowledged += 1;
          acknowledged.set(film.sopInstanceUid, film);
        } else {
          counts.refusedOrCut += 1;
          unsent.push(film);
        }
      }
      await killed;
      if (target === 'edge') {
        checkAfterCrash(dataDir, acknowledged, counts, problems, cycle);
        edge = undefined;
      }
      if (cycle % 10 === 0 || cycle === cycles) options.progress(`${target} kills: ${cycle}/${cycles}, ${counts.acknowledged} acknowledged, ${counts.crashViolations} broken promises`);
    }
    // The end: nothing killed any more; the unit sends what is left, and everything settles.
    if (!edge) edge = await site.startEdge(dataDir);
    for (const film of unsent) {
      counts.sent += 1;
      counts.resent += 1;
      if ((await storescu(edge.dicomPort, [film.file])).code === 0) {
        if (!acknowledged.has(film.sopInstanceUid)) counts.acknowledged += 1;
        acknowledged.set(film.sopInstanceUid, film);
      } else problems.push(`a film was refused with nothing killed: ${film.sopInstanceUid}`);
    }
    const backlog = (await edge.api<{ pending: number }>('/api/link')).pending;
    const settleMs = await settleEdge(edge, { progress: options.progress });
    if (settleMs === undefined) problems.push('the edge stopped draining its outbox for two minutes');
    const stopped = await edge.stop();
    edge = undefined;
    if (stopped !== 0) problems.push(`the edge exited ${stopped} on SIGTERM`);
    return await finalCount(target, options, started, site, dataDir, acknowledged, counts, problems, settleMs, backlog);
  } finally {
    if (edge) await killProcess(edge);
    await site.close();
  }
}

/** After a kill, before the restart: every promise but "unfinished" holds, and every acknowledged film is there. */
function checkAfterCrash(dataDir: string, acknowledged: Map<string, Film>, counts: Counts, problems: string[], cycle: number): void {
  const view = readEdgeDb(dataDir);
  counts.crashChecks += 1;
  const broken = view.violations.filter((v) => v.rule !== 'unfinished');
  for (const v of broken) problems.push(`cycle ${cycle}: ${v.rule} ${v.instanceId ?? v.studyInstanceUid ?? ''}: ${v.detail}`);
  const missing = [...acknowledged.keys()].filter((sop) => !view.instances.has(sop));
  for (const sop of missing) problems.push(`cycle ${cycle}: acknowledged ${sop} not in the edge database`);
  counts.crashViolations += broken.length + missing.length;
}

async function finalCount(
  target: KillTarget,
  options: DrillOptions,
  started: number,
  site: Site,
  dataDir: string,
  acknowledged: Map<string, Film>,
  counts: Counts,
  problems: string[],
  settleMs: number | undefined,
  backlog: number,
): Promise<DrillReport> {
  const { reached, lost, duplicated, stuck } = await countDelivery(site, dataDir, acknowledged.values(), problems);
  const edgeDb = readEdgeDb(dataDir);
  const atGateway = await readGatewayStore(site.hospital.store, site.station.stationId);
  // The DICOM files the gateway holds are the very bytes the edge stored.
  let corrupted = 0;
  const store = await storeFromUrl(site.hospital.store);
  try {
    for (const film of acknowledged.values()) {
      const sha = edgeDb.instances.get(film.sopInstanceUid)?.contentSha256;
      if (!sha || !atGateway.get(film.sopInstanceUid)?.get(sha)?.has('instance.dcm')) continue;
      const edgeFile = readFileSync(path.join(dataDir, 'objects', sha.slice(0, 2), `${sha}.dcm`));
      const gatewayFile = await readGatewayObject(store, site.station.stationId, film, sha);
      if (!gatewayFile || !edgeFile.equals(gatewayFile)) {
        corrupted += 1;
        problems.push(`the gateway's DICOM differs from the edge's: ${film.sopInstanceUid}`);
      }
    }
  } finally {
    await store.close();
  }
  return report(
    `kill-${target}`,
    options,
    started,
    {
      cycles: counts.kills,
      filmsSent: counts.sent,
      acknowledged: counts.acknowledged,
      notAcknowledgedThenResent: counts.resent,
      reachedTheHospital: reached,
      acknowledgedLost: lost,
      stuck,
      duplicated,
      corrupted,
      brokenPromisesAfterCrashes: counts.crashViolations,
      checksAfterCrashes: counts.crashChecks,
      outboxItemsWaitingAtTheEnd: backlog,
      settleS: settleMs === undefined ? 'did not settle' : Math.round(settleMs / 100) / 10,
    },
    ['acknowledgedLost', 'stuck', 'duplicated', 'corrupted', 'brokenPromisesAfterCrashes'],
    problems,
  );
}

async function readGatewayObject(store: ObjectStore, stationId: string, film: Film, sha: string): Promise<Buffer | undefined> {
  try {
    return Buffer.from(await store.getBytes(instanceFileKey(instancePrefix(stationId, film.studyInstanceUid, film.sopInstanceUid, sha), 'instance.dcm')));
  } catch {
    return undefined;
  }
}

async function killProcess(agent: AgentProcess | undefined): Promise<void> {
  if (!agent || agent.child.exitCode !== null || agent.child.signalCode !== null) return;
  await agent.stop('SIGKILL');
}
