/**
 * The hospital link down for a long time: the gateway stopped for a quarter of an hour (as in issue 14; 20 s with
 * `--quick`) while the X-ray unit keeps sending films to the edge, urgent and routine, spread over the first four
 * fifths of the outage; then the gateway is started again. `--cycles N` repeats the whole outage N times (default 1):
 * the length of one outage is fixed, 15 minutes, or CXR_DRILL_OUTAGE_S seconds when that is set (to try the drill at
 * another length). The edge runs with the product's link retry, 1 s doubling to 30 s (`--link-retry-max-ms`
 * default; 4 s with `--quick`, to keep it short), and its info log. Measured for each outage:
 * - drain: from the gateway ready again to the edge's outbox empty (link up, nothing pending);
 * - first urgent: from the gateway ready to the first urgent study whole at the gateway (result, preview, DICOM and
 *   consult, from the gateway's audit trail);
 * - order: items of urgent studies delivered after the first item of a routine study (the gateway's audit trail:
 *   every film was analysed before the gateway came back, so all urgent work was waiting before any routine);
 * - log lines about the link during the outage, against the most rounds its retry schedule allows; and the
 *   per-item retry lines (an `outboxId` and a retry) of the whole drill, which must be none.
 * At the end, with the edge settled and stopped: every film acknowledged is at the gateway, none lost, stuck or
 * doubled (support/delivery.ts).
 */
import { FilmFactory, type Film } from '../support/films.js';
import { collectLogLines, countDelivery, edgeInstances, finished, settleEdge, type LogLine } from '../support/delivery.js';
import { consultStudies, readAuditTrail } from '../support/hospital-api.js';
import { seededRandom, type Random } from '../support/random.js';
import { startSite, storescu, waitFor, type AgentProcess, type Site } from '../support/site.js';
import { report, type Drill, type DrillOptions, type DrillReport } from '../report.js';
import { mkdirWork, seconds, sleep } from '../support/util.js';

const FULL_OUTAGE_MS = 15 * 60_000;
const QUICK_OUTAGE_MS = 20_000;
/** The product's default longest wait between two checks of a link that is down. */
const LINK_RETRY_MAX_MS = 30_000;
const QUICK_LINK_RETRY_MAX_MS = 4_000;
/** One film every 15 s of the outage's first four fifths, on average (at least 6). */
const FILM_EVERY_MS = 15_000;
/**
 * The agent's lines about the link (edge-agent/src/outbox/sender.ts: "gateway unreachable", "gateway still
 * unreachable, will retry"), one a round while it is down; and lines about retrying one outbox item (they carry its
 * `outboxId`: "gateway failed an item, will retry it"), which a link that is down must not cause. Told apart by their
 * fields, not their exact wording, so that the drill counts the same on older agents.
 */
const isItemRetryLine = (line: LogLine): boolean => line.outboxId !== undefined && /retry/iu.test(line.msg);
const isLinkLine = (line: LogLine): boolean => line.outboxId === undefined && /unreachable/iu.test(line.msg);

export const outageDrill: Drill = {
  name: 'outage',
  summary: 'the hospital link down 15 minutes while films arrive; drain time, first urgent study, urgent before routine, log lines per retry round',
  run: (options) => runOutage(options),
};

interface OutageFigures {
  noticeMs: number | undefined;
  drainMs: number | undefined;
  firstUrgentMs: number | undefined;
  urgentAfterRoutine: number;
  /** items of the outage's studies the gateway's audit trail shows (the order is checked on these) */
  items: number;
  linkLines: number;
  roundsAtMost: number;
}

async function runOutage(options: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const cycles = options.cycles ?? 1;
  const outageMs = outageLength(options);
  const retryMaxMs = options.quick ? QUICK_LINK_RETRY_MAX_MS : LINK_RETRY_MAX_MS;
  const random = seededRandom(options.seed);
  const films = new FilmFactory(mkdirWork(options.workDir, 'films'));
  const dataDir = mkdirWork(options.workDir, 'edge');
  const problems: string[] = [];
  const acknowledged = new Map<string, Film>();
  const outages: OutageFigures[] = [];
  let notAcknowledged = 0;
  const site = await startSite('tram-outage');
  let edge: AgentProcess | undefined;
  try {
    edge = await site.startEdge(dataDir, { args: ['--log-level', 'info', '--link-retry-max-ms', String(retryMaxMs), '--upload-chunk-bytes', String(8 * 1024 * 1024)] });
    const log = collectLogLines(edge);
    for (let cycle = 1; cycle <= cycles; cycle++) {
      const running = edge;
      await waitFor('the link to be up', async () => ((await running.api<{ state: string }>('/api/link')).state === 'online' ? true : undefined), 60_000, 200);
      const batch = plannedFilms(films, random, outageMs);
      await site.hospital.stopGateway();
      const downAt = Date.now();
      options.progress(`outage ${cycle}/${cycles}: the gateway is down for ${seconds(outageMs)} s; ${batch.length} films arrive meanwhile`);

      for (const { film, atMs } of batch) {
        await sleep(downAt + atMs - Date.now());
        let outcome = await storescu(running.dicomPort, [film.file]);
        if (outcome.code !== 0) outcome = await storescu(running.dicomPort, [film.file]);
        if (outcome.code === 0) acknowledged.set(film.sopInstanceUid, film);
        else {
          notAcknowledged += 1;
          problems.push(`outage ${cycle}: a film got no Success with the link down: ${film.sopInstanceUid}`);
        }
      }
      // Everything analysed before the gateway is back, so that all urgent work is waiting before any routine.
      const mine = batch.map((b) => b.film).filter((f) => acknowledged.has(f.sopInstanceUid));
      const analysed = await waitFor(
        'every film of the outage analysed',
        async () => {
          const instances = await edgeInstances(running);
          return mine.every((f) => { const i = instances.get(f.sopInstanceUid); return i !== undefined && finished(i); }) ? true : undefined;
        },
        Math.max(downAt + outageMs - Date.now(), 0) + 120_000,
        500,
      ).catch(() => false);
      if (!analysed) problems.push(`outage ${cycle}: films not all analysed by the end of the outage`);
      await sleep(downAt + outageMs - Date.now());

      await site.hospital.startGateway();
      const upAt = Date.now();
      const { noticeMs, drainMs } = await watchDrain(running, upAt);
      if (drainMs === undefined) problems.push(`outage ${cycle}: the outbox did not empty within 10 minutes of the gateway's return`);
      const duringOutage = log.filter((line) => line.time >= downAt && line.time < upAt && isLinkLine(line)).length;
      const roundsAtMost = mostRounds(upAt - downAt, retryMaxMs);
      if (duringOutage > roundsAtMost) problems.push(`outage ${cycle}: ${duringOutage} log lines about the link, more than its ${roundsAtMost} retry rounds`);
      if (duringOutage === 0) problems.push(`outage ${cycle}: no log line said the link was down`);
      const order = await deliveryOrder(site, mine, downAt, upAt);
      problems.push(...order.problems.map((p) => `outage ${cycle}: ${p}`));
      outages.push({ noticeMs, drainMs, firstUrgentMs: order.firstUrgentMs, urgentAfterRoutine: order.urgentAfterRoutine, items: order.items, linkLines: duringOutage, roundsAtMost });
      options.progress(
        `outage ${cycle}/${cycles}: drained in ${drainMs === undefined ? 'never' : seconds(drainMs)} s, first urgent study after ${order.firstUrgentMs === undefined ? 'never' : seconds(order.firstUrgentMs)} s, ${duringOutage} link log lines`,
      );
    }

    // The end: everything settles and is counted with the agent stopped.
    const settled = await settleEdge(edge);
    if (settled === undefined) problems.push('the edge did not settle within 10 minutes');
    const perItemLines = log.filter(isItemRetryLine).length;
    const errorLines = log.filter((line) => line.level >= 50);
    for (const line of errorLines.slice(0, 5)) problems.push(`edge error log line: ${line.msg}`);
    const stopped = await edge.stop();
    edge = undefined;
    if (stopped !== 0) problems.push(`the edge exited ${stopped} on SIGTERM`);
    const delivery = await countDelivery(site, dataDir, acknowledged.values(), problems);
    const worst = (pick: (o: OutageFigures) => number | undefined): number | string => {
      const values = outages.map(pick);
      return values.some((v) => v === undefined) ? 'never' : seconds(Math.max(...(values as number[])));
    };
    const urgent = [...acknowledged.values()].filter((f) => f.kind === 'urgent').length;
    return report(
      'outage',
      options,
      started,
      {
        cycles,
        outageS: seconds(outageMs),
        linkRetryMaxS: seconds(retryMaxMs),
        filmsAcknowledged: acknowledged.size,
        urgentFilms: urgent,
        routineFilms: acknowledged.size - urgent,
        filmsNotAcknowledged: notAcknowledged,
        linkBackS: worst((o) => o.noticeMs),
        drainS: worst((o) => o.drainMs),
        firstUrgentS: worst((o) => o.firstUrgentMs),
        itemsDelivered: outages.reduce((n, o) => n + o.items, 0),
        urgentAfterRoutine: outages.reduce((n, o) => n + o.urgentAfterRoutine, 0),
        linkLogLines: outages.reduce((n, o) => n + o.linkLines, 0),
        linkRoundsAtMost: outages.reduce((n, o) => n + o.roundsAtMost, 0),
        perItemRetryLogLines: perItemLines,
        errorLogLines: errorLines.length,
        reachedTheHospital: delivery.reached,
        lost: delivery.lost,
        stuck: delivery.stuck,
        duplicated: delivery.duplicated,
      },
      ['lost', 'urgentAfterRoutine', 'perItemRetryLogLines', 'stuck', 'duplicated'],
      problems,
    );
  } finally {
    if (edge) await edge.stop('SIGKILL');
    await site.close();
  }
}

function outageLength(options: DrillOptions): number {
  const override = Number(process.env.CXR_DRILL_OUTAGE_S);
  if (process.env.CXR_DRILL_OUTAGE_S && Number.isFinite(override) && override > 0) return override * 1000;
  return options.quick ? QUICK_OUTAGE_MS : FULL_OUTAGE_MS;
}

/** The films of one outage, urgent and routine (at least one of each), at random moments of its first 4/5. */
function plannedFilms(factory: FilmFactory, random: Random, outageMs: number): { film: Film; atMs: number }[] {
  const window = outageMs * 0.8;
  const count = Math.max(6, Math.round(window / FILM_EVERY_MS));
  const kinds = Array.from({ length: count }, (_, i): Film['kind'] => (i === 0 ? 'urgent' : i === 1 ? 'routine' : random.next() < 0.5 ? 'urgent' : 'routine'));
  const times = Array.from({ length: count }, () => random.int(1000, Math.max(1000, Math.round(window)))).sort((x, y) => x - y);
  const shuffled = kinds.map((kind) => ({ kind, key: random.next() })).sort((x, y) => x.key - y.key);
  return shuffled.map(({ kind }, i) => ({ film: factory.make(kind), atMs: times[i] ?? 0 }));
}

/** Reads the edge's link every 100 ms: when it was up again, and when nothing was pending (ms from `from`). */
async function watchDrain(edge: AgentProcess, from: number): Promise<{ noticeMs: number | undefined; drainMs: number | undefined }> {
  let noticeMs: number | undefined;
  const deadline = from + 600_000;
  while (Date.now() < deadline) {
    try {
      const link = await edge.api<{ state: string; pending: number }>('/api/link');
      if (link.state === 'online') {
        noticeMs ??= Date.now() - from;
        if (link.pending === 0) return { noticeMs, drainMs: Date.now() - from };
      }
    } catch {
      // the page busy: read again
    }
    await sleep(100);
  }
  return { noticeMs, drainMs: undefined };
}

/**
 * The most link checks a link down for `downMs` can take: the first, then one after each wait of the schedule (1 s
 * doubling to `maxMs`, each at least 0.8 of its nominal length).
 */
export function mostRounds(downMs: number, maxMs: number): number {
  let rounds = 1;
  let elapsed = 0;
  for (let round = 1; ; round++) {
    elapsed += 0.8 * Math.min(maxMs, 1000 * 2 ** Math.min(round - 1, 16));
    if (elapsed > downMs) return rounds;
    rounds += 1;
  }
}

/**
 * From the gateway's audit trail after its return: when the first urgent study was whole there, and how many items
 * of urgent studies came after the first item of a routine one.
 */
async function deliveryOrder(site: Site, films: readonly Film[], downAt: number, upAt: number): Promise<{ firstUrgentMs: number | undefined; urgentAfterRoutine: number; items: number; problems: string[] }> {
  const problems: string[] = [];
  const kindOf = new Map(films.map((f) => [f.studyInstanceUid, f.kind]));
  const actor = `station:${site.station.stationId}`;
  const events = (await readAuditTrail(site.hospital.store)).filter((e) => e.actor === actor && Date.parse(e.at) >= downAt);
  const consults = await consultStudies(
    site.hospital.store,
    events.filter((e) => e.action === 'consult.request').map((e) => e.target),
  );
  const ofStudy = events
    .map((e) => ({ at: Date.parse(e.at), action: e.action, study: e.action === 'consult.request' ? consults.get(e.target) : e.target }))
    .filter((e): e is { at: number; action: string; study: string } => e.study !== undefined && kindOf.has(e.study));
  const firstRoutine = Math.min(...ofStudy.filter((e) => kindOf.get(e.study) === 'routine').map((e) => e.at));
  const late = ofStudy.filter((e) => kindOf.get(e.study) === 'urgent' && e.at > firstRoutine);
  for (const e of late.slice(0, 5)) problems.push(`urgent study ${e.study}: ${e.action} delivered after a routine item`);

  let firstUrgentAt: number | undefined;
  for (const film of films.filter((f) => f.kind === 'urgent')) {
    const mine = ofStudy.filter((e) => e.study === film.studyInstanceUid);
    const whole = ['ingest.result', 'ingest.preview', 'ingest.dicom', 'consult.request'].every((action) => mine.some((e) => e.action === action));
    if (!whole) continue;
    const at = Math.max(...mine.map((e) => e.at));
    firstUrgentAt = firstUrgentAt === undefined ? at : Math.min(firstUrgentAt, at);
  }
  if (ofStudy.length === 0) problems.push("no item of the outage's studies in the gateway's audit trail");
  return { firstUrgentMs: firstUrgentAt === undefined ? undefined : firstUrgentAt - upAt, urgentAfterRoutine: late.length, items: ofStudy.length, problems };
}
