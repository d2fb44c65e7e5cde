import type { Writable } from 'node:stream';
export { errorLine } from '../errors/index.js';

/** Where a command writes; tests pass their own streams. */
export interface CliIo {
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
}

export function writeLine(stream: Writable, line: string): void {
  stream.write(`${line}\n`);
}
