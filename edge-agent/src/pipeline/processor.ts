import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { TriageResult } from '@cxr/inference';
import type { Logger } from '../log.js';
import type { InstanceRecord, SpoolDb } from '../spool/db.js';
import type { Spool } from '../spool/spool.js';
import type { DeployedModel, InferenceOutcome, InferenceTask } from './worker.js';

export interface ProcessorDeps {
  readonly db: SpoolDb;
  readonly spool: Spool;
  readonly log: Logger;
  /** Told of every change to an instance, for the page's live updates; `done` once its images are drawn too. */
  readonly onChange: (record: InstanceRecord, stage: 'result' | 'done') => void;
}

export interface ProcessorOptions {
  readonly modelDir: string;
  /** threads for the model and the JPEG 2000 decoder, per worker */
  readonly threads: number;
  /** worker threads running inference */
  readonly workers: number;
  /** ms after which an image's decode and inference is stopped (its worker restarted). Default 120 000. */
  readonly timeoutMs?: number;
}

/**
 * Runs every durable instance through the model in worker threads, at once, not after a "stable study" wait.
 * On start it picks up what was received but not processed before a restart.
 */
export class InferenceProcessor {
  readonly #deps: ProcessorDeps;
  readonly #options: ProcessorOptions;
  readonly #pool: Piscina;
  readonly #inFlight = new Set<Promise<void>>();
  readonly #queued = new Set<number>();
  #model: DeployedModel | undefined;
  #stopping = false;

  constructor(deps: ProcessorDeps, options: ProcessorOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#pool = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: options.workers,
      maxThreads: options.workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      // Inference is CPU-bound: one task per thread at a time.
      concurrentTasksPerWorker: 1,
    });
  }

  /** Loads the model in every worker; resolves with its identity. Fails if the model cannot be loaded. */
  async start(): Promise<DeployedModel> {
    const warm = Array.from({ length: this.#options.workers }, () =>
      this.#pool.run({ modelDir: this.#options.modelDir, threads: this.#options.threads }, { name: 'warmUp' }) as Promise<DeployedModel>,
    );
    const [identity] = await Promise.all(warm);
    this.#model = identity;
    const pending = this.#deps.db.pending();
    if (pending.length > 0) this.#deps.log.info({ count: pending.length }, 'resuming unfinished instances');
    for (const record of pending) this.enqueue(record);
    return identity as DeployedModel;
  }

  get model(): DeployedModel | undefined {
    return this.#model;
  }

  /** True while an instance is being processed (its result may already show; its images are coming). */
  isProcessing(id: number): boolean {
    return this.#queued.has(id);
  }

  get queueDepth(): number {
    return this.#queued.size;
  }

  enqueue(record: InstanceRecord): void {
    if (this.#stopping || this.#queued.has(record.id)) return;
    this.#queued.add(record.id);
    // The result is shown as soon as the model has run; the preview and heatmap follow a moment later.
    const { port1, port2 } = new MessageChannel();
    port1.once('message', (result: TriageResult) => this.#recordEarly(record.id, result));
    const task: InferenceTask = {
      instanceId: record.id,
      file: this.#deps.spool.absolute(record.file),
      derivedDir: path.join(this.#deps.spool.dirs.derived, String(record.id)),
      modelDir: this.#options.modelDir,
      threads: this.#options.threads,
      early: port2,
    };
    // A codec that never returns must not hold the queue: the task is aborted and its worker thread replaced.
    const signal = AbortSignal.timeout(this.#options.timeoutMs ?? 120_000);
    const job = (this.#pool.run(task, { transferList: [port2], signal }) as Promise<InferenceOutcome>)
      .then((outcome) => this.#record(record.id, outcome))
      .catch((err: unknown) => {
        if (signal.aborted && !this.#stopping) {
          this.#record(record.id, { ok: false, error: { code: 'CXR_INFERENCE_TIMEOUT', message: `stopped after ${this.#options.timeoutMs ?? 120_000} ms` }, preview: null });
          return;
        }
        // The worker itself died or the pool closed: leave the row `received`, a restart retries it.
        if (!this.#stopping) this.#deps.log.error({ instanceId: record.id, err: (err as Error).message }, 'inference worker failed');
      })
      .finally(() => {
        port1.close();
        this.#queued.delete(record.id);
        this.#inFlight.delete(job);
      });
    this.#inFlight.add(job);
  }

  #recordEarly(id: number, result: TriageResult): void {
    // Messages on two ports are not ordered: never overwrite the final record with the early one.
    if (this.#deps.db.get(id)?.status !== 'received') return;
    this.#deps.db.markInferred(id, result, { preview: null, heatmap: null });
    const record = this.#deps.db.get(id);
    if (record) this.#deps.onChange(record, 'result');
  }

  #record(id: number, outcome: InferenceOutcome): void {
    const { db, log } = this.#deps;
    if (outcome.ok) {
      db.markInferred(id, outcome.result, { preview: this.#relative(outcome.preview), heatmap: this.#relative(outcome.heatmap), heatmapLabel: outcome.heatmapLabel });
      log.info(
        { instanceId: id, applicable: outcome.result.applicable, priority: outcome.result.priority, ms: outcome.result.timingsMs.total },
        'inferred',
      );
    } else {
      db.markFailed(id, outcome.error, { preview: this.#relative(outcome.preview) });
      log.warn({ instanceId: id, code: outcome.error.code }, 'inference failed');
    }
    const record = db.get(id);
    if (record) this.#deps.onChange(record, 'done');
  }

  #relative(file: string | null): string | null {
    return file ? path.relative(path.dirname(this.#deps.spool.dirs.derived), file) : null;
  }

  /** Finishes the work in flight (up to `graceMs`), then stops the workers. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise((r) => setTimeout(r, graceMs).unref())]);
    await this.#pool.destroy();
  }
}
