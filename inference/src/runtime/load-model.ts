import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CxrError, toCxrError } from '../errors/index.js';
import { readManifest } from './manifest.js';
import { createOnnxSession } from './onnx.js';
import type { LoadedModel, RuntimeOptions } from './types.js';

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** Validates the manifest, checks the file's sha256, then creates the runtime session once. */
export async function loadModel(modelDir: string, options: RuntimeOptions = {}): Promise<LoadedModel> {
  const directory = path.resolve(modelDir);
  const manifest = await readManifest(directory);
  let bytes: Uint8Array;
  try {
    bytes = await readFile(path.join(directory, manifest.file));
  } catch (err) {
    throw toCxrError(err, 'CXR_MODEL_LOAD_FAILED');
  }
  const actual = sha256Hex(bytes);
  if (actual !== manifest.sha256) {
    throw new CxrError('CXR_MODEL_HASH_MISMATCH', `${manifest.file} has sha256 ${actual}, the manifest says ${manifest.sha256}`);
  }
  if (manifest.runtime !== 'onnx') {
    throw new CxrError('CXR_MODEL_LOAD_FAILED', `runtime "${manifest.runtime}" is not available in this build`);
  }
  const session = await createOnnxSession(bytes, manifest, options);
  return {
    manifest,
    identity: { name: manifest.name, version: manifest.version, sha256: manifest.sha256 },
    directory,
    run: (tensor) => session.run(tensor),
    close: () => session.close(),
  };
}
