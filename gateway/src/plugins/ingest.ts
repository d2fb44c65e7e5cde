import { pipeline, type Readable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { crashPoint, limited, TriageResultSchema, type Priority, type TriageResult } from '@cxr/inference';
import type { AuditTrail } from '../audit.js';
import type { ConsultRecord } from '../consults/types.js';
import { GatewayCrashPoint } from '../crash-points.js';
import { GatewayError } from '../errors.js';
import type { ConsultDesk } from '../queue/desk.js';
import type { ObjectStore } from '../store/index.js';
import { putOnce, readJson, readJsonOptional } from '../store/json.js';
import { consultKey, instanceFileKey, instancePrefix } from '../store/keys.js';
import { requireStation } from './auth.js';
import { assertSha256, assertUid, consultIdOf, safeConsultId } from './ids.js';

export interface IngestOptions {
  /** largest DICOM upload, in bytes. Default 512 MiB. */
  readonly maxDicomBytes: number;
  /** largest preview upload, in bytes. Default 8 MiB. */
  readonly maxPreviewBytes: number;
}

/**
 * Station ingest. Everything is keyed by station, study, instance and content hash, so a replay writes nothing
 * new and answers as the first time did. A station can only ever write under its own id.
 */
export function registerIngest(app: FastifyInstance, deps: { store: ObjectStore; desk: ConsultDesk; audit: AuditTrail }, options: IngestOptions): void {
  app.addContentTypeParser(['application/dicom', 'image/png', 'application/octet-stream'], (_request, payload, done) => done(null, payload));
  const station = requireStation();

  app.put<{ Params: { stationId: string; studyUid: string; sopUid: string; sha: string } }>(
    '/api/v1/stations/:stationId/studies/:studyUid/instances/:sopUid/:sha/result',
    { preValidation: station, schema: { body: Type.Object({ result: Type.Unknown() }) } },
    async (request, reply) => {
      const { stationId, studyUid, sopUid, sha } = request.params;
      const key = instanceFileKey(instancePrefix(stationId, assertUid(studyUid, 'study UID'), assertUid(sopUid, 'SOP Instance UID'), assertSha256(sha, 'content sha256')), 'result.json');
      const result = (request.body as { result: unknown }).result;
      const problems = [...Value.Errors(TriageResultSchema, result)].slice(0, 10).map((e) => `${e.path}: ${e.message}`);
      if (problems.length > 0) throw new GatewayError('CXR_VALIDATION', problems.join('; '));
      const created = await putOnce(deps.store, key, Buffer.from(JSON.stringify(result)), 'application/json');
      crashPoint(GatewayCrashPoint.instanceResultStored);
      if (created) await deps.audit.record({ actor: `station:${stationId}`, action: 'ingest.result', target: studyUid, detail: { sopUid } });
      return reply.code(created ? 201 : 200).send({ stored: key, created, priority: (result as TriageResult).priority });
    },
  );

  for (const kind of ['preview', 'heatmap', 'dicom'] as const) {
    app.put<{ Params: { stationId: string; studyUid: string; sopUid: string; sha: string } }>(
      `/api/v1/stations/:stationId/studies/:studyUid/instances/:sopUid/:sha/${kind}`,
      { preValidation: station },
      async (request, reply) => {
        const { stationId, studyUid, sopUid, sha } = request.params;
        const prefix = instancePrefix(stationId, assertUid(studyUid, 'study UID'), assertUid(sopUid, 'SOP Instance UID'), assertSha256(sha, 'content sha256'));
        const bodySha = assertSha256(request.headers['x-content-sha256'] as string | undefined, 'x-content-sha256 header');
        const limit = kind === 'dicom' ? options.maxDicomBytes : options.maxPreviewBytes;
        const declared = Number(request.headers['content-length'] ?? 0);
        if (declared > limit) throw new GatewayError('CXR_PAYLOAD_TOO_LARGE', `${declared} bytes, at most ${limit}`);
        const key = instanceFileKey(prefix, kind === 'dicom' ? 'instance.dcm' : `${kind}.png`);
        const existing = await deps.store.head(key);
        if (existing?.sha256 === bodySha) {
          (request.body as Readable).resume();
          return reply.code(200).send({ stored: key, created: false });
        }
        try {
          // pipeline(), not pipe(): a station that drops mid-upload must fail the write, not leave it waiting.
          const body = pipeline(request.body as Readable, limited(limit, () => new GatewayError('CXR_PAYLOAD_TOO_LARGE', `more than ${limit} bytes`)), () => undefined);
          await deps.store.put(key, body, {
            sha256: bodySha,
            contentType: kind === 'dicom' ? 'application/dicom' : 'image/png',
          });
        } catch (err) {
          if ((err as { code?: string }).code === 'CXR_STORE_HASH_MISMATCH') throw new GatewayError('CXR_HASH_MISMATCH');
          throw err;
        }
        crashPoint(GatewayCrashPoint.instanceFileStored);
        await deps.audit.record({ actor: `station:${stationId}`, action: kind === 'dicom' ? 'ingest.dicom' : 'ingest.preview', target: studyUid, detail: { sopUid } });
        return reply.code(201).send({ stored: key, created: true });
      },
    );
  }

  app.post<{ Params: { stationId: string } }>(
    '/api/v1/stations/:stationId/consults',
    {
      preValidation: station,
      schema: {
        body: Type.Object(
          {
            studyInstanceUid: Type.String({ maxLength: 64 }),
            priority: Type.Union([Type.Literal('stat'), Type.Literal('urgent'), Type.Literal('routine')]),
            reason: Type.Union([Type.Literal('policy'), Type.Literal('requested')]),
            note: Type.Optional(Type.String({ maxLength: 2000 })),
          },
          { additionalProperties: false },
        ),
      },
    },
    async (request, reply) => {
      const { stationId } = request.params;
      const body = request.body as { studyInstanceUid: string; priority: Priority; reason: 'policy' | 'requested'; note?: string };
      const studyUid = assertUid(body.studyInstanceUid, 'studyInstanceUid');
      const consultId = consultIdOf(stationId, studyUid);
      const record: ConsultRecord = {
        consultId,
        stationId,
        studyInstanceUid: studyUid,
        priority: body.priority,
        reason: body.reason,
        note: body.note ?? null,
        receivedAt: new Date().toISOString(),
      };
      // The store first (the system of record), then the queue: a crash in between is repaired by the station's
      // replay (it had no answer) and by the rebuild at start.
      const created = await putOnce(deps.store, consultKey(consultId), Buffer.from(JSON.stringify(record)), 'application/json');
      crashPoint(GatewayCrashPoint.consultStored);
      const stored = created ? record : await readJson<ConsultRecord>(deps.store, consultKey(consultId));
      await deps.desk.enqueue(stored);
      if (created) await deps.audit.record({ actor: `station:${stationId}`, action: 'consult.request', target: consultId, detail: { priority: body.priority, reason: body.reason } });
      return reply.code(created ? 201 : 200).send({ consultId, created });
    },
  );

  app.get<{ Params: { stationId: string; consultId: string } }>(
    '/api/v1/stations/:stationId/consults/:consultId',
    { preValidation: station },
    async (request) => {
      const { stationId, consultId } = request.params;
      const record = await readJsonOptional<ConsultRecord>(deps.store, consultKey(safeConsultId(consultId)));
      if (!record || record.stationId !== stationId) throw new GatewayError('CXR_NOT_FOUND', 'no such consult for this station');
      const report = await readJsonOptional<Record<string, unknown>>(deps.store, consultKey(consultId, 'report.json'));
      if (report) return { consultId, status: 'reported', report };
      const claimedBy = await deps.desk.holder(consultId);
      return { consultId, status: claimedBy ? 'claimed' : 'queued' };
    },
  );
}
