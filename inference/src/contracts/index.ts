export * from './manifest.js';
export * from './triage-result.js';
export { patientRedactPaths } from './redact.js';
export * from './signed.js';
export * from './model-release.js';
export * from './thresholds.js';
