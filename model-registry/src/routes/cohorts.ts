import { Type } from '@sinclair/typebox';
import { cohortOf, leaveCohort, memberships, setCohort, targetHistory } from '../rollout/rollout.js';
import { STATION_PATTERN } from '../store/keys.js';
import type { RouteContext } from './context.js';

/** Cohorts: named groups of stations a deployment can target. */
export function registerCohortRoutes(ctx: RouteContext): void {
  const { app, deps, store, fail, mlops, actor, checkCohort } = ctx;
  app.get('/api/v1/registry/cohorts', { preValidation: mlops }, async () => {
    const byCohort = new Map<string, string[]>();
    for (const m of (await memberships(store)).values()) byCohort.set(m.cohort, [...(byCohort.get(m.cohort) ?? []), m.stationId]);
    const cohorts = [];
    for (const [cohort, stations] of [...byCohort.entries()].sort(([a], [b]) => (a < b ? -1 : 1))) {
      cohorts.push({ cohort, stations: stations.sort(), deployments: await targetHistory(store, { cohort, percent: 100 }, 20) });
    }
    return cohorts;
  });

  app.post<{ Params: { cohort: string }; Body: { stations: string[] } }>(
    '/api/v1/registry/cohorts/:cohort/stations',
    { preValidation: mlops, schema: { body: Type.Object({ stations: Type.Array(Type.String({ minLength: 1, maxLength: 64 }), { minItems: 1, maxItems: 1000 }) }, { additionalProperties: false }) } },
    async (request) => {
      const { cohort } = request.params;
      checkCohort(cohort);
      const unknown: string[] = [];
      for (const id of request.body.stations) if (!STATION_PATTERN.test(id) || !(await deps.stationExists(id))) unknown.push(id);
      if (unknown.length > 0) throw fail('CXR_NOT_FOUND', `no station ${unknown.join(', ')}`);
      const by = actor(request);
      const moved = [];
      for (const id of request.body.stations) {
        const before = await cohortOf(store, id);
        await setCohort(store, id, cohort, by);
        moved.push({ stationId: id, cohort, previous: before });
      }
      await deps.audit.record({ actor: `user:${by}`, action: 'registry.cohort', target: cohort, detail: { added: request.body.stations.join(',') } });
      return { cohort, stations: moved };
    },
  );

  app.delete<{ Params: { cohort: string; stationId: string } }>('/api/v1/registry/cohorts/:cohort/stations/:stationId', { preValidation: mlops }, async (request, reply) => {
    const { cohort, stationId } = request.params;
    checkCohort(cohort);
    if (!STATION_PATTERN.test(stationId) || (await cohortOf(store, stationId)) !== cohort) throw fail('CXR_NOT_FOUND', `station ${stationId} is not in cohort ${cohort}`);
    await leaveCohort(store, stationId);
    await deps.audit.record({ actor: `user:${actor(request)}`, action: 'registry.cohort', target: cohort, detail: { removed: stationId } });
    return reply.code(204).send();
  });
}
