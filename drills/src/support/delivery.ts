/**
 * What every drill with the edge checks at the end: the edge settled (every instance finished, the outbox empty,
 * the link up), then, with the agent stopped, every film the unit got a Success for is in
 * the edge's database once and at the gateway (DICOM, result, preview; an urgent study with one consult on the
 * worklist), and nothing is stuck. Plus small readers of a running agent: its health, its studies, its log lines.
 */
import type { Film } from './films.js';
import { readEdgeDb, readGatewayStore, type AgentProcess, type Site } from './site.js';

export interface InstanceState {
  readonly sopInstanceUid: string;
  readonly status: string;
  readonly previewPending: boolean;
  readonly previewUrl: string | null;
}

/** Every instance the running agent shows (its newest 1,000 studies), by SOP Instance UID. */
export async function edgeInstances(edge: AgentProcess): Promise<Map<string, InstanceState>> {
  const studies = await edge.api<{ instances: InstanceState[] }[]>('/api/studies?limit=1000');
  return new Map(studies.flatMap((s) => s.instances).map((i) => [i.sopInstanceUid, i]));
}

/** Finished: analysed with its preview drawn, or failed for good. */
export const finished = (i: InstanceState): boolean => i.status === 'failed' || (i.status === 'inferred' && !i.previewPending && i.previewUrl !== null);

export interface Health {
  readonly status: string;
  readonly ready: boolean;
  readonly disk?: { readonly full: boolean };
}

/** `/api/health` as the agent answers it, also when degraded (503). */
export async function edgeHealth(edge: AgentProcess): Promise<Health> {
  const res = await fetch(`http://127.0.0.1:${edge.httpPort}/api/health`, { signal: AbortSignal.timeout(10_000) });
  return (await res.json()) as Health;
}

/**
 * Waits until every instance is finished and the outbox is empty with the link up: ms taken, or undefined when
 * nothing moved (no item sent, no instance finished) for `stallMs` (default 2 minutes). A long drill leaves a backlog
 * (its bursts come faster than a station's films): the wait lasts as long as it keeps draining.
 */
export async function settleEdge(edge: AgentProcess, options: { stallMs?: number; progress?: (line: string) => void } = {}): Promise<number | undefined> {
  const from = Date.now();
  let best = Number.POSITIVE_INFINITY;
  let movedAt = Date.now();
  for (;;) {
    const instances = [...(await edgeInstances(edge)).values()];
    const link = await edge.api<{ state: string; pending: number }>('/api/link');
    const left = link.pending + instances.filter((i) => !finished(i)).length;
    if (left === 0 && link.state === 'online') return Date.now() - from;
    if (left < best) {
      if (Math.floor(best / 1000) !== Math.floor(left / 1000)) options.progress?.(`draining: ${link.pending} items to send`);
      best = left;
      movedAt = Date.now();
    } else if (Date.now() - movedAt > (options.stallMs ?? 120_000)) return undefined;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

export interface DeliveryCount {
  /** acknowledged films whose DICOM, result and preview the gateway holds */
  readonly reached: number;
  /** acknowledged films missing at the edge or at the gateway, or urgent studies without a consult */
  readonly lost: number;
  /** stored twice at the edge, under two contents at the gateway, or an urgent study with two consults */
  readonly duplicated: number;
  /** instances never finished, outbox items never sent or refused */
  readonly stuck: number;
}

/**
 * The final count, with the agent stopped (its database is read directly) and the gateway up. Problems are added
 * to `problems` by id.
 */
export async function countDelivery(site: Site, dataDir: string, acknowledged: Iterable<Film>, problems: string[]): Promise<DeliveryCount> {
  const edgeDb = readEdgeDb(dataDir);
  const atGateway = await readGatewayStore(site.hospital.store, site.station.stationId);
  // Every page of the worklist: a long drill queues more consults than one page holds.
  const worklist: { studyInstanceUid: string; stationId: string }[] = [];
  for (let offset = 0; ; offset += 1000) {
    const page = (await site.doctor.api<{ studyInstanceUid: string; stationId: string }[]>(`/api/v1/worklist?limit=1000&offset=${offset}`)).body;
    worklist.push(...page);
    if (page.length < 1000) break;
  }
  let lost = 0;
  let reached = 0;
  let duplicated = 0;
  for (const film of acknowledged) {
    const atEdge = edgeDb.instances.get(film.sopInstanceUid);
    if (!atEdge) {
      lost += 1;
      problems.push(`lost at the edge: ${film.sopInstanceUid}`);
      continue;
    }
    if (atEdge.count > 1) {
      duplicated += 1;
      problems.push(`stored ${atEdge.count} times at the edge: ${film.sopInstanceUid}`);
    }
    const versions = atGateway.get(film.sopInstanceUid);
    if (versions && versions.size > 1) {
      duplicated += 1;
      problems.push(`${versions.size} contents at the gateway: ${film.sopInstanceUid}`);
    }
    const files = versions?.get(atEdge.contentSha256);
    if (files && ['instance.dcm', 'result.json', 'preview.png'].every((f) => files.has(f))) reached += 1;
    else {
      lost += 1;
      problems.push(`not at the gateway (has ${[...(files ?? [])].join(', ') || 'nothing'}): ${film.sopInstanceUid}`);
    }
    if (film.kind === 'urgent') {
      const consults = worklist.filter((c) => c.stationId === site.station.stationId && c.studyInstanceUid === film.studyInstanceUid).length;
      if (consults === 0) {
        lost += 1;
        problems.push(`urgent study without a consult on the worklist: ${film.studyInstanceUid}`);
      } else if (consults > 1) {
        duplicated += 1;
        problems.push(`urgent study with ${consults} consults: ${film.studyInstanceUid}`);
      }
    }
  }
  const unfinished = [...edgeDb.instances.values()].filter((i) => !i.complete).length;
  const stuck = unfinished + edgeDb.pendingItems + edgeDb.violations.filter((v) => v.rule === 'refused').length;
  for (const v of edgeDb.violations) problems.push(`settled: ${v.rule} ${v.instanceId ?? v.studyInstanceUid ?? ''}: ${v.detail}`);
  return { reached, lost, duplicated, stuck };
}

/** One JSON log line of the agent (pino): its time (epoch ms), level, message and fields. */
export interface LogLine {
  readonly time: number;
  readonly level: number;
  readonly msg: string;
  readonly [field: string]: unknown;
}

/**
 * Collects the agent's JSON log lines from its stdout from now on (a listener of its own, so that a line is never
 * cut by stderr output in between).
 */
export function collectLogLines(edge: AgentProcess): LogLine[] {
  const lines: LogLine[] = [];
  let partial = '';
  edge.child.stdout?.on('data', (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8');
    const parts = text.split('\n');
    partial = parts.pop() ?? '';
    for (const part of parts) {
      try {
        const line = JSON.parse(part) as Partial<LogLine>;
        if (typeof line.msg === 'string' && typeof line.time === 'number') lines.push(line as LogLine);
      } catch {
        // not a log line
      }
    }
  });
  return lines;
}
