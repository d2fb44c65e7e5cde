import { pipeline, type Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { crashPoint, limited } from '@cxr/inference';
import type { AuditTrail } from '../audit.js';
import { GatewayCrashPoint } from '../crash-points.js';
import { GatewayError } from '../errors.js';
import type { ObjectInfo, ObjectStore } from '../store/index.js';
import { UPLOADS_PREFIX, instanceFileKey, instancePrefix, joinedKeyOfUpload, uploadOfPart, uploadPartsPrefix } from '../store/keys.js';
import { requireStation } from './auth.js';
import { assertSha256, assertUid } from './ids.js';

export interface UploadOptions {
  /** largest DICOM file, in bytes (the sum of its chunks) */
  readonly maxDicomBytes: number;
  /** largest chunk, in bytes. Default 16 MiB. */
  readonly maxChunkBytes?: number;
}

type Params = { stationId: string; studyUid: string; sopUid: string; sha: string };

const OFFSET_DIGITS = 13;

/**
 * Resumable DICOM upload, for big files over a link that drops: the station sends chunks at the offset the
 * gateway says it has, each chunk stored whole or not at all as its own object (so any gateway process can carry
 * on an upload another one started), then asks the gateway to join them. The join streams the chunks into the
 * instance object, checking the whole file's sha256 on the way.
 *
 *   GET  .../dicom/upload                -> { offset, complete }
 *   PUT  .../dicom/upload?offset=N       chunk bytes; x-upload-length: total size -> { offset }
 *   POST .../dicom/upload/complete       x-content-sha256, x-upload-length -> 201 { stored, created }
 */
export function registerUploads(app: FastifyInstance, deps: { store: ObjectStore; audit: AuditTrail }, options: UploadOptions): void {
  const station = requireStation();
  const maxChunk = options.maxChunkBytes ?? 16 * 1024 * 1024;
  const route = '/api/v1/stations/:stationId/studies/:studyUid/instances/:sopUid/:sha/dicom/upload';

  const keysOf = (p: Params): { partsPrefix: string; finalKey: string } => {
    const prefix = instancePrefix(p.stationId, assertUid(p.studyUid, 'study UID'), assertUid(p.sopUid, 'SOP Instance UID'), assertSha256(p.sha, 'content sha256'));
    return { partsPrefix: uploadPartsPrefix(prefix), finalKey: instanceFileKey(prefix, 'instance.dcm') };
  };

  /** The chunks stored so far, in order, up to the first gap (a gap can only come from a bug or a lost object). */
  const contiguousParts = async (partsPrefix: string): Promise<{ parts: ObjectInfo[]; offset: number }> => {
    const parts: ObjectInfo[] = [];
    let offset = 0;
    for await (const part of deps.store.list(partsPrefix)) {
      const at = Number(part.key.slice(partsPrefix.length));
      if (at !== offset) break;
      parts.push(part);
      offset += part.size;
    }
    return { parts, offset };
  };

  const uploadLength = (value: string | string[] | undefined): number => {
    const n = Number(value);
    if (typeof value !== 'string' || !Number.isSafeInteger(n) || n < 1) throw new GatewayError('CXR_VALIDATION', 'x-upload-length must be the file size in bytes');
    if (n > options.maxDicomBytes) throw new GatewayError('CXR_PAYLOAD_TOO_LARGE', `${n} bytes, at most ${options.maxDicomBytes}`);
    return n;
  };

  const offsetError = (reply: FastifyReply, code: 'CXR_UPLOAD_OFFSET' | 'CXR_UPLOAD_INCOMPLETE', offset: number, detail: string): GatewayError => {
    reply.header('x-upload-offset', String(offset));
    return new GatewayError(code, detail);
  };

  app.get<{ Params: Params }>(route, { preValidation: station }, async (request, reply) => {
    const { partsPrefix, finalKey } = keysOf(request.params);
    const done = await deps.store.head(finalKey);
    if (done) return reply.header('x-upload-offset', String(done.size)).send({ offset: done.size, complete: true });
    const { offset } = await contiguousParts(partsPrefix);
    return reply.header('x-upload-offset', String(offset)).send({ offset, complete: false });
  });

  app.put<{ Params: Params; Querystring: { offset?: string } }>(route, { preValidation: station }, async (request, reply) => {
    const body = request.body as Readable;
    try {
      const { partsPrefix, finalKey } = keysOf(request.params);
      const total = uploadLength(request.headers['x-upload-length']);
      const at = Number(request.query.offset);
      if (!Number.isSafeInteger(at) || at < 0) throw new GatewayError('CXR_VALIDATION', 'offset must be a byte offset');
      const declared = Number(request.headers['content-length']);
      if (!Number.isSafeInteger(declared) || declared < 1) throw new GatewayError('CXR_VALIDATION', 'a chunk needs its content-length');
      if (declared > maxChunk) throw new GatewayError('CXR_PAYLOAD_TOO_LARGE', `a chunk of ${declared} bytes, at most ${maxChunk}`);
      if (at + declared > total) throw new GatewayError('CXR_VALIDATION', `the chunk ends at ${at + declared}, past x-upload-length ${total}`);
      if (await deps.store.head(finalKey)) throw offsetError(reply, 'CXR_UPLOAD_OFFSET', total, 'the file is already complete');
      const { offset } = await contiguousParts(partsPrefix);
      if (at !== offset) throw offsetError(reply, 'CXR_UPLOAD_OFFSET', offset, `the chunk starts at ${at}, the upload stands at ${offset}`);
      const chunk = pipeline(body, limited(declared, () => new GatewayError('CXR_PAYLOAD_TOO_LARGE', `more than ${declared} bytes`)), () => undefined);
      try {
        // ifNoneMatch: two gateway processes given the same chunk store it once.
        await deps.store.put(`${partsPrefix}${String(at).padStart(OFFSET_DIGITS, '0')}`, chunk, { ifNoneMatch: true });
      } catch (err) {
        if ((err as { code?: string }).code !== 'CXR_STORE_EXISTS') throw err;
      }
      crashPoint(GatewayCrashPoint.uploadChunkStored);
      const after = await contiguousParts(partsPrefix);
      return reply.header('x-upload-offset', String(after.offset)).send({ offset: after.offset });
    } finally {
      // A refused chunk is drained so the connection stays usable for the next request.
      if (!body.readableEnded) body.resume();
    }
  });

  app.post<{ Params: Params }>(`${route}/complete`, { preValidation: station }, async (request, reply) => {
    const { stationId, studyUid, sopUid } = request.params;
    const { partsPrefix, finalKey } = keysOf(request.params);
    const fileSha = assertSha256(request.headers['x-content-sha256'] as string | undefined, 'x-content-sha256 header');
    const total = uploadLength(request.headers['x-upload-length']);
    const existing = await deps.store.head(finalKey);
    if (existing?.sha256 === fileSha) {
      // A replay after a lost answer, perhaps after a crash between the join and the removal of the chunks.
      const left: ObjectInfo[] = [];
      for await (const part of deps.store.list(partsPrefix)) left.push(part);
      await removeParts(deps.store, left);
      return reply.code(200).send({ stored: finalKey, created: false });
    }
    const { parts, offset } = await contiguousParts(partsPrefix);
    if (offset !== total) throw offsetError(reply, 'CXR_UPLOAD_INCOMPLETE', offset, `${offset} of ${total} bytes received`);
    const store = deps.store;
    async function* joined(): AsyncGenerator<Uint8Array> {
      for (const part of parts) yield* (await store.get(part.key)) as AsyncIterable<Uint8Array>;
    }
    try {
      await store.put(finalKey, joined(), { sha256: fileSha, contentType: 'application/dicom' });
    } catch (err) {
      if ((err as { code?: string }).code !== 'CXR_STORE_HASH_MISMATCH') throw err;
      // The chunks do not make the file the station hashed: start again from nothing rather than keep bad bytes.
      await removeParts(store, parts);
      reply.header('x-upload-offset', '0');
      throw new GatewayError('CXR_HASH_MISMATCH', 'the joined chunks do not match x-content-sha256; upload again from offset 0');
    }
    crashPoint(GatewayCrashPoint.uploadJoined);
    await removeParts(store, parts);
    await deps.audit.record({ actor: `station:${stationId}`, action: 'ingest.dicom', target: studyUid, detail: { sopUid, resumable: true } });
    return reply.code(201).send({ stored: finalKey, created: true });
  });
}

async function removeParts(store: ObjectStore, parts: readonly ObjectInfo[]): Promise<void> {
  for (const part of parts) await store.delete(part.key);
}

/**
 * Removes the chunks of uploads nobody finished: an upload whose newest chunk is older than `olderThan` (a station
 * that was reinstalled, a study deleted at the station). Run at serve start; an upload still going on keeps its
 * chunks since its newest one is recent.
 */
export async function sweepStaleUploads(store: ObjectStore, options: { olderThan: Date }): Promise<{ uploads: number; chunks: number }> {
  const uploads = new Map<string, { newest: number; keys: string[] }>();
  for await (const part of store.list(UPLOADS_PREFIX)) {
    const upload = uploadOfPart(part.key);
    if (upload === undefined) continue;
    const entry = uploads.get(upload) ?? { newest: 0, keys: [] };
    entry.newest = Math.max(entry.newest, part.lastModified.getTime());
    entry.keys.push(part.key);
    uploads.set(upload, entry);
  }
  let swept = 0;
  let chunks = 0;
  for (const { newest, keys } of uploads.values()) {
    if (newest >= options.olderThan.getTime()) continue;
    for (const key of keys) await store.delete(key);
    swept += 1;
    chunks += keys.length;
  }
  return { uploads: swept, chunks };
}

/**
 * Removes the chunks of uploads whose instance is stored: what a crash between the join and the chunks' removal
 * leaves (a station that sees its upload complete does not call complete again). Run at serve start.
 */
export async function removeJoinedChunks(store: ObjectStore): Promise<{ uploads: number; chunks: number }> {
  const byUpload = new Map<string, string[]>();
  for await (const part of store.list(UPLOADS_PREFIX)) {
    const upload = uploadOfPart(part.key);
    if (upload === undefined) continue;
    byUpload.set(upload, [...(byUpload.get(upload) ?? []), part.key]);
  }
  let uploads = 0;
  let chunks = 0;
  for (const [upload, keys] of byUpload) {
    if (!(await store.head(joinedKeyOfUpload(upload)))) continue;
    for (const key of keys) await store.delete(key);
    uploads += 1;
    chunks += keys.length;
  }
  return { uploads, chunks };
}
