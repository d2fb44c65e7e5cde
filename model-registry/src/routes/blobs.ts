import { Readable, pipeline } from 'node:stream';
import { limited } from '@cxr/inference';
import { SHA256_PATTERN, blobKey } from '../store/keys.js';
import { isCode } from '../store/json.js';
import type { RouteContext } from './context.js';

/**
 * Uploaded files, by content (sha256): a push names them, so each is uploaded once whatever the versions that
 * share it.
 */
export function registerBlobRoutes(ctx: RouteContext): void {
  const { app, store, fail, mlops, maxFileBytes } = ctx;
  if (!app.hasContentTypeParser('application/octet-stream')) {
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => done(null, payload));
  }

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
}
