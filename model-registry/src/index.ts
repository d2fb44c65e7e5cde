export { registerModelRegistry, registryOptionProblems, type RegistryOptions } from './plugin.js';
export type { RegistryDeps, RegistryObjectStore, RegistryRedis, RegistryAudit, RegistryAuditAction, RegistryPrincipal, RegistryRole, RouteGuard, RegistryHttpErrorCode } from './deps.js';
export { getOrCreateSigningKey } from './sign/signing-key.js';
export { validateModelFolder, type FolderValidation, type PushError, type ValidationReport, type UploadedFile } from './validate/validate.js';
export { PUSH_LIMIT_DEFAULTS, PushLimitError, pushLimitProblems, pushVersion, type PushLimits, type PushResult, type VersionRecord, type RefusedPush } from './versions/push.js';
export { canaryBucket, deploy, rollback, type DeploymentRecord, type Target } from './rollout/rollout.js';
export { fleetStatus, StationStatusSchema, type FleetRow, type StationStatus } from './fleet/status.js';
export { main } from './cli/main.js';
