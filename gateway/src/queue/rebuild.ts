import type { Logger } from 'pino';
import type { ConsultRecord } from '../plugins/ingest.js';
import type { ObjectStore } from '../store/index.js';
import type { ConsultQueue } from './consults.js';

/**
 * Redis holds only the queue; the object store holds every consult and report. At start, every consult without a
 * report is put (back) on the queue: enqueueing is idempotent, so this is safe with a full Redis too, and it is
 * what brings an emptied or lost Redis back.
 */
export async function rebuildQueueFromStore(deps: { store: ObjectStore; queue: ConsultQueue; log: Logger }): Promise<{ consults: number; requeued: number }> {
  let consults = 0;
  let requeued = 0;
  const reported = new Set<string>();
  const open: string[] = [];
  for await (const info of deps.store.list('consults/')) {
    const [, consultId, file] = info.key.split('/');
    if (!consultId) continue;
    if (file === 'report.json') reported.add(consultId);
    if (file === 'consult.json') open.push(info.key);
  }
  for (const key of open) {
    consults += 1;
    const consultId = key.split('/')[1] ?? '';
    if (reported.has(consultId)) {
      // Signed but still queued (a crash between storing the report and leaving the queue): finish the move.
      if (await deps.queue.has(consultId)) await deps.queue.remove(consultId);
      continue;
    }
    const record = JSON.parse(Buffer.from(await deps.store.getBytes(key)).toString('utf8')) as ConsultRecord;
    if (!(await deps.queue.has(consultId))) {
      await deps.queue.enqueue({ consultId, stationId: record.stationId, studyInstanceUid: record.studyInstanceUid, priority: record.priority, receivedAt: record.receivedAt });
      requeued += 1;
    }
  }
  if (requeued > 0) deps.log.warn({ requeued, consults }, 'consult queue rebuilt from the object store');
  return { consults, requeued };
}
