import { createHash, randomBytes } from 'node:crypto';
import { readFile, readdir, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { transferSyntaxName } from '@cxr/inference';
import { errorLine } from '../errors.js';
import { TOOL_VERSION, sha256, writeFileAtomic, writeManifest, type Manifest, type ManifestEntry, type ManifestFailure } from '../manifest.js';
import { defaultShiftDays, deidentifyBytes, type DeidentifyOptions } from './deidentify.js';

export interface DeidentifyRunOptions {
  /** The secret behind the keyed hash: the same salt maps the same UIDs the same way in every run. */
  readonly salt?: string;
  readonly shiftDays?: number;
  readonly keepPatientCharacteristics?: boolean;
}

/** The hash key and the date offset of a run: from the salt when given, random otherwise. */
export function runKey(options: DeidentifyRunOptions): DeidentifyOptions {
  const key = options.salt === undefined ? randomBytes(32) : createHash('sha256').update(`cxr-datasets:${options.salt}`).digest();
  return {
    key,
    shiftDays: options.shiftDays ?? defaultShiftDays(key),
    keepPatientCharacteristics: options.keepPatientCharacteristics ?? false,
  };
}

/** Files named on the command line, and every file under folders named there, sorted; the output folder is skipped. */
export async function expandInputs(inputs: readonly string[], skipDir?: string): Promise<string[]> {
  const skip = skipDir === undefined ? undefined : resolve(skipDir) + sep;
  const files: string[] = [];
  for (const input of inputs) {
    const info = await stat(input);
    if (!info.isDirectory()) {
      files.push(input);
      continue;
    }
    const entries = await readdir(input, { recursive: true, withFileTypes: true });
    for (const entry of entries) {
      const path = join(entry.parentPath, entry.name);
      if (entry.isFile() && (skip === undefined || !resolve(path).startsWith(skip))) files.push(path);
    }
  }
  return files.sort();
}

/**
 * De-identifies every input into `outputDir` as `<new SOP Instance UID>.dcm` (a file name from the source could
 * carry a name) and writes `manifest.json` there. Inputs that are not readable DICOM are listed as failed.
 */
export async function deidentifyFiles(
  inputs: readonly string[],
  outputDir: string,
  runOptions: DeidentifyRunOptions,
  onFile: (done: number, total: number) => void = () => {},
): Promise<Manifest> {
  const options = runKey(runOptions);
  const files: ManifestEntry[] = [];
  const failed: ManifestFailure[] = [];
  const sources = await expandInputs(inputs, outputDir);
  const usedNames = new Set<string>();
  let done = 0;
  for (const source of sources) {
    try {
      const bytes = await readFile(source);
      const result = deidentifyBytes(bytes, options);
      const warnings = [...result.warnings];
      let output = `${result.sopInstanceUid}.dcm`;
      // The same instance twice (one image in several transfer syntaxes): keep both, say so.
      for (let copy = 2; usedNames.has(output); copy++) output = `${result.sopInstanceUid}-${copy}.dcm`;
      if (output !== `${result.sopInstanceUid}.dcm`) warnings.push('another input has the same SOP Instance UID');
      usedNames.add(output);
      await writeFileAtomic(join(outputDir, output), result.bytes);
      files.push({
        output,
        source,
        sourceSha256: sha256(bytes),
        sha256: sha256(result.bytes),
        bytes: result.bytes.length,
        transferSyntaxUid: result.transferSyntaxUid,
        transferSyntax: transferSyntaxName(result.transferSyntaxUid),
        sopClassUid: result.sopClassUid,
        sopInstanceUid: result.sopInstanceUid,
        studyInstanceUid: result.studyInstanceUid,
        actions: [
          'PS3.15 Basic Application Level Confidentiality Profile',
          options.shiftDays === 0 ? 'dates kept (Retain Longitudinal Temporal Information Full Dates Option)' : 'dates shifted by the run offset',
          'UIDs mapped with the run key',
          'private attributes removed',
          'Pixel Data copied unchanged',
          ...(options.keepPatientCharacteristics ? ["Patient's Sex, Age, Size and Weight kept"] : []),
        ],
        warnings,
        needsReview: result.needsReview,
        reviewReasons: result.reviewReasons,
        changes: result.changes,
      });
    } catch (err) {
      failed.push({ source, error: errorLine(err) });
    }
    onFile(++done, sources.length);
  }
  const manifest: Manifest = {
    schemaVersion: 1,
    tool: 'cxr-datasets',
    toolVersion: TOOL_VERSION,
    command: 'deidentify',
    createdAt: new Date().toISOString(),
    settings: {
      profile: 'PS3.15 E.1.1 Basic Application Level Confidentiality Profile',
      dates: options.shiftDays === 0 ? 'kept' : 'shifted by one offset for the run (not recorded here)',
      uids: runOptions.salt === undefined ? 'mapped with a random key: consistent within this run only' : 'mapped with a key from --salt: consistent across runs with the same salt',
      keepPatientCharacteristics: options.keepPatientCharacteristics,
    },
    files,
    failed,
    needsReview: files.filter((f) => f.needsReview).map((f) => f.output),
  };
  await writeManifest(join(outputDir, 'manifest.json'), manifest);
  return manifest;
}
