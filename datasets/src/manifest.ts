/**
 * The manifest of what a command made: one entry per output file (source, hashes, transfer syntax, what was done,
 * warnings) and every input that failed, with its error. Written as `manifest.json` beside the outputs.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, relative, resolve } from 'node:path';

export const TOOL_VERSION = '0.1.0';

export interface ManifestEntry {
  /** The output file, relative to the manifest's folder. */
  readonly output: string;
  /** The input file as given on the command line. */
  readonly source: string;
  readonly sourceSha256: string;
  readonly sha256: string;
  readonly bytes: number;
  readonly transferSyntaxUid: string;
  readonly transferSyntax: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
  readonly actions: readonly string[];
  readonly warnings: readonly string[];
  /** De-identification: the image may show identifying text in its pixels and must be looked at. */
  readonly needsReview?: boolean;
  readonly reviewReasons?: readonly string[];
  /** De-identification: the attributes (keywords, never values) touched by each action. */
  readonly changes?: Readonly<Record<string, readonly string[]>>;
}

export interface ManifestFailure {
  readonly source: string;
  readonly error: { readonly code: string; readonly message: string };
}

export interface Manifest {
  readonly schemaVersion: 1;
  readonly tool: 'cxr-datasets';
  readonly toolVersion: string;
  readonly command: 'wrap' | 'deidentify';
  readonly createdAt: string;
  /** The settings that shaped the outputs (never a salt or a date offset). */
  readonly settings: Readonly<Record<string, unknown>>;
  readonly files: readonly ManifestEntry[];
  readonly failed: readonly ManifestFailure[];
  /** De-identification: outputs listed for a look at their pixels. */
  readonly needsReview?: readonly string[];
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

export function outputPathFor(manifestPath: string, outputPath: string): string {
  return relative(dirname(resolve(manifestPath)), resolve(outputPath));
}

/** Writes a file by a temporary name and a rename, so no reader sees half of it. */
export async function writeFileAtomic(path: string, bytes: Uint8Array | string): Promise<void> {
  await mkdir(dirname(resolve(path)), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, bytes);
  await rename(temporary, path);
}

export async function writeManifest(path: string, manifest: Manifest): Promise<void> {
  await writeFileAtomic(path, `${JSON.stringify(manifest, null, 2)}\n`);
}

/** The manifest at `path` if it is one of ours (so single `wrap` runs can add to it), else undefined. */
export async function readManifest(path: string): Promise<Manifest | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const parsed = JSON.parse(text) as Partial<Manifest>;
    return parsed.tool === 'cxr-datasets' && parsed.schemaVersion === 1 && Array.isArray(parsed.files) ? (parsed as Manifest) : undefined;
  } catch {
    return undefined;
  }
}
