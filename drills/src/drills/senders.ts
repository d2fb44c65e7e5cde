/**
 * Stalled and parallel senders against one `cxr-edge` with a short DICOM idle limit (--dimse-timeout-ms), N rounds:
 * in each, S raw senders start a film and stop mid-dataset, holding their connection, while P storescu processes
 * (DCMTK, as real units) each send K new films (FilmFactory: new UIDs every time). Counted:
 * - parallel films acknowledged and refused (none may be refused), and the longest a parallel sender waited for an
 *   answer (from its C-STORE request to the response, DCMTK's own log timestamps): a stalled sender must not hold
 *   the others up;
 * - stalled associations the agent ended within its limit (plus a margin), and those still open after it;
 * - partial files left in tmp/ (or still open), the agent's descriptors before and after;
 * - every acknowledged film analysed (GET /api/studies/:uid, by SOP Instance UID), none of the stalled ones recorded.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { RawStoreScu } from '../../../edge-agent/test/support/raw-store-scu.js';
import { FilmFactory, squeezenet, type Film } from '../support/films.js';
import { readSpecimen } from '../support/mutate.js';
import { seededRandom, type Random } from '../support/random.js';
import { startAgent, storescu, waitFor, type AgentProcess } from '../support/site.js';
import { report, type Drill, type DrillOptions, type DrillReport } from '../report.js';
import { descriptors, openFilesUnder } from '../support/descriptors.js';
import { sleep } from '../support/util.js';

export const sendersDrill: Drill = {
  name: 'senders',
  summary: 'stalled raw senders (mid-dataset) beside parallel storescu units: aborted within the limit, nothing left, nobody held up, nothing refused or lost',
  run: runSenders,
};

/** The agent's idle limit in this drill, and how late past it a stalled association may still end. */
const idleLimitMs = 2000;
const marginMs = 3000;
/** Descriptors the agent may hold beyond its count at the start (worker threads, keep-alive sockets). */
const descriptorMargin = 10;

interface StudyView {
  instances: { sopInstanceUid: string; status: string; previewPending: boolean; error: { code: string } | null }[];
}

interface Counts {
  filmsSent: number;
  acknowledged: number;
  refused: number;
  stalled: number;
  stalledEndedInTime: number;
  stalledStillOpen: number;
  stalledEndedEarly: number;
  partialFilesLeft: number;
  waits: number[];
  /** ms from a stalled sender's last byte to the agent ending its association */
  stallEnds: number[];
}

async function runSenders(options: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const rounds = options.cycles ?? (options.quick ? 1 : 10);
  const stalledPerRound = options.quick ? 2 : 6;
  const parallel = options.quick ? 2 : 4;
  const filmsEach = options.quick ? 3 : 6;
  const random = seededRandom(options.seed);
  const films = new FilmFactory(mkdirIn(options.workDir, 'films'));
  const logConfig = path.join(options.workDir, 'storescu-log.cfg');
  // DCMTK's log with millisecond timestamps: when each request went and each response came.
  writeFileSync(
    logConfig,
    [
      'log4cplus.rootLogger = INFO, console',
      'log4cplus.appender.console = log4cplus::ConsoleAppender',
      'log4cplus.appender.console.logToStderr = true',
      'log4cplus.appender.console.ImmediateFlush = true',
      'log4cplus.appender.console.layout = log4cplus::PatternLayout',
      'log4cplus.appender.console.layout.ConversionPattern = %D{%s.%q} %5p: %m%n',
      '',
    ].join('\n'),
  );
  const problems: string[] = [];
  const counts: Counts = { filmsSent: 0, acknowledged: 0, refused: 0, stalled: 0, stalledEndedInTime: 0, stalledStillOpen: 0, stalledEndedEarly: 0, partialFilesLeft: 0, waits: [], stallEnds: [] };
  const acknowledged: Film[] = [];
  const stalledFilms: Film[] = [];
  const agent = await startAgent({
    dataDir: mkdirIn(options.workDir, 'edge'),
    args: ['--model', squeezenet, '--no-model-sync', '--log-level', 'warn', '--dimse-timeout-ms', String(idleLimitMs)],
  });
  const tmpDir = path.join(agent.dataDir, 'tmp');
  try {
    // One film first: the model loaded and its worker running before the descriptors are counted.
    const warmUp = films.make('routine');
    if ((await storescu(agent.dicomPort, [warmUp.file])).code !== 0) throw new Error('the first film was not stored');
    await waitAnalysed(agent, [warmUp]);
    const descriptorsAtStart = descriptors(agent);

    for (let round = 1; round <= rounds; round++) {
      const stalls = Array.from({ length: stalledPerRound }, (_, i) => {
        // Half stall before the units start, half while they send.
        const delayMs = i < stalledPerRound / 2 ? 0 : random.int(100, 800);
        const film = films.make(random.next() < 0.5 ? 'urgent' : 'routine');
        stalledFilms.push(film);
        return stall(agent, film, delayMs, random, counts, problems);
      });
      await sleep(150);
      const units = Array.from({ length: parallel }, () => {
        const batch = Array.from({ length: filmsEach }, () => films.make(random.next() < 0.4 ? 'urgent' : 'routine'));
        return sendAsUnit(agent, batch, logConfig, counts, problems).then((ok) => acknowledged.push(...ok));
      });
      await Promise.all([...stalls, ...units]);
      if (agent.child.exitCode !== null || agent.child.signalCode !== null) throw new Error(`the edge exited (${agent.child.exitCode ?? agent.child.signalCode}) in round ${round}`);
      // Every transfer of the round has ended: tmp/ empties within a moment.
      const left = await waitFor('tmp/ empty', async () => (readdirSync(tmpDir).length === 0 ? 0 : undefined), 2000, 50).catch(() => readdirSync(tmpDir).length);
      if (left > 0) {
        counts.partialFilesLeft += left;
        problems.push(`round ${round}: ${left} partial files left in tmp/`);
      }
      if (round % 5 === 0 || round === rounds) {
        options.progress(`round ${round}/${rounds}: ${counts.acknowledged} acknowledged, ${counts.refused} refused, ${counts.stalledEndedInTime}/${counts.stalled} stalled ended in time, longest wait ${Math.max(0, ...counts.waits)} ms`);
      }
    }

    await waitAnalysed(agent, acknowledged).catch((err: unknown) => problems.push((err as Error).message));
    let lost = 0;
    let notAnalysed = 0;
    for (const film of acknowledged) {
      const instance = (await studyOf(agent, film)).find((i) => i.sopInstanceUid === film.sopInstanceUid);
      if (!instance) {
        lost += 1;
        problems.push(`acknowledged, not at the edge: ${film.sopInstanceUid}`);
      } else if (instance.status !== 'inferred' || instance.previewPending) {
        notAnalysed += 1;
        problems.push(`acknowledged, not analysed: ${film.sopInstanceUid} (${instance.status}${instance.error ? ` ${instance.error.code}` : ''})`);
      }
    }
    let stalledRecorded = 0;
    for (const film of stalledFilms) {
      if ((await studyOf(agent, film)).some((i) => i.sopInstanceUid === film.sopInstanceUid)) {
        stalledRecorded += 1;
        problems.push(`a film cut short was recorded: ${film.sopInstanceUid}`);
      }
    }
    const openTmp = openFilesUnder(agent, tmpDir);
    for (const target of openTmp) problems.push(`still open: ${target}`);
    const tmpLeft = readdirSync(tmpDir).length;
    const descriptorsAtEnd = descriptors(agent);
    const leakedDescriptors = Math.max(0, descriptorsAtEnd - descriptorsAtStart - descriptorMargin);
    if (leakedDescriptors > 0) problems.push(`the edge holds ${descriptorsAtEnd} descriptors, ${descriptorsAtStart} at the start`);
    const waits = [...counts.waits].sort((a, b) => a - b);
    const longestWait = waits.at(-1) ?? 0;
    if (longestWait >= idleLimitMs) problems.push(`a parallel sender waited ${longestWait} ms for an answer, as long as the idle limit (${idleLimitMs} ms): held up by a stalled one?`);
    return report(
      'senders',
      options,
      started,
      {
        rounds,
        stalledPerRound,
        parallelSenders: parallel,
        filmsPerSender: filmsEach,
        idleLimitMs,
        filmsSent: counts.filmsSent,
        acknowledged: counts.acknowledged,
        parallelFilmsRefused: counts.refused,
        stalledAssociations: counts.stalled,
        stalledEndedWithinLimit: counts.stalledEndedInTime,
        stalledEndedBeforeLimit: counts.stalledEndedEarly,
        stalledStillOpenAfterLimit: counts.stalledStillOpen,
        stalledEndedAfterMs: counts.stallEnds.length > 0 ? `${Math.min(...counts.stallEnds)}..${Math.max(...counts.stallEnds)}` : 'none',
        longestParallelWaitMs: longestWait,
        medianParallelWaitMs: waits[Math.floor(waits.length / 2)] ?? 0,
        partialFilesLeft: counts.partialFilesLeft + tmpLeft + openTmp.length,
        descriptorsAtStart,
        descriptorsAtEnd,
        leakedDescriptors,
        acknowledgedLost: lost,
        acknowledgedNotAnalysed: notAnalysed,
        stalledRecorded,
      },
      ['acknowledgedLost', 'acknowledgedNotAnalysed', 'partialFilesLeft', 'stalledStillOpenAfterLimit', 'parallelFilmsRefused', 'leakedDescriptors', 'stalledRecorded'],
      problems,
    );
  } finally {
    const code = await agent.stop();
    if (code !== 0) problems.push(`the edge exited ${code} on SIGTERM`);
  }
}

/** A raw sender that sends part of a film, then nothing: the agent must end the association within its limit. */
async function stall(agent: AgentProcess, film: Film, delayMs: number, random: Random, counts: Counts, problems: string[]): Promise<void> {
  await sleep(delayMs);
  const specimen = readSpecimen(path.basename(film.file), readFileSync(film.file));
  counts.stalled += 1;
  let scu: RawStoreScu;
  try {
    scu = await RawStoreScu.associate({ port: agent.dicomPort, sopClassUid: specimen.sopClassUid, transferSyntaxUid: specimen.transferSyntaxUid, timeoutMs: idleLimitMs + marginMs + 5000 });
  } catch (err) {
    problems.push(`a stalling sender got no association: ${(err as Error).message}`);
    return;
  }
  try {
    const stallAfterBytes = random.int(1, specimen.dataset.length - 1);
    const result = await scu.storeRaw({ sopInstanceUid: film.sopInstanceUid, dataset: specimen.dataset, stallAfterBytes });
    const endedByAgent = result.end === 'peer-aborted' || result.end === 'peer-closed';
    if (endedByAgent) counts.stallEnds.push(result.waitedMs);
    if (endedByAgent && result.waitedMs <= idleLimitMs + marginMs) {
      counts.stalledEndedInTime += 1;
      // The limit counts from the last byte: ending much sooner would cut off a slow sender that is still there.
      if (result.waitedMs < idleLimitMs - 250) {
        counts.stalledEndedEarly += 1;
        problems.push(`a stalled association was ended after ${result.waitedMs} ms, before the ${idleLimitMs} ms limit`);
      }
    } else if (result.end === 'response') {
      problems.push(`the agent answered (status ${result.status}) a C-STORE whose dataset stopped at byte ${stallAfterBytes}: ${film.sopInstanceUid}`);
    } else {
      counts.stalledStillOpen += 1;
      problems.push(`a stalled association was still open ${result.waitedMs} ms after its last byte (${result.end})`);
    }
  } finally {
    scu.destroy();
  }
}

/** DCMTK storescu with K films on one association; returns the films it got Success for. */
async function sendAsUnit(agent: AgentProcess, batch: readonly Film[], logConfig: string, counts: Counts, problems: string[]): Promise<Film[]> {
  counts.filmsSent += batch.length;
  const outcome = await storescu(
    agent.dicomPort,
    batch.map((f) => f.file),
    ['-lc', logConfig],
  );
  // DCMTK writes its log to stdout when that is not a terminal, whatever the configuration says.
  const byFile = parseStorescuLog(`${outcome.stdout}\n${outcome.stderr}`);
  const ok: Film[] = [];
  for (const film of batch) {
    const entry = byFile.get(film.file);
    if (entry?.status === 'Success') {
      ok.push(film);
      counts.acknowledged += 1;
      if (entry.waitMs !== undefined) counts.waits.push(entry.waitMs);
    } else {
      counts.refused += 1;
      problems.push(`a parallel film was not acknowledged (${entry?.status ?? `storescu exit ${outcome.code}`}): ${film.sopInstanceUid}`);
    }
  }
  return ok;
}

/** Per file sent: the response status DCMTK logged, and ms from its request to the response. */
function parseStorescuLog(log: string): Map<string, { status: string; waitMs: number | undefined }> {
  const out = new Map<string, { status: string; waitMs: number | undefined }>();
  let file: string | undefined;
  let requestAt: number | undefined;
  for (const line of log.split('\n')) {
    const m = /^(\d+)\.(\d{3})\s+\w+: (.*)$/u.exec(line.trim());
    if (!m) continue;
    const at = Number(m[1]) * 1000 + Number(m[2]);
    const text = m[3] ?? '';
    const sending = /^Sending file: (.*)$/u.exec(text);
    if (sending) {
      file = sending[1];
      requestAt = undefined;
    } else if (text.startsWith('Sending Store Request')) requestAt = at;
    else {
      const response = /^Received Store Response \((.*)\)$/u.exec(text);
      if (response && file) {
        out.set(file, { status: response[1] ?? '', waitMs: requestAt === undefined ? undefined : at - requestAt });
        file = undefined;
      }
    }
  }
  return out;
}

async function studyOf(agent: AgentProcess, film: Film): Promise<StudyView['instances']> {
  try {
    return (await agent.api<StudyView>(`/api/studies/${film.studyInstanceUid}`)).instances;
  } catch {
    return [];
  }
}

/** Until every film given is analysed (or failed); at most 5 minutes. */
async function waitAnalysed(agent: AgentProcess, films: readonly Film[]): Promise<void> {
  const pending = new Set(films.map((f) => f.sopInstanceUid));
  await waitFor(
    `${films.length} films analysed`,
    async () => {
      for (const film of films) {
        if (!pending.has(film.sopInstanceUid)) continue;
        const instance = (await studyOf(agent, film)).find((i) => i.sopInstanceUid === film.sopInstanceUid);
        if (instance && (instance.status === 'failed' || (instance.status === 'inferred' && !instance.previewPending))) pending.delete(film.sopInstanceUid);
      }
      return pending.size === 0 ? true : undefined;
    },
    300_000,
    250,
  );
}

function mkdirIn(parent: string, name: string): string {
  const dir = path.join(parent, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
