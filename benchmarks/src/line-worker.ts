/**
 * A benchmark worker in a child process, driven one JSON line at a time: ours (ours-worker.ts) and the Python peer
 * (peer/peer.py serve) speak the same protocol, so the comparison can interleave them file by file.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { StageTimes } from './ours.js';

export interface WorkerRun extends StageTimes {
  readonly decoder: string;
}

export interface LineWorker {
  /** What the worker said when it was ready (versions, threads). */
  readonly ready: Record<string, unknown>;
  run(file: string): Promise<WorkerRun>;
  /** Ends the worker and returns its peak resident set size in KiB. */
  finish(): Promise<number>;
}

export async function startLineWorker(label: string, command: string, args: readonly string[]): Promise<LineWorker> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => {
    // GDCM prints warnings for every 12-bit JPEG; keep only the tail for error messages.
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const exited = new Promise<never>((_, reject) => {
    child.once('exit', (code, signal) => reject(new Error(`${label} exited (${signal ?? code}):\n${stderr}`)));
    child.once('error', reject);
  });
  exited.catch(() => undefined);

  async function next(): Promise<Record<string, unknown>> {
    const line = await Promise.race([lines.next(), exited]);
    if (line.done) throw new Error(`${label} closed its output:\n${stderr}`);
    return JSON.parse(line.value) as Record<string, unknown>;
  }
  function send(message: object): void {
    child.stdin.write(`${JSON.stringify(message)}\n`);
  }

  const ready = await next();
  return {
    ready,
    async run(file: string): Promise<WorkerRun> {
      send({ file });
      const answer = await next();
      const number = (key: string): number => {
        const value = answer[key];
        if (typeof value !== 'number') throw new Error(`${label} answered without "${key}": ${JSON.stringify(answer)}`);
        return value;
      };
      return { decoder: String(answer.decoder ?? ''), read: number('read'), decode: number('decode'), preprocess: number('preprocess'), infer: number('infer'), total: number('total') };
    },
    async finish(): Promise<number> {
      send({ done: true });
      const answer = await next();
      child.stdin.end();
      return Number(answer.maxRssKiB);
    },
  };
}
