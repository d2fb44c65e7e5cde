import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { inferenceNodeFlags } from '@cxr/inference';

/** The monorepo root (…/main/) and the shared folder beside it. */
export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const dicomDir = path.join(sharedDir, 'dicom');
export const modelDir = path.join(sharedDir, 'models', 'densenet121-cxr18-random');
const bin = path.join(repoRoot, 'edge-agent', 'bin', 'cxr-edge.js');

/** A real `cxr-edge` process, as the station runs it: built code, real ports, real disk. */
export interface RunningAgent {
  readonly dataDir: string;
  readonly dicomPort: number;
  readonly httpPort: number;
  /** http://127.0.0.1:<httpPort> */
  readonly baseUrl: string;
  readonly child: ChildProcess;
  /** Everything the process wrote so far. */
  output(): string;
  api<T>(route: string): Promise<T>;
  /**
   * SIGTERM, then SIGKILL after `graceMs` if the process has not exited. Resolves with how it ended
   * (`signal` is 'SIGKILL' when the grace period ran out).
   */
  stop(graceMs?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export function tempDir(prefix: string): string {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * Starts the agent with `--dicom-port 0 --http-port 0` (free ports; pass `httpPort` to take a given one again) and
 * waits for its "ready" line on stderr, which names both ports. No `--http-host`: the page listens where the agent
 * does by default (127.0.0.1).
 */
export async function startAgent(options: { dataDir?: string; httpPort?: number; timeoutMs?: number; args?: readonly string[] } = {}): Promise<RunningAgent> {
  const dataDir = options.dataDir ?? tempDir('cxr-edge-page-');
  // `args` come last: a flag given again there wins (commander keeps the last value).
  const args = [...inferenceNodeFlags, bin, '--data-dir', dataDir, '--dicom-port', '0', '--http-port', String(options.httpPort ?? 0), '--model', modelDir, '--log-level', 'warn', ...(options.args ?? [])];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  // Never outlive the test process, even when a test dies before its afterAll.
  const reap = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', reap);
  child.once('exit', () => process.off('exit', reap));
  let output = '';
  child.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const ports = await new Promise<{ dicom: number; http: number }>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`agent did not report ready:\n${output}`));
    }, options.timeoutMs ?? 60_000);
    const check = (): void => {
      const m = /cxr-edge: ready\. DICOM \S+@(\d+), page http:\/\/localhost:(\d+)\//u.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve({ dicom: Number(m[1]), http: Number(m[2]) });
      }
    };
    child.stderr?.on('data', check);
    void exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`agent exited (${code ?? signal}) before ready:\n${output}`));
    });
  });
  const baseUrl = `http://127.0.0.1:${ports.http}`;
  return {
    dataDir,
    dicomPort: ports.dicom,
    httpPort: ports.http,
    baseUrl,
    child,
    output: () => output,
    async api<T>(route: string): Promise<T> {
      const res = await fetch(`${baseUrl}${route}`);
      if (!res.ok) throw new Error(`${route}: HTTP ${res.status}`);
      return (await res.json()) as T;
    },
    async stop(graceMs = 5_000) {
      if (child.exitCode !== null || child.signalCode !== null) return exited;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const outcome = await exited;
      clearTimeout(timer);
      return outcome;
    },
  };
}
