import { createHash } from 'node:crypto';
import { mkdir, readdir, rm, statfs } from 'node:fs/promises';
import path from 'node:path';
import {
  CxrError,
  ErrorCodes,
  ModelDeploymentSchema,
  ModelReleaseSchema,
  compareModelVersions,
  openSignedDocument,
  publicKeyFromString,
  toCxrError,
  type ModelDeployment,
  type ModelRelease,
  type SignedEnvelope,
} from '@cxr/inference';
import type { Logger } from '../log.js';
import type { InferenceProcessor } from '../pipeline/processor.js';
import type { DeployedModel } from '../pipeline/worker.js';
import { DownloadInterrupted, downloadFile, modelFolder, releasePath, verifyFolder } from './files.js';
import { RegistryRefused, RegistryUnavailable, type DesiredModel, type ModelStatusReport, type RegistryClient } from './registry-client.js';
import { SyncStateFile, emptySyncState, type RefusedDeployment, type StoredModel, type SyncState } from './state.js';

/**
 * How long a refusal holds, ms: the same signed deployment is not downloaded or loaded again before (a restart
 * included: refusals are kept in models/state.json), then tried once more, since what made it fail (the station's
 * software, a file on the gateway) may have been put right. A new deployment is always tried at once.
 */
export const REFUSAL_HOLD_MS = 24 * 3600_000;
/** refusals kept in models/state.json, the newest */
const REFUSALS_KEPT = 20;

export type ModelSyncState = 'ok' | 'downloading' | 'verifying' | 'failed';

/** Why the last sync attempt did not bring the station to its deployed version. */
export interface ModelSyncError {
  readonly code: string;
  readonly message: string;
  /** the version that was refused (as the deployment claims it, when it could not be verified) */
  readonly name: string;
  readonly version: string;
}

/** The model serving now, as `GET /api/health` reports it (model-registry/PROTOCOL.md, "Edge health"). */
export interface RunningModel extends DeployedModel {
  readonly source: 'local' | 'registry';
  readonly state: ModelSyncState;
  /** the verified version kept to fall back to; absent when the fallback is the --model folder */
  readonly lastGood?: { readonly name: string; readonly version: string };
  /** per-site thresholds of the deployment in force (label code -> threshold) */
  readonly thresholds: Readonly<Record<string, number>>;
  readonly deploymentId: string | null;
  readonly error?: ModelSyncError;
  /** when the gateway last answered which model to run */
  readonly lastSyncAt: string | null;
}

export interface ModelSyncDeps {
  readonly log: Logger;
  readonly processor: InferenceProcessor;
  /** undefined without a gateway or with model sync turned off: the station runs its --model folder */
  readonly client: RegistryClient | undefined;
  /** the hospital link is up (the outbox's view of it) */
  readonly linkUp: () => boolean;
  /** the model serving, or its sync state, changed */
  readonly onChange: () => void;
}

export interface ModelSyncOptions {
  readonly dataDir: string;
  /** the station's own model folder (--model): what it runs without a verified registry model */
  readonly localModelDir: string;
  readonly stationId: string | undefined;
  /** --registry-key; without it the key is pinned from the gateway on first use */
  readonly registryKey: string | undefined;
  /** ms between asking the gateway which model to run */
  readonly pollMs: number;
  /** a download stops (to resume later) when no byte arrives for this long, ms. Default 60 000. */
  readonly stallMs?: number;
  /** bytes that must stay free on the data disk after a model download (the spool's floor). Default 0. */
  readonly minFreeBytes?: number;
}

interface Running {
  /** null: the --model folder */
  readonly stored: StoredModel | null;
  readonly model: DeployedModel;
}

/**
 * Keeps the station on the model version the registry deploys to it: asks the gateway when the link is up,
 * verifies the signed deployment and release, downloads resumably, checks every digest, loads the model in new
 * workers and runs its golden cases, and only then swaps (the old workers finish what they started). Any failure
 * leaves the serving model as it is; offline nothing changes.
 */
export class ModelSync {
  readonly #deps: ModelSyncDeps;
  readonly #options: ModelSyncOptions;
  readonly #file: SyncStateFile;
  readonly #modelsDir: string;
  #state: SyncState = emptySyncState();
  #running: Running | undefined;
  #syncState: ModelSyncState = 'ok';
  #error: ModelSyncError | undefined;
  #lastSyncAt: string | null = null;
  /** deployments refused for good, by fingerprint (kept in models/state.json): not downloaded or loaded again */
  readonly #refused = new Map<string, RefusedDeployment>();
  readonly #abort = new AbortController();
  #stopped = false;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #nextAt = 0;
  #wasUp = false;
  #failures = 0;
  #noRegistryLogged = false;
  /** models/state.json was there but unreadable: its pinned key is lost, and trust on first use is not first use */
  #stateLost = false;

  constructor(deps: ModelSyncDeps, options: ModelSyncOptions) {
    this.#deps = deps;
    this.#options = options;
    this.#modelsDir = path.join(options.dataDir, 'models');
    this.#file = new SyncStateFile(path.join(this.#modelsDir, 'state.json'));
  }

  /**
   * Starts serving: the last verified registry model when there is one (its files checked again against its
   * signed release, its golden cases run again), else the one before it, else the --model folder. Throws only
   * when none of them loads.
   */
  async startModel(): Promise<DeployedModel> {
    const { log, processor } = this.#deps;
    await mkdir(this.#modelsDir, { recursive: true });
    try {
      this.#state = await this.#file.read();
    } catch (err) {
      this.#stateLost = true;
      log.error({ err: (err as Error).message }, 'model sync state unreadable: starting from the --model folder');
    }
    for (const refusal of this.#state.refused ?? []) this.#refused.set(refusal.fingerprint, refusal);
    const key = this.#options.registryKey ?? this.#state.pinnedKey;
    for (const candidate of [this.#state.current, this.#state.lastGood]) {
      if (!candidate) continue;
      try {
        if (!key) throw new CxrError('CXR_SIGNATURE_INVALID', 'no registry key to verify it with');
        const { deployment, release } = openDocuments(candidate.deployment, candidate.release, key);
        const folder = path.join(this.#modelsDir, candidate.folder);
        await verifyFolder(folder, release);
        // Its golden cases again too: the station's software (its runtime) may have changed since the swap.
        const prepared = await processor.prepare({ dir: folder, thresholds: deployment.thresholds }, { golden: true });
        await processor.activate(prepared);
        this.#running = { stored: candidate, model: prepared.model };
        log.info({ model: `${candidate.name}@${candidate.version}`, source: 'registry', deploymentId: candidate.deploymentId, goldenCases: prepared.golden.cases.length }, 'model loaded');
        return prepared.model;
      } catch (err) {
        const e = toCxrError(err, 'CXR_MODEL_LOAD_FAILED');
        this.#error = { code: e.code, message: e.message, name: candidate.name, version: candidate.version };
        this.#syncState = 'failed';
        log.error({ code: e.code, err: e.message, model: `${candidate.name}@${candidate.version}` }, 'stored registry model cannot serve, falling back');
      }
    }
    const prepared = await processor.prepare({ dir: this.#options.localModelDir, thresholds: {} }, { golden: false });
    await processor.activate(prepared);
    this.#running = { stored: null, model: prepared.model };
    log.info({ model: `${prepared.model.name}@${prepared.model.version}`, source: 'local' }, 'model loaded');
    return prepared.model;
  }

  /** Starts asking the gateway (nothing without one). */
  start(): void {
    if (!this.#deps.client) return;
    this.#loop ??= this.#run();
  }

  /** Stops asking; a download in progress stops where it is (its part file stays for the next start). */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort.abort();
    this.#wake?.();
    await this.#loop;
  }

  status(): RunningModel | undefined {
    const running = this.#running;
    if (!running) return undefined;
    const lastGood = this.#state.lastGood;
    return {
      ...running.model,
      source: running.stored ? 'registry' : 'local',
      state: this.#syncState,
      ...(lastGood ? { lastGood: { name: lastGood.name, version: lastGood.version } } : {}),
      thresholds: running.stored?.thresholds ?? {},
      deploymentId: running.stored?.deploymentId ?? null,
      ...(this.#error ? { error: this.#error } : {}),
      lastSyncAt: this.#lastSyncAt,
    };
  }

  async #run(): Promise<void> {
    const { log, linkUp } = this.#deps;
    while (!this.#stopped) {
      const up = linkUp();
      // Back online: catch up at once rather than at the next interval.
      const cameBack = up && !this.#wasUp;
      this.#wasUp = up;
      if (up && (cameBack || Date.now() >= this.#nextAt)) {
        try {
          await this.#attempt();
          this.#failures = 0;
          this.#nextAt = Date.now() + this.#options.pollMs;
        } catch (err) {
          if (this.#stopped) break;
          this.#failures += 1;
          const retryInMs = Math.min(this.#options.pollMs, 1000 * 2 ** Math.min(this.#failures, 8));
          this.#nextAt = Date.now() + retryInMs;
          log.info({ err: (err as Error).message, retryInMs, state: this.#syncState }, 'model sync interrupted, will retry');
        }
      }
      await this.#sleep(Math.min(1000, this.#options.pollMs));
    }
  }

  /**
   * One sync: what should run here, and get there if it is not what runs. Throws only what a later attempt may
   * get past (link down, download cut); refusals are recorded and reported.
   */
  async #attempt(): Promise<void> {
    const client = this.#deps.client;
    if (!client) return;
    const signal = this.#abort.signal;
    let answer: DesiredModel;
    try {
      answer = await client.desired(signal);
    } catch (err) {
      if (err instanceof RegistryRefused && err.status === 404) {
        // A gateway without the registry: nothing to take, nothing to report to.
        if (!this.#noRegistryLogged) this.#deps.log.info({ err: err.message }, 'the gateway serves no model registry; the station keeps its model');
        this.#noRegistryLogged = true;
        return;
      }
      throw err;
    }
    this.#lastSyncAt = new Date().toISOString();
    if (answer.deployment === null) {
      this.#settle();
      await this.#report();
      return;
    }
    // Refused for good means: these signed documents, while this model runs and this registry key is trusted.
    const trustedKey = this.#options.registryKey ?? this.#state.pinnedKey;
    const fingerprint = createHash('sha256').update(JSON.stringify([answer.deployment, answer.release, this.#runningName(), trustedKey])).digest('hex');
    const refused = this.#refused.get(fingerprint);
    if (refused && Date.now() - Date.parse(refused.at) < REFUSAL_HOLD_MS) {
      if (this.#error?.code !== refused.code || this.#error.version !== refused.version) {
        this.#deps.log.info({ code: refused.code, model: `${refused.name}@${refused.version}`, refusedAt: refused.at }, 'deployment refused before: not downloaded or loaded again');
      }
      this.#fail({ code: refused.code, message: refused.message, name: refused.name, version: refused.version });
      await this.#report();
      return;
    }
    try {
      await this.#apply(answer, signal);
    } catch (err) {
      if (err instanceof RegistryUnavailable || err instanceof RegistryRefused || err instanceof DownloadInterrupted || this.#stopped) throw err;
      const e = toCxrError(err, 'CXR_MODEL_LOAD_FAILED');
      const claimed = claimedTarget(answer.deployment);
      const error: ModelSyncError = { code: e.code, message: e.message, name: claimed.name, version: claimed.version };
      const transient = (ErrorCodes as Record<string, { transient: boolean } | undefined>)[e.code]?.transient ?? false;
      if (!transient) await this.#keepRefusal({ fingerprint, ...error, at: new Date().toISOString() });
      this.#fail(error);
      this.#deps.log.warn({ code: e.code, err: e.message, model: `${claimed.name}@${claimed.version}`, running: this.#runningName() }, 'deployed model refused; the station keeps its model');
    }
    await this.#report();
  }

  async #apply(answer: DesiredModel, signal: AbortSignal): Promise<void> {
    const { log, processor, client } = this.#deps;
    const running = this.#running;
    if (!running || !client) return;
    const key = await this.#trustedKey(client, signal);
    const { deployment, release } = openDocuments(answer.deployment, answer.release, key);
    if ('station' in deployment.target && deployment.target.station !== this.#options.stationId) {
      throw new CxrError('CXR_SIGNATURE_INVALID', `the deployment is for station ${deployment.target.station}`);
    }
    const target = `${deployment.name}@${deployment.version}`;
    const current = running.stored;
    // A deployment issued before the one in force is an old signed document played back (of any model): refused,
    // since a real change of mind (a rollback included) is always issued anew.
    const inForce = current ? issuedAtOf(current.deployment) : undefined;
    if (inForce !== undefined && Date.parse(deployment.issuedAt) < inForce) {
      throw new CxrError('CXR_MODEL_ROLLBACK_REFUSED', `the deployment of ${target} was issued at ${deployment.issuedAt}, before the one in force`);
    }
    if (current && current.name === deployment.name && current.version === deployment.version) {
      // The version runs already: only the deployment (its per-site thresholds) may be new.
      if (current.deploymentId !== deployment.deploymentId || JSON.stringify(current.thresholds) !== JSON.stringify(deployment.thresholds)) {
        const stored: StoredModel = { ...current, deploymentId: deployment.deploymentId, thresholds: deployment.thresholds, deployment: answer.deployment as SignedEnvelope };
        this.#state = { ...this.#state, current: stored };
        await this.#file.write(this.#state);
        processor.setThresholds(deployment.thresholds);
        this.#running = { stored, model: running.model };
        log.info({ model: target, deploymentId: deployment.deploymentId, thresholds: deployment.thresholds }, 'per-site thresholds updated');
        this.#deps.onChange();
      }
      this.#settle();
      return;
    }
    if (running.model.name === deployment.name && compareModelVersions(deployment.version, running.model.version) < 0 && !deployment.rollback) {
      throw new CxrError('CXR_MODEL_ROLLBACK_REFUSED', `${target} is older than ${this.#runningName()} and its deployment is not a signed rollback`);
    }

    const folder = modelFolder(this.#modelsDir, deployment.name, deployment.version);
    // A model must never take the room the spool needs for the next radiographs: check before downloading.
    const needed = release.files.reduce((sum, f) => sum + f.size, 0);
    const disk = await statfs(this.#modelsDir);
    const free = disk.bavail * disk.bsize;
    if (free - needed < (this.#options.minFreeBytes ?? 0)) {
      throw new CxrError('CXR_DISK_FULL', `${target} needs ${needed} bytes; ${free} are free and ${this.#options.minFreeBytes ?? 0} must stay free`);
    }
    await this.#enter('downloading');
    for (const file of release.files) {
      const outcome = await downloadFile(releasePath(folder, file), file, {
        fetchFrom: (offset, s) => client.file(release.name, release.version, file.path, file.sha256, offset, s),
        signal,
        stallMs: this.#options.stallMs ?? 60_000,
      });
      if (!outcome.present) log.info({ model: target, file: file.path, bytes: file.size, resumedFrom: outcome.resumedFrom }, outcome.resumedFrom > 0 ? 'model file download resumed and verified' : 'model file downloaded and verified');
    }

    await this.#enter('verifying');
    await verifyFolder(folder, release);
    const prepared = await processor.prepare({ dir: folder, thresholds: deployment.thresholds }, { golden: true });
    if (!prepared.golden.present) log.warn({ model: target }, 'the release has no golden cases: nothing to check on this PC before the swap');
    if (this.#stopped) {
      await processor.discard(prepared);
      return;
    }
    const stored: StoredModel = {
      name: deployment.name,
      version: deployment.version,
      sha256: prepared.model.sha256,
      folder: path.basename(folder),
      deploymentId: deployment.deploymentId,
      thresholds: deployment.thresholds,
      release: answer.release as SignedEnvelope,
      deployment: answer.deployment as SignedEnvelope,
      since: new Date().toISOString(),
    };
    // On disk first: after a power cut from here on, the station starts on the verified new model.
    this.#state = { ...this.#state, current: stored, lastGood: current };
    await this.#file.write(this.#state);
    const previousClosed = processor.activate(prepared);
    const previous = this.#runningName();
    this.#running = { stored, model: prepared.model };
    this.#settle();
    log.info(
      { model: target, previous, rollback: deployment.rollback, deploymentId: deployment.deploymentId, goldenCases: prepared.golden.cases.length, thresholds: deployment.thresholds },
      'model swapped',
    );
    this.#deps.onChange();
    void previousClosed.then(
      () => log.info({ model: previous }, 'previous model closed after its last study'),
      (err: unknown) => log.warn({ model: previous, err: (err as Error).message }, 'closing the previous model failed'),
    );
    await this.#removeOldFolders();
  }

  /** Remembers a refusal, on disk too, so that a restart does not download and check the same model again. */
  async #keepRefusal(refusal: RefusedDeployment): Promise<void> {
    this.#refused.delete(refusal.fingerprint);
    this.#refused.set(refusal.fingerprint, refusal);
    // An unreadable state file stays as it is: writing a fresh one would lose the fact that a key was pinned.
    if (this.#stateLost) return;
    this.#state = { ...this.#state, refused: [...this.#refused.values()].slice(-REFUSALS_KEPT) };
    try {
      await this.#file.write(this.#state);
    } catch (err) {
      this.#deps.log.warn({ err: (err as Error).message }, 'refusal not saved: the next start checks that model again');
    }
  }

  /** The registry key to trust: --registry-key, else the pinned one, else the gateway's, pinned now (trust on first use). */
  async #trustedKey(client: RegistryClient, signal: AbortSignal): Promise<string> {
    const configured = this.#options.registryKey ?? this.#state.pinnedKey;
    if (configured) return configured;
    if (this.#stateLost) throw new CxrError('CXR_SIGNATURE_INVALID', 'the pinned registry key was lost with models/state.json: give the key with --registry-key');
    const key = await client.publicKey(signal);
    publicKeyFromString(key);
    this.#state = { ...this.#state, pinnedKey: key };
    await this.#file.write(this.#state);
    this.#deps.log.warn({ registryKey: key }, 'registry key pinned on first use; any other key is refused from now on');
    return key;
  }

  /** Keeps the current and last good folders (and nothing half-downloaded for another version). */
  async #removeOldFolders(): Promise<void> {
    const keep = new Set([this.#state.current?.folder, this.#state.lastGood?.folder, 'state.json', 'state.json.tmp']);
    for (const entry of await readdir(this.#modelsDir)) {
      if (keep.has(entry)) continue;
      await rm(path.join(this.#modelsDir, entry), { recursive: true, force: true });
      this.#deps.log.info({ folder: entry }, 'old model version removed');
    }
  }

  async #enter(state: 'downloading' | 'verifying'): Promise<void> {
    this.#syncState = state;
    this.#deps.onChange();
    await this.#report();
  }

  #settle(): void {
    const changed = this.#syncState !== 'ok' || this.#error !== undefined;
    this.#syncState = 'ok';
    this.#error = undefined;
    if (changed) this.#deps.onChange();
  }

  #fail(error: ModelSyncError): void {
    this.#syncState = 'failed';
    this.#error = error;
    this.#deps.onChange();
  }

  #runningName(): string {
    return this.#running ? `${this.#running.model.name}@${this.#running.model.version}` : 'none';
  }

  /** Tells the gateway where this station stands; a report that does not get through is not retried (the next one will). */
  async #report(): Promise<void> {
    const client = this.#deps.client;
    const running = this.#running;
    if (!client || this.#stopped) return;
    const lastGood = this.#state.lastGood;
    const report: ModelStatusReport = {
      running: running ? { name: running.model.name, version: running.model.version, sha256: running.model.sha256 } : null,
      lastGood: lastGood ? { name: lastGood.name, version: lastGood.version } : null,
      state: this.#syncState,
      ...(this.#error ? { error: { ...this.#error, message: this.#error.message.slice(0, 1000) } } : {}),
      counts: this.#deps.processor.counts(),
      at: new Date().toISOString(),
    };
    try {
      await client.report(report, this.#abort.signal);
    } catch (err) {
      this.#deps.log.info({ err: (err as Error).message }, 'model status not reported');
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done(): void {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}

/** Verifies both envelopes with the trusted key and that they name the same version. */
function openDocuments(deploymentEnvelope: unknown, releaseEnvelope: unknown, key: string): { deployment: ModelDeployment; release: ModelRelease } {
  const deployment = openSignedDocument(deploymentEnvelope, key, ModelDeploymentSchema);
  const release = openSignedDocument(releaseEnvelope, key, ModelReleaseSchema);
  if (release.name !== deployment.name || release.version !== deployment.version) {
    throw new CxrError('CXR_SIGNATURE_INVALID', `the deployment names ${deployment.name}@${deployment.version}, the release ${release.name}@${release.version}`);
  }
  return { deployment, release };
}

/** The name and version a deployment claims, read without trusting it (for the error report only). */
function claimedTarget(envelope: unknown): { name: string; version: string } {
  try {
    const payload = JSON.parse((envelope as { payload: string }).payload) as { name?: unknown; version?: unknown };
    return { name: typeof payload.name === 'string' ? payload.name : 'unknown', version: typeof payload.version === 'string' ? payload.version : 'unknown' };
  } catch {
    return { name: 'unknown', version: 'unknown' };
  }
}

/** When the stored (already verified) deployment was issued, in ms since the epoch. */
function issuedAtOf(envelope: SignedEnvelope): number | undefined {
  try {
    const { issuedAt } = JSON.parse(envelope.payload) as { issuedAt?: unknown };
    const at = typeof issuedAt === 'string' ? Date.parse(issuedAt) : Number.NaN;
    return Number.isFinite(at) ? at : undefined;
  } catch {
    return undefined;
  }
}
