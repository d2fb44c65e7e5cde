import { mkdtempSync, rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import pino from 'pino';
import { build } from '../../../gateway/src/app.js';
import { AccountStore } from '../../../gateway/src/accounts/accounts.js';
import { SessionStore } from '../../../gateway/src/accounts/sessions.js';
import { ConsultQueue } from '../../../gateway/src/queue/consults.js';
import { createFsObjectStore, type ObjectStore } from '../../../gateway/src/store/index.js';
import { startRedis, type RedisServer } from '../../../gateway/src/test-support/redis-server.js';
import type { RegistryOptions } from '../../src/index.js';
import { folderFiles } from './models.js';

/** A gateway app (build(), the real plugin) over a real redis-server and a folder store, for inject() tests. */
export interface TestGateway {
  readonly app: FastifyInstance;
  readonly store: ObjectStore;
  readonly accounts: AccountStore;
  readonly redisServer: RedisServer;
  readonly storeDir: string;
  /** another gateway process's app over the same store and Redis */
  second(): Promise<FastifyInstance>;
  logs(): string;
  close(): Promise<void>;
}

/** `registry`: the registry's options (the tests' default: 2 latency runs). */
export async function startTestGateway(registry: RegistryOptions = { latencyRuns: 2 }): Promise<TestGateway> {
  const redisServer = await startRedis();
  const storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-reg-store-'));
  let logLines = '';
  const apps: FastifyInstance[] = [];
  const clients: Redis[] = [];
  const stores: ObjectStore[] = [];
  const make = async (): Promise<{ app: FastifyInstance; store: ObjectStore; accounts: AccountStore }> => {
    const store = await createFsObjectStore({ root: storeDir });
    const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
    // A test stops Redis on purpose; the client reconnects by itself.
    redis.on('error', () => undefined);
    const accounts = new AccountStore(store);
    const log = pino({ level: 'info' }, new Writable({ write: (chunk, _e, cb) => ((logLines += String(chunk)), cb()) }));
    const app = await build(
      { store, redis, accounts, sessions: new SessionStore(redis, { prefix: 'regtest:', ttlSeconds: 600 }), queue: new ConsultQueue(redis, { prefix: 'regtest:', claimTimeoutMs: 60_000 }), log },
      { registry },
    );
    apps.push(app);
    clients.push(redis);
    stores.push(store);
    return { app, store, accounts };
  };
  const first = await make();
  return {
    ...first,
    redisServer,
    storeDir,
    second: async () => (await make()).app,
    logs: () => logLines,
    async close(): Promise<void> {
      for (const app of apps) await app.close();
      for (const r of clients) r.disconnect();
      for (const s of stores) await s.close();
      await redisServer.stop();
      rmSync(storeDir, { recursive: true, force: true });
    },
  };
}

export const auth = (token: string): { authorization: string } => ({ authorization: `Bearer ${token}` });

export async function login(app: FastifyInstance, username: string, password: string): Promise<string> {
  const res = await app.inject({ method: 'POST', url: '/api/v1/login', payload: { username, password } });
  if (res.statusCode !== 200) throw new Error(`login ${username}: ${res.body}`);
  return (res.json() as { token: string }).token;
}

/** What `cxr-registry push` does, through inject(): upload each file under its sha256, then ask for the version. */
export async function pushFolder(app: FastifyInstance, token: string, dir: string): Promise<{ status: number; body: Record<string, unknown> & { accepted: boolean; errors: { check: string; code: string; message: string }[] } }> {
  const files = await folderFiles(dir);
  for (const f of files) {
    const res = await app.inject({
      method: 'PUT',
      url: `/api/v1/registry/blobs/${f.sha256}`,
      headers: { ...auth(token), 'content-type': 'application/octet-stream' },
      payload: await readFile(f.file),
    });
    if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`upload ${f.path}: ${res.statusCode} ${res.body}`);
  }
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/registry/versions',
    headers: auth(token),
    payload: { files: files.map(({ path: p, sha256, size }) => ({ path: p, sha256, size })) },
  });
  return { status: res.statusCode, body: res.json() };
}
