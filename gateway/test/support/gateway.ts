import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { startRedis, type RedisServer } from '../../src/test-support/redis-server.js';

/** The monorepo root (…/main/) and the shared folder beside it. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
const bin = path.join(repoRoot, 'gateway', 'bin', 'cxr-gateway.js');

export interface UserSpec {
  readonly username: string;
  readonly password: string;
  readonly role: 'radiologist' | 'admin' | 'mlops';
  readonly displayName?: string;
}

/** A real `cxr-gateway serve` process over a real redis-server and a folder store, as the hospital runs it. */
export interface RunningGateway {
  /** http://127.0.0.1:<port> */
  readonly baseUrl: string;
  readonly storeDir: string;
  readonly redis: RedisServer;
  /** station id → its bearer token, from `admin add-station` */
  readonly stationTokens: ReadonlyMap<string, string>;
  /** Everything the serve process wrote so far. */
  output(): string;
  stop(): Promise<void>;
}

/** Runs the gateway CLI to completion with `input` on its standard input (none: closed at once) and `env` added. */
export async function gatewayCliRun(args: readonly string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [bin, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, ...(options.env ?? {}) } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
  child.stdin.end(options.input ?? '');
  return { code: await code, stdout, stderr };
}

/** Runs the gateway CLI to completion; its stdout, or an error with everything it printed. */
export async function gatewayCli(args: readonly string[]): Promise<string> {
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [bin, ...args], { maxBuffer: 1 << 20 });
    return stdout;
  } catch (err) {
    const e = err as { message: string; stdout?: string; stderr?: string };
    throw new Error(`cxr-gateway ${args.slice(0, 2).join(' ')} failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/**
 * The gateway runs from dist/: build it (incrementally, a second when nothing changed) so that the test never runs
 * stale code. A failed build with a dist/ in place only warns: another package may be mid-edit.
 */
export async function buildGateway(): Promise<void> {
  try {
    await promisify(execFile)(process.execPath, [path.join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc'), '-b', path.join(repoRoot, 'gateway')], { cwd: repoRoot, maxBuffer: 1 << 24 });
  } catch (err) {
    const e = err as { stdout?: string; message: string };
    if (!existsSync(path.join(repoRoot, 'gateway', 'dist', 'cli', 'main.js'))) throw new Error(`the gateway does not build:\n${e.stdout ?? e.message}`);
    console.warn(`tsc -b gateway reported errors; testing the dist/ in place:\n${(e.stdout ?? e.message).slice(0, 2000)}`);
  }
}

/** One `cxr-gateway serve` process over a given Redis and store, as a test drives it. */
export interface ServeProcess {
  /** http://127.0.0.1:<port> */
  readonly baseUrl: string;
  readonly port: number;
  /** Everything the process wrote so far (stdout and stderr). */
  output(): string;
  /** Resolves when the process has ended: its exit code and the signal that ended it. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** SIGTERM, then SIGKILL after 5 s. */
  stop(): Promise<void>;
}

/**
 * Starts `cxr-gateway serve` on `storeDir` and `redisUrl` and waits for its ready line. `env` is added to this
 * process's environment (e.g. CXR_CRASH_POINT); `port` 0 (the default) takes any free port.
 */
export async function spawnServe(options: {
  storeDir: string;
  redisUrl: string;
  port?: number;
  /** the --host flag; null: none (the gateway's default) */
  host?: string | null;
  env?: NodeJS.ProcessEnv;
  args?: readonly string[];
  logLevel?: string;
  timeoutMs?: number;
}): Promise<ServeProcess> {
  const host = options.host === null ? [] : ['--host', options.host ?? '127.0.0.1'];
  const args = [bin, 'serve', '--port', String(options.port ?? 0), ...host, '--store', options.storeDir, '--redis', options.redisUrl, '--log-level', options.logLevel ?? 'warn', ...(options.args ?? [])];
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...(options.env ?? {}) } });
  const reap = (): void => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  };
  process.once('exit', reap);
  proc.once('exit', () => process.off('exit', reap));
  let output = '';
  proc.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const stop = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      const timer = setTimeout(() => proc.kill('SIGKILL'), 5_000);
      await exited;
      clearTimeout(timer);
    }
  };
  try {
    const port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`cxr-gateway did not report ready:\n${output}`)), options.timeoutMs ?? 30_000);
      proc.stderr?.on('data', () => {
        const m = /cxr-gateway: ready on http:\/\/localhost:(\d+)\//u.exec(output);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      });
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`cxr-gateway exited before ready:\n${output}`));
      });
    });
    return { baseUrl: `http://127.0.0.1:${port}`, port, output: () => output, exited, stop };
  } catch (err) {
    reap();
    throw err;
  }
}

/** Creates stations (their tokens) and users with the admin CLI, side by side (accounts are separate objects). */
export async function addAccounts(storeDir: string, redisUrl: string, options: { stations: readonly string[]; users: readonly UserSpec[] }): Promise<Map<string, string>> {
  const common = ['--store', storeDir, '--redis', redisUrl];
  const stationTokens = new Map<string, string>();
  await Promise.all([
    ...options.stations.map(async (id) => {
      const out = await gatewayCli(['admin', 'add-station', ...common, id]);
      const token = out.trim().split('\n').at(-1)?.trim() ?? '';
      if (!token.startsWith('cxrst_')) throw new Error(`add-station printed no token:\n${out}`);
      stationTokens.set(id, token);
    }),
    ...options.users.map((u) =>
      gatewayCli(['admin', 'add-user', ...common, u.username, '--role', u.role, '--password', u.password, ...(u.displayName ? ['--display-name', u.displayName] : [])]),
    ),
  ]);
  return stationTokens;
}

export async function startGateway(options: { stations: readonly string[]; users: readonly UserSpec[]; timeoutMs?: number; args?: readonly string[] }): Promise<RunningGateway> {
  const redis = await startRedis();
  const storeDir = mkdtempSync(path.join(tmpdir(), 'cxr-gw-page-store-'));
  let serve: ServeProcess | undefined;
  try {
    const stationTokens = await addAccounts(storeDir, redis.url, options);
    serve = await spawnServe({ storeDir, redisUrl: redis.url, ...(options.timeoutMs ? { timeoutMs: options.timeoutMs } : {}), ...(options.args ? { args: options.args } : {}) });
    const proc = serve;
    return {
      baseUrl: proc.baseUrl,
      storeDir,
      redis,
      stationTokens,
      output: () => proc.output(),
      async stop(): Promise<void> {
        await proc.stop();
        await redis.stop();
        rmSync(storeDir, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await serve?.stop();
    await redis.stop();
    rmSync(storeDir, { recursive: true, force: true });
    throw err;
  }
}
