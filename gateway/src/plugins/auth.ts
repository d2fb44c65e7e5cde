import type { TLSSocket } from 'node:tls';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountStore, Role } from '../accounts/accounts.js';
import type { SessionStore } from '../accounts/sessions.js';
import { GatewayError } from '../errors.js';
import { declareGuard } from './access.js';

export type Principal = { readonly kind: 'user'; readonly username: string; readonly role: Role } | { readonly kind: 'station'; readonly stationId: string };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

export interface AuthOptions {
  /**
   * mTLS for stations: a station's token is only good on a connection that presented a client certificate
   * signed by the gateway's CA whose common name is the station's id. Users (browsers) need no certificate.
   */
  readonly stationCertificates?: boolean;
}

/**
 * Reads the bearer token of every request: a user's session or a station's token. Routes then require one. Both
 * are checked against the account in the store on every request, so a revoked station, a disabled user or one
 * whose password was set is refused at once by every gateway process, not when the session expires.
 */
export function registerAuth(app: FastifyInstance, deps: { accounts: AccountStore; sessions: SessionStore }, options: AuthOptions = {}): void {
  app.decorateRequest('principal', undefined);
  app.addHook('onRequest', async (request) => {
    const header = request.headers.authorization;
    if (!header) return;
    const m = /^Bearer\s+(\S+)$/iu.exec(header);
    if (!m?.[1]) throw new GatewayError('CXR_AUTH_INVALID', 'malformed Authorization header');
    const token = m[1];
    if (token.startsWith('cxrst_')) {
      const station = await deps.accounts.verifyStationToken(token);
      if (!station) throw new GatewayError('CXR_AUTH_INVALID');
      if (options.stationCertificates) assertStationCertificate(request, station.stationId);
      request.principal = { kind: 'station', stationId: station.stationId };
      return;
    }
    const session = await deps.sessions.get(token);
    if (!session) throw new GatewayError('CXR_AUTH_INVALID', 'unknown or expired session');
    const user = await deps.accounts.user(session.username);
    if (!user || user.disabled || (user.sessionEpoch ?? 0) !== (session.epoch ?? 0)) {
      await deps.sessions.revoke(token);
      throw new GatewayError('CXR_AUTH_INVALID', 'the session has ended; sign in again');
    }
    // The account's role now, not the one at sign-in.
    request.principal = { kind: 'user', username: user.username, role: user.role };
  });
}

/** preHandler: a signed-in user with one of these roles. */
export function requireUser(...allowed: Role[]) {
  const guard = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const p = request.principal;
    if (!p) throw new GatewayError('CXR_AUTH_REQUIRED');
    if (p.kind !== 'user') throw new GatewayError('CXR_FORBIDDEN', 'a station token cannot do this');
    if (allowed.length > 0 && !allowed.includes(p.role)) throw new GatewayError('CXR_FORBIDDEN', `needs role ${allowed.join(' or ')}`);
  };
  return declareGuard(guard, allowed.length > 0 ? `user:${allowed.join('|')}` : 'user:*');
}

/** preValidation: anyone signed in, a user or a station. */
export function requireSignedIn() {
  const guard = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    if (!request.principal) throw new GatewayError('CXR_AUTH_REQUIRED');
  };
  return declareGuard(guard, 'signed-in');
}

/** preHandler: a station, acting only on its own data (`:stationId` in the route, when present). */
export function requireStation() {
  const guard = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const p = request.principal;
    if (!p) throw new GatewayError('CXR_AUTH_REQUIRED');
    if (p.kind !== 'station') throw new GatewayError('CXR_FORBIDDEN', 'only a station may do this');
    const routeStation = (request.params as { stationId?: string } | undefined)?.stationId;
    if (routeStation !== undefined && routeStation !== p.stationId) throw new GatewayError('CXR_FORBIDDEN', 'another station');
  };
  return declareGuard(guard, 'station');
}

function assertStationCertificate(request: FastifyRequest, stationId: string): void {
  const socket = request.raw.socket as Partial<TLSSocket>;
  if (typeof socket.getPeerCertificate !== 'function' || !socket.authorized) {
    throw new GatewayError('CXR_CLIENT_CERT_REQUIRED', socket.authorizationError ? `certificate refused: ${String(socket.authorizationError)}` : 'no client certificate');
  }
  const subject = socket.getPeerCertificate().subject as { CN?: string | string[] } | undefined;
  const commonName = Array.isArray(subject?.CN) ? subject.CN[0] : subject?.CN;
  if (commonName !== stationId) throw new GatewayError('CXR_CLIENT_CERT_REQUIRED', `the certificate is for "${commonName ?? ''}", the token for "${stationId}"`);
}
