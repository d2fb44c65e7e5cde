import { writeSync } from 'node:fs';

/**
 * Named crash points, for recovery tests: a process reaching the point named in `CXR_CRASH_POINT` kills itself
 * with SIGKILL, exactly as `kill -9` would, so nothing after it runs (no `finally`, no exit handler, no flush).
 * `CXR_CRASH_POINT_HIT=N` crashes at the N-th time the point is reached (default the first). Without the variable
 * a crash point costs one comparison; it is never set in production, only by tests and drills that start a
 * process to kill it.
 *
 * Before dying the process writes `crash point NAME reached` to stderr, so a test can tell the crash it asked for
 * from any other death.
 */
export function crashPoint(name: string): void {
  const armed = armedPoint();
  if (armed === undefined || armed.name !== name) return;
  armed.reached += 1;
  if (armed.reached < armed.hit) return;
  writeSync(2, `crash point ${name} reached\n`);
  process.kill(process.pid, 'SIGKILL');
}

/** The line a process writes to stderr just before a crash point kills it. */
export const crashPointLine = (name: string): string => `crash point ${name} reached`;

interface ArmedPoint {
  readonly name: string;
  readonly hit: number;
  reached: number;
}

let armed: ArmedPoint | null | undefined;

function armedPoint(): ArmedPoint | undefined {
  if (armed === undefined) {
    const name = process.env.CXR_CRASH_POINT;
    const hit = Number(process.env.CXR_CRASH_POINT_HIT ?? '1');
    armed = name ? { name, hit: Number.isInteger(hit) && hit > 0 ? hit : 1, reached: 0 } : null;
  }
  return armed ?? undefined;
}

/**
 * Named stall points, for the tests of time limits: a thread reaching the point named in `CXR_STALL_POINT` stops
 * there for good, as a codec caught in a loop would, until something terminates it. `NAME@KEY` stalls only where the
 * caller passes that key (an instance id: one film hangs, the others pass). Never set in production.
 */
export function stallPoint(name: string, key?: string | number): void {
  const armed = process.env.CXR_STALL_POINT;
  if (!armed || (armed !== name && armed !== `${name}@${String(key)}`)) return;
  writeSync(2, `${stallPointLine(name)}\n`);
  // Short waits in a loop rather than one long one: a worker's terminate() takes effect between two of them.
  const cell = new Int32Array(new SharedArrayBuffer(4));
  for (;;) Atomics.wait(cell, 0, 0, 10);
}

/** The line a thread writes to stderr when it stalls at a stall point. */
export const stallPointLine = (name: string): string => `stall point ${name} reached`;
