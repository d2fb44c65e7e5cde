import type { FastifyInstance } from 'fastify';
import { Type } from '@sinclair/typebox';
import { crashPoint, type TriageResult } from '@cxr/inference';
import type { AuditTrail } from '../audit.js';
import type { ConsultRecord, Report } from '../consults/types.js';
import { GatewayCrashPoint } from '../crash-points.js';
import { GatewayError } from '../errors.js';
import type { ConsultQueue } from '../queue/consults.js';
import type { ConsultDesk } from '../queue/desk.js';
import type { ObjectStore } from '../store/index.js';
import { putOnce, readJsonOptional } from '../store/json.js';
import { consultKey, instanceFileKey, instancePrefix, studyInstancesPrefix } from '../store/keys.js';
import { requireUser } from './auth.js';
import { assertSha256, assertUid, safeConsultId } from './ids.js';

const ReportBody = Type.Object(
  {
    impression: Type.String({ minLength: 1, maxLength: 10_000 }),
    findings: Type.Array(Type.Object({ code: Type.String({ maxLength: 64 }), agree: Type.Boolean() }, { additionalProperties: false }), { maxItems: 100 }),
    addedFindings: Type.Optional(Type.Array(Type.String({ maxLength: 200 }), { maxItems: 50 })),
    recommendation: Type.Optional(Type.String({ maxLength: 10_000 })),
  },
  { additionalProperties: false },
);

/** The radiologist's side: worklist in queue order, claim and release, the study with its AI results, the report. */
export function registerConsults(app: FastifyInstance, deps: { store: ObjectStore; queue: ConsultQueue; desk: ConsultDesk; audit: AuditTrail }): void {
  const reader = requireUser('radiologist', 'admin');
  const actor = (request: { principal?: { kind: string; username?: string } }): string => (request.principal as { username: string }).username;

  const WorklistQuery = Type.Object(
    { limit: Type.Integer({ minimum: 1, maximum: 1000, default: 500 }), offset: Type.Integer({ minimum: 0, default: 0 }) },
    { additionalProperties: false },
  );
  app.get<{ Querystring: { limit: number; offset: number } }>('/api/v1/worklist', { preValidation: reader, schema: { querystring: WorklistQuery } }, async (request) => {
    const items = await deps.queue.worklist(request.query.limit, request.query.offset);
    return items.map(({ consultId, stationId, studyInstanceUid, priority, receivedAt, status, claimedBy }) => ({
      consultId,
      stationId,
      studyInstanceUid,
      priority,
      receivedAt,
      status,
      claimedBy,
    }));
  });

  app.get<{ Params: { consultId: string } }>('/api/v1/consults/:consultId', { preValidation: reader }, async (request) => {
    const consultId = safeConsultId(request.params.consultId);
    const consult = await readJsonOptional<ConsultRecord>(deps.store, consultKey(consultId));
    if (!consult) throw new GatewayError('CXR_NOT_FOUND', 'no such consult');
    const instances: { sopInstanceUid: string; contentSha256: string; result: TriageResult | null; hasPreview: boolean; hasHeatmap: boolean; hasDicom: boolean; previewUrl: string | null; heatmapUrl: string | null }[] = [];
    const prefix = studyInstancesPrefix(consult.stationId, consult.studyInstanceUid);
    const byInstance = new Map<string, Set<string>>();
    for await (const info of deps.store.list(prefix)) {
      const [sop, sha, file] = info.key.slice(prefix.length).split('/');
      if (!sop || !sha || !file) continue;
      const id = `${sop}/${sha}`;
      byInstance.set(id, (byInstance.get(id) ?? new Set()).add(file));
    }
    for (const [id, files] of byInstance) {
      const [sop = '', sha = ''] = id.split('/');
      const result = files.has('result.json') ? ((await readJsonOptional<TriageResult>(deps.store, instanceFileKey(`${prefix}${id}`, 'result.json'))) ?? null) : null;
      const base = `/api/v1/consults/${consultId}/instances/${sop}/${sha}`;
      instances.push({
        sopInstanceUid: sop,
        contentSha256: sha,
        result,
        hasPreview: files.has('preview.png'),
        hasHeatmap: files.has('heatmap.png'),
        hasDicom: files.has('instance.dcm'),
        previewUrl: files.has('preview.png') ? `${base}/preview.png` : null,
        heatmapUrl: files.has('heatmap.png') ? `${base}/heatmap.png` : null,
      });
    }
    const report = await readJsonOptional<Report>(deps.store, consultKey(consultId, 'report.json'));
    await deps.audit.record({ actor: `user:${actor(request)}`, action: 'consult.view', target: consultId });
    return { consult, instances, report: report ?? null, claimedBy: report ? null : await deps.desk.holder(consultId) };
  });

  app.get<{ Params: { consultId: string; sopUid: string; sha: string; image: string } }>(
    '/api/v1/consults/:consultId/instances/:sopUid/:sha/:image',
    { preValidation: reader },
    async (request, reply) => {
      if (request.params.image !== 'preview.png' && request.params.image !== 'heatmap.png') throw new GatewayError('CXR_NOT_FOUND');
      const sopUid = assertUid(request.params.sopUid, 'SOP Instance UID');
      const sha = assertSha256(request.params.sha, 'content sha256');
      const consultId = safeConsultId(request.params.consultId);
      const consult = await readJsonOptional<ConsultRecord>(deps.store, consultKey(consultId));
      if (!consult) throw new GatewayError('CXR_NOT_FOUND');
      const key = instanceFileKey(instancePrefix(consult.stationId, consult.studyInstanceUid, sopUid, sha), request.params.image);
      if (!(await deps.store.head(key))) throw new GatewayError('CXR_NOT_FOUND');
      return reply.type('image/png').send(await deps.store.get(key));
    },
  );

  for (const action of ['claim', 'release'] as const) {
    app.post<{ Params: { consultId: string } }>(`/api/v1/consults/:consultId/${action}`, { preValidation: reader }, async (request) => {
      const consultId = safeConsultId(request.params.consultId);
      if (action === 'claim') await deps.desk.claim(consultId, actor(request));
      else await deps.desk.release(consultId, actor(request));
      await deps.audit.record({ actor: `user:${actor(request)}`, action: `consult.${action}`, target: consultId });
      return { consultId, status: action === 'claim' ? 'claimed' : 'queued' };
    });
  }

  app.post<{ Params: { consultId: string } }>('/api/v1/consults/:consultId/report', { preValidation: reader, schema: { body: ReportBody } }, async (request, reply) => {
    const consultId = safeConsultId(request.params.consultId);
    const username = actor(request);
    const body = request.body as { impression: string; findings: { code: string; agree: boolean }[]; addedFindings?: string[]; recommendation?: string };
    const stored = await readJsonOptional<Report>(deps.store, consultKey(consultId, 'report.json'));
    if (stored) {
      // Signed before (perhaps the answer was lost): make sure the consult left the queue, and say so.
      await deps.desk.finishReported(consultId);
      throw new GatewayError('CXR_ALREADY_REPORTED', `signed by ${stored.signedBy} at ${stored.signedAt}`);
    }
    // Redis's claim, or the record's when Redis lost its data (claims are part of the record).
    await deps.desk.assertClaimant(consultId, username);
    const problems: string[] = [];
    if (body.impression.trim().length === 0) problems.push('impression is empty');
    const answered = new Set(body.findings.map((f) => f.code));
    const unanswered = [...(await positiveFindings(deps.store, consultId))].filter((code) => !answered.has(code));
    if (unanswered.length > 0) problems.push(`agree or disagree with every finding the AI flagged: ${unanswered.join(', ')}`);
    if (problems.length > 0) throw new GatewayError('CXR_VALIDATION', problems.join('; '));
    const report: Report = {
      consultId,
      impression: body.impression,
      findings: body.findings,
      addedFindings: body.addedFindings ?? [],
      recommendation: body.recommendation ?? null,
      signedBy: username,
      signedAt: new Date().toISOString(),
    };
    // The signed report is immutable and stored before the consult leaves the queue; a crash in between is
    // finished by the next report call or the next rebuild (rebuildQueueFromStore).
    await putOnce(deps.store, consultKey(consultId, 'report.json'), Buffer.from(JSON.stringify(report)), 'application/json');
    crashPoint(GatewayCrashPoint.reportStored);
    await deps.desk.finishReported(consultId);
    await deps.audit.record({ actor: `user:${username}`, action: 'consult.report', target: consultId });
    return reply.code(201).send(report);
  });
}

/** Codes of the findings the AI flagged positive in any instance of the consult's study. */
async function positiveFindings(store: ObjectStore, consultId: string): Promise<Set<string>> {
  const consult = await readJsonOptional<ConsultRecord>(store, consultKey(consultId));
  const out = new Set<string>();
  if (!consult) return out;
  for await (const info of store.list(studyInstancesPrefix(consult.stationId, consult.studyInstanceUid))) {
    if (!info.key.endsWith('/result.json')) continue;
    const result = await readJsonOptional<TriageResult>(store, info.key);
    if (result?.applicable) for (const f of result.findings) if (f.positive) out.add(f.code);
  }
  return out;
}
