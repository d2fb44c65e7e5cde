import { createWriteStream } from 'node:fs';
import { link, mkdir, mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Value } from '@sinclair/typebox/value';
import { ModelReleaseSchema, signDocument, type LoadedModel, type ModelManifest, type ModelRelease, type SignedEnvelope } from '@cxr/inference';
import type { RegistryObjectStore } from '../deps.js';
import { getOrCreateSigningKey } from '../sign/signing-key.js';
import { blobKey, newestFirstSegment, refusedPrefix, SHA256_PATTERN, versionKey, NAME_PATTERN, VERSION_PATTERN } from '../store/keys.js';
import { putJsonOnce, readJson, readJsonOptional } from '../store/json.js';
import { labelledSetMetrics, type LabelledSelection } from '../validate/metrics.js';
import { validateModelFolder, type PushError, type UploadedFile, type ValidationReport } from '../validate/validate.js';

/** An accepted version, as kept in the store (immutable). */
export interface VersionRecord {
  readonly schemaVersion: 1;
  readonly name: string;
  readonly version: string;
  readonly runtime: string;
  readonly description: string | null;
  readonly labels: { code: string; display: string; displayVi: string; threshold: number; priority: string; role: string }[];
  readonly files: UploadedFile[];
  readonly release: SignedEnvelope;
  readonly validation: ValidationReport;
  readonly warnings: string[];
  readonly pushedBy: string;
  readonly acceptedAt: string;
}

/** A refused push, kept for the ML page (newest first under `registry/refused/`). */
export interface RefusedPush {
  readonly name: string | null;
  readonly version: string | null;
  readonly errors: PushError[];
  readonly validation: ValidationReport | null;
  readonly pushedBy: string;
  readonly refusedAt: string;
}

/** What `POST /api/v1/registry/versions` answers and `cxr-registry push` prints. */
export interface PushResult {
  readonly accepted: boolean;
  readonly name: string | null;
  readonly version: string | null;
  readonly errors: PushError[];
  readonly warnings: string[];
  readonly validation: ValidationReport | null;
  /** true when this exact version (same bytes) was already in the registry: nothing new was stored */
  readonly existing: boolean;
  readonly files: UploadedFile[];
  readonly release?: SignedEnvelope;
}

export interface PushRequest {
  readonly files: readonly UploadedFile[];
  /** A labelled set for metrics: the CSV's path among `files` of the set, the set's files (CSV and images), and the score. */
  readonly labelled?: { readonly csv: string; readonly files: readonly UploadedFile[] } & LabelledSelection;
  readonly pushedBy: string;
}

/** What one push may name; checked before anything is read or copied (`PushLimitError`). */
export interface PushLimits {
  /**
   * The sizes of every file a push names added up, model folder and labelled set, in bytes; a file named under
   * several paths counts each time (every station downloads each path). Default 2 GiB.
   */
  readonly maxPushBytes?: number;
  /** Files of the model folder (each station downloads them all). Default 200. */
  readonly maxModelFiles?: number;
  /** Files of the labelled set, CSV included. Default 5000. */
  readonly maxLabelledFiles?: number;
}

export const PUSH_LIMIT_DEFAULTS = { maxPushBytes: 2 * 1024 * 1024 * 1024, maxModelFiles: 200, maxLabelledFiles: 5000 } as const;

/** A push past one of its limits (`PushLimits`): nothing was read, copied or kept. */
export class PushLimitError extends Error {
  readonly code = 'CXR_PAYLOAD_TOO_LARGE';
  constructor(readonly problems: readonly string[]) {
    super(problems.join('; '));
    this.name = 'PushLimitError';
  }
}

/**
 * Every limit a push goes past, in words. The sizes are the ones the push declares: a size that differs from the
 * upload's is refused (`fileProblems`) before anything is copied, so a push cannot pass by declaring less.
 */
export function pushLimitProblems(request: Pick<PushRequest, 'files' | 'labelled'>, limits: PushLimits = {}): string[] {
  const { maxPushBytes, maxModelFiles, maxLabelledFiles } = { ...PUSH_LIMIT_DEFAULTS, ...limits };
  const problems: string[] = [];
  const labelledFiles = request.labelled?.files ?? [];
  if (request.files.length > maxModelFiles) problems.push(`the model folder has ${request.files.length} files, at most ${maxModelFiles}`);
  if (labelledFiles.length > maxLabelledFiles) problems.push(`the labelled set has ${labelledFiles.length} files, at most ${maxLabelledFiles}`);
  const bytes = [...request.files, ...labelledFiles].reduce((sum, f) => sum + f.size, 0);
  if (bytes > maxPushBytes) problems.push(`the push names ${bytes} bytes in all (each path counted), at most ${maxPushBytes}`);
  return problems;
}

export interface PushOptions extends PushLimits {
  /** Folder for the scratch copies validated; default the system's temp folder. */
  readonly scratchDir?: string;
  readonly threads?: number;
  readonly latencyRuns?: number;
  /** Builds the metrics step for a labelled set materialised with its CSV at `csvPath`. Default: `cxr eval`'s metrics. */
  readonly metricsFor?: (csvPath: string, selection: LabelledSelection) => (model: LoadedModel) => Promise<{ errors: PushError[]; report: Record<string, unknown> }>;
}

export const RELEASE_PATH = /^(?!\/)(?!.*\.\.)[A-Za-z0-9._/-]{1,200}$/u;

/** The files a push names: safe relative paths, each once, each already uploaded with its size. */
async function fileProblems(store: RegistryObjectStore, files: readonly UploadedFile[], what: string): Promise<PushError[]> {
  const errors: PushError[] = [];
  const seen = new Set<string>();
  for (const f of files) {
    if (!RELEASE_PATH.test(f.path) || f.path.split('/').some((s) => s === '' || s === '.')) {
      errors.push({ check: 'files', code: 'CXR_MANIFEST_INVALID', message: `${what} "${f.path}": a file name must be letters, digits, ".", "_", "-" and "/" only (no spaces, no "..")` });
      continue;
    }
    if (seen.has(f.path)) errors.push({ check: 'files', code: 'CXR_MANIFEST_INVALID', message: `${what} "${f.path}" is listed twice` });
    seen.add(f.path);
    if (!SHA256_PATTERN.test(f.sha256)) {
      errors.push({ check: 'files', code: 'CXR_MANIFEST_INVALID', message: `${what} "${f.path}": sha256 must be 64 lower-case hex digits` });
      continue;
    }
    const blob = await store.head(blobKey(f.sha256));
    if (!blob) errors.push({ check: 'files', code: 'CXR_MODEL_LOAD_FAILED', message: `${what} "${f.path}" was not uploaded (no blob ${f.sha256})` });
    else if (blob.size !== f.size) errors.push({ check: 'files', code: 'CXR_MODEL_LOAD_FAILED', message: `${what} "${f.path}" is ${f.size} bytes, the upload ${blob.size}` });
  }
  // "a" and "a/b" cannot both be written to a folder (nor to a station's disk).
  const folders = new Map<string, string>();
  for (const p of seen) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const folder = parts.slice(0, i).join('/');
      if (!folders.has(folder)) folders.set(folder, p);
    }
  }
  for (const p of seen) {
    const under = folders.get(p);
    if (under !== undefined) errors.push({ check: 'files', code: 'CXR_MANIFEST_INVALID', message: `${what} "${p}" is also a folder of "${under}"` });
  }
  return errors;
}

const sameFiles = (a: readonly UploadedFile[], b: readonly UploadedFile[]): boolean => {
  const key = (files: readonly UploadedFile[]): string =>
    JSON.stringify([...files].map((f) => [f.path, f.sha256]).sort((x, y) => (String(x[0]) < String(y[0]) ? -1 : 1)));
  return key(a) === key(b);
};

/**
 * Writes the files into `dir` for validation. A blob is copied once per push: other paths with the same bytes are
 * hard links to that copy (`copied`: sha256 -> first copy, shared by the model folder and the labelled set), so a
 * push naming one blob under many paths costs one copy, not one per path.
 */
async function materialise(store: RegistryObjectStore, dir: string, files: readonly UploadedFile[], copied: Map<string, string>): Promise<void> {
  for (const f of files) {
    const target = path.join(dir, ...f.path.split('/'));
    await mkdir(path.dirname(target), { recursive: true });
    const first = copied.get(f.sha256);
    if (first !== undefined) {
      await link(first, target);
      continue;
    }
    await pipeline(await store.get(blobKey(f.sha256)), createWriteStream(target));
    copied.set(f.sha256, target);
  }
}

function existingResult(record: VersionRecord): PushResult {
  return { accepted: true, name: record.name, version: record.version, errors: [], warnings: record.warnings, validation: record.validation, existing: true, files: record.files, release: record.release };
}

function conflictError(name: string, version: string): PushError {
  return {
    check: 'version',
    code: 'CXR_MODEL_VERSION_EXISTS',
    message: `${name}@${version} is already in the registry with other bytes; versions are immutable: give this one a new version`,
  };
}

/** One push at a time in a process: validation loads a model and runs it, which a gateway should not do twice at once. */
let queue: Promise<unknown> = Promise.resolve();
function serialised<T>(work: () => Promise<T>): Promise<T> {
  const run = queue.then(work, work);
  queue = run.catch(() => undefined);
  return run;
}

/**
 * Validates the uploaded files as one model folder and, when everything passes, signs the release and stores the
 * version. Same name@version with the same bytes: accepted again with the report already stored; with other bytes:
 * refused. Several processes racing on one version: the first immutable write wins, the others compare with it.
 */
export function pushVersion(store: RegistryObjectStore, request: PushRequest, options: PushOptions = {}): Promise<PushResult> {
  const problems = pushLimitProblems(request, options);
  if (problems.length > 0) return Promise.reject(new PushLimitError(problems));
  return serialised(() => pushNow(store, request, options));
}

async function pushNow(store: RegistryObjectStore, request: PushRequest, options: PushOptions): Promise<PushResult> {
  const files = request.files.map((f) => ({ path: f.path, sha256: f.sha256, size: f.size }));
  const refuse = async (result: Omit<PushResult, 'accepted' | 'existing' | 'files'>): Promise<PushResult> => {
    const refused: RefusedPush = { name: result.name, version: result.version, errors: result.errors, validation: result.validation, pushedBy: request.pushedBy, refusedAt: new Date().toISOString() };
    await putJsonOnce(store, `${refusedPrefix}${newestFirstSegment()}.json`, refused);
    return { ...result, accepted: false, existing: false, files };
  };

  const errors = await fileProblems(store, files, 'file');
  if (request.labelled) {
    errors.push(...(await fileProblems(store, request.labelled.files, 'labelled set file')));
    if (!request.labelled.files.some((f) => f.path === request.labelled?.csv)) {
      errors.push({ check: 'metrics', code: 'CXR_LABELS_INVALID', message: `the labelled set's CSV "${request.labelled.csv}" is not among its files` });
    }
  }
  if (errors.length > 0) return refuse({ name: null, version: null, errors, warnings: [], validation: null });

  // The same version again: with the same bytes it is already accepted (idempotent), nothing to validate.
  const manifestFile = files.find((f) => f.path === 'manifest.json');
  if (manifestFile) {
    const loose = await readJsonOptional<unknown>(store, blobKey(manifestFile.sha256)).catch(() => undefined);
    const { name, version } = (typeof loose === 'object' && loose !== null ? loose : {}) as { name?: unknown; version?: unknown };
    if (typeof name === 'string' && typeof version === 'string' && NAME_PATTERN.test(name) && VERSION_PATTERN.test(version)) {
      const existing = await readJsonOptional<VersionRecord>(store, versionKey(name, version));
      if (existing && sameFiles(existing.files, files)) return existingResult(existing);
    }
  }

  const scratch = await mkdtemp(path.join(options.scratchDir ?? os.tmpdir(), 'cxr-registry-push-'));
  try {
    const modelDir = path.join(scratch, 'model');
    const copied = new Map<string, string>();
    await materialise(store, modelDir, files, copied);
    let metrics: ((model: LoadedModel) => Promise<{ errors: PushError[]; report: Record<string, unknown> }>) | undefined;
    if (request.labelled) {
      const setDir = path.join(scratch, 'labelled');
      await materialise(store, setDir, request.labelled.files, copied);
      const { truth, score, imageColumn } = request.labelled;
      const selection = { truth, score, imageColumn };
      const csvPath = path.join(setDir, ...request.labelled.csv.split('/'));
      metrics = options.metricsFor ? options.metricsFor(csvPath, selection) : labelledSetMetrics(csvPath, selection, options.threads ?? 2);
    }
    const checked = await validateModelFolder(modelDir, files, { threads: options.threads, latencyRuns: options.latencyRuns, metrics });
    const { name, version } = checked;
    const result = { name, version, errors: [...checked.errors], warnings: checked.warnings, validation: checked.validation };
    if (name !== null && version !== null) {
      if (!NAME_PATTERN.test(name)) result.errors.push({ check: 'manifest', code: 'CXR_MANIFEST_INVALID', message: `/name: "${name}" must be at most 100 of a-z 0-9 . _ - to be released` });
      if (!VERSION_PATTERN.test(version)) result.errors.push({ check: 'manifest', code: 'CXR_MANIFEST_INVALID', message: `/version: "${version}" cannot be released (numbers and dots, an optional -suffix; no +build)` });
      if (NAME_PATTERN.test(name) && VERSION_PATTERN.test(version)) {
        const existing = await readJsonOptional<VersionRecord>(store, versionKey(name, version));
        if (existing && !sameFiles(existing.files, files)) result.errors.push(conflictError(name, version));
      }
    }
    if (result.errors.length > 0 || name === null || version === null) return refuse(result);

    const manifest = await readJson<ModelManifest>(store, blobKey(manifestFile?.sha256 ?? ''));
    const acceptedAt = new Date().toISOString();
    const release: ModelRelease = { kind: 'cxr-model-release', name, version, runtime: manifest.runtime, files, acceptedAt };
    if (!Value.Check(ModelReleaseSchema, release)) {
      const why = [...Value.Errors(ModelReleaseSchema, release)].map((e) => `${e.path} ${e.message}`).join('; ');
      return refuse({ ...result, errors: [{ check: 'manifest', code: 'CXR_MANIFEST_INVALID', message: `the release cannot be made: ${why}` }] });
    }
    const key = await getOrCreateSigningKey(store);
    const record: VersionRecord = {
      schemaVersion: 1,
      name,
      version,
      runtime: manifest.runtime,
      description: manifest.description ?? null,
      labels: manifest.labels.map((l) => ({ code: l.code, display: l.display, displayVi: l.displayVi, threshold: l.threshold, priority: l.priority, role: l.role })),
      files,
      release: signDocument(release, key.privateKeyPem),
      validation: checked.validation,
      warnings: checked.warnings,
      pushedBy: request.pushedBy,
      acceptedAt,
    };
    const winner = await putJsonOnce(store, versionKey(name, version), record);
    if (!winner) return { ...result, accepted: true, existing: false, files, release: record.release };
    // Another process stored this version while we validated.
    if (sameFiles(winner.files, files)) return existingResult(winner);
    return refuse({ ...result, errors: [conflictError(name, version)] });
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
