import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PassThrough } from 'node:stream';
import { main } from '../cli/main.js';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const shared = fileURLToPath(new URL('../../../../shared/', import.meta.url));
export const nihSample = `${shared}eval/nih-chestxray14-sample/`;
export const densenetModel = `${shared}models/densenet121-cxr18-random`;

export function installed(command: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;
}

/** Runs `cxr-datasets` in this process; returns the exit code and what it printed. */
export async function runCli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  stdout.on('data', (b: Buffer) => out.push(b));
  stderr.on('data', (b: Buffer) => err.push(b));
  const code = await main(['node', 'cxr-datasets', ...args], { stdout, stderr });
  return { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
}

/** DCMTK's dcmdump reads the whole file without a complaint. */
export function dcmdumpProblems(file: string): string[] {
  const result = spawnSync('dcmdump', [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const problems = result.stderr.split('\n').filter((l) => /^[EF]:/u.test(l));
  if (result.status !== 0) problems.push(`dcmdump exit ${result.status}`);
  return problems;
}

/** dicom3tools' dciodvfy: the errors it finds against the IOD (its warnings are not counted). */
export function dciodvfyErrors(file: string): string[] {
  const result = spawnSync('dciodvfy', ['-new', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  return `${result.stdout}\n${result.stderr}`.split('\n').filter((l) => l.startsWith('Error'));
}

/** `cxr infer --json` of the built `cxr` command: one parsed result per file. */
export function cxrInfer(files: readonly string[], model = densenetModel): Record<string, unknown>[] {
  const result = spawnSync(process.execPath, [`${repoRoot}inference/bin/cxr.js`, 'infer', ...files, '--model', model, '--json', '--threads', '1'], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  });
  return result.stdout
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
