import { StationStatusSchema, fleetStatus, recordStatus, type StationStatus } from '../fleet/status.js';
import type { RouteContext } from './context.js';

/**
 * The fleet: each station reports its model's state; the ML engineer sees every station's last report and when it
 * was last seen.
 */
export function registerFleetRoutes(ctx: RouteContext): void {
  const { app, deps, store, mlops, station, seen } = ctx;
  app.post<{ Params: { stationId: string }; Body: StationStatus }>(
    '/api/v1/stations/:stationId/model/status',
    { preValidation: station, schema: { body: StationStatusSchema } },
    async (request, reply) => {
      const { stationId } = request.params;
      await recordStatus(store, stationId, request.body);
      void seen.touch(stationId);
      if (request.body.state === 'failed') request.log.warn({ stationId, error: request.body.error?.code }, 'station reports a model failure');
      return reply.code(204).send();
    },
  );

  app.get('/api/v1/registry/status', { preValidation: mlops }, async () => {
    return { stations: await fleetStatus(store, await deps.listStations(), seen), at: new Date().toISOString() };
  });
}
