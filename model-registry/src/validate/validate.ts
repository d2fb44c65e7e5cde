import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import {
  ErrorCodes,
  analyzeBytes,
  errorLine,
  loadModel,
  manifestProblems,
  runGoldenCases,
  type LoadedModel,
  type ModelManifest,
} from '@cxr/inference';

/** One reason a push is refused. `check` names the validation step, `code` is a stable `CXR_...` code. */
export interface PushError {
  readonly check: 'files' | 'manifest' | 'sha256' | 'runtime' | 'shapes' | 'golden' | 'metrics' | 'version';
  readonly code: string;
  readonly message: string;
}

export type CheckStatus = 'passed' | 'failed' | 'skipped';

export interface GoldenCaseOutcome {
  readonly input: string;
  readonly ok: boolean;
  readonly maxAbsDiff: number | null;
  readonly tolerance: number;
  readonly error?: { readonly code: string; readonly message: string };
}

/** What the registry checked, each step with its status; stored with the version and shown on the ML page. */
export interface ValidationReport {
  readonly manifest: { status: CheckStatus; problems: string[] };
  readonly sha256: { status: CheckStatus; reason?: string; files: { path: string; expected: string; actual: string | null }[] };
  readonly runtime: { status: CheckStatus; reason?: string; runtime: string | null; message?: string };
  readonly shapes: { status: CheckStatus; reason?: string; problems: string[] };
  readonly golden: { status: CheckStatus; reason?: string; cases: GoldenCaseOutcome[] };
  readonly latency: { status: CheckStatus; reason?: string; input?: 'synthetic'; runs?: number; medianMs?: number; minMs?: number; maxMs?: number; threads?: number };
  readonly metrics: { status: CheckStatus; reason?: string; [key: string]: unknown };
  readonly validatedAt: string;
  readonly durationMs: number;
}

export interface UploadedFile {
  readonly path: string;
  readonly sha256: string;
  readonly size: number;
}

export interface FolderValidation {
  readonly name: string | null;
  readonly version: string | null;
  readonly runtime: string | null;
  readonly labels: string[];
  readonly errors: PushError[];
  readonly warnings: string[];
  readonly validation: ValidationReport;
}

export interface ValidateOptions {
  /** ONNX Runtime threads for the checks and the latency figure (the station PCs have 2 cores). */
  readonly threads?: number;
  /** Timed runs for the latency median. Default 5 (after one warm-up run). */
  readonly latencyRuns?: number;
  /** Computes the metrics on a labelled set with the loaded model; absent when no labelled set was given. */
  readonly metrics?: (model: LoadedModel) => Promise<{ errors: PushError[]; report: Record<string, unknown> }>;
}

const skipped = (reason: string): { status: 'skipped'; reason: string } => ({ status: 'skipped', reason });

/** Strips the code's base message that CxrError puts in front ("The model ... manifest: a; b" -> ["a", "b"]). */
function detailOf(message: string, code: string): string {
  const base = (ErrorCodes as Record<string, { message: string } | undefined>)[code]?.message;
  return base && message.startsWith(`${base}: `) ? message.slice(base.length + 2) : message;
}

/**
 * Checks a model folder the way the registry accepts it: the manifest's schema, the digests of its files, that the
 * runtime loads it, that its inputs and outputs agree with the manifest and its labels, the golden cases, the
 * latency, and (when given) metrics on a labelled set. Every reason is listed: a wrong digest does not stop the
 * shape and golden checks, which then run on the bytes that were sent.
 *
 * `dir` is a scratch copy the caller owns: when a digest is wrong, its manifest.json is replaced with one with the
 * real digests so that the remaining checks can run.
 */
export async function validateModelFolder(dir: string, files: readonly UploadedFile[], options: ValidateOptions = {}): Promise<FolderValidation> {
  const started = performance.now();
  const errors: PushError[] = [];
  const warnings: string[] = [];
  const byPath = new Map(files.map((f) => [f.path, f]));

  // 1. The manifest: JSON, then the schema (every problem).
  let json: unknown;
  const manifestFile = byPath.get('manifest.json');
  if (!manifestFile) {
    errors.push({ check: 'manifest', code: 'CXR_MANIFEST_INVALID', message: 'the folder has no manifest.json' });
  } else {
    try {
      json = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8'));
    } catch (err) {
      errors.push({ check: 'manifest', code: 'CXR_MANIFEST_INVALID', message: `manifest.json is not JSON: ${(err as Error).message}` });
    }
  }
  const problems = json === undefined ? [] : manifestProblems(json);
  for (const p of problems) errors.push({ check: 'manifest', code: 'CXR_MANIFEST_INVALID', message: p });
  const manifestOk = json !== undefined && problems.length === 0;
  const loose = (typeof json === 'object' && json !== null ? json : {}) as Record<string, unknown>;
  const name = typeof loose.name === 'string' ? loose.name : null;
  const version = typeof loose.version === 'string' ? loose.version : null;
  const runtime = typeof loose.runtime === 'string' ? loose.runtime : null;
  const labels = Array.isArray(loose.labels) ? loose.labels.map((l) => String((l as { code?: unknown } | null)?.code ?? '')) : [];
  const manifestReport: ValidationReport['manifest'] = { status: manifestOk ? 'passed' : 'failed', problems: json === undefined ? errors.map((e) => e.message) : problems };

  // 2. Digests: the model file and every file the manifest lists, against the bytes that were uploaded.
  const digestClaims: { path: string; expected: string }[] = [];
  if (typeof loose.file === 'string' && typeof loose.sha256 === 'string') digestClaims.push({ path: loose.file, expected: loose.sha256 });
  if (Array.isArray(loose.files)) {
    for (const f of loose.files as { path?: unknown; sha256?: unknown }[]) {
      if (typeof f?.path === 'string' && typeof f.sha256 === 'string') digestClaims.push({ path: f.path, expected: f.sha256 });
    }
  }
  const digestRows = digestClaims.map((c) => ({ path: c.path, expected: c.expected, actual: byPath.get(c.path)?.sha256 ?? null }));
  for (const row of digestRows) {
    if (row.actual === null) errors.push({ check: 'sha256', code: 'CXR_MODEL_LOAD_FAILED', message: `${row.path}: named by the manifest but not in the folder` });
    else if (row.actual !== row.expected) {
      errors.push({ check: 'sha256', code: 'CXR_MODEL_HASH_MISMATCH', message: `${row.path} has sha256 ${row.actual}, the manifest says ${row.expected}` });
    }
  }
  const digestsOk = digestRows.length > 0 && digestRows.every((r) => r.actual === r.expected);
  const sha256Report: ValidationReport['sha256'] =
    digestRows.length === 0 ? { ...skipped('the manifest names no model file and digest'), files: [] } : { status: digestsOk ? 'passed' : 'failed', files: digestRows };

  const report = {
    manifest: manifestReport,
    sha256: sha256Report,
    runtime: { ...skipped('the manifest is not valid'), runtime } as ValidationReport['runtime'],
    shapes: { ...skipped('the model did not load'), problems: [] } as ValidationReport['shapes'],
    golden: { ...skipped('the model did not load'), cases: [] } as ValidationReport['golden'],
    latency: skipped('the model did not load') as ValidationReport['latency'],
    metrics: (options.metrics ? skipped('the model did not load') : skipped('no labelled set was given (--labels CSV)')) as ValidationReport['metrics'],
  };
  const missingFiles = digestRows.some((r) => r.actual === null);

  if (manifestOk && !missingFiles) {
    const manifest = json as ModelManifest;
    if (!digestsOk) {
      // Check the rest on the bytes that were sent, so the engineer gets every reason in one push.
      const actual = new Map(digestRows.map((r) => [r.path, r.actual ?? r.expected]));
      const corrected: ModelManifest = {
        ...manifest,
        sha256: actual.get(manifest.file) ?? manifest.sha256,
        ...(manifest.files ? { files: manifest.files.map((f) => ({ ...f, sha256: actual.get(f.path) ?? f.sha256 })) } : {}),
      };
      // A new file, not the old one rewritten: the scratch copy may be a hard link shared with another path.
      await rm(path.join(dir, 'manifest.json'));
      await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(corrected));
    }
    let model: LoadedModel | undefined;
    try {
      model = await loadModel(dir, { intraOpThreads: options.threads ?? 2 });
      report.runtime = { status: 'passed', runtime: manifest.runtime };
    } catch (err) {
      const e = errorLine(err);
      if (e.code === 'CXR_MODEL_SHAPE_MISMATCH') {
        // The runtime made a session; its inputs or outputs disagree with the manifest.
        report.runtime = { status: 'passed', runtime: manifest.runtime };
        const shapeProblems = detailOf(e.message, e.code).split('; ');
        report.shapes = { status: 'failed', problems: shapeProblems };
        for (const p of shapeProblems) errors.push({ check: 'shapes', code: e.code, message: p });
        report.golden = { ...skipped('the model disagrees with its manifest'), cases: [] };
        report.latency = skipped('the model disagrees with its manifest');
        if (options.metrics) report.metrics = skipped('the model disagrees with its manifest');
      } else {
        report.runtime = { status: 'failed', runtime: manifest.runtime, message: e.message };
        errors.push({ check: 'runtime', code: e.code === 'CXR_INTERNAL' ? 'CXR_MODEL_LOAD_FAILED' : e.code, message: `the ${manifest.runtime} runtime could not load ${manifest.file}: ${detailOf(e.message, e.code)}` });
      }
    }
    if (model) {
      try {
        await checkLoaded(model, manifest, dir, options, report, errors, warnings);
      } finally {
        await model.close();
      }
    }
  } else if (manifestOk && missingFiles) {
    report.runtime = { ...skipped('a file the manifest names is missing'), runtime };
  }

  return {
    name,
    version,
    runtime,
    labels,
    errors,
    warnings,
    validation: { ...report, validatedAt: new Date().toISOString(), durationMs: Math.round(performance.now() - started) },
  };
}

/** The checks that need the loaded model: output size, golden cases, latency, metrics. */
async function checkLoaded(
  model: LoadedModel,
  manifest: ModelManifest,
  dir: string,
  options: ValidateOptions,
  report: { shapes: ValidationReport['shapes']; golden: ValidationReport['golden']; latency: ValidationReport['latency']; metrics: ValidationReport['metrics'] },
  errors: PushError[],
  warnings: string[],
): Promise<void> {
  // Shapes the session metadata left open (dynamic dimensions) are checked by running it once.
  const { channels, height, width } = manifest.input;
  const tensor = syntheticTensor(channels * height * width);
  const times: number[] = [];
  const runs = options.latencyRuns ?? 5;
  try {
    const first = await model.run(tensor);
    if (first.raw.length !== manifest.labels.length) {
      const p = `output "${manifest.outputs.probabilities.name}" gave ${first.raw.length} values for one image, the manifest has ${manifest.labels.length} labels`;
      report.shapes = { status: 'failed', problems: [p] };
      errors.push({ check: 'shapes', code: 'CXR_MODEL_SHAPE_MISMATCH', message: p });
    } else {
      report.shapes = { status: 'passed', problems: [] };
    }
    for (let i = 0; i < runs; i++) {
      const t0 = performance.now();
      await model.run(tensor);
      times.push(performance.now() - t0);
    }
    times.sort((a, b) => a - b);
    const median = times.length % 2 ? (times[(times.length - 1) / 2] ?? 0) : ((times[times.length / 2 - 1] ?? 0) + (times[times.length / 2] ?? 0)) / 2;
    const r2 = (x: number): number => Math.round(x * 100) / 100;
    report.latency = { status: 'passed', input: 'synthetic', runs, medianMs: r2(median), minMs: r2(times[0] ?? 0), maxMs: r2(times.at(-1) ?? 0), threads: options.threads ?? 2 };
  } catch (err) {
    const e = errorLine(err);
    report.shapes = { status: 'failed', problems: [e.message] };
    errors.push({ check: 'shapes', code: 'CXR_MODEL_SHAPE_MISMATCH', message: `the model does not run on a [1, ${channels}, ${height}, ${width}] input: ${e.message}` });
    report.latency = skipped('the model did not run');
  }

  // Golden cases: golden/cases.json (the registry protocol) and the manifest's own `golden` list.
  const cases: GoldenCaseOutcome[] = [];
  try {
    const golden = await runGoldenCases(model, dir);
    if (golden.present) for (const c of golden.cases) cases.push({ ...c, maxAbsDiff: c.maxAbsDiff === null ? null : Number(c.maxAbsDiff.toPrecision(3)), tolerance: golden.tolerance });
  } catch (err) {
    const e = errorLine(err);
    cases.push({ input: 'golden/cases.json', ok: false, maxAbsDiff: null, tolerance: 0, error: e });
  }
  for (const g of manifest.golden ?? []) {
    try {
      const bytes = await readFile(path.join(dir, g.file));
      const { result } = await analyzeBytes(bytes, model, { force: true });
      const actual = result.probabilities ?? [];
      const maxAbsDiff = actual.length === g.probabilities.length ? Number(Math.max(...g.probabilities.map((p, i) => Math.abs(p - (actual[i] ?? Number.NaN)))).toPrecision(3)) : null;
      cases.push({ input: g.file, ok: maxAbsDiff !== null && maxAbsDiff <= g.tolerance, maxAbsDiff, tolerance: g.tolerance });
    } catch (err) {
      cases.push({ input: g.file, ok: false, maxAbsDiff: null, tolerance: g.tolerance, error: errorLine(err) });
    }
  }
  if (cases.length === 0) {
    report.golden = { ...skipped('the folder has no golden cases (golden/cases.json)'), cases };
    warnings.push('no golden cases: the edge cannot check this model on its own PC after download');
  } else {
    const failed = cases.filter((c) => !c.ok);
    report.golden = { status: failed.length ? 'failed' : 'passed', cases };
    for (const c of failed) {
      const why = c.error ? `${c.error.code}: ${c.error.message}` : `probabilities differ by up to ${c.maxAbsDiff === null ? '?' : Number(c.maxAbsDiff.toPrecision(2))} (tolerance ${c.tolerance})`;
      errors.push({ check: 'golden', code: 'CXR_MODEL_GOLDEN_MISMATCH', message: `${c.input}: ${why}` });
    }
  }

  if (options.metrics) {
    try {
      const m = await options.metrics(model);
      errors.push(...m.errors);
      report.metrics = { status: m.errors.length ? 'failed' : 'passed', ...m.report };
    } catch (err) {
      const e = errorLine(err);
      report.metrics = { status: 'failed', reason: e.message };
      errors.push({ check: 'metrics', code: e.code === 'CXR_INTERNAL' ? 'CXR_LABELS_INVALID' : e.code, message: e.message });
    }
  }
}

/** A fixed pseudo-random input in [-1, 1): the same figure every push, whatever the model normalises to. */
function syntheticTensor(length: number): Float32Array {
  const out = new Float32Array(length);
  let s = 0x2545f491;
  for (let i = 0; i < length; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = ((s >>> 0) / 0x1_0000_0000) * 2 - 1;
  }
  return out;
}
