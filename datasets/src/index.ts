export { main } from './cli/main.js';
export { wrapImage, checkWrapOptions, defaultWrapOptions, syntaxNames, syntaxUids, type WrapOptions, type WrapResult, type SyntaxName } from './wrap/wrap.js';
export { mapSamples, scaleValue, type BitMapping } from './wrap/bits.js';
export { wrapFile, wrapDirectory } from './wrap/wrap-files.js';
export { deidentifyBytes, deidentifyParsed, shiftDate, shiftDateTime, type DeidentifyOptions, type DeidentifyResult } from './deidentify/deidentify.js';
export { deidentifyFiles, runKey, type DeidentifyRunOptions } from './deidentify/deidentify-files.js';
export { basicProfile, type ProfileAction } from './deidentify/profile.js';
export type { Manifest, ManifestEntry, ManifestFailure } from './manifest.js';
