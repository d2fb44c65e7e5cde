import { constants as zlibConstants, inflateRawSync } from 'node:zlib';
import { CxrError, boundedDetail } from '../errors/index.js';
import { DicomDataset, type DicomElement } from './dataset.js';
import { Tag, formatTag, implicitSequenceTags } from './tags.js';
import { TransferSyntax, isKnownTransferSyntax, transferSyntaxName } from './uids.js';

/** Safety limits: a hostile file fails with CXR_LIMIT_EXCEEDED instead of exhausting the stack or memory. */
export interface ParseLimits {
  /** Deepest sequence nesting accepted. Default 16. */
  readonly maxDepth: number;
  /** Most elements (all levels together). Default 250 000. */
  readonly maxElements: number;
  /**
   * Largest inflated size of a Deflated Explicit VR dataset, in bytes. Default 256 MiB. Tighter still when the header
   * says how big its Pixel Data is: the inflate stops a little past what the header declares.
   */
  readonly maxInflatedBytes: number;
  /** Most encapsulated pixel data fragments. Default 100 000. */
  readonly maxFragments: number;
  /**
   * Largest frame, Rows x Columns x SamplesPerPixel x BitsAllocated / 8, in bytes. Default 128 MiB (an 8192 x 8192
   * 16-bit frame; the largest radiographs are about 4300 x 4300). Checked from the header before a deflated dataset is
   * inflated and before any pixel buffer is allocated (readImageInfo).
   */
  readonly maxFrameBytes: number;
}

export const defaultParseLimits: ParseLimits = {
  maxDepth: 16,
  maxElements: 250_000,
  maxInflatedBytes: 256 * 1024 * 1024,
  maxFragments: 100_000,
  maxFrameBytes: 128 * 1024 * 1024,
};

/** Bytes a deflated dataset may hold past the end of its Pixel Data (trailing padding, a few private elements). */
const INFLATE_SLACK_BYTES = 16 * 1024 * 1024;
/**
 * The header of a deflated dataset is read from its first 4 KiB of compressed bytes, then 16, 64, 256 KiB and 1 MiB
 * while the Pixel Data element is not reached, each read stopping at 8 MiB inflated.
 */
const HEADER_PROBE_FIRST_BYTES = 4 * 1024;
const HEADER_PROBE_LAST_BYTES = 1024 * 1024;
const HEADER_PROBE_MAX_OUTPUT = 8 * 1024 * 1024;

/** Bytes of one frame, as the header declares it; undefined when a pixel module attribute is missing. */
export function declaredFrameBytes(ds: DicomDataset): number | undefined {
  const rows = ds.uint16(Tag.Rows);
  const columns = ds.uint16(Tag.Columns);
  const bitsAllocated = ds.uint16(Tag.BitsAllocated);
  if (rows === undefined || columns === undefined || bitsAllocated === undefined) return undefined;
  return Math.ceil((rows * columns * (ds.uint16(Tag.SamplesPerPixel) ?? 1) * bitsAllocated) / 8);
}

export function frameTooLarge(frameBytes: number, limits: Pick<ParseLimits, 'maxFrameBytes'>): CxrError {
  return new CxrError('CXR_LIMIT_EXCEEDED', `Rows x Columns x SamplesPerPixel x BitsAllocated make a frame of ${frameBytes} bytes, more than ${limits.maxFrameBytes}`);
}

export type PixelDataElement =
  | {
      readonly encapsulated: false;
      readonly bytes: Uint8Array;
      readonly vr: string;
      /** The length the element declares; more than `bytes.length` when the file ends inside it (cut short). */
      readonly declaredLength: number;
    }
  | {
      readonly encapsulated: true;
      readonly basicOffsetTable: Uint8Array;
      readonly fragments: readonly Uint8Array[];
    };

export interface ParsedDicom {
  readonly transferSyntaxUid: string;
  /**
   * True when File Meta Information (group 0002) was read, as in Part 10 files; false for headerless ACR-NEMA style
   * files (and for the rare file with a preamble and "DICM" but no File Meta), whose transfer syntax is inferred.
   */
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

const implicitLittleEndian: Syntax = { explicitVr: false, littleEndian: true };
const explicitLittleEndian: Syntax = { explicitVr: true, littleEndian: true };

function syntaxOf(uid: string): Syntax {
  if (uid === TransferSyntax.ImplicitVRLittleEndian) return { explicitVr: false, littleEndian: true };
  if (uid === TransferSyntax.ExplicitVRBigEndian) return { explicitVr: true, littleEndian: false };
  // Every other syntax, the compressed ones included, encodes the dataset as Explicit VR Little Endian.
  return { explicitVr: true, littleEndian: true };
}

/**
 * Parses a DICOM Part 10 file or a headerless ACR-NEMA style stream. Values stay views into `bytes`.
 * Every failure is a CxrError: malformed input never escapes as a RangeError or a stack overflow.
 */
export function parseDicom(bytes: Uint8Array, limits: ParseLimits = defaultParseLimits): ParsedDicom {
  try {
    return parse(bytes, limits);
  } catch (err) {
    if (err instanceof CxrError) throw err;
    if (err instanceof RangeError && /call stack/iu.test(err.message)) {
      throw new CxrError('CXR_LIMIT_EXCEEDED', 'sequences nested too deeply for the stack', { cause: err });
    }
    throw new CxrError('CXR_MALFORMED', boundedDetail(err), { cause: err });
  }
}

function parse(bytes: Uint8Array, limits: ParseLimits): ParsedDicom {
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
  if (startsWithMeta) {
    // File Meta is Explicit VR Little Endian; a few old writers used Implicit VR, told apart by the missing VR.
    const metaSyntax = ALL_VRS.has(ascii(bytes, metaStart + 4, 2)) ? explicitLittleEndian : implicitLittleEndian;
    const metaParser = new Parser(bytes, metaSyntax, limits, counter);
    const metaResult = metaParser.parseMetaGroup(metaStart);
    meta = metaResult.dataset;
    datasetStart = metaResult.end;
    const ts = meta.string(Tag.TransferSyntaxUid);
    if (ts) transferSyntaxUid = ts;
    else {
      // No Transfer Syntax UID: infer it from the dataset's first element, as for headerless files.
      if (datasetStart + 8 > bytes.length) throw new CxrError('CXR_TRUNCATED', 'the file ends after its File Meta Information');
      transferSyntaxUid = guessHeaderlessSyntax(bytes, datasetStart, 'CXR_MALFORMED');
    }
  } else if (hasPreamble || bareMagic) {
    // "DICM" promises File Meta. Without it the file is cut short, or was written with the dataset straight after.
    if (metaStart + 8 > bytes.length) throw new CxrError('CXR_TRUNCATED', 'File Meta Information missing');
    transferSyntaxUid = guessHeaderlessSyntax(bytes, metaStart, 'CXR_MALFORMED');
  } else {
    transferSyntaxUid = guessHeaderlessSyntax(bytes, 0, 'CXR_NOT_DICOM');
  }

  let body = bytes;
  if (transferSyntaxUid === TransferSyntax.DeflatedExplicitVRLittleEndian) {
    body = inflateDataset(bytes.subarray(datasetStart), limits);
    datasetStart = 0;
  }

  let syntax = syntaxOf(transferSyntaxUid);
  // A common writer bug: the meta says one VR encoding and the dataset uses the other. Trust the first element.
  if (syntax.littleEndian && datasetStart + 8 <= body.length) {
    const looksExplicit = ALL_VRS.has(ascii(body, datasetStart + 4, 2));
    if (looksExplicit !== syntax.explicitVr && readUint16(body, datasetStart, true) !== 0xfffe) {
      syntax = looksExplicit ? explicitLittleEndian : implicitLittleEndian;
    }
  }

  let dataset: DicomDataset;
  let pixelData: PixelDataElement | undefined;
  try {
    ({ dataset, pixelData } = new Parser(body, syntax, limits, counter).parseTopLevel(datasetStart));
  } catch (err) {
    // An unknown syntax may not encode its dataset as Explicit VR Little Endian: say what the real problem is.
    if (err instanceof CxrError && (err.code === 'CXR_MALFORMED' || err.code === 'CXR_TRUNCATED') && !isKnownTransferSyntax(transferSyntaxUid)) {
      throw new CxrError('CXR_UNSUPPORTED_TRANSFER_SYNTAX', `${transferSyntaxName(transferSyntaxUid)} (${err.message})`, { cause: err });
    }
    throw err;
  }
  if (dataset.tags().length === 0) {
    if (meta) throw new CxrError('CXR_TRUNCATED', 'the file ends after its File Meta Information');
    throw new CxrError('CXR_NOT_DICOM', 'no DICOM elements found');
  }
  return { transferSyntaxUid, hasFileMeta: meta !== undefined, meta, dataset, pixelData };
}

/**
 * Inflates a Deflated Explicit VR Little Endian dataset, bounded before it runs: the header (inflated from the first
 * few KiB) says how large the frame and the Pixel Data are, a frame above `maxFrameBytes` or Pixel Data beyond
 * `maxInflatedBytes` is refused at once, and the inflate stops a little past the declared end. A bomb costs a few MiB.
 */
function inflateDataset(deflated: Uint8Array, limits: ParseLimits): Uint8Array {
  const maxOutputLength = inflateBound(deflated, limits);
  let out: Buffer;
  try {
    out = inflateRawSync(deflated, { maxOutputLength, chunkSize: 64 * 1024 });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const message = boundedDetail(err);
    if (code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
      throw new CxrError('CXR_LIMIT_EXCEEDED', `deflated dataset inflates beyond ${maxOutputLength} bytes`, { cause: err });
    }
    // zlib reports a stream that stops early as Z_BUF_ERROR ("unexpected end of file").
    if (code === 'Z_BUF_ERROR') throw new CxrError('CXR_TRUNCATED', `deflated dataset: ${message}`, { cause: err });
    throw new CxrError('CXR_MALFORMED', `deflated dataset: ${message}`, { cause: err });
  }
  // A view, not a copy: the inflated dataset can be large.
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/** The most a deflated dataset may inflate to, from what its header declares; throws when that is already too much. */
function inflateBound(deflated: Uint8Array, limits: ParseLimits): number {
  const { dataset, pixelData } = deflatedHeader(deflated, limits);
  const frameBytes = declaredFrameBytes(dataset);
  if (frameBytes !== undefined && frameBytes > limits.maxFrameBytes) throw frameTooLarge(frameBytes, limits);
  if (!pixelData || pixelData.length === UNDEFINED_LENGTH) return limits.maxInflatedBytes;
  const declaredEnd = pixelData.valueStart + pixelData.length;
  if (declaredEnd > limits.maxInflatedBytes) {
    throw new CxrError('CXR_LIMIT_EXCEEDED', `deflated dataset declares Pixel Data of ${pixelData.length} bytes, more than ${limits.maxInflatedBytes} in all`);
  }
  return Math.min(limits.maxInflatedBytes, declaredEnd + INFLATE_SLACK_BYTES);
}

/** The top-level elements before Pixel Data of a deflated dataset, from as little of the stream as reaches them. */
function deflatedHeader(deflated: Uint8Array, limits: ParseLimits): ReturnType<Parser['parseHeaderPrefix']> {
  let header: ReturnType<Parser['parseHeaderPrefix']> = { dataset: new DicomDataset(new Map(), true), pixelData: undefined };
  for (let input = HEADER_PROBE_FIRST_BYTES; ; input *= 4) {
    let head: Buffer;
    try {
      // A prefix of the stream, flushed: what those bytes give, without an error for the rest that is missing.
      head = inflateRawSync(deflated.subarray(0, input), { finishFlush: zlibConstants.Z_SYNC_FLUSH, maxOutputLength: HEADER_PROBE_MAX_OUTPUT });
    } catch {
      // Past 8 MiB before the Pixel Data (or a damaged stream, which the whole inflate reports): what was read is all.
      return header;
    }
    const view = new Uint8Array(head.buffer, head.byteOffset, head.byteLength);
    // The same writer bug parse() allows: an Implicit VR dataset under the Deflated syntax.
    const syntax = view.length >= 8 && !ALL_VRS.has(ascii(view, 4, 2)) ? implicitLittleEndian : explicitLittleEndian;
    try {
      header = new Parser(view, syntax, limits, { elements: 0 }).parseHeaderPrefix(0);
    } catch {
      // A header this cannot read: the whole parse reports it, under the general bound.
      return header;
    }
    if (header.pixelData || input >= deflated.length || input >= HEADER_PROBE_LAST_BYTES) return header;
  }
}

const HEADERLESS_GROUPS = new Set([0x0000, 0x0008, 0x0010, 0x0018, 0x0020, 0x0028]);

/**
 * Headerless files carry no transfer syntax: tell Implicit from Explicit VR by whether a VR follows the tag, and
 * the byte order by which reading of the first group is plausible.
 */
function guessHeaderlessSyntax(bytes: Uint8Array, start: number, failure: 'CXR_NOT_DICOM' | 'CXR_MALFORMED'): string {
  if (bytes.length < start + 8) throw new CxrError(failure, 'too short to be DICOM');
  // Eight zero bytes would read as an empty (0000,0000) element, forever: a zero-filled file is not DICOM.
  let allZero = true;
  for (let i = start; i < start + 8; i++) if (bytes[i] !== 0) allZero = false;
  if (allZero) throw new CxrError(failure, `zero bytes where the first element should be (offset ${start})`);
  const groupLe = readUint16(bytes, start, true);
  const groupBe = readUint16(bytes, start, false);
  const vr = ascii(bytes, start + 4, 2);
  if (HEADERLESS_GROUPS.has(groupLe)) {
    return ALL_VRS.has(vr) ? TransferSyntax.ExplicitVRLittleEndian : TransferSyntax.ImplicitVRLittleEndian;
  }
  if (HEADERLESS_GROUPS.has(groupBe) && ALL_VRS.has(vr)) return TransferSyntax.ExplicitVRBigEndian;
  throw new CxrError(failure, 'no DICM marker and no recognisable first element');
}

class Parser {
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #syntax: Syntax;
  readonly #limits: ParseLimits;
  readonly #counter: { elements: number };
  #utf8 = false;

  constructor(bytes: Uint8Array, syntax: Syntax, limits: ParseLimits, counter: { elements: number }, utf8 = false) {
    this.#bytes = bytes;
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.#syntax = syntax;
    this.#limits = limits;
    this.#counter = counter;
    this.#utf8 = utf8;
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
        this.#count();
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

  /**
   * The top-level elements before Pixel Data in what may be only the start of a dataset: stops at the Pixel Data
   * element (giving where its value starts and its declared length) or where the bytes run out.
   */
  parseHeaderPrefix(start: number): { dataset: DicomDataset; pixelData: { valueStart: number; length: number } | undefined } {
    const elements = new Map<number, DicomElement>();
    const done = (pixelData?: { valueStart: number; length: number }): { dataset: DicomDataset; pixelData: { valueStart: number; length: number } | undefined } => ({
      dataset: new DicomDataset(elements, this.#syntax.littleEndian, this.#utf8),
      pixelData,
    });
    let pos = start;
    try {
      while (pos + 8 <= this.#bytes.length) {
        const header = this.#readHeader(pos);
        if (header.tag === Tag.PixelData) return done({ valueStart: header.valueStart, length: header.length });
        const el = this.#parseElement(header, 0);
        elements.set(header.tag, el.element);
        pos = el.end;
      }
    } catch (err) {
      // The prefix ended inside an element: what came before is the header read so far.
      if (!(err instanceof CxrError && err.code === 'CXR_TRUNCATED')) throw err;
    }
    return done();
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
    // Each parser reads one byte order: File Meta and undefined-length UN content get their own little endian parser.
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
      // The two bytes are not named: where the structure is lost they may be part of a patient's name.
      throw new CxrError('CXR_MALFORMED', `no valid VR for ${formatTag(tag)} at offset ${pos}`);
    }
    if (LONG_LENGTH_VRS.has(vr)) {
      if (pos + 12 > bytes.length) throw new CxrError('CXR_TRUNCATED', `element header at offset ${pos}`);
      return { tag, vr, length: this.#view.getUint32(pos + 8, le), valueStart: pos + 12 };
    }
    return { tag, vr, length: this.#view.getUint16(pos + 6, le), valueStart: pos + 8 };
  }

  #isSequence(header: { tag: number; vr: string; length: number; valueStart: number }): boolean {
    if (header.vr === 'SQ') return true;
    if (header.vr !== '') return false;
    if (header.length === UNDEFINED_LENGTH || implicitSequenceTags.has(header.tag)) return true;
    return this.#startsWithItem(header);
  }

  /**
   * Implicit VR gives no VR: a defined-length value of a tag this parser does not know is a sequence when it opens
   * with an Item whose length fits (as pydicom decides). Binary values that could start that way by chance are not.
   */
  #startsWithItem(header: { tag: number; length: number; valueStart: number }): boolean {
    const group = header.tag >>> 16;
    if (header.tag === Tag.PixelData || header.tag === Tag.LutData || (group & 0xff00) === 0x6000) return false;
    if (header.length < 8 || header.valueStart + 8 > this.#bytes.length) return false;
    const le = this.#syntax.littleEndian;
    const tag = ((this.#view.getUint16(header.valueStart, le) << 16) | this.#view.getUint16(header.valueStart + 2, le)) >>> 0;
    if (tag !== Tag.Item) return false;
    const itemLength = this.#view.getUint32(header.valueStart + 4, le);
    return itemLength === UNDEFINED_LENGTH || itemLength <= header.length - 8;
  }

  #parseElement(
    header: { tag: number; vr: string; length: number; valueStart: number },
    depth: number,
  ): { element: DicomElement; end: number } {
    this.#count();
    if (header.tag === Tag.PixelData && header.length === UNDEFINED_LENGTH) {
      // Encapsulated Pixel Data inside an item (an Icon Image Sequence of a compressed file): fragments, not items.
      const parsed = this.#parsePixelData(header);
      return { element: { tag: header.tag, vr: header.vr || 'OB', value: parsed.value }, end: parsed.end };
    }
    if (header.vr === 'UN' && header.length === UNDEFINED_LENGTH) {
      // PS3.5 6.2.2: an undefined-length UN is a sequence encoded as Implicit VR Little Endian.
      const implicit = new Parser(this.#bytes, implicitLittleEndian, this.#limits, this.#counter, this.#utf8);
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
    const bytes = this.#bytes;
    if (header.length !== UNDEFINED_LENGTH) {
      const end = header.valueStart + header.length;
      if (end > bytes.length) {
        // Native pixel data cut short: keep what is there; the decoder reports CXR_PIXEL_DATA_SHORT with sizes.
        const value = bytes.subarray(header.valueStart);
        return { pixelData: { encapsulated: false, bytes: value, vr: header.vr, declaredLength: header.length }, value, end: bytes.length };
      }
      const value = bytes.subarray(header.valueStart, end);
      return { pixelData: { encapsulated: false, bytes: value, vr: header.vr, declaredLength: header.length }, value, end };
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

function isZeroPadding(bytes: Uint8Array, pos: number): boolean {
  for (let i = pos; i < bytes.length; i++) if (bytes[i] !== 0) return false;
  return true;
}
