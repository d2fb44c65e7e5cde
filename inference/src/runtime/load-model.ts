import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { ModelManifest } from '../contracts/index.js';
import { CxrError, toCxrError } from '../errors/index.js';
import { modelPathKey, readManifest } from './manifest.js';
import { createOnnxSession } from './onnx.js';
import type { LoadedModel, RuntimeOptions, RuntimeSession } from './types.js';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Validates the manifest, checks the sha256 of the model file and of every other file the manifest lists (`files`:
 * TF.js weight shards), then creates the session of the manifest's `runtime` once. The runtime gets the bytes that
 * were checked, never a second read of the disk.
 */
export async function loadModel(modelDir: string, options: RuntimeOptions = {}): Promise<LoadedModel> {
  const directory = path.resolve(modelDir);
  const manifest = await readManifest(directory);
  const verified = await readVerifiedFiles(directory, manifest);
  const bytes = verified.get(modelPathKey(manifest.file)) ?? new Uint8Array();
  const session = await createSession(manifest, bytes, verified, options);
  return {
    manifest,
    identity: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
    directory,
    run: (tensor) => session.run(tensor),
    close: () => session.close(),
  };
}

async function createSession(manifest: ModelManifest, bytes: Uint8Array, verified: ReadonlyMap<string, Uint8Array>, options: RuntimeOptions): Promise<RuntimeSession> {
  switch (manifest.runtime) {
    case 'onnx':
      return createOnnxSession(bytes, manifest, options);
    case 'tfjs': {
      // Loaded on first use: ONNX-only processes never pay for TF.js or start its WebAssembly module.
      const { createTfjsSession } = await import('./tfjs.js');
      return createTfjsSession(bytes, manifest, verified);
    }
    default: {
      const unknown: never = manifest.runtime;
      throw new CxrError('CXR_MODEL_LOAD_FAILED', `runtime "${String(unknown)}" is not available in this build`);
    }
  }
}

/** Reads `file` and each of `files`, by normalized relative path; every digest that disagrees is named in one error. */
async function readVerifiedFiles(directory: string, manifest: ModelManifest): Promise<Map<string, Uint8Array>> {
  const expected = [{ path: manifest.file, sha256: manifest.sha256 }, ...(manifest.files ?? [])];
  const verified = new Map<string, Uint8Array>();
  const mismatches: string[] = [];
  for (const file of expected) {
    let bytes: Uint8Array;
    try {
      bytes = await readFile(path.join(directory, file.path));
    } catch (err) {
      throw toCxrError(err, 'CXR_MODEL_LOAD_FAILED');
    }
    const actual = sha256Hex(bytes);
    if (actual !== file.sha256) mismatches.push(`${file.path} has sha256 ${actual}, the manifest says ${file.sha256}`);
    verified.set(modelPathKey(file.path), bytes);
  }
  if (mismatches.length > 0) throw new CxrError('CXR_MODEL_HASH_MISMATCH', mismatches.join('; '));
  return verified;
}
