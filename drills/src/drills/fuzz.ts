/**
 * Mutated DICOM, N cases (default 3,000): each made from a real file of ../shared/dicom (support/mutate.ts), then
 * sent two ways at once, batch after batch:
 * (a) through `cxr infer FILE... --json` (the built bin, many files per call; every other batch with --force, so
 *     that the decoders see the non-chest films too): every file must get exactly one JSON line, a result or
 *     `{file, error: {code, message}}` with a code of the registry, and the process must neither crash nor hang;
 * (b) through one running `cxr-edge`'s C-STORE receiver by a raw DIMSE sender (DCMTK refuses or re-encodes malformed
 *     files; the raw sender sends the bytes as they are): answers by status; the agent must never exit, its health
 *     stays ok, nothing stays in tmp/ or open, every instance it acknowledged ends analysed or failed with a stable
 *     code, what it refused is in quarantine with its reason, and a clean film still goes through at the end.
 *
 * A case that crashes or hangs `cxr infer` alone is kept in $TMPDIR/cxr-fuzz-findings-SEED/ to reproduce; any case
 * can be made again with `makeCase(specimens, seed, index)`.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ErrorCodes, isDecodableTransferSyntax, parseDicom, Tag } from '@cxr/inference';
import { AssociationRejectedError, RawStoreScu, type RawStoreResult } from '../../../edge-agent/test/support/raw-store-scu.js';
import { dicomDir, FilmFactory, repoRoot, squeezenet } from '../support/films.js';
import { makeCase, readSpecimen, type FuzzCase, type Specimen } from '../support/mutate.js';
import { startAgent, storescu, waitFor, type AgentProcess } from '../support/site.js';
import { report, type Drill, type DrillOptions, type DrillReport } from '../report.js';
import { descriptors, openFilesUnder } from '../support/descriptors.js';

export const fuzzDrill: Drill = {
  name: 'fuzz',
  summary: 'mutated DICOM through `cxr infer` and a raw C-STORE sender: crashes, hangs, answers without a reason, uncoded errors, leaks',
  run: runFuzz,
};

const cxrBin = path.join(repoRoot, 'inference', 'bin', 'cxr.js');
const registry: ReadonlySet<string> = new Set(Object.keys(ErrorCodes));
/** A sender gets its answer within this, or the agent is counted as hanging on that case. */
const answerLimitMs = 60_000;
/** Descriptors the agent may hold beyond its count at the start (worker threads, the page's keep-alive sockets). */
const descriptorMargin = 10;

interface Counts {
  inferResults: number;
  inferErrors: number;
  inferLinesWrong: number;
  inferBatches: number;
  edgeSuccess: number;
  edgeCannotUnderstand: number;
  edgeOutOfResources: number;
  edgeOtherStatus: number;
  edgeAssociationRefused: number;
  edgeDropped: number;
  crashes: number;
  hangs: number;
  uncodedErrors: number;
  healthNotOk: number;
  healthChecks: number;
}

interface Sent {
  readonly fuzzCase: FuzzCase;
  readonly outcome: 'success' | 'cannot-understand' | 'out-of-resources' | 'other' | 'association-refused' | 'dropped' | 'no-answer' | 'no-connection';
}

async function runFuzz(options: DrillOptions): Promise<DrillReport> {
  const started = Date.now();
  const total = options.cycles ?? (options.quick ? 60 : 3000);
  const batchSize = options.quick ? 30 : 50;
  const specimens = loadSpecimens();
  const casesDir = mkdirIn(options.workDir, 'cases');
  const findingsDir = path.join(tmpdir(), `cxr-fuzz-findings-${options.seed}`);
  const problems: string[] = [];
  const counts: Counts = {
    inferResults: 0,
    inferErrors: 0,
    inferLinesWrong: 0,
    inferBatches: 0,
    edgeSuccess: 0,
    edgeCannotUnderstand: 0,
    edgeOutOfResources: 0,
    edgeOtherStatus: 0,
    edgeAssociationRefused: 0,
    edgeDropped: 0,
    crashes: 0,
    hangs: 0,
    uncodedErrors: 0,
    healthNotOk: 0,
    healthChecks: 0,
  };
  const inferCodes = new Map<string, number>();
  const sent: Sent[] = [];
  const describe = (c: FuzzCase): string => `case ${c.index} (${c.source}: ${c.mutations.join('; ')})`;
  const keep = (c: FuzzCase): string => {
    mkdirSync(findingsDir, { recursive: true });
    const file = path.join(findingsDir, `case-${c.index}.dcm`);
    writeFileSync(file, c.file);
    return file;
  };

  const edge = await EdgeUnderFuzz.start(mkdirIn(options.workDir, 'edge'), mkdirIn(options.workDir, 'films'), counts, problems);
  try {
    for (let from = 0, batch = 0; from < total; from += batchSize, batch++) {
      const cases = Array.from({ length: Math.min(batchSize, total - from) }, (_, i) => makeCase(specimens, options.seed, from + i));
      const files = cases.map((c) => {
        const file = path.join(casesDir, `case-${c.index}.dcm`);
        writeFileSync(file, c.file);
        return file;
      });
      // The two paths at once: the agent analyses in the background while cxr reads the same cases.
      await Promise.all([
        inferBatch(cases, files, batch % 2 === 1, { counts, problems, inferCodes, describe, keep }),
        (async () => {
          for (const c of cases) sent.push({ fuzzCase: c, outcome: await edge.send(c, describe) });
        })(),
      ]);
      for (const file of files) rmSync(file, { force: true });
      const done = from + cases.length;
      if (done % 500 < batchSize || done === total) {
        options.progress(`${done}/${total} cases: cxr ${counts.inferResults} results, ${counts.inferErrors} errors; edge ${counts.edgeSuccess} stored, ${counts.edgeCannotUnderstand} C000, ${counts.crashes} crashes, ${counts.hangs} hangs`);
      }
    }
    const final = await edge.finish(sent, describe);
    const figures: Record<string, number | string> = {
      cases: total,
      inferBatches: counts.inferBatches,
      inferResults: counts.inferResults,
      inferErrors: counts.inferErrors,
      inferErrorCodes: summary(inferCodes),
      edgeSuccess: counts.edgeSuccess,
      edgeCannotUnderstandC000: counts.edgeCannotUnderstand,
      edgeOutOfResourcesA700: counts.edgeOutOfResources,
      edgeOtherStatus: counts.edgeOtherStatus,
      edgeAssociationRefused: counts.edgeAssociationRefused,
      edgeDroppedWithoutAnswer: counts.edgeDropped,
      edgeAnalysed: final.analysed,
      edgeFailed: final.failed,
      edgeFailedCodes: final.failedCodes,
      quarantined: final.quarantined,
      healthChecks: counts.healthChecks,
      descriptorsAtStart: final.descriptorsAtStart,
      descriptorsAtEnd: final.descriptorsAtEnd,
      cleanFilmAfter: final.cleanFilmAfter,
      crashes: counts.crashes,
      hangs: counts.hangs,
      unansweredWithoutReason: counts.edgeDropped,
      uncodedErrors: counts.uncodedErrors,
      inferLinesWrong: counts.inferLinesWrong,
      leakedTempFiles: final.leakedTempFiles,
      leakedDescriptors: final.leakedDescriptors,
      instancesUnfinished: final.unfinished,
      acknowledgedLost: final.acknowledgedLost,
      healthNotOk: counts.healthNotOk,
    };
    return report(
      'fuzz',
      options,
      started,
      figures,
      ['crashes', 'hangs', 'unansweredWithoutReason', 'uncodedErrors', 'inferLinesWrong', 'leakedTempFiles', 'leakedDescriptors', 'instancesUnfinished', 'acknowledgedLost', 'healthNotOk'],
      problems,
    );
  } finally {
    await edge.close();
  }
}

function loadSpecimens(): Specimen[] {
  const out: Specimen[] = [];
  for (const dir of [dicomDir, path.join(dicomDir, 'derived')]) {
    for (const name of readdirSync(dir).filter((f) => f.endsWith('.dcm')).sort()) out.push(readSpecimen(name, readFileSync(path.join(dir, name))));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// (a) cxr infer

interface InferContext {
  readonly counts: Counts;
  readonly problems: string[];
  readonly inferCodes: Map<string, number>;
  readonly describe: (c: FuzzCase) => string;
  readonly keep: (c: FuzzCase) => string;
}

interface CxrRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

async function inferBatch(cases: readonly FuzzCase[], files: readonly string[], force: boolean, ctx: InferContext): Promise<void> {
  ctx.counts.inferBatches += 1;
  const run = await runCxr(files, force, 30_000 + 3_000 * files.length);
  const lines = linesByFile(run.stdout, ctx, `batch of cases ${cases[0]?.index ?? '?'}..${cases.at(-1)?.index ?? '?'}`);
  const broken = run.timedOut || run.signal !== null || (run.code !== 0 && run.code !== 1);
  const missing: number[] = [];
  let failed = 0;
  files.forEach((file, i) => {
    const c = cases[i];
    if (!c) return;
    const got = lines.get(file) ?? [];
    if (got.length === 0) missing.push(i);
    else {
      if (got.length > 1) {
        ctx.counts.inferLinesWrong += 1;
        ctx.problems.push(`cxr infer: ${got.length} lines for ${ctx.describe(c)}`);
      }
      if (got[0] && !checkLine(got[0], c, ctx)) failed += 1;
    }
  });
  if (!broken && missing.length === 0) {
    // Exit 1 only when every file failed (inference/src/cli/main.ts).
    const expected = failed === files.length ? 1 : 0;
    if (run.code !== expected) ctx.problems.push(`cxr infer exited ${run.code} with ${failed} of ${files.length} failed (expected ${expected})`);
    return;
  }
  if (!broken) {
    for (const i of missing) {
      const c = cases[i];
      if (!c) continue;
      ctx.counts.inferLinesWrong += 1;
      ctx.problems.push(`cxr infer: no line for ${ctx.describe(c)} (exit ${run.code})`);
    }
    return;
  }
  // The batch crashed or hung: each file without its line is run alone to find which one did it.
  let culprits = 0;
  for (const i of missing) {
    const c = cases[i];
    const file = files[i];
    if (!c || !file) continue;
    const alone = await runCxr([file], force, 60_000);
    const aloneLines = linesByFile(alone.stdout, ctx, `case ${c.index} alone`);
    const line = aloneLines.get(file)?.[0];
    if (alone.timedOut || alone.signal !== null || (alone.code !== 0 && alone.code !== 1) || !line) {
      culprits += 1;
      const hang = alone.timedOut;
      if (hang) ctx.counts.hangs += 1;
      else ctx.counts.crashes += 1;
      ctx.problems.push(
        `cxr infer ${hang ? 'hangs' : `crashes (exit ${alone.code ?? alone.signal})`} on ${ctx.describe(c)}${force ? ' with --force' : ''}; kept as ${ctx.keep(c)}${stderrTail(alone.stderr)}`,
      );
    } else checkLine(line, c, ctx);
  }
  if (culprits === 0) {
    ctx.counts[run.timedOut ? 'hangs' : 'crashes'] += 1;
    ctx.problems.push(`cxr infer ${run.timedOut ? 'hung' : `crashed (exit ${run.code ?? run.signal})`} on the batch of cases ${cases[0]?.index}.. but on none alone${stderrTail(run.stderr)}`);
  }
}

/** A line is a result, or an error with a code of the registry. Returns false for an error line. */
function checkLine(line: Record<string, unknown>, c: FuzzCase, ctx: InferContext): boolean {
  const error = line['error'] as { code?: unknown; message?: unknown } | undefined;
  if (error === undefined) {
    if (line['schemaVersion'] !== 1) {
      ctx.counts.inferLinesWrong += 1;
      ctx.problems.push(`cxr infer: neither a result nor an error for ${ctx.describe(c)}`);
    }
    ctx.counts.inferResults += 1;
    return true;
  }
  ctx.counts.inferErrors += 1;
  const code = typeof error.code === 'string' ? error.code : String(error.code);
  ctx.inferCodes.set(code, (ctx.inferCodes.get(code) ?? 0) + 1);
  if (!registry.has(code) || typeof error.message !== 'string') {
    ctx.counts.uncodedErrors += 1;
    ctx.problems.push(`cxr infer: uncoded error ${code} "${String(error.message).slice(0, 160)}" on ${ctx.describe(c)}; kept as ${ctx.keep(c)}`);
  }
  return false;
}

function linesByFile(stdout: string, ctx: InferContext, where: string): Map<string, Record<string, unknown>[]> {
  const out = new Map<string, Record<string, unknown>[]>();
  for (const text of stdout.split('\n')) {
    if (text.trim() === '') continue;
    let line: Record<string, unknown>;
    try {
      line = JSON.parse(text) as Record<string, unknown>;
    } catch {
      ctx.counts.inferLinesWrong += 1;
      ctx.problems.push(`cxr infer: a line that is not JSON in the ${where}`);
      continue;
    }
    const file = typeof line['file'] === 'string' ? line['file'] : '';
    out.set(file, [...(out.get(file) ?? []), line]);
  }
  return out;
}

function runCxr(files: readonly string[], force: boolean, limitMs: number): Promise<CxrRun> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--single-threaded-gc', cxrBin, 'infer', ...files, '--json', '--model', squeezenet, ...(force ? ['--force'] : [])], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, timedOut });
    });
  });
}

function stderrTail(stderr: string): string {
  const tail = stderr.trim().split('\n').slice(-3).join(' | ').slice(0, 300);
  return tail ? `; stderr: ${tail}` : '';
}

// ---------------------------------------------------------------------------------------------------------------
// (b) the edge's C-STORE receiver

interface StudyView {
  instances: { sopInstanceUid: string; status: string; previewPending: boolean; error: { code: string; message: string } | null }[];
}
interface Health {
  status: string;
  problems?: { code: string }[];
  queue: number;
  counts: { received: number; inferred: number; failed: number };
}

interface EdgeFinal {
  analysed: number;
  failed: number;
  failedCodes: string;
  quarantined: number;
  unfinished: number;
  acknowledgedLost: number;
  leakedTempFiles: number;
  leakedDescriptors: number;
  descriptorsAtStart: number;
  descriptorsAtEnd: number;
  cleanFilmAfter: string;
}

/** One `cxr-edge` under fuzz: started, watched (health every second, its exit), restarted if it dies. */
class EdgeUnderFuzz {
  #agent: AgentProcess;
  readonly #dataDir: string;
  readonly #films: FilmFactory;
  readonly #counts: Counts;
  readonly #problems: string[];
  readonly #poller: NodeJS.Timeout;
  #restarting = false;
  #descriptorsAtStart = 0;
  /** output of agents that died, for the error-level log lines */
  #earlierOutput = '';
  /** the last case sent, and what was last sent when the agent died */
  #lastSent = 'no case yet';
  #lastSentAt = Date.now();
  #death: { at: number; afterCase: string } | undefined;

  private constructor(agent: AgentProcess, dataDir: string, films: FilmFactory, counts: Counts, problems: string[]) {
    this.#agent = agent;
    this.#dataDir = dataDir;
    this.#films = films;
    this.#counts = counts;
    this.#problems = problems;
    this.#poller = setInterval(() => void this.#checkHealth(), 1000);
    this.#watch(agent);
  }

  /** When it dies, what it was last sent: a crash shows up at the next send, perhaps minutes later. */
  #watch(agent: AgentProcess): void {
    agent.child.once('exit', () => {
      this.#death = { at: Date.now(), afterCase: this.#lastSent };
    });
  }

  static async start(dataDir: string, filmsDir: string, counts: Counts, problems: string[]): Promise<EdgeUnderFuzz> {
    const edge = new EdgeUnderFuzz(await launch(dataDir), dataDir, new FilmFactory(filmsDir), counts, problems);
    // A clean film first: the model loaded and its worker running before the descriptors are counted.
    const film = edge.#films.make('routine');
    const outcome = await storescu(edge.#agent.dicomPort, [film.file]);
    if (outcome.code !== 0) throw new Error(`the clean film before the fuzz was not stored: ${outcome.stderr}`);
    await edge.#waitAnalysed(film.sopInstanceUid);
    edge.#descriptorsAtStart = descriptors(edge.#agent);
    return edge;
  }

  async send(c: FuzzCase, describe: (c: FuzzCase) => string): Promise<Sent['outcome']> {
    await this.#checkAlive();
    this.#lastSent = describe(c);
    this.#lastSentAt = Date.now();
    const outcome = await this.#store(c);
    const counts = this.#counts;
    switch (outcome.kind) {
      case 'response':
        if (outcome.status === 0) counts.edgeSuccess += 1;
        else if (outcome.status === 0xc000) counts.edgeCannotUnderstand += 1;
        else if (outcome.status === 0xa700) counts.edgeOutOfResources += 1;
        else {
          counts.edgeOtherStatus += 1;
          this.#problems.push(`edge answered status 0x${(outcome.status ?? 0).toString(16)} to ${describe(c)}`);
        }
        break;
      case 'association-refused':
        counts.edgeAssociationRefused += 1;
        // Only a syntax the agent does not decode is a reason to refuse the association.
        if (isDecodableTransferSyntax(c.wire.transferSyntaxUid)) this.#problems.push(`edge refused the association (${outcome.detail}) for ${describe(c)}`);
        break;
      case 'dropped':
        counts.edgeDropped += 1;
        this.#problems.push(`edge dropped the connection without an answer (${outcome.detail}) on ${describe(c)}`);
        break;
      case 'no-answer':
        counts.hangs += 1;
        this.#problems.push(`edge gave no answer within ${answerLimitMs / 1000} s to ${describe(c)}`);
        break;
      case 'no-connection':
        this.#problems.push(`no connection to the edge (${outcome.detail}) for ${describe(c)}`);
        break;
    }
    await this.#checkAlive();
    if (outcome.kind !== 'response') return outcome.kind;
    return outcome.status === 0 ? 'success' : outcome.status === 0xc000 ? 'cannot-understand' : outcome.status === 0xa700 ? 'out-of-resources' : 'other';
  }

  async #store(c: FuzzCase): Promise<StoreOutcome> {
    let scu: RawStoreScu;
    try {
      scu = await RawStoreScu.associate({ port: this.#agent.dicomPort, sopClassUid: c.wire.sopClassUid, transferSyntaxUid: c.wire.transferSyntaxUid, timeoutMs: answerLimitMs });
    } catch (err) {
      if (err instanceof AssociationRejectedError) return { kind: 'association-refused', detail: err.message };
      return { kind: 'no-connection', detail: (err as Error).message };
    }
    try {
      const result: RawStoreResult = await scu.storeRaw({ sopInstanceUid: c.sopInstanceUid, dataset: c.wire.dataset });
      if (result.end === 'response') {
        if (scu.associated) await scu.release();
        return { kind: 'response', status: result.status };
      }
      if (result.end === 'no-answer') return { kind: 'no-answer' };
      return { kind: 'dropped', detail: result.end };
    } finally {
      scu.destroy();
    }
  }

  /** A dead agent is counted, reported with its last words, and started again on the same data. */
  async #checkAlive(): Promise<void> {
    const child = this.#agent.child;
    if (child.exitCode === null && child.signalCode === null) return;
    this.#counts.crashes += 1;
    const death = this.#death ?? { at: Date.now(), afterCase: this.#lastSent };
    const ago = Math.round((death.at - this.#lastSentAt) / 1000);
    const output = this.#agent.output();
    this.#problems.push(`the edge exited (${child.exitCode ?? child.signalCode}) ${ago} s after it was sent ${death.afterCase}${lastWords(output)}${errorLines(output, 3)}`);
    this.#earlierOutput += output;
    this.#death = undefined;
    this.#restarting = true;
    try {
      this.#agent = await launch(this.#dataDir);
      this.#watch(this.#agent);
    } finally {
      this.#restarting = false;
    }
  }

  async #checkHealth(): Promise<void> {
    if (this.#restarting) return;
    const agent = this.#agent;
    if (agent.child.exitCode !== null || agent.child.signalCode !== null) return;
    this.#counts.healthChecks += 1;
    try {
      const res = await fetch(`http://127.0.0.1:${agent.httpPort}/api/health`, { signal: AbortSignal.timeout(5000) });
      const body = (await res.json()) as Health;
      if (res.status === 200 && body.status === 'ok') return;
      this.#counts.healthNotOk += 1;
      if (this.#counts.healthNotOk <= 5) this.#problems.push(`edge health ${res.status} ${body.status} (${(body.problems ?? []).map((p) => p.code).join(', ')})`);
    } catch (err) {
      if (agent.child.exitCode !== null || agent.child.signalCode !== null || this.#restarting) return;
      this.#counts.healthNotOk += 1;
      if (this.#counts.healthNotOk <= 5) this.#problems.push(`edge health did not answer: ${(err as Error).message}`);
    }
  }

  async #waitAnalysed(sopInstanceUid: string): Promise<void> {
    await waitFor(
      `instance ${sopInstanceUid} analysed`,
      async () => {
        const studies = await this.#agent.api<StudyView[]>('/api/studies?limit=1000');
        const instance = studies.flatMap((s) => s.instances).find((i) => i.sopInstanceUid === sopInstanceUid);
        return instance && (instance.status === 'failed' || (instance.status === 'inferred' && !instance.previewPending)) ? true : undefined;
      },
      120_000,
      250,
    );
  }

  /** Everything analysed, then the counts; the clean film last. */
  async finish(sent: readonly Sent[], describe: (c: FuzzCase) => string): Promise<EdgeFinal> {
    const problems = this.#problems;
    const caseOf = new Map(sent.map((s) => [s.fuzzCase.sopInstanceUid, describe(s.fuzzCase)]));
    const named = (uid: string): string => caseOf.get(uid) ?? uid;
    await this.#settle();
    const studies = await this.#agent.api<StudyView[]>('/api/studies?limit=1000');
    if (studies.length >= 1000) problems.push('1000 studies or more: /api/studies shows only the newest 1000');
    const instances = new Map<string, StudyView['instances']>();
    for (const instance of studies.flatMap((s) => s.instances)) instances.set(instance.sopInstanceUid, [...(instances.get(instance.sopInstanceUid) ?? []), instance]);
    let analysed = 0;
    let failed = 0;
    let unfinished = 0;
    const failedCodes = new Map<string, number>();
    for (const [uid, versions] of instances) {
      for (const instance of versions) {
        if (instance.status === 'inferred' && !instance.previewPending) analysed += 1;
        else if (instance.status === 'failed') {
          failed += 1;
          const code = instance.error?.code ?? 'none';
          failedCodes.set(code, (failedCodes.get(code) ?? 0) + 1);
          if (code === 'CXR_INFERENCE_TIMEOUT') {
            this.#counts.hangs += 1;
            problems.push(`the edge's analysis was stopped after its time limit: ${named(uid)}`);
          } else if (!registry.has(code)) {
            this.#counts.uncodedErrors += 1;
            problems.push(`the edge failed with an uncoded error ${code} (${(instance.error?.message ?? '').slice(0, 160)}): ${named(uid)}`);
          }
        } else {
          unfinished += 1;
          problems.push(`left unfinished at the edge (${instance.status}${instance.previewPending ? ', preview pending' : ''}): ${named(uid)}`);
        }
      }
    }
    // Every case acknowledged is there, under its own UID or the one its damaged dataset says.
    let acknowledgedLost = 0;
    for (const s of sent) {
      if (s.outcome !== 'success') continue;
      const uids = [s.fuzzCase.sopInstanceUid, datasetUid(s.fuzzCase)];
      if (!uids.some((uid) => uid !== undefined && instances.has(uid))) {
        acknowledgedLost += 1;
        problems.push(`acknowledged but not at the edge: ${describe(s.fuzzCase)}`);
      }
    }
    // What was refused as unreadable waits in quarantine, each with its reason (a code of the registry).
    const quarantineDir = path.join(this.#dataDir, 'quarantine');
    const quarantine = readdirSync(quarantineDir);
    const reasons = quarantine.filter((f) => f.endsWith('.reason.txt'));
    const held = quarantine.filter((f) => !f.endsWith('.reason.txt'));
    const refused = sent.filter((s) => s.outcome === 'cannot-understand').length;
    if (held.length !== refused || reasons.length !== refused) problems.push(`quarantine holds ${held.length} files and ${reasons.length} reasons for ${refused} refused`);
    for (const name of reasons) {
      const code = /^(CXR_[A-Z0-9_]+)/u.exec(readFileSync(path.join(quarantineDir, name), 'utf8'))?.[1] ?? '';
      if (!registry.has(code)) {
        this.#counts.uncodedErrors += 1;
        problems.push(`a quarantine reason without a code of the registry: ${name} (${code || 'no code'})`);
      }
    }
    // A clean film still goes through the unit's own sender.
    const film = this.#films.make('urgent');
    const clean = await storescu(this.#agent.dicomPort, [film.file]);
    let cleanFilmAfter = clean.code === 0 ? 'stored' : `refused (exit ${clean.code})`;
    if (clean.code === 0) {
      try {
        await this.#waitAnalysed(film.sopInstanceUid);
        cleanFilmAfter = 'stored and analysed';
      } catch {
        cleanFilmAfter = 'stored, not analysed';
      }
    }
    if (cleanFilmAfter !== 'stored and analysed') problems.push(`the clean film at the end: ${cleanFilmAfter}`);
    // Leaks: nothing in tmp/, nothing open there, the descriptors back near their count at the start.
    const tmpDir = path.join(this.#dataDir, 'tmp');
    const openTmp = openFilesUnder(this.#agent, tmpDir);
    const tmpFiles = readdirSync(tmpDir);
    for (const name of tmpFiles) problems.push(`left in tmp/: ${name}`);
    for (const target of openTmp) problems.push(`still open: ${target}`);
    const descriptorsAtEnd = descriptors(this.#agent);
    const leakedDescriptors = Math.max(0, descriptorsAtEnd - this.#descriptorsAtStart - descriptorMargin);
    if (leakedDescriptors > 0) problems.push(`the edge holds ${descriptorsAtEnd} descriptors, ${this.#descriptorsAtStart} at the start`);
    for (const line of errorLines(this.#earlierOutput + this.#agent.output(), 20).split('\n').filter(Boolean)) problems.push(`edge logged an error: ${line.trim()}`);
    return {
      analysed,
      failed,
      failedCodes: summary(failedCodes),
      quarantined: held.length,
      unfinished,
      acknowledgedLost,
      leakedTempFiles: tmpFiles.length + openTmp.length,
      leakedDescriptors,
      descriptorsAtStart: this.#descriptorsAtStart,
      descriptorsAtEnd,
      cleanFilmAfter,
    };
  }

  /** Until nothing is left to analyse; gives up after 3 minutes without progress. */
  async #settle(): Promise<void> {
    let last = '';
    let lastChange = Date.now();
    for (;;) {
      await this.#checkAlive();
      const health = await this.#agent.api<Health>('/api/health').catch(() => undefined);
      if (health && health.counts.received === 0 && health.queue === 0) {
        const studies = await this.#agent.api<StudyView[]>('/api/studies?limit=1000');
        if (studies.every((s) => s.instances.every((i) => !i.previewPending))) return;
      }
      const now = JSON.stringify(health?.counts ?? null);
      if (now !== last) {
        last = now;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > 180_000) {
        this.#problems.push(`the edge made no progress for 3 minutes: ${now}`);
        return;
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  async close(): Promise<void> {
    clearInterval(this.#poller);
    const agent = this.#agent;
    if (agent.child.exitCode !== null || agent.child.signalCode !== null) return;
    const code = await agent.stop();
    if (code !== 0) this.#problems.push(`the edge exited ${code} on SIGTERM`);
  }
}

type StoreOutcome =
  | { kind: 'response'; status: number | undefined }
  | { kind: 'association-refused'; detail: string }
  | { kind: 'dropped'; detail: string }
  | { kind: 'no-answer' }
  | { kind: 'no-connection'; detail: string };

function launch(dataDir: string): Promise<AgentProcess> {
  return startAgent({ dataDir, args: ['--model', squeezenet, '--no-model-sync', '--log-level', 'warn'] });
}

/** The SOP Instance UID the damaged dataset itself says, when it can be read. */
function datasetUid(c: FuzzCase): string | undefined {
  try {
    return parseDicom(c.wire.dataset).dataset.string(Tag.SopInstanceUid);
  } catch {
    return undefined;
  }
}

/** What the agent wrote last that is not a log line (a native abort says why there, and only there). */
function lastWords(output: string): string {
  const words = output
    .split('\n')
    .filter((l) => l.trim() !== '' && !l.startsWith('{') && !l.startsWith('cxr-edge: ready'))
    .slice(-3)
    .map((l) => l.trim().slice(0, 200));
  return words.length > 0 ? `; its last words: ${words.join(' | ')}` : '';
}

/** The agent's error-level log lines (pino level 50 and up): message and code, no more. */
function errorLines(output: string, max: number): string {
  const out: string[] = [];
  for (const text of output.split('\n')) {
    if (!text.startsWith('{')) continue;
    try {
      const line = JSON.parse(text) as { level?: number; msg?: string; code?: string; err?: unknown };
      if ((line.level ?? 0) >= 50) out.push(`${line.msg ?? ''}${line.code ? ` ${line.code}` : ''}${typeof line.err === 'string' ? `: ${line.err.slice(0, 160)}` : ''}`);
    } catch {
      // not a log line
    }
  }
  const distinct = [...new Set(out)].slice(0, max);
  return distinct.length > 0 ? `\n${distinct.join('\n')}` : '';
}

function summary(counts: ReadonlyMap<string, number>): string {
  return [...counts.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([code, n]) => `${code} ${n}`)
    .join(', ');
}

function mkdirIn(parent: string, name: string): string {
  const dir = path.join(parent, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
