import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Value } from '@sinclair/typebox/value';
import { ModelManifestSchema, type ModelManifest } from '../contracts/index.js';
import { CxrError, toCxrError } from '../errors/index.js';

/** Reads and validates `manifest.json`, listing every problem at once. */
export async function readManifest(modelDir: string): Promise<ModelManifest> {
  const file = path.join(modelDir, 'manifest.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw toCxrError(err, 'CXR_MANIFEST_INVALID');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new CxrError('CXR_MANIFEST_INVALID', `${file} is not JSON: ${(err as Error).message}`);
  }
  return validateManifest(json);
}

export function manifestProblems(json: unknown): string[] {
  const problems = [...Value.Errors(ModelManifestSchema, json)].map((e) => `${e.path || '/'}: ${e.message}`);
  if (problems.length > 0) return problems;
  const manifest = json as ModelManifest;
  const normalize = manifest.input.normalize;
  if ('mean' in normalize) {
    for (const key of ['mean', 'std'] as const) {
      const n = normalize[key].length;
      if (n !== 1 && n !== manifest.input.channels) {
        problems.push(`/input/normalize/${key}: ${n} values for ${manifest.input.channels} channel(s)`);
      }
    }
  }
  const codes = new Set<string>();
  manifest.labels.forEach((label, i) => {
    if (codes.has(label.code)) problems.push(`/labels/${i}/code: duplicate code "${label.code}"`);
    codes.add(label.code);
  });
  if (!staysInside(manifest.file)) {
    problems.push('/file: must be a file name inside the model folder');
  }
  const listed = new Set<string>([modelPathKey(manifest.file)]);
  (manifest.files ?? []).forEach((f, i) => {
    if (!staysInside(f.path)) problems.push(`/files/${i}/path: must be a file inside the model folder`);
    const normalized = modelPathKey(f.path);
    if (listed.has(normalized)) problems.push(`/files/${i}/path: "${f.path}" is listed twice (or is the model file)`);
    listed.add(normalized);
  });
  (manifest.golden ?? []).forEach((g, i) => {
    if (g.probabilities.length !== manifest.labels.length) {
      problems.push(`/golden/${i}/probabilities: ${g.probabilities.length} values for ${manifest.labels.length} labels`);
    }
    if (path.isAbsolute(g.file) || g.file.split(/[\\/]/u).includes('..')) problems.push(`/golden/${i}/file: must stay inside the model folder`);
  });
  return problems;
}

/** The key a relative file path of the model folder is known by: forward slashes, `./` and `a/../` folded. */
export function modelPathKey(relativePath: string): string {
  return path.posix.normalize(relativePath.replaceAll('\\', '/'));
}

/** A relative path that cannot leave the model folder (no absolute path, no `..`, no backslash tricks). */
export function staysInside(relativePath: string): boolean {
  return !path.isAbsolute(relativePath) && !path.win32.isAbsolute(relativePath) && !relativePath.split(/[\\/]/u).includes('..');
}

export function validateManifest(json: unknown): ModelManifest {
  const problems = manifestProblems(json);
  if (problems.length > 0) throw new CxrError('CXR_MANIFEST_INVALID', problems.join('; '));
  return json as ModelManifest;
}
