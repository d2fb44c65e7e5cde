import { Type } from '@sinclair/typebox';
import { modelsPrefix, refusedPrefix, versionKey } from '../store/keys.js';
import { listJson, readJsonOptional } from '../store/json.js';
import { PushLimitError, pushVersion, type PushResult, type RefusedPush, type VersionRecord } from '../versions/push.js';
import type { RouteContext } from './context.js';

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

/**
 * Model versions: pushing one (validated, then accepted and signed, or refused with a report), the models and
 * versions held, the refused pushes.
 */
export function registerVersionRoutes(ctx: RouteContext): void {
  const { app, deps, options, store, fail, mlops, actor, checkName } = ctx;
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
}
