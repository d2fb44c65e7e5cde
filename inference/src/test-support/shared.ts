import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** ../shared beside the project's root: real DICOM, models and references, read-only. */
export const sharedDir = path.resolve(fileURLToPath(new URL('../../../../shared', import.meta.url)));
export const dicomDir = path.join(sharedDir, 'dicom');
export const modelsDir = path.join(sharedDir, 'models');
export const referenceDir = path.join(sharedDir, 'reference');

export const modelNames = ['densenet121-cxr18-random', 'squeezenet-pneumonia-peds'] as const;
export type SharedModelName = (typeof modelNames)[number];

/** All 22 shared DICOM files, top-level and derived/, by absolute path. */
export function sharedDicomFiles(): string[] {
  const top = readdirSync(dicomDir).filter((f) => f.endsWith('.dcm')).map((f) => path.join(dicomDir, f));
  const derived = readdirSync(path.join(dicomDir, 'derived')).filter((f) => f.endsWith('.dcm')).map((f) => path.join(dicomDir, 'derived', f));
  return [...top, ...derived].sort();
}

/** Lossy encodings get the looser tolerance of ../shared/README.md. */
export function isLossy(file: string): boolean {
  return /_(JPLY|J2KI|JLSN)\.dcm$|JPEG_baseline\.dcm$/u.test(path.basename(file));
}

export function referenceTensor(model: SharedModelName, file: string): Float32Array {
  const bytes = readFileSync(path.join(referenceDir, model, `${path.basename(file)}.f32`));
  return new Float32Array(Uint8Array.from(bytes).buffer);
}

export function referenceProbabilities(model: SharedModelName): Record<string, number[]> {
  return JSON.parse(readFileSync(path.join(referenceDir, `${model}.probs.json`), 'utf8')) as Record<string, number[]>;
}
