export { loadModel, sha256Hex } from './load-model.js';
export { manifestProblems, readManifest, validateManifest } from './manifest.js';
export type { ClassActivationMaps, LoadedModel, ModelOutput, RuntimeOptions } from './types.js';
