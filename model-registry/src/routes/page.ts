import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { RouteContext } from './context.js';

/** The ML engineer's page at `/ml/` (static files, no build step). */
export async function registerPage(ctx: RouteContext): Promise<void> {
  const { app } = ctx;
  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('../../public/', import.meta.url)),
    prefix: '/ml/',
    decorateReply: false,
    index: ['index.html'],
  });
  app.get('/ml', { config: { credential: 'public' } }, async (_request, reply) => reply.redirect('/ml/'));
}
