import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AccountStore, Role } from '../accounts/accounts.js';
import type { SessionStore } from '../accounts/sessions.js';
import { GatewayError } from '../errors.js';

export type Principal = { readonly kind: 'user'; readonly username: string; readonly role: Role } | { readonly kind: 'station'; readonly stationId: string };

declare module 'fastify' {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

/** Reads the bearer token of every request: a user's session or a station's token. Routes then require one. */
export function registerAuth(app: FastifyInstance, deps: { accounts: AccountStore; sessions: SessionStore }): void {
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
      request.principal = { kind: 'station', stationId: station.stationId };
      return;
    }
    const session = await deps.sessions.get(token);
    if (!session) throw new GatewayError('CXR_AUTH_INVALID', 'unknown or expired session');
    request.principal = { kind: 'user', username: session.username, role: session.role };
  });
}

/** preHandler: a signed-in user with one of these roles. */
export function requireUser(...allowed: Role[]) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const p = request.principal;
    if (!p) throw new GatewayError('CXR_AUTH_REQUIRED');
    if (p.kind !== 'user') throw new GatewayError('CXR_FORBIDDEN', 'a station token cannot do this');
    if (allowed.length > 0 && !allowed.includes(p.role)) throw new GatewayError('CXR_FORBIDDEN', `needs role ${allowed.join(' or ')}`);
  };
}

/** preHandler: a station, acting only on its own data (`:stationId` in the route, when present). */
export function requireStation() {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const p = request.principal;
    if (!p) throw new GatewayError('CXR_AUTH_REQUIRED');
    if (p.kind !== 'station') throw new GatewayError('CXR_FORBIDDEN', 'only a station may do this');
    const routeStation = (request.params as { stationId?: string } | undefined)?.stationId;
    if (routeStation !== undefined && routeStation !== p.stationId) throw new GatewayError('CXR_FORBIDDEN', 'another station');
  };
}
