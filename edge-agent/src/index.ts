export { startEdgeAgent, type EdgeAgent, type EdgeAgentDeps } from './agent.js';
export { loadConfig, ConfigError, EdgeConfigSchema, type EdgeConfig } from './config.js';
export { createLogger, redactPaths } from './log.js';
export { SpoolDb, type InstanceRecord } from './spool/db.js';
export { Spool, SpoolRefusal } from './spool/spool.js';
export { CStoreStatus } from './dimse/status.js';
export { buildEdgeApp } from './web/app.js';
export { toStudyView, type StudyView, type InstanceView } from './web/studies.js';
