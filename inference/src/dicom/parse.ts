import { inflateRawSync } from 'node:zlib';
import { CxrError } from '../errors/index.js';
import { DicomDataset, type DicomElement } from './dataset.js';
import { Tag, formatTag, implicitSequenceTags } from './tags.js';
import { TransferSyntax } from './uids.js';

/** Safety limits: a hostile file fails with CXR_LIMIT_EXCEEDED instead of exhausting the stack or memory. */
export interface ParseLimits {
  /** Deepest sequence nesting accepted. Default 16. */
  readonly maxDepth: number;
  /** Most elements (all levels together). Default 250 000. */
  readonly maxElements: number;
  /** Largest inflated size of a Deflated Explicit VR dataset, in bytes. Default 1 GiB. */
  readonly maxInflatedBytes: number;
  /** Most encapsulated pixel data fragments. Default 100 000. */
  readonly maxFragments: number;
}

export const defaultParseLimits: ParseLimits = {
  maxDepth: 16,
  maxElements: 250_000,
  maxInflatedBytes: 1 << 30,
  maxFragments: 100_000,
};

export type PixelDataElement =
  | { readonly encapsulated: false; readonly bytes: Uint8Array; readonly vr: string }
  | {
      readonly encapsulated: true;
      readonly basicOffsetTable: Uint8Array;
      readonly fragments: readonly Uint8Array[];
    };

export interface ParsedDicom {
  readonly transferSyntaxUid: string;
  /** True for Part 10 files (128-byte preamble, "DICM"); false for headerless ACR-NEMA style files. */
  readonly hasFileMeta: boolean;
  readonly meta: DicomDataset | undefined;
  readonly dataset: DicomDataset;
  readonly pixelData: PixelDataElement | undefined;
}

const UNDEFINED_LENGTH = 0xffffffff;
const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const ALL_VRS = new Set([
  ...LONG_LENGTH_VRS,
  ...['AE', 'AS', 'AT', 'CS', 'DA', 'DS', 'DT', 'FL', 'FD', 'IS', 'LO', 'LT', 'PN', 'SH', 'SL', 'SS', 'ST', 'TM', 'UI', 'UL', 'US'],
]);

interface Syntax {
  readonly explicitVr: boolean;
  readonly littleEndian: boolean;
}

function syntaxOf(uid: string): Syntax {
  if (uid === TransferSyntax.ImplicitVRLittleEndian) return { explicitVr: false, littleEndian: true };
  if (uid === TransferSyntax.ExplicitVRBigEndian) return { explicitVr: true, littleEndian: false };
  // Every other syntax, the compressed ones included, encodes the dataset as Explicit VR Little Endian.
  return { explicitVr: true, littleEndian: true };
}

/**
 * Parses a DICOM Part 10 file or a headerless ACR-NEMA style stream. Values stay views into `bytes`.
 */
export function parseDicom(bytes: Uint8Array, limits: ParseLimits = defaultParseLimits): ParsedDicom {
  if (bytes.length === 0) throw new CxrError('CXR_EMPTY_FILE');
  const hasPreamble = bytes.length >= 132 && ascii(bytes, 128, 4) === 'DICM';
  const bareMagic = !hasPreamble && bytes.length >= 4 && ascii(bytes, 0, 4) === 'DICM';

  let metaStart: number;
  if (hasPreamble) metaStart = 132;
  else if (bareMagic) metaStart = 4;
  else metaStart = 0;

  const counter = { elements: 0 };
  let meta: DicomDataset | undefined;
  let datasetStart = metaStart;
  let transferSyntaxUid: string;

  const startsWithMeta = bytes.length >= metaStart + 8 && readUint16(bytes, metaStart, true) === 0x0002;
  if (hasPreamble || bareMagic || startsWithMeta) {
    const metaParser = new Parser(bytes, { explicitVr: true, littleEndian: true }, limits, counter);
    const metaResult = metaParser.parseMetaGroup(metaStart);
    meta = metaResult.dataset;
    datasetStart = metaResult.end;
    const ts = meta.string(Tag.TransferSyntaxUid);
    if (!ts) throw new CxrError('CXR_MALFORMED', 'File Meta Information has no Transfer Syntax UID');
    transferSyntaxUid = ts;
  } else {
    transferSyntaxUid = guessHeaderlessSyntax(bytes);
  }

  let body = bytes;
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    try {
      body = new Uint8Array(inflateRawSync(bytes.subarray(datasetStart), { maxOutputLength: limits.maxInflatedBytes }));
    } catch (err) {
      const tooBig = err instanceof RangeError || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE';
      throw new CxrError(tooBig ? 'CXR_LIMIT_EXCEEDED' : 'CXR_MALFORMED', `deflated dataset: ${(err as Error).message}`);
    }
    datasetStart = 0;
  }

  const parser = new Parser(body, syntaxOf(transferSyntaxUid), limits, counter);
  const { dataset, pixelData } = parser.parseTopLevel(datasetStart);
  if (dataset.tags().length === 0) throw new CxrError('CXR_NOT_DICOM', 'no DICOM elements found');
  return { transferSyntaxUid, hasFileMeta: meta !== undefined, meta, dataset, pixelData };
}

/** Headerless files carry no transfer syntax: tell Implicit from Explicit VR by whether a VR follows the tag. */
function guessHeaderlessSyntax(bytes: Uint8Array): string {
  if (bytes.length < 8) throw new CxrError('CXR_NOT_DICOM', 'too short to be DICOM');
  const groupLe = readUint16(bytes, 0, true);
  const groupBe = readUint16(bytes, 0, false);
  const vr = ascii(bytes, 4, 2);
  const plausibleGroup = (g: number): boolean => g === 0x0000 || g === 0x0008 || g === 0x0010;
  if (plausibleGroup(groupLe)) {
    return ALL_VRS.has(vr) ? TransferSyntax.ExplicitVRLittleEndian : TransferSyntax.ImplicitVRLittleEndian;
  }
  if (plausibleGroup(groupBe) && ALL_VRS.has(vr)) return TransferSyntax.ExplicitVRBigEndian;
  throw new CxrError('CXR_NOT_DICOM', 'no DICM marker and no recognisable first element');
}

class Parser {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #syntax: Syntax;
  readonly #limits: ParseLimits;
  readonly #counter: { elements: number };
  #utf8 = false;

  constructor(bytes: Uint8Array, syntax: Syntax, limits: ParseLimits, counter: { elements: number }) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#syntax = syntax;
    this.#limits = limits;
    this.#counter = counter;
  }

  parseMetaGroup(start: number): { dataset: DicomDataset; end: number } {
    const elements = new Map<number, DicomElement>();
    let pos = start;
    while (pos + 8 <= this.#bytes.length && this.#view.getUint16(pos, true) === 0x0002) {
      const header = this.#readHeader(pos);
      if (header.length === UNDEFINED_LENGTH) throw new CxrError('CXR_MALFORMED', 'undefined length in File Meta');
      const end = header.valueStart + header.length;
      if (end > this.#bytes.length) throw new CxrError('CXR_TRUNCATED', `in File Meta element ${formatTag(header.tag)}`);
      this.#count();
      elements.set(header.tag, { tag: header.tag, vr: header.vr, value: this.#bytes.subarray(header.valueStart, end) });
      pos = end;
    }
    if (elements.size === 0) throw new CxrError('CXR_TRUNCATED', 'File Meta Information missing');
    return { dataset: new DicomDataset(elements, true), end: pos };
  }

  parseTopLevel(start: number): { dataset: DicomDataset; pixelData: PixelDataElement | undefined } {
    const elements = new Map<number, DicomElement>();
    let pixelData: PixelDataElement | undefined;
    let pos = start;
    const length = this.#bytes.length;
    while (pos < length) {
      if (length - pos < 8) {
        if (isZeroPadding(this.#bytes, pos)) break;
        throw new CxrError('CXR_TRUNCATED', `${length - pos} stray bytes at offset ${pos}`);
      }
      const header = this.#readHeader(pos);
      if (header.tag === Tag.PixelData) {
        const parsed = this.#parsePixelData(header);
        pixelData = parsed.pixelData;
        elements.set(header.tag, { tag: header.tag, vr: header.vr, value: parsed.value });
        pos = parsed.end;
        continue;
      }
      const el = this.#parseElement(header, 0);
      if (header.tag === Tag.SpecificCharacterSet) {
        this.#utf8 = /ISO_IR 192/u.test(new TextDecoder('latin1').decode(el.element.value));
      }
      // Group length and padding elements carry nothing the pipeline needs.
      if ((header.tag & 0xffff) !== 0 && header.tag !== 0xfffcfffc) elements.set(header.tag, el.element);
      pos = el.end;
    }
    return { dataset: new DicomDataset(elements, this.#syntax.littleEndian, this.#utf8), pixelData };
  }

  #count(): void {
    this.#counter.elements += 1;
    if (this.#counter.elements > this.#limits.maxElements) {
      throw new CxrError('CXR_LIMIT_EXCEEDED', `more than ${this.#limits.maxElements} elements`);
    }
  }

  #readHeader(pos: number): { tag: number; vr: string; length: number; valueStart: number } {
    const bytes = this.#bytes;
    if (pos + 8 > bytes.length) throw new CxrError('CXR_TRUNCATED', `element header at offset ${pos}`);
    // File Meta is always little endian; group 2 is read that way whatever the dataset's syntax.
    const le = this.#syntax.littleEndian;
    const group = this.#view.getUint16(pos, le);
    const element = this.#view.getUint16(pos + 2, le);
    const tag = ((group << 16) | element) >>> 0;
    if (group === 0xfffe) {
      return { tag, vr: '', length: this.#view.getUint32(pos + 4, le), valueStart: pos + 8 };
    }
    if (!this.#syntax.explicitVr) {
      return { tag, vr: '', length: this.#view.getUint32(pos + 4, le), valueStart: pos + 8 };
    }
    const vr = ascii(bytes, pos + 4, 2);
    if (!ALL_VRS.has(vr)) {
      throw new CxrError('CXR_MALFORMED', `invalid VR "${printable(vr)}" for ${formatTag(tag)} at offset ${pos}`);
    }
    if (LONG_LENGTH_VRS.has(vr)) {
      if (pos + 12 > bytes.length) throw new CxrError('CXR_TRUNCATED', `element header at offset ${pos}`);
      return { tag, vr, length: this.#view.getUint32(pos + 8, le), valueStart: pos + 12 };
    }
    return { tag, vr, length: this.#view.getUint16(pos + 6, le), valueStart: pos + 8 };
  }

  #isSequence(header: { tag: number; vr: string; length: number }): boolean {
    if (header.vr === 'SQ') return true;
    if (header.length === UNDEFINED_LENGTH) return header.vr === '';
    return header.vr === '' && implicitSequenceTags.has(header.tag);
  }

  #parseElement(
    header: { tag: number; vr: string; length: number; valueStart: number },
    depth: number,
  ): { element: DicomElement; end: number } {
    this.#count();
    if (header.vr === 'UN' && header.length === UNDEFINED_LENGTH) {
      // PS3.5 6.2.2: an undefined-length UN is a sequence encoded as Implicit VR Little Endian.
      const implicit = new Parser(this.#bytes, { explicitVr: false, littleEndian: true }, this.#limits, this.#counter);
      const seq = implicit.#parseSequence(header.valueStart, header.length, depth + 1);
      const value = this.#bytes.subarray(header.valueStart, seq.end);
      return { element: { tag: header.tag, vr: 'SQ', value, items: seq.items }, end: seq.end };
    }
    if (this.#isSequence(header)) {
      const seq = this.#parseSequence(header.valueStart, header.length, depth + 1);
      const value = this.#bytes.subarray(header.valueStart, seq.end);
      return { element: { tag: header.tag, vr: 'SQ', value, items: seq.items }, end: seq.end };
    }
    if (header.length === UNDEFINED_LENGTH) {
      throw new CxrError('CXR_MALFORMED', `undefined length on ${formatTag(header.tag)} (${header.vr})`);
    }
    const end = header.valueStart + header.length;
    if (end > this.#bytes.length) {
      throw new CxrError('CXR_TRUNCATED', `${formatTag(header.tag)} needs ${header.length} bytes at offset ${header.valueStart}`);
    }
    return { element: { tag: header.tag, vr: header.vr, value: this.#bytes.subarray(header.valueStart, end) }, end };
  }

  #parseSequence(start: number, length: number, depth: number): { items: DicomDataset[]; end: number } {
    if (depth > this.#limits.maxDepth) throw new CxrError('CXR_LIMIT_EXCEEDED', `sequences nested deeper than ${this.#limits.maxDepth}`);
    const defined = length !== UNDEFINED_LENGTH;
    const limit = defined ? start + length : this.#bytes.length;
    if (limit > this.#bytes.length) throw new CxrError('CXR_TRUNCATED', `sequence at offset ${start} needs ${length} bytes`);
    const items: DicomDataset[] = [];
    let pos = start;
    while (pos < limit) {
      const header = this.#readHeader(pos);
      if (header.tag === Tag.SequenceDelimitationItem) return { items, end: header.valueStart };
      if (header.tag !== Tag.Item) throw new CxrError('CXR_MALFORMED', `expected an item, found ${formatTag(header.tag)} at offset ${pos}`);
      this.#count();
      const item = this.#parseItem(header.valueStart, header.length, depth);
      items.push(item.dataset);
      pos = item.end;
    }
    if (!defined) throw new CxrError('CXR_TRUNCATED', 'sequence without its delimiter');
    if (pos !== limit) throw new CxrError('CXR_MALFORMED', `sequence items overrun the sequence at offset ${pos}`);
    return { items, end: limit };
  }

  #parseItem(start: number, length: number, depth: number): { dataset: DicomDataset; end: number } {
    const defined = length !== UNDEFINED_LENGTH;
    const limit = defined ? start + length : this.#bytes.length;
    if (limit > this.#bytes.length) throw new CxrError('CXR_TRUNCATED', `item at offset ${start} needs ${length} bytes`);
    const elements = new Map<number, DicomElement>();
    let pos = start;
    while (pos < limit) {
      const header = this.#readHeader(pos);
      if (header.tag === Tag.ItemDelimitationItem) {
        return { dataset: new DicomDataset(elements, this.#syntax.littleEndian, this.#utf8), end: header.valueStart };
      }
      const el = this.#parseElement(header, depth);
      elements.set(header.tag, el.element);
      pos = el.end;
    }
    if (!defined) throw new CxrError('CXR_TRUNCATED', 'item without its delimiter');
    if (pos !== limit) throw new CxrError('CXR_MALFORMED', `item elements overrun the item at offset ${pos}`);
    return { dataset: new DicomDataset(elements, this.#syntax.littleEndian, this.#utf8), end: limit };
  }

  #parsePixelData(header: { tag: number; vr: string; length: number; valueStart: number }): {
    pixelData: PixelDataElement;
    value: Uint8Array;
    end: number;
  } {
    this.#count();
    const bytes = this.#bytes;
    if (header.length !== UNDEFINED_LENGTH) {
      const end = header.valueStart + header.length;
      if (end > bytes.length) {
        // Native pixel data cut short: keep what is there; the decoder reports CXR_PIXEL_DATA_SHORT with sizes.
        const value = bytes.subarray(header.valueStart);
        return { pixelData: { encapsulated: false, bytes: value, vr: header.vr }, value, end: bytes.length };
      }
      const value = bytes.subarray(header.valueStart, end);
      return { pixelData: { encapsulated: false, bytes: value, vr: header.vr }, value, end };
    }
    let pos = header.valueStart;
    let basicOffsetTable: Uint8Array | undefined;
    const fragments: Uint8Array[] = [];
    for (;;) {
      if (pos + 8 > bytes.length) throw new CxrError('CXR_TRUNCATED', 'encapsulated Pixel Data ends without its delimiter');
      const tag = ((this.#view.getUint16(pos, true) << 16) | this.#view.getUint16(pos + 2, true)) >>> 0;
      const length = this.#view.getUint32(pos + 4, true);
      pos += 8;
      if (tag === Tag.SequenceDelimitationItem) break;
      if (tag !== Tag.Item) throw new CxrError('CXR_MALFORMED', `expected a pixel data item, found ${formatTag(tag)}`);
      if (length === UNDEFINED_LENGTH || pos + length > bytes.length) {
        throw new CxrError('CXR_TRUNCATED', `pixel data fragment of ${length} bytes at offset ${pos}`);
      }
      const item = bytes.subarray(pos, pos + length);
      if (basicOffsetTable === undefined) basicOffsetTable = item;
      else {
        fragments.push(item);
        if (fragments.length > this.#limits.maxFragments) {
          throw new CxrError('CXR_LIMIT_EXCEEDED', `more than ${this.#limits.maxFragments} pixel data fragments`);
        }
      }
      pos += length;
    }
    return {
      pixelData: { encapsulated: true, basicOffsetTable: basicOffsetTable ?? new Uint8Array(0), fragments },
      value: bytes.subarray(header.valueStart, pos),
      end: pos,
    };
  }
}

function readUint16(bytes: Uint8Array, pos: number, littleEndian: boolean): number {
  const a = bytes[pos] ?? 0;
  const b = bytes[pos + 1] ?? 0;
  return littleEndian ? a | (b << 8) : (a << 8) | b;
}

function ascii(bytes: Uint8Array, pos: number, length: number): string {
  let out = '';
  for (let i = pos; i < pos + length && i < bytes.length; i++) out += String.fromCharCode(bytes[i] ?? 0);
  return out;
}

function printable(text: string): string {
  return text.replace(/[^\x20-\x7e]/gu, '?');
}

function isZeroPadding(bytes: Uint8Array, pos: number): boolean {
  for (let i = pos; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
