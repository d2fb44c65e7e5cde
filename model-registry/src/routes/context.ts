import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RegistryDeps, RouteGuard } from '../deps.js';
import { LastSeen } from '../fleet/status.js';
import type { RegistryOptions } from '../plugin.js';
import { RolloutError } from '../rollout/rollout.js';
import { COHORT_PATTERN, NAME_PATTERN, VERSION_PATTERN } from '../store/keys.js';

/** What every route file of the registry works with, made once when the registry is mounted (plugin.ts). */
export interface RouteContext {
  readonly app: FastifyInstance;
  readonly deps: RegistryDeps;
  readonly options: RegistryOptions;
  readonly store: RegistryDeps['store'];
  readonly fail: RegistryDeps['httpError'];
  /** the guard of the ML engineer's routes: role mlops or admin */
  readonly mlops: RouteGuard;
  /** the guard of the station routes: a station, for its own id only */
  readonly station: RouteGuard;
  readonly seen: LastSeen;
  readonly maxFileBytes: number;
  /** who asked, for the audit trail and the log: a user name or `station:<id>` */
  actor(request: FastifyRequest): string;
  /** rollout's own errors as the gateway's HTTP errors */
  rolloutCall<T>(work: () => Promise<T>): Promise<T>;
  checkName(name: string, version?: string): void;
  checkCohort(cohort: string): void;
}

export function routeContext(app: FastifyInstance, deps: RegistryDeps, options: RegistryOptions): RouteContext {
  const fail = deps.httpError;
  return {
    app,
    deps,
    options,
    store: deps.store,
    fail,
    mlops: deps.requireUser('mlops', 'admin'),
    station: deps.requireStation(),
    seen: new LastSeen(deps.redis, options.redisPrefix ?? 'cxr:registry:', deps.log),
    maxFileBytes: options.maxFileBytes ?? 1024 * 1024 * 1024,
    actor: (request) => {
      const p = deps.principal(request);
      return p?.kind === 'user' ? p.username : p?.kind === 'station' ? `station:${p.stationId}` : 'unknown';
    },
    rolloutCall: async (work) => {
      try {
        return await work();
      } catch (err) {
        if (err instanceof RolloutError) throw fail(err.code, err.message);
        throw err;
      }
    },
    checkName: (name, version) => {
      if (!NAME_PATTERN.test(name)) throw fail('CXR_VALIDATION', `"${name}" is not a model name`);
      if (version !== undefined && !VERSION_PATTERN.test(version)) throw fail('CXR_VALIDATION', `"${version}" is not a model version`);
    },
    checkCohort: (cohort) => {
      if (!COHORT_PATTERN.test(cohort)) throw fail('CXR_VALIDATION', `cohort "${cohort}": 1-64 of a-z 0-9 _ - (starting with a letter or digit)`);
    },
  };
}
