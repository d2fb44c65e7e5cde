/**
 * Mutated DICOM for the fuzz drill: real files damaged the ways hostile or broken senders damage them. Bit flips,
 * hostile values over lengths and image attributes (0xFFFFFFFF lengths, huge Rows and Columns, odd lengths,
 * undefined-length items), truncations, chunks or elements duplicated or removed, tags swapped, the Transfer Syntax
 * UID changed, Pixel Data fragments damaged.
 *
 * A real file is read once into a `Specimen`: its File Meta apart from its dataset, and where each top-level element,
 * sequence item and Pixel Data fragment lies. `makeCase` gives every case a new SOP Instance UID (same length, so no
 * byte moves), then applies one to three mutations: those that keep every byte in place first, at most one that
 * inserts or removes bytes last, so the map of the real file stays true for all of them. A case has two forms: the
 * Part 10 file (for `cxr infer`) and what goes on the wire (the dataset, and the transfer syntax to negotiate; the
 * File Meta never travels in DIMSE). Everything comes from the seeded random: case N of seed S is always the same.
 */
import { Tag, TransferSyntax, parseDicom } from '@cxr/inference';
import { seededRandom, type Random } from './random.js';

/** One top-level element of the dataset; offsets are from the start of the dataset. */
export interface ElementSpan {
  readonly tag: number;
  readonly start: number;
  readonly valueStart: number;
  /** where its length field is, and how wide (2 or 4 bytes) */
  readonly lengthAt: number;
  readonly lengthBytes: 2 | 4;
  /** the first byte after the element (after its delimiter, for an undefined-length one) */
  readonly end: number;
}

/** An item (FFFE,E000) header: a sequence item or a Pixel Data fragment. */
export interface ItemSpan {
  readonly start: number;
  readonly valueStart: number;
  readonly length: number;
}

export interface Specimen {
  readonly name: string;
  /** the 128-byte preamble and "DICM", or nothing (ACR-NEMA style) */
  readonly preamble: Uint8Array;
  /** the File Meta Information group, or nothing */
  readonly meta: Uint8Array;
  readonly dataset: Uint8Array;
  readonly transferSyntaxUid: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly explicitVr: boolean;
  readonly elements: readonly ElementSpan[];
  /** sequence items before Pixel Data (found by their tag) */
  readonly items: readonly ItemSpan[];
  readonly pixelData: ElementSpan | undefined;
  /** encapsulated Pixel Data: the Basic Offset Table item first, then the fragments */
  readonly fragments: readonly ItemSpan[];
}

export interface FuzzCase {
  readonly index: number;
  readonly source: string;
  /** the case's own SOP Instance UID, written over the real one */
  readonly sopInstanceUid: string;
  /** what was done, in order, e.g. ["flip x3", "truncate@51234"] */
  readonly mutations: readonly string[];
  /** the whole Part 10 file (or headerless stream, as the real one was) */
  readonly file: Uint8Array;
  /** the C-STORE form: the dataset as it goes on the wire, and the association's syntax and class */
  readonly wire: { readonly transferSyntaxUid: string; readonly sopClassUid: string; readonly dataset: Uint8Array };
}

const longVrs = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const allVrs = new Set([...longVrs, 'AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US']);

/** Reads a real (valid) file into its parts and its map. */
export function readSpecimen(name: string, bytes: Uint8Array): Specimen {
  const parsed = parseDicom(bytes);
  const offsetOf = (view: Uint8Array): number => view.byteOffset - bytes.byteOffset;
  const preambleLength = bytes.length >= 132 && latin1(bytes, 128, 4) === 'DICM' ? 132 : 0;
  let metaEnd = preambleLength;
  for (const tag of parsed.meta?.tags() ?? []) {
    const value = parsed.meta?.bytes(tag);
    if (value) metaEnd = Math.max(metaEnd, offsetOf(value) + value.length);
  }
  const dataset = bytes.subarray(metaEnd);
  const explicitVr = dataset.length >= 6 && allVrs.has(latin1(dataset, 4, 2));
  const view = new DataView(dataset.buffer, dataset.byteOffset, dataset.byteLength);
  const elements: ElementSpan[] = [];
  for (const tag of parsed.dataset.tags()) {
    const element = parsed.dataset.element(tag);
    if (!element) continue;
    const valueStart = offsetOf(element.value) - metaEnd;
    const span = spanAt(view, dataset, explicitVr, tag, valueStart, element.value.length);
    if (span) elements.push(span);
  }
  elements.sort((a, b) => a.start - b.start);
  const pixelData = elements.find((e) => e.tag === Tag.PixelData);
  const headerEnd = pixelData?.start ?? dataset.length;
  const items: ItemSpan[] = [];
  for (let at = 0; at + 8 <= headerEnd; at += 2) {
    if (view.getUint32(at, true) === 0xe000fffe) items.push({ start: at, valueStart: at + 8, length: view.getUint32(at + 4, true) });
  }
  const fragments: ItemSpan[] = [];
  if (parsed.pixelData?.encapsulated && pixelData) {
    // The Basic Offset Table is the first item, straight after the Pixel Data header, even when empty.
    fragments.push({ start: pixelData.valueStart, valueStart: pixelData.valueStart + 8, length: view.getUint32(pixelData.valueStart + 4, true) });
    for (const value of parsed.pixelData.fragments) {
      const valueStart = offsetOf(value) - metaEnd;
      fragments.push({ start: valueStart - 8, valueStart, length: value.length });
    }
  }
  return {
    name,
    preamble: bytes.subarray(0, preambleLength),
    meta: bytes.subarray(preambleLength, metaEnd),
    dataset,
    transferSyntaxUid: parsed.transferSyntaxUid,
    sopClassUid: parsed.dataset.string(Tag.SopClassUid) ?? parsed.meta?.string(Tag.MediaStorageSopClassUid) ?? '',
    sopInstanceUid: parsed.dataset.string(Tag.SopInstanceUid) ?? '',
    explicitVr,
    elements,
    items,
    pixelData,
    fragments,
  };
}

/** Where an element's header is, checked against the tag written there. */
function spanAt(view: DataView, dataset: Uint8Array, explicitVr: boolean, tag: number, valueStart: number, valueLength: number): ElementSpan | undefined {
  const tagAt = (at: number): number => ((view.getUint16(at, true) << 16) | view.getUint16(at + 2, true)) >>> 0;
  const end = valueStart + valueLength;
  if (!explicitVr) {
    const start = valueStart - 8;
    return start >= 0 && tagAt(start) === tag ? { tag, start, valueStart, lengthAt: start + 4, lengthBytes: 4, end } : undefined;
  }
  if (valueStart >= 12 && tagAt(valueStart - 12) === tag && longVrs.has(latin1(dataset, valueStart - 8, 2))) {
    return { tag, start: valueStart - 12, valueStart, lengthAt: valueStart - 4, lengthBytes: 4, end };
  }
  if (valueStart >= 8 && tagAt(valueStart - 8) === tag) return { tag, start: valueStart - 8, valueStart, lengthAt: valueStart - 2, lengthBytes: 2, end };
  return undefined;
}

/** Our UID root (edge-agent/src/spool/part10.ts), arc 9 for drill copies; fuzz cases start with 7. */
const uidRoot = '1.2.826.0.1.3680043.10.1417.9.';

export function caseUid(index: number, length: number): string {
  const digits = String(index);
  const fill = length - uidRoot.length - 1 - digits.length;
  if (fill < 0) throw new Error(`no room for case ${index} in a ${length}-character UID`);
  return `${uidRoot}7${'0'.repeat(fill)}${digits}`;
}

/** The random of case `index` alone, so that one case can be made again without the others. */
export function caseRandom(seed: number, index: number): Random {
  return seededRandom((Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(index + 1, 0x85ebca6b)) >>> 0);
}

interface Work {
  meta: Uint8Array;
  dataset: Uint8Array;
  transferSyntaxUid: string;
  readonly notes: string[];
}

interface Mutation {
  readonly name: string;
  readonly weight: number;
  /** inserts or removes bytes: at most one per case, applied last */
  readonly moves: boolean;
  applies(s: Specimen): boolean;
  apply(s: Specimen, w: Work, r: Random): void;
}

/** Makes case `index` of `seed` from one of the specimens. */
export function makeCase(specimens: readonly Specimen[], seed: number, index: number): FuzzCase {
  const r = caseRandom(seed, index);
  const specimen = specimens[index % specimens.length];
  if (!specimen) throw new Error('no specimens');
  const uid = caseUid(index, specimen.sopInstanceUid.length);
  const work: Work = {
    meta: replaceAscii(specimen.meta, specimen.sopInstanceUid, uid),
    dataset: replaceAscii(specimen.dataset, specimen.sopInstanceUid, uid),
    transferSyntaxUid: specimen.transferSyntaxUid,
    notes: [],
  };
  const applicable = mutations.filter((m) => m.applies(specimen));
  const count = pickWeighted(r, [
    [1, 5],
    [2, 3],
    [3, 2],
  ]);
  const chosen: Mutation[] = [];
  for (let i = 0; i < count; i++) {
    const candidates = chosen.some((m) => m.moves) ? applicable.filter((m) => !m.moves) : applicable;
    chosen.push(pickWeighted(r, candidates.map((m) => [m, m.weight] as const)));
  }
  chosen.sort((a, b) => Number(a.moves) - Number(b.moves));
  for (const mutation of chosen) mutation.apply(specimen, work, r);
  const file = concat([specimen.preamble, work.meta, work.dataset]);
  return {
    index,
    source: specimen.name,
    sopInstanceUid: uid,
    mutations: work.notes,
    file,
    wire: { transferSyntaxUid: work.transferSyntaxUid, sopClassUid: specimen.sopClassUid, dataset: work.dataset },
  };
}

// ---------------------------------------------------------------------------------------------------------------
// The mutations

const hostileLengths32 = (length: number, rest: number): number[] => [0xffffffff, 0xfffffffe, 0x7fffffff, 0x80000000, length + 1, Math.max(0, length - 1), 0, rest + 2, 0x10000000];
const hostileLengths16 = (length: number): number[] => [0xffff, 0xfffe, length + 1, length ^ 1, 0];

/** Header region: the dataset before Pixel Data, where a flip changes what the file says about itself. */
const headerEnd = (s: Specimen): number => s.pixelData?.start ?? s.dataset.length;

const usValues: ReadonlyMap<number, readonly number[]> = new Map([
  [Tag.Rows, [0xffff, 0, 1, 2, 0x8000, 16384, 16385, 4097]],
  [Tag.Columns, [0xffff, 0, 1, 2, 0x8000, 16384, 16385, 4097]],
  [Tag.BitsAllocated, [0, 1, 7, 8, 12, 15, 16, 17, 32, 64, 0xffff]],
  [Tag.BitsStored, [0, 1, 7, 8, 12, 16, 17, 31, 0xffff]],
  [Tag.HighBit, [0, 7, 15, 16, 31, 0xffff]],
  [Tag.SamplesPerPixel, [0, 2, 3, 4, 0xffff]],
  [Tag.PixelRepresentation, [0, 1, 2, 0xffff]],
  [Tag.PlanarConfiguration, [1, 2]],
]);

const textValues: ReadonlyMap<number, readonly string[]> = new Map([
  [Tag.PhotometricInterpretation, ['MONOCHROME1 ', 'MONOCHROME2 ', 'RGB ', 'PALETTE COLOR ', 'YBR_FULL_422', '', 'X']],
  [Tag.NumberOfFrames, ['999999999 ', '0 ', '-1', '2 ', '1e9 ', 'NaN ', '65536 ']],
  [Tag.WindowCenter, ['0 ', '-1 ', 'NaN ', '1e400 ', '-1e308', '0\\0 ', '\\\\\\ ']],
  [Tag.WindowWidth, ['0 ', '-1 ', 'NaN ', '1e400 ', '1e-300', '0\\0 ']],
  [Tag.RescaleSlope, ['0 ', 'NaN ', '-1 ', '1e308 ', '1e-320']],
  [Tag.RescaleIntercept, ['NaN ', '-1e308', '1e308 ', '-32768']],
  [Tag.VoiLutFunction, ['SIGMOID ', 'LINEAR_EXACT', 'BOGUS ']],
  [Tag.SpecificCharacterSet, ['ISO_IR 192', 'ISO 2022 IR 87', '\\\\']],
]);

const otherSyntaxes = [
  ...Object.values(TransferSyntax),
  '1.2.840.10008.1.2.4.100', // MPEG2: a video syntax no CR unit sends
  '1.2.840.10008.1.2.4.1000',
  '1.2.3',
];

const mutations: readonly Mutation[] = [
  {
    name: 'flip',
    weight: 14,
    moves: false,
    applies: () => true,
    apply(s, w, r) {
      const n = r.int(1, 24);
      const inHeader = r.next() < 0.6;
      const range = inHeader ? headerEnd(s) : w.dataset.length;
      for (let i = 0; i < n; i++) {
        const at = r.int(0, Math.max(0, range - 1));
        w.dataset[at] = (w.dataset[at] ?? 0) ^ (1 << r.int(0, 7));
      }
      w.notes.push(`flip x${n}${inHeader ? ' (header)' : ''}`);
    },
  },
  {
    name: 'hostile length',
    weight: 10,
    moves: false,
    applies: (s) => s.elements.length > 0,
    apply(s, w, r) {
      const view = dataView(w.dataset);
      const roll = r.next();
      if (roll < 0.2 && s.fragments.length > 0) {
        const item = r.pick(s.fragments);
        const value = r.pick(hostileLengths32(item.length, w.dataset.length - item.valueStart));
        view.setUint32(item.start + 4, value >>> 0, true);
        w.notes.push(`fragment length 0x${hex(value)}@${item.start}`);
        return;
      }
      const element = roll < 0.35 && s.pixelData ? s.pixelData : r.pick(s.elements);
      if (element.lengthBytes === 4) {
        const length = view.getUint32(element.lengthAt, true);
        const value = r.pick(hostileLengths32(length, w.dataset.length - element.valueStart));
        view.setUint32(element.lengthAt, value >>> 0, true);
        w.notes.push(`length ${tagName(element.tag)} 0x${hex(value)}`);
      } else {
        const length = view.getUint16(element.lengthAt, true);
        const value = r.pick(hostileLengths16(length));
        view.setUint16(element.lengthAt, value & 0xffff, true);
        w.notes.push(`length ${tagName(element.tag)} 0x${hex(value)}`);
      }
    },
  },
  {
    name: 'hostile image attribute',
    weight: 12,
    moves: false,
    applies: (s) => s.elements.some((e) => usValues.has(e.tag) && e.end - e.valueStart >= 2),
    apply(s, w, r) {
      const element = r.pick(s.elements.filter((e) => usValues.has(e.tag) && e.end - e.valueStart >= 2));
      const value = r.pick(usValues.get(element.tag) ?? [0xffff]);
      dataView(w.dataset).setUint16(element.valueStart, value, true);
      w.notes.push(`${tagName(element.tag)}=${value}`);
    },
  },
  {
    name: 'undefined-length item',
    weight: 6,
    moves: false,
    applies: (s) => s.items.length > 0 || s.fragments.length > 0,
    apply(s, w, r) {
      const item = r.pick([...s.items, ...s.fragments]);
      dataView(w.dataset).setUint32(item.start + 4, 0xffffffff, true);
      w.notes.push(`undefined-length item@${item.start}`);
    },
  },
  {
    name: 'swap tags',
    weight: 6,
    moves: false,
    applies: (s) => s.elements.length >= 2,
    apply(s, w, r) {
      const a = r.pick(s.elements);
      const b = r.pick(s.elements.filter((e) => e !== a));
      const tagA = w.dataset.slice(a.start, a.start + 4);
      w.dataset.copyWithin(a.start, b.start, b.start + 4);
      w.dataset.set(tagA, b.start);
      w.notes.push(`swap ${tagName(a.tag)}<->${tagName(b.tag)}`);
    },
  },
  {
    name: 'fragment bytes',
    weight: 7,
    moves: false,
    applies: (s) => s.fragments.slice(1).some((f) => f.length > 0),
    apply(s, w, r) {
      const fragment = r.pick(s.fragments.slice(1).filter((f) => f.length > 0));
      if (r.next() < 0.4) {
        // The codestream's markers: its start (SOI, SOC, the JPEG-LS header) or its end.
        const n = Math.min(fragment.length, r.int(2, 24));
        const fromEnd = r.next() < 0.3;
        const at = fromEnd ? fragment.valueStart + fragment.length - n : fragment.valueStart;
        const fill = r.pick([0x00, 0xff, -1]);
        for (let i = 0; i < n; i++) w.dataset[at + i] = fill < 0 ? r.int(0, 255) : fill;
        w.notes.push(`fragment ${fromEnd ? 'end' : 'start'} x${n}=${fill < 0 ? 'random' : hex(fill)}`);
      } else {
        const n = r.int(1, 200);
        for (let i = 0; i < n; i++) w.dataset[fragment.valueStart + r.int(0, fragment.length - 1)] = r.int(0, 255);
        w.notes.push(`fragment bytes x${n}`);
      }
    },
  },
  {
    name: 'offset table',
    weight: 2,
    moves: false,
    applies: (s) => (s.fragments[0]?.length ?? 0) >= 4,
    apply(s, w, r) {
      const table = s.fragments[0];
      if (!table) return;
      const view = dataView(w.dataset);
      for (let at = table.valueStart; at + 4 <= table.valueStart + table.length; at += 4) view.setUint32(at, r.pick([0xffffffff, 0x7fffffff, 3, r.int(0, 1 << 30)]) >>> 0, true);
      w.notes.push('offset table hostile');
    },
  },
  {
    name: 'transfer syntax',
    weight: 7,
    moves: false,
    applies: (s) => s.meta.length > 0,
    apply(s, w, r) {
      const to = r.pick(otherSyntaxes.filter((uid) => uid !== s.transferSyntaxUid));
      const fixLength = r.next() < 0.8;
      w.meta = replaceMetaUid(w.meta, to, fixLength);
      w.transferSyntaxUid = to;
      w.notes.push(`transfer syntax ${to}${fixLength ? '' : ' (group length stale)'}`);
    },
  },
  {
    name: 'meta damage',
    weight: 2,
    moves: false,
    applies: (s) => s.meta.length > 0,
    apply(_s, w, r) {
      const n = r.int(1, 8);
      const meta = Uint8Array.from(w.meta);
      for (let i = 0; i < n; i++) {
        const at = r.int(0, meta.length - 1);
        meta[at] = (meta[at] ?? 0) ^ (1 << r.int(0, 7));
      }
      w.meta = meta;
      // File Meta never travels in DIMSE: damage the dataset too, so the wire case is not a clean file.
      const at = r.int(0, Math.max(0, w.dataset.length - 1));
      w.dataset[at] = (w.dataset[at] ?? 0) ^ 0xff;
      w.notes.push(`meta flip x${n}, dataset byte@${at}`);
    },
  },
  // Those that insert or remove bytes: one at most, last.
  {
    name: 'truncate',
    weight: 12,
    moves: true,
    applies: () => true,
    apply(s, w, r) {
      const roll = r.next();
      const pixelStart = s.pixelData?.valueStart ?? w.dataset.length;
      const at =
        roll < 0.4
          ? r.int(0, w.dataset.length - 1)
          : roll < 0.7
            ? r.int(0, Math.max(0, headerEnd(s) - 1))
            : roll < 0.85
              ? Math.min(w.dataset.length - 1, pixelStart + r.int(0, 1024))
              : Math.max(0, w.dataset.length - r.int(1, 4096));
      w.dataset = w.dataset.slice(0, at);
      w.notes.push(`truncate@${at}`);
    },
  },
  {
    name: 'duplicate',
    weight: 6,
    moves: true,
    applies: (s) => s.elements.length > 0,
    apply(s, w, r) {
      if (r.next() < 0.5) {
        const element = r.pick(s.elements);
        w.dataset = concat([w.dataset.subarray(0, element.end), w.dataset.subarray(element.start, element.end), w.dataset.subarray(element.end)]);
        w.notes.push(`duplicate ${tagName(element.tag)}`);
        return;
      }
      const at = r.int(0, w.dataset.length - 1);
      const n = Math.min(w.dataset.length - at, chunkSize(r));
      w.dataset = concat([w.dataset.subarray(0, at + n), w.dataset.subarray(at, at + n), w.dataset.subarray(at + n)]);
      w.notes.push(`duplicate ${n}@${at}`);
    },
  },
  {
    name: 'remove',
    weight: 6,
    moves: true,
    applies: (s) => s.elements.length > 0,
    apply(s, w, r) {
      if (r.next() < 0.5) {
        const element = r.pick(s.elements);
        w.dataset = concat([w.dataset.subarray(0, element.start), w.dataset.subarray(element.end)]);
        w.notes.push(`remove ${tagName(element.tag)}`);
        return;
      }
      const at = r.int(0, w.dataset.length - 1);
      const n = Math.min(w.dataset.length - at, chunkSize(r));
      w.dataset = concat([w.dataset.subarray(0, at), w.dataset.subarray(at + n)]);
      w.notes.push(`remove ${n}@${at}`);
    },
  },
  {
    name: 'hostile text',
    weight: 5,
    moves: true,
    applies: (s) => s.elements.some((e) => textValues.has(e.tag)) || s.pixelData !== undefined,
    apply(s, w, r) {
      const present = s.elements.filter((e) => textValues.has(e.tag));
      const tag = present.length > 0 && r.next() < 0.7 ? r.pick(present).tag : r.pick([Tag.NumberOfFrames, Tag.WindowCenter, Tag.WindowWidth, Tag.RescaleSlope, Tag.PhotometricInterpretation]);
      const text = r.pick(textValues.get(tag) ?? ['']);
      const vr = tag === Tag.PhotometricInterpretation || tag === Tag.VoiLutFunction || tag === Tag.SpecificCharacterSet ? 'CS' : tag === Tag.NumberOfFrames ? 'IS' : 'DS';
      const encoded = encodeElement(s.explicitVr, tag, vr, Buffer.from(text, 'latin1'));
      const existing = s.elements.find((e) => e.tag === tag);
      // Written in tag order where there is none yet: before the first element of a higher tag.
      const before = s.elements.find((e) => e.tag > tag);
      const at = existing?.start ?? before?.start ?? s.pixelData?.start ?? w.dataset.length;
      const until = existing?.end ?? at;
      w.dataset = concat([w.dataset.subarray(0, at), encoded, w.dataset.subarray(until)]);
      w.notes.push(`${tagName(tag)}="${text.trim()}"${existing ? '' : ' (added)'}${text.length % 2 ? ' (odd length)' : ''}`);
    },
  },
  {
    name: 'hostile LUT',
    weight: 3,
    moves: true,
    applies: (s) => s.pixelData !== undefined,
    apply(s, w, r) {
      // A VOI LUT Sequence with a descriptor that promises more than its data, or entries that lie.
      const entries = r.pick([0, 1, 2, 4096, 0xffff]);
      const first = r.pick([0, 0x8000, 0xffff, 100]);
      const bits = r.pick([0, 8, 16, 17, 0xffff]);
      const descriptor = Buffer.alloc(6);
      descriptor.writeUInt16LE(entries, 0);
      descriptor.writeUInt16LE(first, 2);
      descriptor.writeUInt16LE(bits, 4);
      const data = Buffer.alloc(2 * r.pick([0, 1, 2, 16, 4096]), r.int(0, 255));
      const item = concat([encodeElement(s.explicitVr, Tag.LutDescriptor, 'US', descriptor), encodeElement(s.explicitVr, Tag.LutData, 'OW', data)]);
      const sequence = encodeSequence(s.explicitVr, Tag.VoiLutSequence, [item], r.next() < 0.5);
      const existing = s.elements.find((e) => e.tag === Tag.VoiLutSequence);
      const before = s.elements.find((e) => e.tag > Tag.VoiLutSequence);
      const at = existing?.start ?? before?.start ?? w.dataset.length;
      w.dataset = concat([w.dataset.subarray(0, at), sequence, w.dataset.subarray(existing?.end ?? at)]);
      w.notes.push(`VOI LUT ${entries}/${first}/${bits} with ${data.length} bytes`);
    },
  },
  {
    name: 'nested sequences',
    weight: 2,
    moves: true,
    applies: (s) => s.pixelData !== undefined,
    apply(s, w, r) {
      // Sequences in sequences, deeper than any real file: the parser's depth limit, not the stack, must stop them.
      const depth = r.pick([17, 64, 5000]);
      const open = concat([encodeSequenceHeader(s.explicitVr, 0x00400275), itemHeader(0xffffffff)]);
      const close = concat([delimiter(Tag.ItemDelimitationItem), delimiter(Tag.SequenceDelimitationItem)]);
      const parts: Uint8Array[] = [];
      for (let i = 0; i < depth; i++) parts.push(open);
      for (let i = 0; i < depth; i++) parts.push(close);
      const at = s.pixelData?.start ?? w.dataset.length;
      w.dataset = concat([w.dataset.subarray(0, at), ...parts, w.dataset.subarray(at)]);
      w.notes.push(`sequences nested ${depth} deep`);
    },
  },
  {
    name: 'fragment structure',
    weight: 7,
    moves: true,
    applies: (s) => s.fragments.length > 1 && s.pixelData !== undefined,
    apply(s, w, r) {
      const pixelData = s.pixelData;
      if (!pixelData) return;
      const fragments = s.fragments.slice(1);
      const fragment = r.pick(fragments);
      const roll = r.next();
      if (roll < 0.35) {
        // Cut short, its item length told the truth: a codestream without its end.
        const keep = Math.floor(r.int(0, Math.max(0, fragment.length - 1)) / 2) * 2;
        const header = itemHeader(keep);
        w.dataset = concat([w.dataset.subarray(0, fragment.start), header, w.dataset.subarray(fragment.valueStart, fragment.valueStart + keep), w.dataset.subarray(fragment.valueStart + fragment.length)]);
        w.notes.push(`fragment cut to ${keep} of ${fragment.length}`);
      } else if (roll < 0.55) {
        const split = Math.floor(r.int(1, Math.max(1, fragment.length - 1)) / 2) * 2;
        w.dataset = concat([
          w.dataset.subarray(0, fragment.start),
          itemHeader(split),
          w.dataset.subarray(fragment.valueStart, fragment.valueStart + split),
          itemHeader(fragment.length - split),
          w.dataset.subarray(fragment.valueStart + split),
        ]);
        w.notes.push(`fragment split at ${split}`);
      } else if (roll < 0.7) {
        const extra = r.next() < 0.5 ? new Uint8Array(0) : Uint8Array.from({ length: 2 * r.int(1, 512) }, () => r.int(0, 255));
        const at = r.next() < 0.5 ? fragment.start : pixelData.end - 8;
        w.dataset = concat([w.dataset.subarray(0, at), itemHeader(extra.length), extra, w.dataset.subarray(at)]);
        w.notes.push(`extra fragment of ${extra.length}`);
      } else if (roll < 0.85) {
        // No Sequence Delimitation Item: the fragments run into whatever follows, or the end of the file.
        w.dataset = concat([w.dataset.subarray(0, pixelData.end - 8), w.dataset.subarray(pixelData.end)]);
        w.notes.push('no pixel data delimiter');
      } else {
        w.dataset = concat([w.dataset.subarray(0, fragment.start), w.dataset.subarray(fragment.valueStart + fragment.length)]);
        w.notes.push(`fragment removed (${fragment.length})`);
      }
    },
  },
  {
    name: 'native pixels',
    weight: 4,
    moves: true,
    applies: (s) => s.pixelData !== undefined && s.fragments.length === 0,
    apply(s, w, r) {
      const pixelData = s.pixelData;
      if (!pixelData) return;
      const length = pixelData.end - pixelData.valueStart;
      const view = dataView(w.dataset);
      if (r.next() < 0.6) {
        // Shorter than Rows x Columns needs, the length field told the truth.
        const keep = Math.floor(r.int(0, length - 1) / 2) * 2;
        setLength(view, pixelData, keep);
        w.dataset = concat([w.dataset.subarray(0, pixelData.valueStart + keep), w.dataset.subarray(pixelData.end)]);
        w.notes.push(`pixel data ${keep} of ${length} bytes`);
      } else {
        setLength(view, pixelData, length + 1);
        w.dataset = concat([w.dataset.subarray(0, pixelData.end), Uint8Array.of(0), w.dataset.subarray(pixelData.end)]);
        w.notes.push('pixel data odd length');
      }
    },
  },
];

// ---------------------------------------------------------------------------------------------------------------
// Encoding helpers (little endian)

function encodeElement(explicitVr: boolean, tag: number, vr: string, value: Uint8Array): Uint8Array {
  const tagBytes = Buffer.alloc(4);
  tagBytes.writeUInt16LE(tag >>> 16, 0);
  tagBytes.writeUInt16LE(tag & 0xffff, 2);
  if (!explicitVr) {
    const length = Buffer.alloc(4);
    length.writeUInt32LE(value.length);
    return concat([tagBytes, length, value]);
  }
  if (longVrs.has(vr)) {
    const header = Buffer.alloc(8);
    header.write(vr, 0, 'latin1');
    header.writeUInt32LE(value.length, 4);
    return concat([tagBytes, header, value]);
  }
  const header = Buffer.alloc(4);
  header.write(vr, 0, 'latin1');
  header.writeUInt16LE(value.length & 0xffff, 2);
  return concat([tagBytes, header, value]);
}

function encodeSequenceHeader(explicitVr: boolean, tag: number): Uint8Array {
  const header = encodeElement(explicitVr, tag, 'SQ', new Uint8Array(0));
  dataView(header).setUint32(header.length - 4, 0xffffffff, true);
  return header;
}

function encodeSequence(explicitVr: boolean, tag: number, items: readonly Uint8Array[], definedLength: boolean): Uint8Array {
  if (definedLength) {
    const body = concat(items.map((item) => concat([itemHeader(item.length), item])));
    return encodeElement(explicitVr, tag, 'SQ', body);
  }
  return concat([encodeSequenceHeader(explicitVr, tag), ...items.map((item) => concat([itemHeader(0xffffffff), item, delimiter(Tag.ItemDelimitationItem)])), delimiter(Tag.SequenceDelimitationItem)]);
}

function itemHeader(length: number): Uint8Array {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(0xe000fffe, 0);
  header.writeUInt32LE(length >>> 0, 4);
  return header;
}

function delimiter(tag: number): Uint8Array {
  const header = Buffer.alloc(8);
  header.writeUInt16LE(tag >>> 16, 0);
  header.writeUInt16LE(tag & 0xffff, 2);
  return header;
}

function setLength(view: DataView, element: ElementSpan, length: number): void {
  if (element.lengthBytes === 4) view.setUint32(element.lengthAt, length >>> 0, true);
  else view.setUint16(element.lengthAt, length & 0xffff, true);
}

/** The File Meta with another Transfer Syntax UID; its group length fixed, or left as it was. */
function replaceMetaUid(meta: Uint8Array, uid: string, fixGroupLength: boolean): Uint8Array {
  const view = dataView(meta);
  const parts: Uint8Array[] = [];
  let pos = 0;
  let groupLengthAt = -1;
  while (pos + 8 <= meta.length) {
    const tag = ((view.getUint16(pos, true) << 16) | view.getUint16(pos + 2, true)) >>> 0;
    const vr = latin1(meta, pos + 4, 2);
    const long = longVrs.has(vr);
    const valueStart = pos + (long ? 12 : 8);
    const length = long ? view.getUint32(pos + 8, true) : view.getUint16(pos + 6, true);
    const end = Math.min(meta.length, valueStart + length);
    if (tag === Tag.TransferSyntaxUid) {
      const value = Buffer.from(uid.length % 2 ? `${uid}\0` : uid, 'latin1');
      parts.push(encodeElement(true, tag, 'UI', value));
    } else {
      if (tag === Tag.FileMetaInformationGroupLength) groupLengthAt = parts.reduce((n, p) => n + p.length, 0) + 8;
      parts.push(meta.slice(pos, end));
    }
    pos = end;
  }
  if (pos < meta.length) parts.push(meta.slice(pos));
  const out = concat(parts);
  if (fixGroupLength && groupLengthAt >= 0 && groupLengthAt + 4 <= out.length) dataView(out).setUint32(groupLengthAt, out.length - (groupLengthAt + 4), true);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------

function chunkSize(r: Random): number {
  // From one byte to 64 KiB, as many small as large.
  return Math.max(1, Math.floor(2 ** (r.next() * 16)));
}

function pickWeighted<T>(r: Random, entries: readonly (readonly [T, number])[]): T {
  const total = entries.reduce((n, [, w]) => n + w, 0);
  let roll = r.next() * total;
  for (const [value, weight] of entries) {
    roll -= weight;
    if (roll < 0) return value;
  }
  const last = entries[entries.length - 1];
  if (!last) throw new Error('nothing to pick from');
  return last[0];
}

function replaceAscii(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const out = Buffer.from(bytes);
  if (from.length === 0) return out;
  if (from.length !== to.length) throw new Error('a UID is replaced by one of the same length');
  const needle = Buffer.from(from, 'latin1');
  for (let at = out.indexOf(needle); at >= 0; at = out.indexOf(needle, at + needle.length)) out.write(to, at, 'latin1');
  return out;
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  return Buffer.concat(parts);
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function latin1(bytes: Uint8Array, at: number, length: number): string {
  return Buffer.from(bytes.subarray(at, at + length)).toString('latin1');
}

function hex(n: number): string {
  return (n >>> 0).toString(16);
}

function tagName(tag: number): string {
  const name = Object.entries(Tag).find(([, value]) => value === tag)?.[0];
  return name ?? `(${hex(tag).padStart(8, '0').replace(/^(.{4})/u, '$1,')})`;
}
