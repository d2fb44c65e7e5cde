import type { Logger } from 'pino';
import type { ConsultRecord } from '../consults/types.js';
import type { ObjectStore } from '../store/index.js';
import { CONSULTS_PREFIX, consultKey, parseConsultKey } from '../store/keys.js';
import type { ConsultQueue } from './consults.js';
import { ConsultDesk, readJsonIfAny } from './desk.js';

export interface RebuildSummary {
  /** open consults in the store (no report) */
  readonly consults: number;
  /** of them, put back on the queue (they were missing) */
  readonly requeued: number;
  /** of them, moved behind the requeued ones to keep arrival order (e.g. asked for while Redis was empty) */
  readonly reordered: number;
  /** unexpired claims of the record put back in Redis */
  readonly claims: number;
  /** reported consults that were still on the queue or still had a claim record, now taken off */
  readonly finished: number;
}

/** How many store reads the rebuild keeps in flight (an S3 store answers each in milliseconds). */
const READ_CONCURRENCY = 16;

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next;
      next += 1;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

interface ConsultFiles {
  consult: boolean;
  report: boolean;
  claim: boolean;
}

async function listConsults(store: ObjectStore): Promise<Map<string, ConsultFiles>> {
  const byId = new Map<string, ConsultFiles>();
  for await (const info of store.list(CONSULTS_PREFIX)) {
    const { consultId, file } = parseConsultKey(info.key);
    if (!consultId) continue;
    const files = byId.get(consultId) ?? { consult: false, report: false, claim: false };
    if (file === 'consult.json') files.consult = true;
    if (file === 'report.json') files.report = true;
    if (file === 'claim.json') files.claim = true;
    byId.set(consultId, files);
  }
  return byId;
}

const byArrival = (x: ConsultRecord, y: ConsultRecord): number => x.receivedAt.localeCompare(y.receivedAt) || x.consultId.localeCompare(y.consultId);

/**
 * Redis holds the queue and the claims as a fast path; the object store holds every consult, report and claim.
 * This puts every consult without a report back on the queue in arrival order, with its unexpired claim, and
 * takes off any reported one. Run at start and whenever Redis is found to have lost its data (redis-loss.ts).
 *
 * Idempotent, and safe with several processes rebuilding at once: enqueueing is keyed by consult id, a consult
 * missing from the queue and every later one of its priority are put last in arrival order (so whatever the
 * interleaving, the last move of each consult comes after those of the earlier ones), and a report stored meanwhile
 * takes its consult back off (ConsultDesk.enqueue).
 */
export async function rebuildQueueFromStore(deps: { store: ObjectStore; queue: ConsultQueue; log: Logger }, options: { reason?: string } = {}): Promise<RebuildSummary> {
  const started = Date.now();
  const desk = new ConsultDesk(deps);
  const listed = await listConsults(deps.store);
  let finished = 0;
  const openIds: string[] = [];
  for (const [consultId, files] of listed) {
    if (!files.consult) continue;
    if (!files.report) {
      openIds.push(consultId);
      continue;
    }
    // Signed but still queued or claimed (a crash between storing the report and leaving the queue): finish it.
    if (files.claim || (await deps.queue.has(consultId))) {
      await desk.finishReported(consultId);
      finished += 1;
    }
  }
  const records = (await mapLimit(openIds, READ_CONCURRENCY, (id) => readJsonIfAny<ConsultRecord>(deps.store, consultKey(id)))).filter(
    (r): r is ConsultRecord => r !== undefined,
  );

  // Claims first, so that a consult shows as taken as soon as it is back on the worklist.
  let claims = 0;
  for (const record of records) {
    if (!listed.get(record.consultId)?.claim) continue;
    const claim = await desk.recordedClaim(record.consultId);
    if (claim && (await desk.restoreClaim(claim))) claims += 1;
  }

  let requeued = 0;
  let reordered = 0;
  const behindMissing = new Set<string>();
  const requeue = async (sorted: readonly ConsultRecord[]): Promise<void> => {
    for (const record of sorted) {
      if (!(await deps.queue.has(record.consultId))) {
        behindMissing.add(record.priority);
        if (await desk.enqueue(record, { last: true })) requeued += 1;
      } else if (behindMissing.has(record.priority)) {
        if (await desk.enqueue(record, { last: true })) reordered += 1;
      }
    }
  };
  await requeue([...records].sort(byArrival));
  // Consults asked for while this ran may have been queued before the older ones it put back: move them behind.
  const since = [...(await listConsults(deps.store))].filter(([id, files]) => files.consult && !files.report && !listed.has(id)).map(([id]) => id);
  const late = (await mapLimit(since, READ_CONCURRENCY, (id) => readJsonIfAny<ConsultRecord>(deps.store, consultKey(id)))).filter((r): r is ConsultRecord => r !== undefined);
  await requeue(late.sort(byArrival));

  const summary: RebuildSummary = { consults: records.length + late.length, requeued, reordered, claims, finished };
  const reason = options.reason ?? 'start';
  deps.log[requeued > 0 || reason !== 'start' ? 'warn' : 'info']({ reason, ...summary, ms: Date.now() - started }, 'consult queue rebuilt from the object store');
  return summary;
}
