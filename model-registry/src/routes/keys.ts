import { getOrCreateSigningKey } from '../sign/signing-key.js';
import type { RouteContext } from './context.js';

/**
 * The registry's public key, for anyone signed in: what stations and tools check signed releases and deployments
 * with.
 */
export function registerKeyRoutes(ctx: RouteContext): void {
  const { app, deps, store, fail } = ctx;
  app.get('/api/v1/registry/public-key', { config: { credential: 'signed-in' } }, async (request) => {
    if (!deps.principal(request)) throw fail('CXR_AUTH_REQUIRED');
    return { publicKey: (await getOrCreateSigningKey(store)).publicKey };
  });
}
