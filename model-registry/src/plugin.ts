import type { FastifyInstance } from 'fastify';
import type { RegistryDeps } from './deps.js';
import { registerBlobRoutes } from './routes/blobs.js';
import { registerCohortRoutes } from './routes/cohorts.js';
import { routeContext } from './routes/context.js';
import { registerDeploymentRoutes } from './routes/deployments.js';
import { registerFleetRoutes } from './routes/fleet.js';
import { registerKeyRoutes } from './routes/keys.js';
import { registerPage } from './routes/page.js';
import { registerStationFileRoutes } from './routes/station-files.js';
import { registerVersionRoutes } from './routes/versions.js';
import type { PushLimits, PushOptions } from './versions/push.js';

/**
 * The registry's settings, checked when it is mounted (`registryOptionProblems`). Push limits (`PushLimits`):
 * `maxPushBytes` (bytes, default 2 GiB), `maxModelFiles` (default 200, at most 1000), `maxLabelledFiles` (default
 * 5000, at most 5000); past one, a push is 413 `CXR_PAYLOAD_TOO_LARGE` before anything is read or copied.
 */
export interface RegistryOptions extends PushLimits {
  /** Redis key prefix of the registry's index. Default `cxr:registry:`. */
  readonly redisPrefix?: string;
  /** Largest file of a model folder or labelled set, in bytes. Default 1 GiB. */
  readonly maxFileBytes?: number;
  /** Scratch folder for validation copies; default the system's temp folder. */
  readonly scratchDir?: string;
  /** ONNX Runtime threads for validation and the latency figure. Default 2 (a station PC). */
  readonly threads?: number;
  readonly latencyRuns?: number;
  /** Metrics on a labelled set; default `cxr eval`'s (AUC with DeLong 95% CI per score, operating point). */
  readonly metricsFor?: PushOptions['metricsFor'];
}

/** Every problem with the registry's options, in words (none: they are usable). */
export function registryOptionProblems(options: RegistryOptions): string[] {
  const problems: string[] = [];
  const whole = (name: keyof RegistryOptions, min: number, max: number): void => {
    const value = options[name];
    if (value !== undefined && (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max)) {
      problems.push(`${name}: ${JSON.stringify(value)} is not a whole number from ${min} to ${max}`);
    }
  };
  whole('maxFileBytes', 1, Number.MAX_SAFE_INTEGER);
  whole('maxPushBytes', 1, Number.MAX_SAFE_INTEGER);
  // The push body's schema lists at most 1000 model files and 5000 labelled ones.
  whole('maxModelFiles', 1, 1000);
  whole('maxLabelledFiles', 1, 5000);
  whole('threads', 1, 64);
  whole('latencyRuns', 1, 1000);
  return problems;
}

/**
 * The model registry's routes, mounted by the gateway: the ML engineer's API (role mlops or admin), the station
 * routes of PROTOCOL.md (a station sees only its own), the public key, and the ML engineer's page at `/ml/`.
 * Throws, naming every problem, when an option is out of range.
 */
export async function registerModelRegistry(app: FastifyInstance, deps: RegistryDeps, options: RegistryOptions = {}): Promise<void> {
  const problems = registryOptionProblems(options);
  if (problems.length > 0) throw new Error(`the model registry's options: ${problems.join('; ')}`);
  const ctx = routeContext(app, deps, options);
  // One file per concern under routes/; each route keeps its own path, schema, guard and `config` there.
  await registerPage(ctx);
  registerKeyRoutes(ctx);
  registerStationFileRoutes(ctx);
  registerFleetRoutes(ctx);
  registerBlobRoutes(ctx);
  registerVersionRoutes(ctx);
  registerCohortRoutes(ctx);
  registerDeploymentRoutes(ctx);
}
