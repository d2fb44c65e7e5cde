export { build, type GatewayDeps, type GatewayOptions } from './app.js';
export { openContext, type GatewayContext } from './context.js';
export { AccountStore, type Role, type StationRecord, type UserRecord } from './accounts/accounts.js';
export { SessionStore } from './accounts/sessions.js';
export { GatewayError, GatewayErrors, type GatewayErrorCode } from './errors.js';
export { createLogger, redactPaths } from './log.js';
export { rebuildQueueFromStore } from './queue/rebuild.js';
export { ConsultQueue, type ConsultJob, type WorklistItem } from './queue/consults.js';
