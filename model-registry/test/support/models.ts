import { createHash } from 'node:crypto';
import { copyFile, mkdir, mkdtemp, readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const SQUEEZENET = 'squeezenet-pneumonia-peds';
export const DENSENET = 'densenet121-cxr18-random';

/** Two chest films per model whose reference outputs the pipeline reproduces (lossless, and lossy JPEG 2000). */
export const GOLDEN_INPUTS = ['cr_chest_CR-MONO1-10-chest.dcm', 'cr_chest_pa_RG1_J2KI.dcm'] as const;

export const sha256 = (bytes: Uint8Array | string): string => createHash('sha256').update(bytes).digest('hex');

type Manifest = Record<string, unknown> & { version: string; sha256: string; labels: unknown[]; input: Record<string, unknown> };

export interface FolderSpec {
  /** change the manifest (version bump, broken fields) before it is written */
  readonly manifest?: (m: Manifest) => void;
  /** change the golden probabilities (to make them wrong) */
  readonly golden?: (probabilities: number[], input: string) => number[];
  /** no golden cases at all */
  readonly noGolden?: boolean;
  readonly tolerance?: number;
}

/**
 * A model folder made from a shipped model: its manifest and model file, with golden cases: shared DICOM files and
 * the probabilities the independent reference computed for them (`shared/reference/<model>.probs.json`).
 */
export async function makeModelFolder(model: string, spec: FolderSpec = {}, parent?: string): Promise<string> {
  const dir = await mkdtemp(path.join(parent ?? tmpdir(), `cxr-reg-${model.slice(0, 10)}-`));
  const source = path.join(sharedDir, 'models', model);
  await copyFile(path.join(source, 'model.onnx'), path.join(dir, 'model.onnx'));
  const manifest = JSON.parse(await readFile(path.join(source, 'manifest.json'), 'utf8')) as Manifest;
  spec.manifest?.(manifest);
  await writeFile(path.join(dir, 'manifest.json'), JSON.stringify(manifest, null, 1));
  if (!spec.noGolden) {
    const reference = JSON.parse(await readFile(path.join(sharedDir, 'reference', `${model}.probs.json`), 'utf8')) as Record<string, number[]>;
    await mkdir(path.join(dir, 'golden'));
    const cases = [];
    for (const input of GOLDEN_INPUTS) {
      await copyFile(path.join(sharedDir, 'dicom', input), path.join(dir, 'golden', input));
      const expected = reference[input];
      if (!expected) throw new Error(`no reference output for ${input}`);
      cases.push({ input: `golden/${input}`, probabilities: spec.golden ? spec.golden([...expected], input) : expected });
    }
    await writeFile(path.join(dir, 'golden', 'cases.json'), JSON.stringify({ tolerance: spec.tolerance ?? 1e-3, cases }, null, 1));
  }
  return dir;
}

/** The files of a folder as a push names them. */
export async function folderFiles(dir: string, prefix = ''): Promise<{ path: string; file: string; sha256: string; size: number }[]> {
  const out = [];
  for (const entry of (await readdir(path.join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) out.push(...(await folderFiles(dir, rel)));
    else {
      const bytes = await readFile(path.join(dir, rel));
      out.push({ path: rel, file: path.join(dir, rel), sha256: sha256(bytes), size: (await stat(path.join(dir, rel))).size });
    }
  }
  return out;
}
