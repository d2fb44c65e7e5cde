import type { FastifyInstance, RouteOptions } from 'fastify';

/**
 * The credential a route needs, declared on every route: `public` (anyone, e.g. the pages' static files),
 * `signed-in` (any user session or station token), `station` (a station token; only its own `:stationId`),
 * `user:*` (any signed-in user) or `user:ROLE|ROLE` (a user with one of these roles).
 */
export type Access = 'public' | 'signed-in' | 'station' | `user:${string}`;

/** What the gateway serves and the credential each route needs, listed from the app itself. */
export interface RouteAccess {
  readonly method: string;
  readonly url: string;
  readonly access: Access;
}

// `credential`, not `access`: the edge agent's app declares its own `access` on the same Fastify interface, and
// the two declarations would have to be one type where both packages are type-checked together.
declare module 'fastify' {
  interface FastifyContextConfig {
    /** the credential the route needs (plugins/access.ts); a route's guard (preValidation) declares it too */
    credential?: Access;
  }
}

const accessPattern = /^(public|signed-in|station|user:\*|user:[a-z]+(\|[a-z]+)*)$/u;
const guardAccess = Symbol('cxr.access');
const inventories = new WeakMap<FastifyInstance, RouteAccess[]>();

/** Marks a preValidation guard with the access it enforces, so that the guard itself declares the route's access. */
export function declareGuard<T extends object>(guard: T, access: Access): T {
  Object.defineProperty(guard, guardAccess, { value: access });
  return guard;
}

function accessOfGuards(preValidation: unknown): Access[] {
  const guards = Array.isArray(preValidation) ? preValidation : preValidation ? [preValidation] : [];
  return guards.map((g) => (g as { [guardAccess]?: Access })[guardAccess]).filter((a): a is Access => a !== undefined);
}

/**
 * Makes every route declare its access, before any route is registered: `config: { credential }`, or a guard made by
 * plugins/auth.ts (requireUser, requireStation, requireSignedIn). The folders served by @fastify/static are public
 * (the pages' own code and styles, no data). A route with neither, or whose declaration and guard disagree, throws at
 * registration, so the app never starts with it.
 */
export function registerRouteInventory(app: FastifyInstance): void {
  const inventory: RouteAccess[] = [];
  inventories.set(app, inventory);
  app.addHook('onRoute', function (this: FastifyInstance, route: RouteOptions) {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    const where = `${methods.join(',')} ${route.url}`;
    const declared = route.config?.credential;
    if (declared !== undefined && !accessPattern.test(declared)) throw new Error(`route ${where}: credential "${declared}" is not one of public, signed-in, station, user:*, user:ROLE|ROLE`);
    const guarded = accessOfGuards(route.preValidation);
    if (guarded.length > 1) throw new Error(`route ${where}: more than one access guard`);
    if (declared !== undefined && guarded[0] !== undefined && declared !== guarded[0]) throw new Error(`route ${where}: declares credential ${declared} but its guard enforces ${guarded[0]}`);
    const access = declared ?? guarded[0] ?? (isStaticFiles(this, route) ? 'public' : undefined);
    if (access === undefined) throw new Error(`route ${where} declares no credential: give it config: { credential } or a guard from plugins/auth.ts`);
    for (const method of methods) inventory.push({ method, url: route.url, access });
  });
}

/**
 * The wildcard route @fastify/static registers for a folder (it takes no route config): made while that plugin is
 * in the plugin chain, GET and HEAD in one route, a wildcard, hidden from the OpenAPI document. The chain alone is
 * not enough: it stays on routes registered after the plugin on the same instance.
 */
function isStaticFiles(instance: FastifyInstance, route: RouteOptions): boolean {
  const methods = Array.isArray(route.method) ? [...route.method].sort().join(',') : route.method;
  return instance.pluginName.split(' -> ').includes('@fastify/static') && methods === 'GET,HEAD' && route.url.endsWith('/*') && (route.schema as { hide?: boolean } | undefined)?.hide === true;
}

/** Every route of the app with its access, in registration order (HEAD routes included). */
export function routeInventory(app: FastifyInstance): readonly RouteAccess[] {
  const inventory = inventories.get(app);
  if (!inventory) throw new Error('registerRouteInventory() was not called on this app');
  return [...inventory];
}
