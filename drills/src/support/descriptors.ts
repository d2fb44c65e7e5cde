import { readdirSync, readlinkSync } from 'node:fs';
import path from 'node:path';
import type { AgentProcess } from './site.js';

/** How many file descriptors the agent process holds open now (from /proc). */
export function descriptors(agent: AgentProcess): number {
  return readdirSync(`/proc/${agent.child.pid}/fd`).length;
}

/** The files under `dir` the agent process holds open now (from /proc). */
export function openFilesUnder(agent: AgentProcess, dir: string): string[] {
  const fdDir = `/proc/${agent.child.pid}/fd`;
  const open: string[] = [];
  for (const fd of readdirSync(fdDir)) {
    try {
      const target = readlinkSync(path.join(fdDir, fd));
      if (target.startsWith(`${dir}${path.sep}`)) open.push(target);
    } catch {
      // closed between the listing and the read
    }
  }
  return open;
}
