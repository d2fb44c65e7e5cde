import type { FastifyInstance } from 'fastify';
import { GatewayError } from '../errors.js';

/**
 * The pages (the radiologist's at /, the ML engineer's at /ml/, the shared UI at /shared/) load only their own
 * scripts and styles. Style attributes are allowed (the AI panel sizes its probability bars with them); <style>
 * elements and inline or foreign scripts are not. Images come from the gateway, from blob: URLs (images fetched
 * with the bearer token) and data: URLs (the favicon). No page may be framed (clickjacking).
 */
export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "style-src-attr 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

/** One year, without subdomains (other services of the hospital's domain may not serve HTTPS). */
const HSTS = 'max-age=31536000';

/** Security headers on every answer (pages, API, errors, 404s); HSTS only when the gateway itself serves TLS. */
export function registerSecurityHeaders(app: FastifyInstance, options: { tls: boolean }): void {
  app.addHook('onRequest', async (_request, reply) => {
    reply.header('content-security-policy', CONTENT_SECURITY_POLICY);
    reply.header('x-content-type-options', 'nosniff');
    reply.header('x-frame-options', 'DENY');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('cross-origin-opener-policy', 'same-origin');
    if (options.tls) reply.header('strict-transport-security', HSTS);
  });
}

/**
 * Refuses a path with a dot segment (`.`, `..`, also percent-encoded) or an encoded slash, backslash or NUL in a
 * segment: no client of the gateway sends one (browsers resolve dot segments before sending), and such a segment
 * must never reach a route parameter that becomes part of an object-store key.
 */
export function registerPathGuard(app: FastifyInstance): void {
  app.addHook('onRequest', async (request) => {
    const raw = request.raw.url ?? '/';
    const end = raw.search(/[?#]/u);
    const pathname = end < 0 ? raw : raw.slice(0, end);
    for (const segment of pathname.split('/')) {
      let decoded: string;
      try {
        decoded = decodeURIComponent(segment);
      } catch {
        throw new GatewayError('CXR_VALIDATION', 'the path has a malformed percent-encoding');
      }
      if (decoded === '.' || decoded === '..') throw new GatewayError('CXR_VALIDATION', 'the path has a dot segment');
      if (/[/\\\0]/u.test(decoded)) throw new GatewayError('CXR_VALIDATION', 'the path has an encoded slash, backslash or NUL');
    }
  });
}
