/**
 * Redis kill -9 and an empty restart, N times, under two gateway processes on one Redis and one store (neither
 * restarted), while a station keeps asking for consults through its own routes (the AI result PUT, then the
 * consult, with its token, on either process; a 5xx or no answer is replayed, as the edge does) and a radiologist
 * holds a claim on one of them. After each empty restart each gateway's worklist is read every 100 ms until it
 * shows every consult acknowledged so far (a 2xx to the station) and the held claim: that wait, from the moment
 * Redis takes connections again, is the gap in service. Then another radiologist tries to take the held consult
 * (refused, 409, is right), its claimant reports it, and the oldest open ones are reported too, so the worklist
 * stays short and the reported ones pile up. Counted:
 * - lost: an acknowledged consult, not reported, missing from a worklist 60 s after the restart or at the end;
 * - doubled: a consult twice on one worklist;
 * - claims lost: a held claim not shown on a worklist, taken by another radiologist, or its radiologist unable to
 *   report it;
 * - resurrected: a reported consult on a worklist again.
 * Sessions live only in Redis: radiologists sign in again after a loss, as the page does.
 */
import { createHash } from 'node:crypto';
import type { Priority } from '@cxr/inference';
import { seededRandom, type Random } from '../support/random.js';
import { errorCode, RadiologistSession, startSecondGateway, StationClient, untilAnswered, type GatewayProcess, type WorklistRow } from '../support/hospital-api.js';
import { startSite, type Site } from '../support/site.js';
import { report, type Drill, type DrillOptions, type DrillReport } from '../report.js';
import { median, seconds, sleep } from '../support/util.js';

/** After this long without every consult back, the missing ones count as lost. */
const GAP_TIMEOUT_MS = 60_000;
/** Open consults kept on the worklist between cycles (the oldest are reported beyond this). */
const OPEN_AT_MOST = 30;
/** UIDs of this drill's studies: our root (edge-agent/src/spool/part10.ts), arc 9.2 for drill consults. */
const uidRoot = '1.2.826.0.1.3680043.10.1417.9.2.';
const rank: Record<Priority, number> = { stat: 1, urgent: 2, routine: 3 };
const finding: Record<Priority, { code: string; display: string; displayVi: string } | null> = {
  stat: { code: 'pneumothorax', display: 'Pneumothorax', displayVi: 'Tràn khí màng phổi' },
  urgent: { code: 'pneumonia', display: 'Pneumonia', displayVi: 'Viêm phổi' },
  routine: null,
};

export const redisLossDrill: Drill = {
  name: 'redis-loss',
  summary: 'Redis kill -9 and an empty restart under two gateways while consults arrive and a claim is held; the gap until every worklist is whole again',
  run: (options) => runRedisLoss(options),
};

interface Consult {
  readonly consultId: string;
  readonly priority: Priority;
}

interface Counts {
  lost: Set<string>;
  doubled: Set<string>;
  resurrected: Set<string>;
  claimsLost: number;
  stationRetries: number;
  /** Redis is down now (killed, not yet started again); how many times it was killed */
  redisDown: boolean;
  kills: number;
  /** consults whose request was made or answered across a Redis loss */
  askedAcrossLoss: number;
  gapsMs: number[];
  gapsMissed: number;
  downMs: number[];
}

/** What the drill knows: consults the station got a 2xx for, and those a radiologist signed. */
class Ledger {
  readonly acknowledged = new Map<string, Consult>();
  readonly reported = new Set<string>();

  open(): string[] {
    return [...this.acknowledged.keys()].filter((id) => !this.reported.has(id));
  }
}

async function runRedisLoss(options: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const cycles = options.cycles ?? (options.quick ? 3 : 20);
  const random = seededRandom(options.seed);
  const problems: string[] = [];
  const counts: Counts = { lost: new Set(), doubled: new Set(), resurrected: new Set(), claimsLost: 0, stationRetries: 0, redisDown: false, kills: 0, askedAcrossLoss: 0, gapsMs: [], gapsMissed: 0, downMs: [] };
  const ledger = new Ledger();
  const site = await startSite('tram-redis');
  let second: GatewayProcess | undefined;
  let stationLoop: StationLoop | undefined;
  try {
    second = await startSecondGateway(site.hospital);
    const gateways = [site.hospital.url, second.url] as const;
    await site.hospital.addRadiologist('bs.khac', 'mat-khau-dai-khac');
    const claimant = new RadiologistSession('bs.drill', 'mat-khau-dai-drill');
    const other = new RadiologistSession('bs.khac', 'mat-khau-dai-khac');
    const readers = [claimant, other] as const;
    const anyGateway = (): string => random.pick(gateways);

    // A random of its own: the station runs beside the cycles, and a shared one would be drawn in a different order
    // from one run to the next.
    stationLoop = new StationLoop(site, gateways, seededRandom(options.seed + 1), ledger, counts, problems);
    stationLoop.start();
    await waitUntil(() => ledger.acknowledged.size >= 8, 60_000);

    for (let cycle = 1; cycle <= cycles; cycle++) {
      const held = await holdAClaim(claimant, anyGateway(), ledger, random);
      if (!held) {
        problems.push(`cycle ${cycle}: no open consult could be claimed before the kill`);
        break;
      }
      await sleep(random.int(300, 1500));

      counts.redisDown = true;
      counts.kills += 1;
      await site.hospital.redis.kill();
      const killedAt = Date.now();
      await sleep(random.int(200, 2000));
      await site.hospital.redis.start({ empty: true });
      counts.redisDown = false;
      const backAt = Date.now();
      counts.downMs.push(backAt - killedAt);

      const waits = await Promise.all(gateways.map((url, i) => waitForWholeWorklist({ gateway: url, reader: readers[i] ?? claimant, held, claimant: claimant.username, since: backAt, when: `cycle ${cycle}` }, ledger, counts, problems)));
      let claimLost = false;
      for (const [i, wait] of waits.entries()) {
        const which = i === 0 ? 'the first gateway' : 'the second gateway';
        if (wait.gapMs !== undefined) counts.gapsMs.push(wait.gapMs);
        else counts.gapsMissed += 1;
        for (const id of wait.missing) {
          counts.lost.add(id);
          problems.push(`cycle ${cycle}: acknowledged consult ${id} not on the worklist of ${which} ${GAP_TIMEOUT_MS / 1000} s after Redis came back`);
        }
        if (!wait.claimShown) {
          claimLost = true;
          problems.push(`cycle ${cycle}: the held consult ${held} not shown claimed by ${claimant.username} on ${which} after the loss`);
        }
      }

      // Nobody else may take it; its claimant may still report it.
      const taken = await untilAnswered(() => other.call(anyGateway(), 'POST', `/api/v1/consults/${held}/claim`), { timeoutMs: 20_000 });
      if (taken.status !== 409) {
        claimLost = true;
        problems.push(`cycle ${cycle}: another radiologist's claim of the held consult ${held} answered ${taken.status} ${errorCode(taken)}, not 409`);
      }
      const signed = await untilAnswered(() => claimant.call(anyGateway(), 'POST', `/api/v1/consults/${held}/report`, reportOf(ledger.acknowledged.get(held))), { timeoutMs: 20_000 });
      if (signed.status === 201) ledger.reported.add(held);
      else {
        claimLost = true;
        problems.push(`cycle ${cycle}: the claimant's report of ${held} after the loss answered ${signed.status} ${errorCode(signed)}`);
      }
      if (claimLost) counts.claimsLost += 1;

      await reportTheOldest(claimant, anyGateway, ledger, problems, cycle);
      if (cycle % 5 === 0 || cycle === cycles) {
        options.progress(`redis losses: ${cycle}/${cycles}, ${ledger.acknowledged.size} consults acknowledged, ${ledger.reported.size} reported, gap worst ${seconds(Math.max(0, ...counts.gapsMs))} s`);
      }
    }

    await stationLoop.stop();
    // The end: nothing killed; every acknowledged open consult on both worklists, once, nothing reported.
    const finals = await Promise.all(gateways.map((url, i) => waitForWholeWorklist({ gateway: url, reader: readers[i] ?? claimant, claimant: claimant.username, since: Date.now(), when: 'at the end' }, ledger, counts, problems)));
    for (const [i, wait] of finals.entries()) {
      for (const id of wait.missing) {
        counts.lost.add(id);
        problems.push(`at the end: acknowledged consult ${id} not on the worklist of gateway ${i + 1}`);
      }
    }
    const finalRows = await Promise.all(gateways.map((url, i) => (readers[i] ?? claimant).worklist(url)));
    const inversions = finalRows.map(orderInversions);

    const sorted = [...counts.gapsMs].sort((x, y) => x - y);
    return report(
      'redis-loss',
      options,
      started,
      {
        cycles,
        consultsAcknowledged: ledger.acknowledged.size,
        consultsReported: ledger.reported.size,
        lost: counts.lost.size,
        doubled: counts.doubled.size,
        claimsLost: counts.claimsLost,
        resurrected: counts.resurrected.size,
        gapMedianS: sorted.length > 0 ? seconds(median(sorted)) : 'none',
        gapWorstS: counts.gapsMissed > 0 ? `over ${GAP_TIMEOUT_MS / 1000}` : sorted.length > 0 ? seconds(sorted.at(-1) ?? 0) : 'none',
        redisDownMedianS: seconds(median([...counts.downMs].sort((x, y) => x - y))),
        askedAcrossALoss: counts.askedAcrossLoss,
        stationReplays: counts.stationRetries,
        finalOrderInversions: Math.max(...inversions),
      },
      ['lost', 'doubled', 'claimsLost', 'resurrected'],
      problems,
    );
  } finally {
    await stationLoop?.stop();
    await second?.stop();
    await site.close();
  }
}

/**
 * The station: asks for one consult after another (its AI result first, as the edge sends it), each replayed until
 * a gateway answers 2xx, at 150 to 600 ms intervals, until stopped.
 */
class StationLoop {
  readonly #site: Site;
  readonly #gateways: readonly string[];
  readonly #random: Random;
  readonly #ledger: Ledger;
  readonly #counts: Counts;
  readonly #problems: string[];
  readonly #station: StationClient;
  #stopped = false;
  #running: Promise<void> | undefined;
  #counter = 0;

  constructor(site: Site, gateways: readonly string[], random: Random, ledger: Ledger, counts: Counts, problems: string[]) {
    this.#site = site;
    this.#gateways = gateways;
    this.#random = random;
    this.#ledger = ledger;
    this.#counts = counts;
    this.#problems = problems;
    this.#station = new StationClient(site.station.stationId, site.station.token);
  }

  start(): void {
    this.#running ??= this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#running;
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#askOne();
      } catch (err) {
        this.#problems.push(`station: ${(err as Error).message}`);
      }
      await sleep(this.#random.int(150, 600));
    }
  }

  async #askOne(): Promise<void> {
    this.#counter += 1;
    const studyUid = `${uidRoot}${this.#counter}`;
    const sopUid = `${studyUid}.1`;
    const priority = this.#random.pick(['stat', 'urgent', 'urgent', 'routine'] as const);
    const stationId = this.#site.station.stationId;
    const sha = createHash('sha256').update(sopUid).digest('hex');
    const onRetry = (): void => {
      this.#counts.stationRetries += 1;
    };
    const put = await untilAnswered(
      () => this.#station.call(this.#random.pick(this.#gateways), 'PUT', `/api/v1/stations/${stationId}/studies/${studyUid}/instances/${sopUid}/${sha}/result`, { result: resultOf(studyUid, sopUid, priority) }),
      { onRetry },
    );
    if (put.status !== 200 && put.status !== 201) throw new Error(`the result of study ${studyUid} answered ${put.status} ${errorCode(put)}`);
    const body = { studyInstanceUid: studyUid, priority, reason: priority === 'routine' ? 'requested' : 'policy' };
    const killsBefore = this.#counts.kills;
    const downBefore = this.#counts.redisDown;
    const asked = await untilAnswered(() => this.#station.call(this.#random.pick(this.#gateways), 'POST', `/api/v1/stations/${stationId}/consults`, body), { onRetry });
    if (asked.status !== 200 && asked.status !== 201) throw new Error(`the consult for study ${studyUid} answered ${asked.status} ${errorCode(asked)}`);
    const { consultId } = asked.body as { consultId: string };
    if (downBefore || this.#counts.kills !== killsBefore) this.#counts.askedAcrossLoss += 1;
    this.#ledger.acknowledged.set(consultId, { consultId, priority });
  }
}

/** A TriageResult as the edge sends it: a positive finding for stat and urgent, none for routine. */
function resultOf(studyInstanceUid: string, sopInstanceUid: string, priority: Priority): Record<string, unknown> {
  const positive = finding[priority];
  return {
    schemaVersion: 1,
    sopInstanceUid,
    studyInstanceUid,
    applicable: true,
    applicability: { verified: true, notes: [] },
    probabilities: [positive ? 0.9 : 0.1],
    findings: [{ code: positive?.code ?? 'pneumonia', display: positive?.display ?? 'Pneumonia', displayVi: positive?.displayVi ?? 'Viêm phổi', probability: positive ? 0.9 : 0.1, threshold: 0.5, positive: positive !== null, priority }],
    priority,
    model: { name: 'drill', version: '1.0.0', sha256: 'd'.repeat(64) },
    timingsMs: { decode: 1, preprocess: 1, infer: 1, total: 3 },
  };
}

/** The report a radiologist signs: agreeing with the AI's flagged finding, if any. */
function reportOf(consult: Consult | undefined): Record<string, unknown> {
  const positive = consult ? finding[consult.priority] : null;
  return { impression: 'Đồng ý với kết quả AI.', findings: positive ? [{ code: positive.code, agree: true }] : [] };
}

/** Claims an open consult for the claimant (a random one of those acknowledged and not yet reported). */
async function holdAClaim(claimant: RadiologistSession, gateway: string, ledger: Ledger, random: Random): Promise<string | undefined> {
  for (let tries = 0; tries < 20; tries++) {
    const open = ledger.open();
    if (open.length === 0) {
      await sleep(500);
      continue;
    }
    const consultId = random.pick(open);
    const answer = await untilAnswered(() => claimant.call(gateway, 'POST', `/api/v1/consults/${consultId}/claim`), { timeoutMs: 20_000 });
    if (answer.status === 200) return consultId;
  }
  return undefined;
}

/** Reports the oldest open consults (claim, then report) until at most OPEN_AT_MOST are left. */
async function reportTheOldest(claimant: RadiologistSession, anyGateway: () => string, ledger: Ledger, problems: string[], cycle: number): Promise<void> {
  // Only consults the station was answered for: one still being asked for has its report form unknown here.
  const rows = (await claimant.worklist(anyGateway())).filter((r) => ledger.acknowledged.has(r.consultId));
  for (const row of rows.slice(0, Math.max(0, rows.length - OPEN_AT_MOST))) {
    const claimed = await untilAnswered(() => claimant.call(anyGateway(), 'POST', `/api/v1/consults/${row.consultId}/claim`), { timeoutMs: 20_000 });
    if (claimed.status !== 200) {
      problems.push(`cycle ${cycle}: claim of ${row.consultId} with Redis up answered ${claimed.status} ${errorCode(claimed)}`);
      continue;
    }
    const signed = await untilAnswered(() => claimant.call(anyGateway(), 'POST', `/api/v1/consults/${row.consultId}/report`, reportOf(ledger.acknowledged.get(row.consultId))), { timeoutMs: 20_000 });
    if (signed.status === 201) ledger.reported.add(row.consultId);
    else problems.push(`cycle ${cycle}: report of ${row.consultId} with Redis up answered ${signed.status} ${errorCode(signed)}`);
  }
}

interface WorklistWait {
  /** from `since` until the worklist was whole; undefined when it never was within GAP_TIMEOUT_MS */
  readonly gapMs: number | undefined;
  /** acknowledged open consults still missing at the last read */
  readonly missing: readonly string[];
  readonly claimShown: boolean;
}

/**
 * Reads one gateway's worklist every 100 ms until it holds every consult acknowledged before the read (and not
 * reported), with `held` shown claimed by its claimant; every read is checked for doubles and reported consults.
 */
async function waitForWholeWorklist(
  watch: { gateway: string; reader: RadiologistSession; held?: string; claimant: string; since: number; when: string },
  ledger: Ledger,
  counts: Counts,
  problems: string[],
): Promise<WorklistWait> {
  const { gateway, reader, held, since } = watch;
  const deadline = since + GAP_TIMEOUT_MS;
  let missing: string[] = ledger.open();
  let claimShown = held === undefined;
  for (;;) {
    const expected = ledger.open();
    try {
      const rows = await reader.worklist(gateway);
      inspect(rows, ledger, counts, problems, `${watch.when}, ${gateway}`);
      const shown = new Set(rows.map((r) => r.consultId));
      missing = expected.filter((id) => !shown.has(id));
      claimShown = held === undefined || rows.find((r) => r.consultId === held)?.claimedBy === watch.claimant;
      if (missing.length === 0 && claimShown) return { gapMs: Date.now() - since, missing, claimShown };
    } catch {
      // Redis reconnecting, or the sign-in again not possible yet: read again.
    }
    if (Date.now() >= deadline) return { gapMs: undefined, missing, claimShown };
    await sleep(100);
  }
}

/** A consult twice on one worklist, or a reported one back on it. */
function inspect(rows: readonly WorklistRow[], ledger: Ledger, counts: Counts, problems: string[], where: string): void {
  const seen = new Set<string>();
  for (const row of rows) {
    if (seen.has(row.consultId) && !counts.doubled.has(row.consultId)) {
      counts.doubled.add(row.consultId);
      problems.push(`${where}: consult ${row.consultId} twice on the worklist`);
    }
    seen.add(row.consultId);
    if (ledger.reported.has(row.consultId) && !counts.resurrected.has(row.consultId)) {
      counts.resurrected.add(row.consultId);
      problems.push(`${where}: reported consult ${row.consultId} back on the worklist`);
    }
  }
}

/** Rows out of queue order (priority, then arrival): 0 when the order is right. */
function orderInversions(rows: readonly WorklistRow[]): number {
  let inversions = 0;
  for (let i = 1; i < rows.length; i++) {
    const a = rows[i - 1];
    const b = rows[i];
    if (a && b && (rank[a.priority] > rank[b.priority] || (rank[a.priority] === rank[b.priority] && a.receivedAt > b.receivedAt))) inversions += 1;
  }
  return inversions;
}

async function waitUntil(condition: () => boolean, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the first consults');
    await sleep(100);
  }
}
