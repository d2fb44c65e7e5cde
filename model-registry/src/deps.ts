/**
 * What the registry takes from the process that serves it (the gateway), as structural types: the registry never
 * imports the gateway (the gateway imports the registry), so these say only what is used.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';

/** The gateway's object store, as far as the registry uses it (`gateway/src/store/object-store.ts`). */
export interface RegistryObjectInfo {
  key: string;
  size: number;
  sha256: string;
  contentType: string;
  lastModified: Date;
}

export type RegistryObjectBody = Uint8Array | NodeJS.ReadableStream | AsyncIterable<Uint8Array>;

export interface RegistryObjectStore {
  put(key: string, body: RegistryObjectBody, options?: { contentType?: string; sha256?: string; ifNoneMatch?: boolean }): Promise<RegistryObjectInfo>;
  /** the body, or bytes `start` to `end` included of it (an HTTP Range, read from the store at that offset) */
  get(key: string, range?: { start?: number; end?: number }): Promise<NodeJS.ReadableStream>;
  getBytes(key: string): Promise<Uint8Array>;
  head(key: string): Promise<RegistryObjectInfo | undefined>;
  list(prefix: string, options?: { startAfter?: string; limit?: number }): AsyncIterable<RegistryObjectInfo>;
  delete(key: string): Promise<void>;
}

/** Redis, for the one fast index the registry keeps (when each station was last seen); rebuilt from the store. */
export interface RegistryRedis {
  set(key: string, value: string): Promise<unknown>;
  mget(keys: string[]): Promise<(string | null)[]>;
}

export type RegistryAuditAction = 'registry.push' | 'registry.deploy' | 'registry.rollback' | 'registry.cohort';

export interface RegistryAudit {
  record(event: { actor: string; action: RegistryAuditAction; target: string; detail?: Record<string, string | number | boolean> }): Promise<void>;
}

export type RegistryRole = 'mlops' | 'admin';

export type RegistryPrincipal =
  | { readonly kind: 'user'; readonly username: string; readonly role: string }
  | { readonly kind: 'station'; readonly stationId: string };

/** A route guard of the gateway (`requireUser`, `requireStation`), run as a preValidation hook. */
export type RouteGuard = (request: FastifyRequest, reply: FastifyReply) => Promise<void>;

/** The gateway's HTTP error codes the registry answers with (`gateway/src/errors.ts`). */
export type RegistryHttpErrorCode = 'CXR_AUTH_REQUIRED' | 'CXR_FORBIDDEN' | 'CXR_NOT_FOUND' | 'CXR_VALIDATION' | 'CXR_CONFLICT' | 'CXR_PAYLOAD_TOO_LARGE' | 'CXR_HASH_MISMATCH';

export interface RegistryLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface RegistryDeps {
  readonly store: RegistryObjectStore;
  readonly redis: RegistryRedis;
  readonly audit: RegistryAudit;
  readonly log: RegistryLogger;
  /** The caller of a request, once the gateway's auth hook has read its token. */
  readonly principal: (request: FastifyRequest) => RegistryPrincipal | undefined;
  /** A signed-in user with one of these roles. */
  readonly requireUser: (...roles: RegistryRole[]) => RouteGuard;
  /** A station acting on its own `:stationId` only. */
  readonly requireStation: () => RouteGuard;
  /** The gateway's error, answered as `{"error": {"code", "message"}}` with the code's status. */
  readonly httpError: (code: RegistryHttpErrorCode, detail?: string) => Error;
  /** Every station account (id), for the fleet view and to check deployment targets. */
  readonly listStations: () => Promise<readonly string[]>;
  readonly stationExists: (stationId: string) => Promise<boolean>;
}
