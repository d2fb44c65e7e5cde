/**
 * The hospital side for the page tests: a real Redis, a real `cxr-gateway` process on a fixed port (so it can be
 * stopped and started again), its admin CLI for a station and a radiologist, and the radiologist's API calls.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { startRedis, type RedisServer } from '../../../gateway/src/test-support/redis-server.js';
import { removeDir, repoRoot, tempDir } from '../harness/agent-process.js';
import { freePort } from '../../../gateway/src/test-support/free-port.js';

export { freePort };

const run = promisify(execFile);
const gatewayBin = path.join(repoRoot, 'gateway', 'bin', 'cxr-gateway.js');


/** Ends a child process: SIGTERM, then SIGKILL after `graceMs`. Resolves with the signal that ended it (null: exited). */
export async function endProcess(child: ChildProcess, graceMs = 5_000): Promise<NodeJS.Signals | null> {
  if (child.exitCode !== null || child.signalCode !== null) return child.signalCode;
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  const signal = await exited;
  clearTimeout(timer);
  return signal;
}

/**
 * A real `cxr-gateway serve` process with these arguments; resolves once it says it is ready. `onStdout` receives
 * its log lines (JSON), for tests that read them.
 */
export async function spawnGateway(args: readonly string[], options: { env?: NodeJS.ProcessEnv; onStdout?: (text: string) => void } = {}): Promise<ChildProcess> {
  const child = spawn(process.execPath, [gatewayBin, 'serve', '--host', '127.0.0.1', ...args], {
    env: options.env ?? process.env,
    stdio: ['ignore', options.onStdout ? 'pipe' : 'ignore', 'pipe'],
  });
  if (options.onStdout) child.stdout?.on('data', (d: Buffer) => options.onStdout?.(d.toString()));
  const reap = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  await new Promise<void>((resolve, reject) => {
    let err = '';
    const timer = setTimeout(() => reject(new Error(`gateway did not start:\n${err}`)), 30_000);
    child.stderr?.on('data', (d: Buffer) => {
      err += d.toString();
      if (err.includes('ready on')) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited ${code}: ${err}`));
    });
  });
  return child;
}

export interface Hospital {
  readonly url: string;
  readonly port: number;
  readonly redis: RedisServer;
  readonly store: string;
  /** A new station's id and token (the token is printed once by the admin CLI). */
  addStation(stationId: string): Promise<{ stationId: string; token: string }>;
  /** A radiologist account, signed in: the bearer token for the radiologist's API. */
  addRadiologist(username: string, password: string): Promise<Radiologist>;
  /** Stops the gateway process (Redis and the store stay). */
  stopGateway(): Promise<void>;
  /** Kills the gateway process with SIGKILL, as a crash would (Redis and the store stay). */
  killGateway(): Promise<void>;
  /** Starts the gateway again on the same port. */
  startGateway(): Promise<void>;
  /** Stops everything and removes the store. */
  close(): Promise<void>;
}

export interface Radiologist {
  readonly username: string;
  api<T>(route: string, init?: { method?: string; body?: unknown }): Promise<{ status: number; body: T }>;
}

/** Redis, an empty folder store and a gateway on a free loopback port. */
export async function startHospital(): Promise<Hospital> {
  const redis = await startRedis();
  const store = tempDir('cxr-page-consult-store-');
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let gateway: ChildProcess | undefined;
  const admin = async (...args: string[]): Promise<string> => (await run(process.execPath, [gatewayBin, 'admin', ...args, '--store', store, '--redis', redis.url])).stdout;

  const startGateway = async (): Promise<void> => {
    gateway = await spawnGateway(['--port', String(port), '--store', store, '--redis', redis.url, '--log-level', 'warn']);
  };

  await startGateway();
  return {
    url,
    port,
    redis,
    store,
    async addStation(stationId) {
      const out = await admin('add-station', stationId);
      return { stationId, token: out.trim().split('\n').at(-1) ?? '' };
    },
    async addRadiologist(username, password) {
      await admin('add-user', username, '--role', 'radiologist', '--password', password);
      const login = await fetch(`${url}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ username, password }) });
      if (!login.ok) throw new Error(`login ${username}: HTTP ${login.status}`);
      const { token } = (await login.json()) as { token: string };
      return {
        username,
        async api<T>(route: string, init: { method?: string; body?: unknown } = {}) {
          const res = await fetch(`${url}${route}`, {
            method: init.method ?? 'GET',
            headers: { authorization: `Bearer ${token}`, ...(init.body !== undefined ? { 'content-type': 'application/json' } : {}) },
            ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
          });
          const text = await res.text();
          return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
        },
      };
    },
    async stopGateway() {
      if (gateway) await endProcess(gateway);
    },
    async killGateway() {
      const child = gateway;
      if (!child || child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
      child.kill('SIGKILL');
      await exited;
    },
    startGateway,
    async close() {
      if (gateway) await endProcess(gateway);
      await redis.stop();
      removeDir(store);
    },
  };
}
