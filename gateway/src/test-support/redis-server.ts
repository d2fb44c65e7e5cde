import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { freePort } from './free-port.js';

/** A real Debian redis-server on a free loopback port, with its own data folder; stopped and removed after. */
export interface RedisServer {
  readonly url: string;
  readonly port: number;
  readonly dataDir: string;
  stop(): Promise<void>;
  /** SIGKILL, as a crash would. `start()` again on the same port and data. */
  kill(): Promise<void>;
  /**
   * Starts the server again on the same port. With `empty`, its data folder is wiped first, so it comes back with
   * no keys even with `persistence` (a Redis that lost its data); without persistence it always comes back empty.
   */
  start(options?: { empty?: boolean }): Promise<void>;
}


export async function startRedis(options: { persistence?: boolean } = {}): Promise<RedisServer> {
  const port = await freePort();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'cxr-redis-'));
  let child: ChildProcess | undefined;
  const start = async (startOptions: { empty?: boolean } = {}): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) throw new Error('redis-server is already running');
    if (startOptions.empty) for (const entry of readdirSync(dataDir)) rmSync(path.join(dataDir, entry), { recursive: true, force: true });
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dataDir, '--save', '', '--appendonly', options.persistence ? 'yes' : 'no', '--protected-mode', 'no'];
    child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`redis-server did not start:\n${output}`)), 15_000);
      child?.stdout?.on('data', (d: Buffer) => {
        output += d.toString();
        if (output.includes('Ready to accept connections')) {
          clearTimeout(timer);
          resolve();
        }
      });
      child?.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`redis-server exited with ${code}:\n${output}`));
      });
    });
  };
  const halt = async (signal: NodeJS.Signals): Promise<void> => {
    const c = child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    await new Promise<void>((resolve) => {
      c.once('exit', () => resolve());
      c.kill(signal);
    });
  };
  await start();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    dataDir,
    start,
    kill: () => halt('SIGKILL'),
    async stop(): Promise<void> {
      await halt('SIGTERM');
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
