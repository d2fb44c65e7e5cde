import { EventEmitter } from 'node:events';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import type { DeployedModel } from './pipeline/worker.js';
import type { EdgeConfig } from './config.js';
import { createStoreScp, type StoreScp } from './dimse/scp.js';
import { FolderIntake } from './intake/folder-watch.js';
import type { Logger } from './log.js';
import { InferenceProcessor } from './pipeline/processor.js';
import { SpoolDb, type InstanceRecord } from './spool/db.js';
import { Spool, type SpoolFaults } from './spool/spool.js';
import { buildEdgeApp } from './web/app.js';

export interface EdgeAgent {
  readonly dicomPort: number;
  readonly httpPort: number;
  readonly model: DeployedModel;
  readonly app: FastifyInstance;
  stop(): Promise<void>;
}

export interface EdgeAgentDeps {
  readonly log: Logger;
  readonly faults?: SpoolFaults;
}

/** Starts every part in order; `stop()` takes them down in reverse, finishing the work in flight. */
export async function startEdgeAgent(deps: EdgeAgentDeps, config: EdgeConfig): Promise<EdgeAgent> {
  const { log } = deps;
  await mkdir(config.dataDir, { recursive: true });
  const db = new SpoolDb(path.join(config.dataDir, 'edge.db'));
  const spool = new Spool({ db, log, faults: deps.faults }, { dataDir: config.dataDir, minFreeBytes: config.minFreeBytes });
  await spool.init();
  const orphans = await spool.recoverOrphans();
  if (orphans > 0) log.warn({ count: orphans }, 'recorded files stored before a crash');

  const changes = new EventEmitter();
  changes.setMaxListeners(100);
  const changed = (record: InstanceRecord): void => {
    changes.emit('change', record);
  };
  const processor = new InferenceProcessor({ db, spool, log, onChange: changed }, { modelDir: config.modelDir, threads: config.inferenceThreads, workers: config.workers });
  let ready = false;
  const onStored = (record: InstanceRecord): void => {
    changed(record);
    processor.enqueue(record);
  };

  let scp: StoreScp | undefined;
  let intake: FolderIntake | undefined;
  let app: FastifyInstance | undefined;
  try {
    const model = await processor.start();
    log.info({ model }, 'model loaded');
    scp = createStoreScp({ spool, log, onStored }, { aeTitle: config.aeTitle, port: config.dicomPort });
    const dicomPort = await scp.listen();
    intake = new FolderIntake({ spool, log, onStored }, { dir: config.watchDir ?? path.join(config.dataDir, 'incoming'), doneDir: path.join(config.dataDir, 'intake-done'), stableMs: config.watchStableMs });
    await intake.start();
    app = await buildEdgeApp({
      db,
      spool,
      log,
      status: () => ({ ready, model: processor.model, aeTitle: config.aeTitle, dicomPort, queue: processor.queueDepth }),
      isProcessing: (id) => processor.isProcessing(id),
      subscribe: (listener) => {
        changes.on('change', listener);
        return () => changes.off('change', listener);
      },
    });
    await app.listen({ port: config.httpPort, host: config.httpHost });
    const address = app.server.address();
    const httpPort = typeof address === 'object' && address ? address.port : config.httpPort;
    ready = true;
    log.info({ dicomPort, httpPort, aeTitle: config.aeTitle }, 'edge agent ready');

    let stopped: Promise<void> | undefined;
    return {
      dicomPort,
      httpPort,
      model,
      app,
      stop: () =>
        (stopped ??= (async () => {
          ready = false;
          await scp?.close();
          await intake?.stop();
          await processor.stop();
          await app?.close();
          db.close();
          log.info('edge agent stopped');
        })()),
    };
  } catch (err) {
    await scp?.close().catch(() => undefined);
    await intake?.stop().catch(() => undefined);
    await processor.stop(0).catch(() => undefined);
    await app?.close().catch(() => undefined);
    db.close();
    throw err;
  }
}
