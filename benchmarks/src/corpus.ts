/**
 * What every benchmark shares: where the shared corpus and results live, the 22 shared DICOM files, the two shipped
 * models, and how the machine is described next to each figure.
 */
import { readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The benchmarks workspace, whether this module runs from src/ (tsx) or from dist/ (compiled). */
export const benchmarksDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repositoryRoot = path.resolve(benchmarksDir, '..');
export const sharedDir = path.resolve(repositoryRoot, '../shared');
export const resultsDir = path.join(benchmarksDir, 'results');

export const shippedModels = ['densenet121-cxr18-random', 'squeezenet-pneumonia-peds'] as const;

export function modelDir(name: string): string {
  return path.join(sharedDir, 'models', name);
}

/** The 22 shared DICOM files (`dicom/` and `dicom/derived/`), sorted by file name (code-unit order). */
export function sharedDicomFiles(): string[] {
  const dicom = path.join(sharedDir, 'dicom');
  const derived = path.join(dicom, 'derived');
  return [
    ...readdirSync(dicom).filter((f) => f.endsWith('.dcm')).map((f) => path.join(dicom, f)),
    ...readdirSync(derived).filter((f) => f.endsWith('.dcm')).map((f) => path.join(derived, f)),
  ].sort((a, b) => {
    // Code-unit order, as the existing tables have it (upper case before lower case).
    const [x, y] = [path.basename(a), path.basename(b)];
    return x < y ? -1 : x > y ? 1 : 0;
  });
}

/** For example "2 x AMD EPYC, 24 GiB, Node v20.20.2" (the CPU model is /proc/cpuinfo's "model name"). */
export function machineDescription(): string {
  const cpus = os.cpus();
  return `${cpus.length} x ${cpus[0]?.model.trim() ?? 'cpu'}, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
}
