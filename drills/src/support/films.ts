import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));
export const sharedDir = path.resolve(repoRoot, '..', 'shared');
export const dicomDir = path.join(sharedDir, 'dicom');
/** The shipped model with real weights: fast to load and to run, and it tells urgent from routine on these films. */
export const squeezenet = path.join(sharedDir, 'models', 'squeezenet-pneumonia-peds');

/** A radiograph made for a drill: a real film with new UIDs, so that every one is a new instance of a new study. */
export interface Film {
  readonly file: string;
  readonly kind: 'urgent' | 'routine';
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
}

/** The real films the copies are made of, with the UIDs to replace and what SqueezeNet calls them. */
const sources = [
  // The Barre CR chest (ACR-NEMA, no File Meta): URGENT, bacterial and viral pneumonia above 25 %.
  { name: 'cr_chest_CR-MONO1-10-chest.dcm', kind: 'urgent', sop: '1.2.392.200036.9125.0.19950720112207', study: '1.2.392.200036.9125.0.199302241758.16' },
  // The NIH DX chest: ROUTINE, no finding above threshold.
  {
    name: 'dx_chest_nih_secondary_capture.dcm',
    kind: 'routine',
    sop: '1.3.6.1.4.1.11129.5.5.110503645592756492463169821050252582267888',
    study: '1.3.6.1.4.1.11129.5.5.112507010803284478207522016832191866964708',
  },
] as const;

/** Our UID root (edge-agent/src/spool/part10.ts), arc 9 for drill copies. */
const uidRoot = '1.2.826.0.1.3680043.10.1417.9.';

/**
 * Makes copies of the real films with new SOP Instance and Study Instance UIDs of the same length, written over
 * the old ones wherever they occur (dataset and File Meta), so nothing else in the file moves. The copies go to `dir`.
 */
export class FilmFactory {
  readonly #dir: string;
  readonly #bytes = new Map<string, Buffer>();
  #counter = 100_000;

  constructor(dir: string) {
    this.#dir = dir;
    for (const source of sources) this.#bytes.set(source.name, readFileSync(path.join(dicomDir, source.name)));
  }

  make(kind: 'urgent' | 'routine'): Film {
    const source = sources.find((s) => s.kind === kind);
    const bytes = source && this.#bytes.get(source.name);
    if (!source || !bytes) throw new Error(`no source film for ${kind}`);
    const sopInstanceUid = this.#uid(source.sop.length);
    const studyInstanceUid = this.#uid(source.study.length);
    const copy = replaceAll(replaceAll(bytes, source.sop, sopInstanceUid), source.study, studyInstanceUid);
    const file = path.join(this.#dir, `${kind}-${this.#counter}.dcm`);
    writeFileSync(file, copy);
    return { file, kind, sopInstanceUid, studyInstanceUid };
  }

  #uid(length: number): string {
    this.#counter += 1;
    const digits = String(this.#counter);
    const fill = length - uidRoot.length - digits.length;
    if (fill < 0) throw new Error(`no room for a ${length}-character UID`);
    // Same length as the UID it replaces; a component never starts with 0.
    return `${uidRoot}${'1'.repeat(Math.min(1, fill))}${'0'.repeat(Math.max(0, fill - 1))}${digits}`.slice(0, length);
  }
}

function replaceAll(bytes: Buffer, from: string, to: string): Buffer {
  if (from.length !== to.length) throw new Error('a UID is replaced by one of the same length');
  const out = Buffer.from(bytes);
  const needle = Buffer.from(from, 'latin1');
  for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, at + needle.length)) out.write(to, at, 'latin1');
  return out;
}
