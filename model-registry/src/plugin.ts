import { Readable } from 'node:stream';
import { pipeline } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { limited } from '@cxr/inference';
import fastifyStatic from '@fastify/static';
import { Type } from '@sinclair/typebox';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { RegistryDeps } from './deps.js';
import { LastSeen, StationStatusSchema, fleetStatus, recordStatus, type StationStatus } from './fleet/status.js';
import { RolloutError, Resolver, cohortOf, deploy, leaveCohort, memberships, rollback, setCohort, targetHistory, unpin, type Target } from './rollout/rollout.js';
import { getOrCreateSigningKey } from './sign/signing-key.js';
import { COHORT_PATTERN, NAME_PATTERN, SHA256_PATTERN, STATION_PATTERN, VERSION_PATTERN, blobKey, modelsPrefix, refusedPrefix, versionKey } from './store/keys.js';
import { isCode, listJson, readJsonOptional } from './store/json.js';
import { PushLimitError, pushVersion, type PushLimits, type PushOptions, type PushResult, type RefusedPush, type VersionRecord } from './versions/push.js';

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

const FileEntry = Type.Object(
  { path: Type.String({ minLength: 1, maxLength: 200 }), sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }), size: Type.Integer({ minimum: 0 }) },
  { additionalProperties: false },
);
const PushBody = Type.Object(
  {
    files: Type.Array(FileEntry, { minItems: 1, maxItems: 1000 }),
    labelled: Type.Optional(
      Type.Object(
        {
          csv: Type.String({ minLength: 1, maxLength: 200 }),
          files: Type.Array(FileEntry, { minItems: 1, maxItems: 5000 }),
          truth: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
          score: Type.Optional(Type.String({ minLength: 1, maxLength: 1000 })),
          imageColumn: Type.Optional(Type.String({ minLength: 1, maxLength: 200 })),
        },
        { additionalProperties: false },
      ),
    ),
  },
  { additionalProperties: false },
);
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
  const { store } = deps;
  const fail = deps.httpError;
  const mlops = deps.requireUser('mlops', 'admin');
  const station = deps.requireStation();
  const seen = new LastSeen(deps.redis, options.redisPrefix ?? 'cxr:registry:', deps.log);
  const maxFileBytes = options.maxFileBytes ?? 1024 * 1024 * 1024;
  const actor = (request: FastifyRequest): string => {
    const p = deps.principal(request);
    return p?.kind === 'user' ? p.username : p?.kind === 'station' ? `station:${p.stationId}` : 'unknown';
  };
  const rolloutCall = async <T>(work: () => Promise<T>): Promise<T> => {
    try {
      return await work();
    } catch (err) {
      if (err instanceof RolloutError) throw fail(err.code, err.message);
      throw err;
    }
  };
  const checkName = (name: string, version?: string): void => {
    if (!NAME_PATTERN.test(name)) throw fail('CXR_VALIDATION', `"${name}" is not a model name`);
    if (version !== undefined && !VERSION_PATTERN.test(version)) throw fail('CXR_VALIDATION', `"${version}" is not a model version`);
  };
  const checkCohort = (cohort: string): void => {
    if (!COHORT_PATTERN.test(cohort)) throw fail('CXR_VALIDATION', `cohort "${cohort}": 1-64 of a-z 0-9 _ - (starting with a letter or digit)`);
  };

  if (!app.hasContentTypeParser('application/octet-stream')) {
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
  }

  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('../public/', import.meta.url)),
    prefix: '/ml/',
    decorateReply: false,
    index: ['index.html'],
  });
  app.get('/ml', { config: { credential: 'public' } }, async (_request, reply) => reply.redirect('/ml/'));

  // ------------------------------------------------------------------------------------------------ anyone signed in
  app.get('/api/v1/registry/public-key', { config: { credential: 'signed-in' } }, async (request) => {
    if (!deps.principal(request)) throw fail('CXR_AUTH_REQUIRED');
    return { publicKey: (await getOrCreateSigningKey(store)).publicKey };
  });

  // ------------------------------------------------------------------------------------------------ stations
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

  // ------------------------------------------------------------------------------------------------ ML engineers
  app.head<{ Params: { sha256: string } }>('/api/v1/registry/blobs/:sha256', { preValidation: mlops }, async (request, reply) => {
    const info = SHA256_PATTERN.test(request.params.sha256) ? await store.head(blobKey(request.params.sha256)) : undefined;
    if (!info) return reply.code(404).send();
    return reply.code(200).header('content-length', String(info.size)).send();
  });

  app.put<{ Params: { sha256: string } }>('/api/v1/registry/blobs/:sha256', { preValidation: mlops }, async (request, reply) => {
    const { sha256 } = request.params;
    if (!SHA256_PATTERN.test(sha256)) throw fail('CXR_VALIDATION', 'the blob name must be its sha256: 64 lower-case hex digits');
    const body = request.body as Readable;
    if (!(body instanceof Readable)) throw fail('CXR_VALIDATION', 'send the file as application/octet-stream');
    const declared = Number(request.headers['content-length'] ?? 0);
    if (declared > maxFileBytes) {
      body.resume();
      throw fail('CXR_PAYLOAD_TOO_LARGE', `${declared} bytes, at most ${maxFileBytes}`);
    }
    const existing = await store.head(blobKey(sha256));
    if (existing) {
      body.resume();
      return reply.code(200).send({ sha256, size: existing.size, created: false });
    }
    try {
      const info = await store.put(blobKey(sha256), pipeline(body, limited(maxFileBytes, () => fail('CXR_PAYLOAD_TOO_LARGE', `more than ${maxFileBytes} bytes`)), () => undefined), {
        sha256,
        contentType: 'application/octet-stream',
      });
      return reply.code(201).send({ sha256, size: info.size, created: true });
    } catch (err) {
      if (isCode(err, 'CXR_STORE_HASH_MISMATCH')) throw fail('CXR_HASH_MISMATCH', 'the bytes do not match the sha256 in the URL');
      if (isCode(err, 'CXR_STORE_EXISTS')) return reply.code(200).send({ sha256, created: false });
      throw err;
    }
  });

  app.post<{ Body: { files: { path: string; sha256: string; size: number }[]; labelled?: { csv: string; files: { path: string; sha256: string; size: number }[]; truth?: string; score?: string; imageColumn?: string } } }>(
    '/api/v1/registry/versions',
    { preValidation: mlops, bodyLimit: 8 * 1024 * 1024, schema: { body: PushBody } },
    async (request, reply) => {
      const by = actor(request);
      let result: PushResult;
      try {
        result = await pushVersion(store, { files: request.body.files, labelled: request.body.labelled, pushedBy: by }, options);
      } catch (err) {
        if (err instanceof PushLimitError) throw fail('CXR_PAYLOAD_TOO_LARGE', err.message);
        throw err;
      }
      const target = `${result.name ?? '?'}@${result.version ?? '?'}`;
      if (!result.existing) {
        await deps.audit.record({ actor: `user:${by}`, action: 'registry.push', target, detail: { accepted: result.accepted, errors: result.errors.length } });
      }
      request.log.info({ model: target, accepted: result.accepted, existing: result.existing, errors: result.errors.map((e) => e.code) }, 'model pushed');
      return reply.code(result.accepted ? (result.existing ? 200 : 201) : 422).send(result);
    },
  );

  app.get('/api/v1/registry/models', { preValidation: mlops }, async () => {
    const byName = new Map<string, VersionRecord[]>();
    for (const { value } of await listJson<VersionRecord>(store, modelsPrefix)) {
      byName.set(value.name, [...(byName.get(value.name) ?? []), value]);
    }
    return [...byName.entries()]
      .sort(([a], [b]) => (a < b ? -1 : 1))
      .map(([name, versions]) => ({
        name,
        versions: versions
          .sort((a, b) => (a.acceptedAt < b.acceptedAt ? 1 : -1))
          .map((v) => ({
            version: v.version,
            runtime: v.runtime,
            description: v.description,
            labels: v.labels.length,
            files: v.files.length,
            bytes: v.files.reduce((n, f) => n + f.size, 0),
            acceptedAt: v.acceptedAt,
            pushedBy: v.pushedBy,
            golden: v.validation.golden.status,
            goldenCases: v.validation.golden.cases.length,
            latencyMs: v.validation.latency.medianMs ?? null,
            metrics: v.validation.metrics.status,
            warnings: v.warnings.length,
          })),
      }));
  });

  app.get<{ Params: { name: string; version: string } }>('/api/v1/registry/models/:name/versions/:version', { preValidation: mlops }, async (request) => {
    const { name, version } = request.params;
    checkName(name, version);
    const record = await readJsonOptional<VersionRecord>(store, versionKey(name, version));
    if (!record) throw fail('CXR_NOT_FOUND', `no version ${name}@${version}`);
    return record;
  });

  app.get<{ Querystring: { limit?: string } }>('/api/v1/registry/refused', { preValidation: mlops }, async (request) => {
    const limit = Math.min(100, Math.max(1, Number(request.query.limit ?? 20) || 20));
    return (await listJson<RefusedPush>(store, refusedPrefix, limit)).map((r) => r.value);
  });

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

  app.get('/api/v1/registry/status', { preValidation: mlops }, async () => {
    return { stations: await fleetStatus(store, await deps.listStations(), seen), at: new Date().toISOString() };
  });
}

