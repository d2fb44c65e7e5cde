import { readFile, readdir } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { transferSyntaxName } from '@cxr/inference';
import { errorLine } from '../errors.js';
import { TOOL_VERSION, outputPathFor, sha256, writeFileAtomic, type Manifest, type ManifestEntry, type ManifestFailure } from '../manifest.js';
import { wrapImage, type WrapOptions } from './wrap.js';

/** Wraps one PNG/JPEG into `output`; the entry's `output` is relative to `manifestDir`. */
export async function wrapFile(input: string, output: string, options: WrapOptions, manifestDir = dirname(resolve(output))): Promise<ManifestEntry> {
  const source = await readFile(input);
  const made = await wrapImage(source, options);
  await writeFileAtomic(output, made.bytes);
  return {
    output: outputPathFor(join(manifestDir, 'manifest.json'), output),
    source: input,
    sourceSha256: sha256(source),
    sha256: sha256(made.bytes),
    bytes: made.bytes.length,
    transferSyntaxUid: made.transferSyntaxUid,
    transferSyntax: transferSyntaxName(made.transferSyntaxUid),
    sopClassUid: made.sopClassUid,
    sopInstanceUid: made.sopInstanceUid,
    studyInstanceUid: made.studyInstanceUid,
    actions: made.actions,
    warnings: made.warnings,
  };
}

const RASTER = /\.(png|jpe?g)$/iu;

/** Every PNG/JPEG under `dir`, sorted, as paths relative to it. */
export async function findRasters(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile() && RASTER.test(e.name))
    .map((e) => relative(dir, join(e.parentPath, e.name)))
    .sort();
}

export function wrapSettings(options: WrapOptions): Record<string, unknown> {
  const { now: _now, ...settings } = options;
  return settings;
}

/**
 * Wraps every PNG/JPEG under `inputDir` into `outputDir`, keeping the relative paths (`a/b.png` becomes
 * `a/b.dcm`), each image its own study unless the options name one. A file that fails is listed, never dropped.
 */
export async function wrapDirectory(
  inputDir: string,
  outputDir: string,
  options: WrapOptions,
  onFile: (done: number, total: number) => void = () => {},
): Promise<Manifest> {
  const sources = await findRasters(inputDir);
  const files: ManifestEntry[] = [];
  const failed: ManifestFailure[] = [];
  let done = 0;
  for (const rel of sources) {
    const input = join(inputDir, rel);
    try {
      files.push(await wrapFile(input, join(outputDir, rel.replace(RASTER, '.dcm')), options, outputDir));
    } catch (err) {
      failed.push({ source: input, error: errorLine(err) });
    }
    onFile(++done, sources.length);
  }
  return {
    schemaVersion: 1,
    tool: 'cxr-datasets',
    toolVersion: TOOL_VERSION,
    command: 'wrap',
    createdAt: new Date().toISOString(),
    settings: wrapSettings(options),
    files,
    failed,
  };
}
