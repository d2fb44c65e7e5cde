/**
 * Whether two files carry the same DICOM instance in different encodings: a re-send in another transfer syntax is
 * the same instance, not a conflicting version. Two datasets are the same instance when every attribute outside the
 * File Meta group is equal in value (compared as parsed values: Implicit or Explicit VR, value padding, defined or
 * undefined lengths and byte order do not matter; sequences item by item) and the Pixel Data is equal as decoded
 * samples (a native and a lossless-compressed encoding of the same pixels are the same; a lossy one is not).
 *
 * Decoding costs time: the spool asks only when a stored version with the same SOP Instance UID and another content
 * hash exists.
 */
import { createRequire } from 'node:module';
import {
  Tag,
  decodeFrame,
  firstFrame,
  formatTag,
  parseDicom,
  readImageInfo,
  storedValues,
  type CxrError,
  type DecodeOptions,
  type DicomDataset,
  type DicomElement,
  type ParsedDicom,
} from '@cxr/inference';

export interface InstanceComparison {
  /** Every attribute outside File Meta equal in value, and the Pixel Data equal as decoded samples. */
  readonly same: boolean;
  /**
   * Where the two differ, as tag paths (`(0028,2114)`, `(0008,2112)[0](0008,1155)`, `Pixel Data`), never values:
   * the list goes to the log. The pixels are compared only when every attribute is equal.
   */
  readonly differences: readonly string[];
}

/** Compares two Part 10 (or headerless) files. A file that does not parse throws its CxrError. */
export async function compareInstances(a: Uint8Array, b: Uint8Array, options: DecodeOptions = {}): Promise<InstanceComparison> {
  const parsedA = parseDicom(a);
  const parsedB = parseDicom(b);
  const differences: string[] = [];
  compareDatasets(parsedA.dataset, parsedB.dataset, '', true, differences);
  if (differences.length > 0) return { same: false, differences };
  const pixels = await comparePixelData(parsedA, parsedB, options);
  if (pixels) differences.push(pixels);
  return { same: differences.length === 0, differences };
}

// The data dictionary, for the VR of elements in Implicit VR files. dcmjs is what dcmjs-dimse itself runs on.
const require = createRequire(import.meta.url);
let dictionary: Readonly<Record<string, { vr?: string } | undefined>> | undefined;
function dictionaryVr(tag: number): string | undefined {
  dictionary ??= (require('dcmjs') as { data: { DicomMetaDictionary: { dictionary: Record<string, { vr?: string } | undefined> } } }).data.DicomMetaDictionary.dictionary;
  const key = formatTag(tag);
  const group = tag >>> 16;
  // Overlay and curve groups repeat: the dictionary spells them 60xx and 50xx.
  const repeating = (group & 0xff00) === 0x6000 || (group & 0xff00) === 0x5000 ? `(${key.slice(1, 3)}xx,${key.slice(6, 10)})` : undefined;
  const vr = dictionary[key]?.vr ?? (repeating ? dictionary[repeating]?.vr : undefined);
  if (!vr) return undefined;
  // Ambiguous entries (US or SS, OB or OW): only ever used between two Implicit VR Little Endian files, whose bytes
  // are in the same order, so comparing the bytes is exact.
  return /^[A-Z]{2}$/u.test(vr) ? vr : 'OB';
}

const textVrs = new Set(['AE', 'AS', 'CS', 'DA', 'DS', 'DT', 'IS', 'LO', 'LT', 'PN', 'SH', 'ST', 'TM', 'UC', 'UI', 'UR', 'UT']);
/** Text whose leading spaces are part of the value (PS3.5 6.2). */
const leadingSpacesKept = new Set(['LT', 'ST', 'UT', 'UC', 'UR']);
const wordBytes: Readonly<Record<string, number>> = { OW: 2, US: 2, SS: 2, AT: 2, UL: 4, SL: 4, FL: 4, OF: 4, OL: 4, FD: 8, OD: 8, SV: 8, UV: 8, OV: 8 };
const latin1 = new TextDecoder('latin1');

/** Attributes of a dataset, without what belongs to the encoding: File Meta, group lengths, trailing padding. */
function attributeTags(dataset: DicomDataset): number[] {
  return dataset.tags().filter((tag) => tag >>> 16 !== 0x0002 && (tag & 0xffff) !== 0 && tag !== 0xfffcfffc);
}

function compareDatasets(a: DicomDataset, b: DicomDataset, path: string, topLevel: boolean, out: string[]): void {
  const tags = [...new Set([...attributeTags(a), ...attributeTags(b)])].sort((x, y) => x - y);
  for (const tag of tags) {
    // The image itself is compared as decoded samples, once every attribute is known to be equal.
    if (topLevel && tag === Tag.PixelData) continue;
    const ea = a.element(tag);
    const eb = b.element(tag);
    const where = `${path}${formatTag(tag)}`;
    if (!ea || !eb) {
      out.push(where);
      continue;
    }
    const vr = resolveVr(tag, ea, eb);
    // A sequence by its VR, or as both parsers read it (Implicit VR private sequences have no VR to go by).
    if (vr === 'SQ' || (ea.items && eb.items)) {
      const itemsA = itemsOf(ea);
      const itemsB = itemsOf(eb);
      if (!itemsA || !itemsB || itemsA.length !== itemsB.length) {
        out.push(where);
        continue;
      }
      itemsA.forEach((item, i) => compareDatasets(item, itemsB[i] as DicomDataset, `${where}[${i}]`, false, out));
      continue;
    }
    if (!sameValue(vr, ea.value, a.littleEndian, eb.value, b.littleEndian)) out.push(where);
  }
}

/** The VR written in either file (Explicit VR), else the dictionary's; UN only when nothing better is known. */
function resolveVr(tag: number, a: DicomElement, b: DicomElement): string {
  const written = [a.vr, b.vr].find((vr) => vr !== '' && vr !== 'UN');
  return written ?? dictionaryVr(tag) ?? 'UN';
}

/** The items of a sequence; an empty value written without a VR is an empty sequence. */
function itemsOf(element: DicomElement): readonly DicomDataset[] | undefined {
  if (element.items) return element.items;
  return element.value.length === 0 ? [] : undefined;
}

function sameValue(vr: string, a: Uint8Array, aLittleEndian: boolean, b: Uint8Array, bLittleEndian: boolean): boolean {
  if (textVrs.has(vr)) return sameText(vr, latin1.decode(a), latin1.decode(b));
  const size = wordBytes[vr] ?? 1;
  if (size === 1 || aLittleEndian === bLittleEndian) return bytesEqual(a, b);
  if (a.length !== b.length) return false;
  // One file big endian, the other little: the same words with their bytes the other way round.
  for (let word = 0; word + size <= a.length; word += size) {
    for (let i = 0; i < size; i++) if (a[word + i] !== b[word + size - 1 - i]) return false;
  }
  return true;
}

function sameText(vr: string, a: string, b: string): boolean {
  const valuesA = textValues(vr, a);
  const valuesB = textValues(vr, b);
  if (valuesA.length !== valuesB.length) return false;
  return valuesA.every((value, i) => {
    const other = valuesB[i] as string;
    if ((vr === 'DS' || vr === 'IS') && value !== '' && other !== '') {
      const x = Number(value);
      const y = Number(other);
      if (Number.isFinite(x) && Number.isFinite(y)) return x === y;
    }
    return value === other;
  });
}

/** The values of a text element, padding removed (trailing NUL or spaces; leading spaces where insignificant). */
function textValues(vr: string, text: string): string[] {
  const unpadded = text.replace(/[\0 ]+$/u, '');
  // LT, ST and UT are one value each, backslashes included.
  const values = vr === 'LT' || vr === 'ST' || vr === 'UT' ? [unpadded] : unpadded.split('\\');
  return values.map((value) => {
    let v = value.replace(/[\0 ]+$/u, '');
    if (!leadingSpacesKept.has(vr)) v = v.replace(/^ +/u, '');
    // A person name's empty trailing components may be left out (PS3.5 6.2.1).
    if (vr === 'PN') v = v.replace(/[\^=]+$/u, '').replace(/\^+=/gu, '=');
    return v;
  });
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

/** Undefined when the Pixel Data is the same as decoded samples; otherwise the difference, in words. */
async function comparePixelData(a: ParsedDicom, b: ParsedDicom, options: DecodeOptions): Promise<string | undefined> {
  const pa = a.pixelData;
  const pb = b.pixelData;
  if (!pa || !pb) return pa || pb ? 'Pixel Data' : undefined;
  // The same bytes in the same encoding need no decoding.
  if (!pa.encapsulated && !pb.encapsulated && a.dataset.littleEndian === b.dataset.littleEndian && bytesEqual(pa.bytes, pb.bytes)) return undefined;
  if (pa.encapsulated && pb.encapsulated && pa.fragments.length === pb.fragments.length && pa.fragments.every((f, i) => bytesEqual(f, pb.fragments[i] as Uint8Array))) {
    return undefined;
  }
  try {
    const infoA = readImageInfo(a);
    const infoB = readImageInfo(b);
    // The decoders give the first frame only: several frames are the same only byte for byte (checked above).
    if (infoA.numberOfFrames > 1 || infoB.numberOfFrames > 1) return 'Pixel Data (several frames, other bytes)';
    const [frameA, frameB] = await Promise.all([
      decodeFrame(infoA.transferSyntaxUid, firstFrame(a, infoA), infoA, options),
      decodeFrame(infoB.transferSyntaxUid, firstFrame(b, infoB), infoB, options),
    ]);
    // Stored values: native words masked to BitsStored (the bits above may carry overlays), decoded ones as given;
    // doubles, so exact for every BitsStored up to 32.
    const valuesA = storedValues(frameA, infoA);
    const valuesB = storedValues(frameB, infoB);
    if (valuesA.length !== valuesB.length) return 'Pixel Data';
    for (let i = 0; i < valuesA.length; i++) if (valuesA[i] !== valuesB[i]) return 'Pixel Data';
    return undefined;
  } catch (err) {
    return `Pixel Data (not decodable: ${(err as CxrError).code ?? 'CXR_INTERNAL'})`;
  }
}
