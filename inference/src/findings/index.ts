export { activate, type Activation } from './activation.js';
export { checkApplicability, type GateResult, type ImageFacts } from './applicability.js';
export { higherPriority, round6, triage, urgencyRank, type ThresholdOverrides } from './triage.js';
