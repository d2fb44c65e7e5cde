import { Type } from '@sinclair/typebox';
import { deploy, rollback, targetHistory, unpin, type Target } from '../rollout/rollout.js';
import { STATION_PATTERN } from '../store/keys.js';
import type { RouteContext } from './context.js';

const DeployBody = Type.Object(
  {
    name: Type.String({ minLength: 1, maxLength: 100 }),
    version: Type.String({ minLength: 1, maxLength: 64 }),
    station: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    cohort: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })),
    percent: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 100 })),
    thresholds: Type.Optional(Type.Unknown()),
    rollback: Type.Optional(Type.Boolean()),
  },
  { additionalProperties: false },
);
const RollbackBody = Type.Object(
  { station: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })), cohort: Type.Optional(Type.String({ minLength: 1, maxLength: 64 })) },
  { additionalProperties: false },
);

/**
 * Deployments and rollout: deploying a version to a station or to a cohort (a share of it), rolling back, unpinning
 * a station, the history of a target.
 */
export function registerDeploymentRoutes(ctx: RouteContext): void {
  const { app, deps, store, fail, mlops, actor, checkName, checkCohort, rolloutCall } = ctx;
  app.post<{ Body: { name: string; version: string; station?: string; cohort?: string; percent?: number; thresholds?: unknown; rollback?: boolean } }>(
    '/api/v1/registry/deployments',
    { preValidation: mlops, schema: { body: DeployBody } },
    async (request, reply) => {
      const { name, version, station: stationId, cohort, percent, thresholds } = request.body;
      checkName(name, version);
      let target: Target;
      if (stationId !== undefined && cohort === undefined && percent === undefined) {
        if (!STATION_PATTERN.test(stationId)) throw fail('CXR_NOT_FOUND', `no station ${stationId}`);
        target = { station: stationId };
      } else if (cohort !== undefined && stationId === undefined) {
        checkCohort(cohort);
        target = { cohort, percent: percent ?? 100 };
      } else {
        throw fail('CXR_VALIDATION', 'give either station, or cohort with an optional percent');
      }
      const by = actor(request);
      const record = await rolloutCall(() => deploy(store, { name, version, target, thresholds, rollback: request.body.rollback, issuedBy: by }, { stationExists: deps.stationExists }));
      await deps.audit.record({
        actor: `user:${by}`,
        action: record.rollback ? 'registry.rollback' : 'registry.deploy',
        target: `${name}@${version}`,
        detail: { deploymentId: record.deploymentId, ...('station' in target ? { station: target.station } : { cohort: target.cohort, percent: target.percent }) },
      });
      request.log.info({ model: `${name}@${version}`, target, deploymentId: record.deploymentId }, 'model deployed');
      return reply.code(201).send(record);
    },
  );

  app.post<{ Body: { station?: string; cohort?: string } }>('/api/v1/registry/rollbacks', { preValidation: mlops, schema: { body: RollbackBody } }, async (request, reply) => {
    const { station: stationId, cohort } = request.body;
    if ((stationId === undefined) === (cohort === undefined)) throw fail('CXR_VALIDATION', 'give either station or cohort');
    if (cohort !== undefined) checkCohort(cohort);
    if (stationId !== undefined && !STATION_PATTERN.test(stationId)) throw fail('CXR_NOT_FOUND', `no station ${stationId}`);
    const by = actor(request);
    const record = await rolloutCall(() => rollback(store, cohort !== undefined ? { cohort } : { station: stationId ?? '' }, by));
    await deps.audit.record({
      actor: `user:${by}`,
      action: 'registry.rollback',
      target: `${record.name}@${record.version}`,
      detail: { deploymentId: record.deploymentId, from: record.rolledBackFrom ?? '', ...(cohort !== undefined ? { cohort } : { station: stationId ?? '' }) },
    });
    request.log.info({ model: `${record.name}@${record.version}`, from: record.rolledBackFrom, deploymentId: record.deploymentId }, 'rolled back');
    return reply.code(201).send(record);
  });

  app.post<{ Params: { stationId: string } }>('/api/v1/registry/stations/:stationId/unpin', { preValidation: mlops }, async (request, reply) => {
    const { stationId } = request.params;
    if (!STATION_PATTERN.test(stationId) || !(await deps.stationExists(stationId))) throw fail('CXR_NOT_FOUND', `no station ${stationId}`);
    const record = await unpin(store, stationId, actor(request));
    await deps.audit.record({ actor: `user:${actor(request)}`, action: 'registry.deploy', target: stationId, detail: { unpin: true } });
    return reply.code(201).send(record);
  });

  app.get<{ Querystring: { cohort?: string; station?: string } }>('/api/v1/registry/deployments', { preValidation: mlops }, async (request) => {
    const { cohort, station: stationId } = request.query;
    if (cohort !== undefined) {
      checkCohort(cohort);
      return targetHistory(store, { cohort, percent: 100 }, 100);
    }
    if (stationId !== undefined && STATION_PATTERN.test(stationId)) return targetHistory(store, { station: stationId }, 100);
    throw fail('CXR_VALIDATION', 'give ?cohort=C or ?station=ID');
  });
}
