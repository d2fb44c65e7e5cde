import { dictionary } from 'dcmjs/dictionary';

function key(tag: number): string {
  const hex = (n: number): string => n.toString(16).toUpperCase().padStart(4, '0');
  return `(${hex(tag >>> 16)},${hex(tag & 0xffff)})`;
}

/** The VR the standard gives a tag (for Implicit VR files, which carry none); undefined for unknown or private tags. */
export function standardVr(tag: number): string | undefined {
  const entry = dictionary[key(tag)];
  if (!entry || entry.version !== 'DICOM') return undefined;
  // Tags whose VR depends on context ("US or SS", "OB or OW") are listed with lower-case placeholders.
  return /^[A-Z]{2}$/u.test(entry.vr) ? entry.vr : undefined;
}

/** "PatientName", or "(0009,0010)" for tags the dictionary does not name. */
export function keywordOf(tag: number): string {
  const entry = dictionary[key(tag)];
  return entry && entry.version === 'DICOM' ? entry.name : key(tag);
}
