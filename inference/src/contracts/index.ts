export * from './manifest.js';
export * from './triage-result.js';
