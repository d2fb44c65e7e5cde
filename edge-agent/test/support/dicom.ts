import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { dicomDir, sharedDir } from './agent.js';

export const dicomFile = (name: string): string => path.join(dicomDir, name);

/**
 * Sends files with DCMTK's storescu, as the X-ray unit does, proposing every transfer syntax so that each file goes
 * in its own. Throws with storescu's output when it fails.
 */
export async function storescu(port: number, files: readonly string[]): Promise<void> {
  const args = ['-xf', path.join(sharedDir, 'dcmtk', 'storescu-all-ts.cfg'), 'AllTS', '-aec', 'CXR_EDGE', '127.0.0.1', String(port), ...files];
  try {
    await promisify(execFile)('storescu', args, { maxBuffer: 1 << 24 });
  } catch (err) {
    const e = err as { message: string; stdout?: string; stderr?: string };
    throw new Error(`storescu failed: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
  }
}

/** Offsets of the fragments of encapsulated (compressed) Pixel Data in a little-endian Part 10 file. */
export function pixelFragments(bytes: Uint8Array): { offset: number; length: number }[] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  // (7FE0,0010) OB with undefined length: E0 7F 10 00 'O' 'B' 00 00 FF FF FF FF
  let at = -1;
  for (let i = bytes.length - 12; i >= 132; i--) {
    if (view.getUint16(i, true) === 0x7fe0 && view.getUint16(i + 2, true) === 0x0010 && bytes[i + 4] === 0x4f && bytes[i + 5] === 0x42 && view.getUint32(i + 8, true) === 0xffffffff) {
      at = i + 12;
      break;
    }
  }
  if (at < 0) throw new Error('no encapsulated Pixel Data');
  const fragments: { offset: number; length: number }[] = [];
  while (at + 8 <= bytes.length && view.getUint16(at, true) === 0xfffe && view.getUint16(at + 2, true) === 0xe000) {
    const length = view.getUint32(at + 4, true);
    fragments.push({ offset: at + 8, length });
    at += 8 + length;
  }
  return fragments;
}

/**
 * A copy of a compressed DICOM file whose header and item structure are intact but whose codestream is damaged in
 * the middle: it is received and stored normally, then fails decoding. `fill` varies the damage so two copies
 * differ in content (same SOP Instance UID, different bytes: a conflicting second version).
 */
export function corruptCodestream(source: string, target: string, fill = 0xff): void {
  const bytes = new Uint8Array(readFileSync(source));
  const fragments = pixelFragments(bytes).filter((f) => f.length > 8192);
  const middle = fragments[Math.floor(fragments.length / 2)];
  if (!middle) throw new Error(`${source}: no codestream fragment to damage`);
  bytes.fill(fill, middle.offset + 1024, middle.offset + 1024 + 4096);
  writeFileSync(target, bytes);
}
