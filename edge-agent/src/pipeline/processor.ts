import path from 'node:path';
import { MessageChannel } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { CxrError, type GoldenReport, type ThresholdOverrides, type TriageResult } from '@cxr/inference';
import type { Logger } from '../log.js';
import type { InstanceRecord } from '../spool/db.js';
import type { Spool } from '../spool/spool.js';
import type { InstanceStages } from '../spool/stages.js';
import type { DeployedModel, InferenceOutcome, InferencePhase, InferenceProgress, InferenceTask } from './worker.js';

export interface ProcessorDeps {
  /** writes each stage with the outbox items it implies */
  readonly stages: InstanceStages;
  readonly spool: Spool;
  readonly log: Logger;
  /** Told of a write that failed: true when for want of room (the stage is then done again once there is room). */
  readonly disk: { report(err: unknown): boolean };
  /** Told of every change to an instance, for the page's live updates; `done` once its images are drawn too. */
  readonly onChange: (record: InstanceRecord, stage: 'result' | 'done') => void;
}

export interface ProcessorOptions {
  /** threads for the model and the JPEG 2000 decoder, per worker */
  readonly threads: number;
  /** worker threads running inference, per model */
  readonly workers: number;
  /**
   * ms after which an image still decoding is stopped (its worker thread replaced), counted from the start of its
   * analysis. Default 120 000. A model run or images being drawn are not stopped (they always return, and
   * stopping a thread inside ONNX Runtime or sharp aborts the whole process): they are only logged as slow.
   */
  readonly timeoutMs?: number;
  /** analyses of one instance cut short (the process stopped during them) before it is given up. Default 3. */
  readonly maxAttempts?: number;
}

/** A model folder to run and the per-site thresholds it runs under. */
export interface ModelChoice {
  readonly dir: string;
  readonly thresholds: ThresholdOverrides;
}

/** A model loaded in its own workers, checked, not yet serving. */
export interface PreparedModel {
  readonly model: DeployedModel;
  /** `present: false` when the golden cases were not asked for or the folder has none */
  readonly golden: GoldenReport;
}

/** Instances analysed by one model since it started serving (in this process). */
export interface ModelCounts {
  readonly studies: number;
  /** studies with at least one image that failed on this model */
  readonly failed: number;
}

/** One model with its own worker pool: a swap opens the new slot before the old one closes. */
interface Slot {
  readonly pool: Piscina;
  readonly choice: ModelChoice;
  thresholds: ThresholdOverrides;
  readonly model: DeployedModel;
  readonly inFlight: Set<Promise<void>>;
  readonly studies: Set<string>;
  readonly failedStudies: Set<string>;
  /** set once its workers are being closed */
  closed?: Promise<void>;
}

/**
 * Runs every durable instance through the model in worker threads, at once, not after a "stable study" wait.
 * Each model has its own pool of workers: an instance runs on the model that was serving when it was queued, so a
 * swap never stops or reruns anything; the old pool closes once its last instance is done.
 */
export class InferenceProcessor {
  readonly #deps: ProcessorDeps;
  readonly #options: ProcessorOptions;
  readonly #queued = new Set<number>();
  readonly #prepared = new WeakMap<PreparedModel, Slot>();
  readonly #slots = new Set<Slot>();
  #active: Slot | undefined;
  #stopping = false;

  constructor(deps: ProcessorDeps, options: ProcessorOptions) {
    this.#deps = deps;
    this.#options = options;
  }

  /**
   * Loads a model in a new pool of workers (every worker loads it) and, when `golden` is asked, runs its golden
   * cases in one of them. Throws (and closes the new pool) when it does not load or a golden case fails; the
   * model serving now is not touched either way.
   */
  async prepare(choice: ModelChoice, options: { golden: boolean }): Promise<PreparedModel> {
    const pool = new Piscina({
      filename: new URL('./worker.js', import.meta.url).href,
      minThreads: this.#options.workers,
      maxThreads: this.#options.workers,
      idleTimeout: Number.POSITIVE_INFINITY,
      // Inference is CPU-bound: one task per thread at a time.
      concurrentTasksPerWorker: 1,
    });
    const task = { modelDir: choice.dir, threads: this.#options.threads };
    try {
      const others = Array.from({ length: this.#options.workers - 1 }, () => pool.run(task, { name: 'warmUp' }) as Promise<DeployedModel>);
      const first = options.golden
        ? (pool.run(task, { name: 'verify' }) as Promise<{ model: DeployedModel; golden: GoldenReport }>)
        : (pool.run(task, { name: 'warmUp' }) as Promise<DeployedModel>).then((model) => ({ model, golden: { present: false, passed: true, tolerance: 0, cases: [] } }));
      const [{ model, golden }] = await Promise.all([first, ...others]);
      if (!golden.passed) {
        const failed = golden.cases.filter((c) => !c.ok);
        const detail = failed
          .slice(0, 3)
          .map((c) => (c.error ? `${c.input}: ${c.error.code}` : `${c.input}: differs by ${c.maxAbsDiff ?? '?'} (tolerance ${golden.tolerance})`))
          .join('; ');
        throw new CxrError('CXR_MODEL_GOLDEN_MISMATCH', `${failed.length} of ${golden.cases.length} golden cases failed: ${detail}`);
      }
      const prepared: PreparedModel = { model, golden };
      this.#prepared.set(prepared, { pool, choice, thresholds: choice.thresholds, model, inFlight: new Set(), studies: new Set(), failedStudies: new Set() });
      return prepared;
    } catch (err) {
      await pool.destroy().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Makes a prepared model the one new instances go to, at once; instances already queued on the previous model
   * finish there, then its workers close. Resolves when the previous model is closed.
   */
  async activate(prepared: PreparedModel): Promise<void> {
    const slot = this.#prepared.get(prepared);
    if (!slot) throw new Error('not a prepared model of this processor');
    this.#prepared.delete(prepared);
    const previous = this.#active;
    this.#slots.add(slot);
    this.#active = slot;
    if (previous) await this.#retire(previous);
  }

  /** Closes a prepared model that will not serve. */
  async discard(prepared: PreparedModel): Promise<void> {
    const slot = this.#prepared.get(prepared);
    this.#prepared.delete(prepared);
    await slot?.pool.destroy();
  }

  /**
   * Takes up every instance a restart found unfinished (received, or with its early result only: it runs again
   * from its file, which gives the same result and draws the images); call once a model is active.
   */
  resumePending(): void {
    const maxAttempts = this.#options.maxAttempts ?? 3;
    const unfinished = this.#deps.stages.unfinished().filter((record) => {
      // The process stopped during every one of its last analyses: an image that crashes the agent must not keep it
      // in a loop of restarts, holding back every other image.
      if (record.attempts < maxAttempts || this.#queued.has(record.id)) return true;
      const message = `its analysis was cut short ${record.attempts} times; not tried again`;
      const updated = this.#writeStage(record.id, 'abandoned', () => this.#deps.stages.failed(record.id, { code: 'CXR_INFERENCE_ABANDONED', message }, { preview: null }));
      this.#deps.log.error({ instanceId: record.id, attempts: record.attempts }, 'analysis abandoned');
      if (updated) this.#deps.onChange(updated, 'done');
      return false;
    });
    if (unfinished.length > 0) {
      const early = unfinished.filter((r) => r.status === 'inferred').length;
      this.#deps.log.info({ count: unfinished.length, earlyResultOnly: early }, 'resuming unfinished instances');
    }
    for (const record of unfinished) this.enqueue(record);
  }

  get model(): DeployedModel | undefined {
    return this.#active?.model;
  }

  get thresholds(): ThresholdOverrides {
    return this.#active?.thresholds ?? {};
  }

  /** New per-site thresholds for the model serving now: they apply to instances queued from now on. */
  setThresholds(thresholds: ThresholdOverrides): void {
    if (this.#active) this.#active.thresholds = thresholds;
  }

  counts(): ModelCounts {
    return { studies: this.#active?.studies.size ?? 0, failed: this.#active?.failedStudies.size ?? 0 };
  }

  get queueDepth(): number {
    return this.#queued.size;
  }

  enqueue(record: InstanceRecord): void {
    const slot = this.#active;
    // Before a model serves, a received instance stays `received` in the spool: resumePending() takes it.
    if (this.#stopping || !slot || this.#queued.has(record.id)) return;
    this.#queued.add(record.id);
    // The result is shown as soon as the model has run; the preview and heatmap follow a moment later.
    const { port1, port2 } = new MessageChannel();
    // A codec that never returns must not hold the queue: the task is stopped and its worker thread replaced. The
    // time counts from the start of its analysis, not from the queue (a slow one must not fail those behind it).
    const timeoutMs = this.#options.timeoutMs ?? 120_000;
    const abort = new AbortController();
    let timer: NodeJS.Timeout | undefined;
    let phase: InferencePhase | undefined;
    port1.on('message', (progress: InferenceProgress) => {
      if (progress.kind === 'result') {
        this.#recordEarly(record.id, progress.result);
        return;
      }
      const started = phase === undefined;
      phase = progress.phase;
      if (!started) return;
      timer = setTimeout(() => {
        if (phase === 'decode') abort.abort();
        else this.#deps.log.warn({ instanceId: record.id, phase, ms: timeoutMs }, 'analysis slow: left to finish');
      }, timeoutMs);
      try {
        this.#deps.stages.analysisStarted(record.id);
      } catch (err) {
        if (!this.#deps.disk.report(err)) this.#deps.log.error({ instanceId: record.id, err: (err as Error).message }, 'attempt not counted');
      }
    });
    const task: InferenceTask = {
      instanceId: record.id,
      file: this.#deps.spool.absolute(record.file),
      derivedDir: path.join(this.#deps.spool.dirs.derived, String(record.id)),
      modelDir: slot.choice.dir,
      threads: this.#options.threads,
      thresholds: slot.thresholds,
      early: port2,
    };
    const job = (slot.pool.run(task, { transferList: [port2], signal: abort.signal }) as Promise<InferenceOutcome>)
      .then((outcome) => this.#record(slot, record, outcome))
      .catch((err: unknown) => {
        if (abort.signal.aborted && !this.#stopping) {
          this.#record(slot, record, { ok: false, error: { code: 'CXR_INFERENCE_TIMEOUT', message: `stopped after ${timeoutMs} ms` }, preview: null });
          return;
        }
        // The worker itself died or the pool closed: the instance stays unfinished and a restart runs it again.
        if (!this.#stopping) this.#deps.log.error({ instanceId: record.id, err: (err as Error).message }, 'inference worker failed');
      })
      .finally(() => {
        clearTimeout(timer);
        port1.close();
        this.#queued.delete(record.id);
        slot.inFlight.delete(job);
      });
    slot.inFlight.add(job);
  }

  #recordEarly(id: number, result: TriageResult): void {
    // Messages on two ports are not ordered: only a `received` row takes the early result, never a final one.
    const record = this.#writeStage(id, 'early result', () => this.#deps.stages.earlyResult(id, result));
    if (record) this.#deps.onChange(record, 'result');
  }

  /**
   * Writes a stage. A disk without room leaves the instance unfinished, to be done again once there is room
   * (resumePending); any other failure is logged. Never throws: it runs in message handlers.
   */
  #writeStage(id: number, stage: string, write: () => InstanceRecord | undefined): InstanceRecord | undefined {
    try {
      return write();
    } catch (err) {
      if (this.#deps.disk.report(err)) this.#deps.log.warn({ instanceId: id, stage }, 'disk full: stage not written, done again when there is room');
      else if (!this.#stopping) this.#deps.log.error({ instanceId: id, stage, err: (err as Error).message }, 'stage not written');
      return undefined;
    }
  }

  #record(slot: Slot, record: InstanceRecord, outcome: InferenceOutcome): void {
    const { stages, log } = this.#deps;
    const id = record.id;
    this.#writeStage(id, 'analysis ended', () => {
      stages.analysisEnded(id);
      return undefined;
    });
    if (!outcome.ok && outcome.diskFull) {
      // Not the image's fault: no room for its preview. It stays unfinished and runs again once there is room.
      this.#deps.disk.report({ code: 'ENOSPC' });
      log.warn({ instanceId: id }, 'disk full: images not written, done again when there is room');
      return;
    }
    slot.studies.add(record.studyInstanceUid);
    let updated: InstanceRecord | undefined;
    if (outcome.ok) {
      updated = this.#writeStage(id, 'complete', () =>
        stages.complete(id, outcome.result, { preview: this.#relative(outcome.preview), heatmap: this.#relative(outcome.heatmap), heatmapLabel: outcome.heatmapLabel }),
      );
      if (!updated) return;
      log.info(
        { instanceId: id, applicable: outcome.result.applicable, priority: outcome.result.priority, ms: outcome.result.timingsMs.total, model: `${slot.model.name}@${slot.model.version}` },
        'inferred',
      );
    } else {
      slot.failedStudies.add(record.studyInstanceUid);
      updated = this.#writeStage(id, 'failed', () => stages.failed(id, outcome.error, { preview: this.#relative(outcome.preview) }));
      log.warn({ instanceId: id, code: outcome.error.code }, 'inference failed');
    }
    if (updated) this.#deps.onChange(updated, 'done');
  }

  #relative(file: string | null): string | null {
    return file ? path.relative(path.dirname(this.#deps.spool.dirs.derived), file) : null;
  }

  async #retire(slot: Slot, graceMs = Number.POSITIVE_INFINITY): Promise<void> {
    const settled = Promise.allSettled([...slot.inFlight]);
    await (Number.isFinite(graceMs) ? Promise.race([settled, new Promise((r) => setTimeout(r, graceMs).unref())]) : settled);
    // A swap and a stop may both retire the same model: its workers close once.
    slot.closed ??= slot.pool.destroy().catch((err: unknown) => this.#deps.log.warn({ err: (err as Error).message }, 'closing a model pool failed'));
    await slot.closed;
    this.#slots.delete(slot);
  }

  /** Finishes the work in flight (up to `graceMs`), then stops the workers of every model. */
  async stop(graceMs = 10_000): Promise<void> {
    this.#stopping = true;
    await Promise.all([...this.#slots].map((slot) => this.#retire(slot, graceMs)));
    this.#active = undefined;
  }
}
