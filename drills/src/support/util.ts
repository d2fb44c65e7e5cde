import { mkdirSync } from 'node:fs';
import path from 'node:path';

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** ms as seconds with one decimal, as the reports give them. */
export const seconds = (ms: number): number => Math.round(ms / 100) / 10;

/** The median of numbers already sorted; 0 for none. */
export function median(sorted: readonly number[]): number {
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? (sorted[mid] ?? 0) : ((sorted[mid - 1] ?? 0) + (sorted[mid] ?? 0)) / 2;
}

/** A folder of the drill's scratch folder, made if missing. */
export function mkdirWork(workDir: string, name: string): string {
  const dir = path.join(workDir, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
