/**
 * The edge agent's named crash points, one at every durable step (inference/src/faults/crash-point.ts says how a
 * test arms one). test/crash-points.test.ts crashes the agent at each of them and checks what a restart recovers.
 */
export const EdgeCrashPoint = {
  /** a received file is written and fsynced under its temporary name */
  TmpSynced: 'edge.spool.tmp-synced',
  /** the file is renamed into objects/ and the folder fsynced; its row is not written yet */
  ObjectDurable: 'edge.spool.object-durable',
  /** the instance's row is committed; the sender has no answer yet */
  RowCommitted: 'edge.spool.row-committed',
  /** the early result and the outbox items it implies are committed; the preview is not drawn yet */
  EarlyResultCommitted: 'edge.stage.early-result-committed',
  /** the worker has written the preview; the final stage is not committed */
  PreviewWritten: 'edge.worker.preview-written',
  /** the final stage and its outbox items are committed */
  CompleteCommitted: 'edge.stage.complete-committed',
  /** the gateway has taken an outbox item; it is not marked done yet */
  ItemDelivered: 'edge.outbox.item-delivered',
  /** the gateway has stored a chunk of a resumable upload; the next is not sent */
  ChunkDelivered: 'edge.outbox.chunk-delivered',
  /** a watched-folder file is stored and recorded; it is not moved out of the folder yet */
  IntakeRecorded: 'edge.intake.recorded',
} as const;
export type EdgeCrashPointName = (typeof EdgeCrashPoint)[keyof typeof EdgeCrashPoint];

/** Where a test can make the agent hang (inference/src/faults/crash-point.ts, `stallPoint`), to prove its time limits. */
export const EdgeStallPoint = {
  /** a worker is decoding an instance (keyed by the instance's id): the decode never returns */
  Decoding: 'edge.worker.decoding',
} as const;
