import type { Writable } from 'node:stream';
import { isCxrError } from '../errors/index.js';

/** Where a command writes; tests pass their own streams. */
export interface CliIo {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
}

export function errorLine(err: unknown): { code: string; message: string } {
  if (isCxrError(err)) return { code: err.code, message: err.message };
  return { code: 'CXR_INTERNAL', message: err instanceof Error ? err.message : String(err) };
}

export function writeLine(stream: Writable, line: string): void {
  stream.write(`${line}\n`);
}
