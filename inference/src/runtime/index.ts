export { loadModel, sha256Hex } from './load-model.js';
export { manifestProblems, readManifest, validateManifest } from './manifest.js';
export type { ClassActivationMaps, LoadedModel, ModelOutput, RuntimeOptions } from './types.js';
export { GOLDEN_CASES_FILE, GoldenCasesSchema, readGoldenCases, runGoldenCases } from './golden.js';
export type { GoldenCaseResult, GoldenCases, GoldenReport } from './golden.js';
export { inferenceNodeFlags, startedWithInferenceFlags } from './node-flags.js';
