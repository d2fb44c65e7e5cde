import type { Readable } from 'node:stream';
import { Resolver, cohortOf } from '../rollout/rollout.js';
import { blobKey, versionKey } from '../store/keys.js';
import { readJsonOptional } from '../store/json.js';
import type { VersionRecord } from '../versions/push.js';
import type { RouteContext } from './context.js';

/**
 * A station's own model: the signed deployment that applies to it and that version's files (resumable, by Range).
 * A station sees only its own.
 */
export function registerStationFileRoutes(ctx: RouteContext): void {
  const { app, store, fail, station, seen, checkName } = ctx;
  app.get<{ Params: { stationId: string } }>('/api/v1/stations/:stationId/model', { preValidation: station }, async (request) => {
    const { stationId } = request.params;
    // Not awaited: a Redis outage must not slow a station's poll (touch logs its own failures).
    void seen.touch(stationId);
    const resolved = await new Resolver(store).forStation(stationId, await cohortOf(store, stationId));
    if (!resolved) return { deployment: null, release: null };
    const version = await readJsonOptional<VersionRecord>(store, versionKey(resolved.deployment.name, resolved.deployment.version));
    return { deployment: resolved.deployment.signed, release: version?.release ?? null };
  });

  app.get<{ Params: { stationId: string; name: string; version: string; '*': string } }>(
    '/api/v1/stations/:stationId/model/files/:name/:version/*',
    { preValidation: station, exposeHeadRoute: false },
    async (request, reply) => {
      const { stationId, name, version } = request.params;
      const filePath = request.params['*'];
      checkName(name, version);
      // Only the version the deployment that applies to this station names, never what the station reports it
      // runs (a station says what it likes in its status). A rollback is a new deployment naming the older
      // version, so it is covered; a station's last good version is already on its own disk.
      const resolved = await new Resolver(store).forStation(stationId, await cohortOf(store, stationId));
      const allowed = resolved?.deployment.name === name && resolved.deployment.version === version;
      const record = allowed ? await readJsonOptional<VersionRecord>(store, versionKey(name, version)) : undefined;
      const file = record?.files.find((f) => f.path === filePath);
      if (!file) throw fail('CXR_NOT_FOUND', `no file ${filePath} of ${name}@${version} for this station`);
      const etag = `"${file.sha256}"`;
      reply.header('etag', etag).header('accept-ranges', 'bytes');
      let start = 0;
      let end = file.size - 1;
      const range = request.headers.range;
      const ifRange = request.headers['if-range'];
      if (range && (!ifRange || ifRange === etag)) {
        const m = /^bytes=(\d+)-(\d*)$/u.exec(range.trim());
        if (!m) throw fail('CXR_VALIDATION', `Range "${range}": only one range, bytes=N- or bytes=N-M`);
        start = Number(m[1]);
        if (m[2]) end = Math.min(end, Number(m[2]));
        if (start >= file.size || start > end) {
          return reply.code(416).header('content-range', `bytes */${file.size}`).send({ error: { code: 'CXR_VALIDATION', message: `Range starts at ${start}, the file has ${file.size} bytes` } });
        }
        reply.code(206).header('content-range', `bytes ${start}-${end}/${file.size}`);
      }
      reply.header('content-type', 'application/octet-stream').header('content-length', String(Math.max(0, end - start + 1)));
      const whole = start === 0 && end === file.size - 1;
      // A resumed download reads from the store at its offset: a station 20 MB into a 28 MB model costs 8 MB.
      return reply.send((await store.get(blobKey(file.sha256), whole ? undefined : { start, end })) as Readable);
    },
  );
}
