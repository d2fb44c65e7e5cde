import { EventEmitter } from 'node:events';
import { chmod, mkdir, stat } from 'node:fs/promises';
import { hostname } from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { SignInLimiter } from './accounts/limiter.js';
import { PasswordChecker } from './accounts/sign-in.js';
import { AccountStore } from './accounts/store.js';
import type { DeployedModel } from './pipeline/worker.js';
import { parseCallingAe, type AllowedCaller, type EdgeConfig } from './config.js';
import { createStoreScp, type StoreScp } from './dimse/scp.js';
import { FolderIntake } from './intake/folder-watch.js';
import type { Logger } from './log.js';
import { InferenceProcessor } from './pipeline/processor.js';
import { createGatewayFetch } from './outbox/gateway-fetch.js';
import { OutboxDb } from './outbox/outbox-db.js';
import { OutboxSender } from './outbox/sender.js';
import { SpoolDb, type InstanceRecord } from './spool/db.js';
import { DiskGuard } from './spool/disk-guard.js';
import { Spool, type SpoolFaults } from './spool/spool.js';
import { InstanceStages } from './spool/stages.js';
import { ModelSync } from './sync/model-sync.js';
import { RegistryClient } from './sync/registry-client.js';
import { buildEdgeApp } from './web/app.js';
import { EdgeStartError } from './web/errors.js';
import { HostAllowList, isLoopbackHost } from './web/security.js';

export interface EdgeAgent {
  readonly dicomPort: number;
  readonly httpPort: number;
  readonly model: DeployedModel;
  readonly app: FastifyInstance;
  /** Whether the data disk has room (the agent refuses new images while it has not). */
  readonly disk: DiskGuard;
  stop(): Promise<void>;
}

export interface EdgeAgentDeps {
  readonly log: Logger;
  readonly faults?: SpoolFaults;
}

/** Radiographers sign in when the page is open to the station's network, or when asked to. */
export function signInRequired(config: Pick<EdgeConfig, 'httpHost' | 'requireSignIn'>): boolean {
  return config.requireSignIn || !isLoopbackHost(config.httpHost);
}

/**
 * The data folder holds patients' images and names: only the agent's user may enter it. Made 0700; one left open by
 * an older agent is closed (its files stay as they were, unreachable through the folder).
 */
async function privateDataDir(dir: string, log: EdgeAgentDeps['log']): Promise<void> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const { mode, uid } = await stat(dir);
  if ((mode & 0o077) !== 0 && (process.getuid === undefined || uid === process.getuid())) {
    await chmod(dir, 0o700);
    log.warn({ dataDir: dir, was: (mode & 0o777).toString(8) }, 'the data folder was open to other users of the PC: now 0700');
  }
}

/** Starts every part in order; `stop()` takes them down in reverse, finishing the work in flight. */
export async function startEdgeAgent(deps: EdgeAgentDeps, config: EdgeConfig): Promise<EdgeAgent> {
  const { log } = deps;
  await privateDataDir(config.dataDir, log);
  // First, before anything writes: on a full disk the reserve is given up, so the database opens and serves.
  const disk = new DiskGuard({ log: log.child({ component: 'disk' }) }, { dataDir: config.dataDir, minFreeBytes: config.minFreeBytes });
  await disk.start();
  // Before the model loads: a page open to the network with no one able to sign in is a mistake to say at once.
  const accounts = new AccountStore(config.dataDir);
  const withSignIn = signInRequired(config);
  if (withSignIn && accounts.enabledCount() === 0) {
    accounts.close();
    disk.stop();
    throw new EdgeStartError(
      'CXR_NO_ACCOUNTS',
      `the page would listen on ${config.httpHost}${config.requireSignIn ? ' with --require-sign-in' : ", open to the station's network"}, where radiographers sign in, but no account is enabled: ` +
        `create one with \`cxr-edge admin add-user NAME --data-dir ${config.dataDir}\` (the password is read from standard input or --password-file), or listen on 127.0.0.1 (--http-host 127.0.0.1) for the station PC alone`,
    );
  }
  const callers = config.callingAe.map(parseCallingAe).filter((c): c is AllowedCaller => c !== undefined);
  if (callers.length === 0) {
    log.warn({ dicomPort: config.dicomPort, aeTitle: config.aeTitle }, 'no --calling-ae: any device on the station network can send studies, and they go to the hospital under this station\'s name');
  }
  const db = new SpoolDb(path.join(config.dataDir, 'edge.db'));
  const spool = new Spool({ db, log, faults: deps.faults, disk }, { dataDir: config.dataDir, minFreeBytes: config.minFreeBytes });
  await spool.init();
  /** Files that reached objects/ before a crash cut their row: recorded now, or once there is room. */
  const recoverOrphans = async (): Promise<void> => {
    try {
      const orphans = await spool.recoverOrphans();
      if (orphans > 0) log.warn({ count: orphans }, 'recorded files stored before a crash');
    } catch (err) {
      if (!disk.report(err)) throw err;
    }
  };
  await recoverOrphans();

  const changes = new EventEmitter();
  changes.setMaxListeners(100);
  const outbox = new OutboxDb(db);
  const announce = (record: InstanceRecord): void => {
    changes.emit('change', record);
  };
  const link = config.gatewayUrl && config.stationId && config.stationToken ? { url: config.gatewayUrl, stationId: config.stationId, token: config.stationToken } : undefined;
  const gatewayTls = {
    ...(config.gatewayCa ? { caFile: config.gatewayCa } : {}),
    ...(config.clientCert ? { certFile: config.clientCert } : {}),
    ...(config.clientKey ? { keyFile: config.clientKey } : {}),
  };
  const stages = new InstanceStages({ db, outbox }, { enabled: link !== undefined, consultPriorities: config.consultPriorities });
  const reconcile = (): void => {
    try {
      const reconciled = stages.reconcile();
      if (reconciled > 0) log.warn({ count: reconciled }, 'queued for the hospital what analysed instances still owed it');
    } catch (err) {
      if (!disk.report(err)) throw err;
    }
  };
  reconcile();
  const sender = link
    ? new OutboxSender(
        {
          db,
          outbox,
          spool,
          log,
          disk,
          onChange: (studyInstanceUid) => {
            const first = db.study(studyInstanceUid)[0];
            if (first) announce(first);
          },
        },
        {
          gateway: link,
          pollMs: config.gatewayPollMs,
          linkRetryMaxMs: config.linkRetryMaxMs,
          uploadChunkBytes: config.uploadChunkBytes,
          tls: gatewayTls,
        },
      )
    : undefined;
  // A stage's outbox items are committed with it (spool/stages.ts); the sender is only told there is work.
  const changed = (record: InstanceRecord, stage?: 'result' | 'done'): void => {
    announce(record);
    if (stage) sender?.kick();
  };
  const processor = new InferenceProcessor({ stages, spool, log, disk, onChange: changed }, { threads: config.inferenceThreads, workers: config.workers, timeoutMs: config.inferenceTimeoutMs });
  if (!link && config.registryKey) log.warn({}, '--registry-key is used only with a gateway: model sync is off');
  const modelSync = new ModelSync(
    {
      log: log.child({ component: 'model-sync' }),
      processor,
      client: link && config.modelSync ? new RegistryClient({ ...link, fetch: createGatewayFetch(gatewayTls) }) : undefined,
      linkUp: () => sender?.status().state === 'online',
      onChange: () => changes.emit('model'),
    },
    { dataDir: config.dataDir, localModelDir: config.modelDir, stationId: config.stationId, registryKey: config.registryKey, pollMs: config.modelPollMs, minFreeBytes: config.minFreeBytes },
  );
  let ready = false;
  const onStored = (record: InstanceRecord): void => {
    changed(record);
    processor.enqueue(record);
  };

  let scp: StoreScp | undefined;
  let intake: FolderIntake | undefined;
  let app: FastifyInstance | undefined;
  try {
    const model = await modelSync.startModel();
    processor.resumePending();
    scp = createStoreScp({ spool, log, onStored }, { aeTitle: config.aeTitle, port: config.dicomPort, idleTimeoutMs: config.dimseTimeoutMs, allowedCallers: callers });
    const dicomPort = await scp.listen();
    intake = new FolderIntake({ spool, log, onStored }, { dir: config.watchDir ?? path.join(config.dataDir, 'incoming'), doneDir: path.join(config.dataDir, 'intake-done'), stableMs: config.watchStableMs });
    await intake.start();
    const passwords = new PasswordChecker({ store: accounts });
    // The throwaway hash for unknown names is made now rather than on the first such sign-in (sign-in.ts).
    if (withSignIn) void passwords.prepare().catch((err: unknown) => log.warn({ err: (err as Error).message }, 'the throwaway password hash could not be made; the first unknown name will make it'));
    app = await buildEdgeApp({
      db,
      spool,
      log,
      status: () => ({ ready, model: modelSync.status(), aeTitle: config.aeTitle, dicomPort, queue: processor.queueDepth, disk: disk.state() }),
      outbox,
      link: () => (sender ? sender.status() : undefined),
      requestConsult: (studyInstanceUid, note) => {
        const consult = stages.requestConsult(studyInstanceUid, note);
        if (!consult) return undefined;
        sender?.kick();
        const first = db.study(studyInstanceUid)[0];
        if (first) announce(first);
        return consult;
      },
      subscribe: (listener) => {
        changes.on('change', listener);
        return () => changes.off('change', listener);
      },
      subscribeModel: (listener) => {
        changes.on('model', listener);
        return () => changes.off('model', listener);
      },
      subscribeHealth: (listener) => {
        changes.on('health', listener);
        return () => changes.off('health', listener);
      },
      access: {
        signInRequired: withSignIn,
        accounts,
        passwords,
        limiter: new SignInLimiter(),
        hosts: new HostAllowList({ httpHost: config.httpHost, allowedHosts: config.allowedHosts, machineName: hostname() }),
        sessionTtlMs: config.sessionTtlMs,
      },
    });
    await app.listen({ port: config.httpPort, host: config.httpHost });
    const address = app.server.address();
    const httpPort = typeof address === 'object' && address ? address.port : config.httpPort;
    sender?.start();
    modelSync.start();
    // Room again after a full disk: what waited for it is taken up (stages, files left in the watched folder).
    disk.on('change', (state) => {
      changes.emit('health');
      if (state.full) return;
      void (async () => {
        await recoverOrphans();
        reconcile();
        processor.resumePending();
        await intake?.rescan();
        sender?.kick();
      })().catch((err: unknown) => log.error({ err: (err as Error).message }, 'taking up work after a full disk failed'));
    });
    ready = true;
    log.info({ dicomPort, httpPort, httpHost: config.httpHost, signIn: withSignIn, aeTitle: config.aeTitle, callingAe: config.callingAe, gateway: link ? link.url : null }, 'edge agent ready');

    let stopped: Promise<void> | undefined;
    return {
      dicomPort,
      httpPort,
      get model(): DeployedModel {
        return processor.model ?? model;
      },
      app,
      disk,
      stop: () =>
        (stopped ??= (async () => {
          ready = false;
          disk.stop();
          await scp?.close();
          await intake?.stop();
          await modelSync.stop();
          await sender?.stop();
          await processor.stop();
          await app?.close();
          db.close();
          accounts.close();
          log.info('edge agent stopped');
        })()),
    };
  } catch (err) {
    disk.stop();
    await scp?.close().catch(() => undefined);
    await intake?.stop().catch(() => undefined);
    await modelSync.stop().catch(() => undefined);
    await processor.stop(0).catch(() => undefined);
    await app?.close().catch(() => undefined);
    db.close();
    accounts.close();
    throw err;
  }
}
