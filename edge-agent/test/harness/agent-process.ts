import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { inferenceNodeFlags } from '@cxr/inference';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const dicomDir = path.join(sharedDir, 'dicom');
export const densenet = path.join(sharedDir, 'models', 'densenet121-cxr18-random');
const bin = path.join(repoRoot, 'edge-agent', 'bin', 'cxr-edge.js');

/** A real `cxr-edge` process, as the station runs it (built code, real ports, real disk). */
export interface AgentProcess {
  readonly dataDir: string;
  readonly dicomPort: number;
  readonly httpPort: number;
  readonly child: ChildProcess;
  /** Everything the process wrote to stdout and stderr so far. */
  output(): string;
  api<T>(route: string): Promise<T>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * How the process is started: `node` with `inferenceNodeFlags` as `scripts/start.sh` does (the default), `node`
 * without them, or the bin file itself as `npx cxr-edge` does (its shebang gives the flags).
 */
export type AgentLaunch = 'node-with-flags' | 'plain-node' | 'shebang';

export async function startAgent(
  options: { dataDir?: string; args?: string[]; env?: NodeJS.ProcessEnv; launch?: AgentLaunch } = {},
): Promise<AgentProcess> {
  const dataDir = options.dataDir ?? tempDir('cxr-edge-');
  const launch = options.launch ?? 'node-with-flags';
  const [command, ...prefix] = launch === 'shebang' ? [bin] : launch === 'plain-node' ? [process.execPath, bin] : [process.execPath, ...inferenceNodeFlags, bin];
  const child = spawn(
    command ?? bin,
    [...prefix, '--data-dir', dataDir, '--dicom-port', '0', '--http-port', '0', '--http-host', '127.0.0.1', '--model', densenet, ...(options.args ?? [])],
    // A short stability wait keeps the watched-folder tests quick.
    { env: { ...process.env, CXR_EDGE_WATCH_STABLE_MS: '300', ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  // Never outlive the test process, even when a test times out before its own stop.
  const reap = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const ports = await new Promise<{ dicom: number; http: number }>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start:\n${output}`)), 60_000);
    const check = (): void => {
      const m = /ready\. DICOM \S+@(\d+), page http:\/\/localhost:(\d+)\//u.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve({ dicom: Number(m[1]), http: Number(m[2]) });
      }
    };
    child.stderr?.on('data', check);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`agent exited with ${code}:\n${output}`));
    });
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    dataDir,
    dicomPort: ports.dicom,
    httpPort: ports.http,
    child,
    output: () => output,
    async api<T>(route: string): Promise<T> {
      const res = await fetch(`http://127.0.0.1:${ports.http}${route}`);
      if (!res.ok) throw new Error(`${route}: ${res.status}`);
      return (await res.json()) as T;
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

export interface StoreOutcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** DCMTK's storescu as the X-ray unit, proposing every transfer syntax so each file goes as stored. */
export async function storescu(port: number, files: readonly string[], extra: readonly string[] = []): Promise<StoreOutcome> {
  const args = ['-xf', path.join(sharedDir, 'dcmtk', 'storescu-all-ts.cfg'), 'AllTS', '-aec', 'CXR_EDGE', ...extra, '127.0.0.1', String(port), ...files];
  try {
    const { stdout, stderr } = await promisify(execFile)('storescu', args, { maxBuffer: 1 << 24 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 60_000, intervalMs = 150): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}
