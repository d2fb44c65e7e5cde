/**
 * A small DICOM writer: Part 10 files from a list of elements, in Explicit or Implicit VR, little or big endian,
 * optionally deflated, with native or encapsulated Pixel Data. Values are written as given (already encoded in the
 * dataset's byte order), so elements copied from a parsed file keep their bytes. Sequences and items are written
 * with undefined length, which every reader accepts and which needs no size pass.
 *
 * Written here rather than through dcmjs: de-identification must copy unknown and legacy values byte for byte and
 * keep encapsulated fragments as they are, and dcmjs re-encodes every value it reads.
 */
import { deflateRawSync } from 'node:zlib';

export const TransferSyntaxUid = {
  ImplicitLittle: '1.2.840.10008.1.2',
  ExplicitLittle: '1.2.840.10008.1.2.1',
  DeflatedExplicitLittle: '1.2.840.10008.1.2.1.99',
  ExplicitBig: '1.2.840.10008.1.2.2',
  RleLossless: '1.2.840.10008.1.2.5',
  JpegLosslessSV1: '1.2.840.10008.1.2.4.70',
  JpegLsLossless: '1.2.840.10008.1.2.4.80',
  Jpeg2000Lossless: '1.2.840.10008.1.2.4.90',
} as const;

/** Our implementation's UID and name in every File Meta we write (a 2.25 UUID-derived root). */
export const ImplementationClassUid = '2.25.330475989296787227499134882272002363396';
export const ImplementationVersionName = 'CXR_DATASETS_1';

export interface Encoding {
  readonly explicitVr: boolean;
  readonly littleEndian: boolean;
  readonly deflated: boolean;
}

/** How a transfer syntax encodes the dataset: compressed syntaxes encode it as Explicit VR Little Endian. */
export function encodingOf(transferSyntaxUid: string): Encoding {
  if (transferSyntaxUid === TransferSyntaxUid.ImplicitLittle) return { explicitVr: false, littleEndian: true, deflated: false };
  if (transferSyntaxUid === TransferSyntaxUid.ExplicitBig) return { explicitVr: true, littleEndian: false, deflated: false };
  if (transferSyntaxUid === TransferSyntaxUid.DeflatedExplicitLittle) return { explicitVr: true, littleEndian: true, deflated: true };
  return { explicitVr: true, littleEndian: true, deflated: false };
}

export type ElementValue =
  /** Value bytes in the dataset's byte order, without padding (the writer pads to even length). */
  | { readonly kind: 'bytes'; readonly bytes: Uint8Array }
  | { readonly kind: 'sequence'; readonly items: readonly (readonly DataElement[])[] }
  /** Encapsulated Pixel Data: the Basic Offset Table item, then each fragment as one item, bytes as given. */
  | { readonly kind: 'encapsulated'; readonly offsetTable: Uint8Array; readonly fragments: readonly Uint8Array[] };

export interface DataElement {
  readonly tag: number;
  /** The VR; '' is allowed only for Implicit VR output (elements copied from Implicit VR files). */
  readonly vr: string;
  readonly value: ElementValue;
}

const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);
const UNDEFINED_LENGTH = 0xffffffff;
const ITEM = 0xfffee000;
const ITEM_DELIMITATION = 0xfffee00d;
const SEQUENCE_DELIMITATION = 0xfffee0dd;

const utf8 = new TextEncoder();

/** A text value (padded by the writer: UI with NUL, other text with a space). */
export function text(tag: number, vr: string, value: string): DataElement {
  return { tag, vr, value: { kind: 'bytes', bytes: utf8.encode(value) } };
}

export function uint16(tag: number, littleEndian: boolean, ...values: number[]): DataElement {
  const bytes = new Uint8Array(values.length * 2);
  const view = new DataView(bytes.buffer);
  values.forEach((v, i) => view.setUint16(i * 2, v, littleEndian));
  return { tag, vr: 'US', value: { kind: 'bytes', bytes } };
}

export function sequence(tag: number, items: readonly (readonly DataElement[])[]): DataElement {
  return { tag, vr: 'SQ', value: { kind: 'sequence', items } };
}

export function bytesElement(tag: number, vr: string, bytes: Uint8Array): DataElement {
  return { tag, vr, value: { kind: 'bytes', bytes } };
}

class ByteSink {
  readonly chunks: Uint8Array[] = [];
  length = 0;
  readonly #littleEndian: boolean;

  constructor(littleEndian: boolean) {
    this.#littleEndian = littleEndian;
  }

  bytes(b: Uint8Array): void {
    this.chunks.push(b);
    this.length += b.length;
  }

  tag(tag: number): void {
    const b = new Uint8Array(4);
    const view = new DataView(b.buffer);
    view.setUint16(0, tag >>> 16, this.#littleEndian);
    view.setUint16(2, tag & 0xffff, this.#littleEndian);
    this.bytes(b);
  }

  u16(v: number): void {
    const b = new Uint8Array(2);
    new DataView(b.buffer).setUint16(0, v, this.#littleEndian);
    this.bytes(b);
  }

  u32(v: number): void {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setUint32(0, v, this.#littleEndian);
    this.bytes(b);
  }

  ascii(s: string): void {
    this.bytes(utf8.encode(s));
  }

  concat(): Uint8Array {
    return Buffer.concat(this.chunks, this.length);
  }
}

function compareTags(a: DataElement, b: DataElement): number {
  return (a.tag >>> 0) - (b.tag >>> 0);
}

function padded(el: DataElement, bytes: Uint8Array): Uint8Array {
  if (bytes.length % 2 === 0) return bytes;
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  out[bytes.length] = el.vr === 'UI' || el.vr === 'OB' || el.vr === 'UN' || el.vr === '' ? 0 : 0x20;
  return out;
}

function writeHeader(sink: ByteSink, encoding: Encoding, tag: number, vr: string, length: number): void {
  sink.tag(tag);
  if (!encoding.explicitVr) {
    sink.u32(length);
    return;
  }
  if (vr.length !== 2) throw new Error(`element ${tag.toString(16).padStart(8, '0')} has no VR for an Explicit VR dataset`);
  sink.ascii(vr);
  if (LONG_LENGTH_VRS.has(vr)) {
    sink.u16(0);
    sink.u32(length);
  } else {
    if (length > 0xffff) throw new Error(`element ${tag.toString(16).padStart(8, '0')} (${vr}) is too long for its VR: ${length} bytes`);
    sink.u16(length);
  }
}

function writeElements(sink: ByteSink, encoding: Encoding, elements: readonly DataElement[]): void {
  for (const el of [...elements].sort(compareTags)) {
    const { value } = el;
    switch (value.kind) {
      case 'bytes': {
        const bytes = padded(el, value.bytes);
        writeHeader(sink, encoding, el.tag, el.vr, bytes.length);
        sink.bytes(bytes);
        break;
      }
      case 'sequence': {
        writeHeader(sink, encoding, el.tag, 'SQ', UNDEFINED_LENGTH);
        for (const item of value.items) {
          sink.tag(ITEM);
          sink.u32(UNDEFINED_LENGTH);
          writeElements(sink, encoding, item);
          sink.tag(ITEM_DELIMITATION);
          sink.u32(0);
        }
        sink.tag(SEQUENCE_DELIMITATION);
        sink.u32(0);
        break;
      }
      case 'encapsulated': {
        writeHeader(sink, encoding, el.tag, el.vr === '' ? 'OB' : el.vr, UNDEFINED_LENGTH);
        // Fragments go out exactly as given: their bytes are the compressed image.
        for (const fragment of [value.offsetTable, ...value.fragments]) {
          sink.tag(ITEM);
          sink.u32(fragment.length);
          sink.bytes(fragment);
        }
        sink.tag(SEQUENCE_DELIMITATION);
        sink.u32(0);
        break;
      }
    }
  }
}

/** The dataset alone, encoded as `transferSyntaxUid` says (deflated when it says so). */
export function encodeDataset(elements: readonly DataElement[], transferSyntaxUid: string): Uint8Array {
  const encoding = encodingOf(transferSyntaxUid);
  const sink = new ByteSink(encoding.littleEndian);
  writeElements(sink, encoding, elements);
  const body = sink.concat();
  return encoding.deflated ? deflateRawSync(body) : body;
}

export interface FileMeta {
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly transferSyntaxUid: string;
}

/** The File Meta Information group (always Explicit VR Little Endian), group length first. */
export function encodeFileMeta(meta: FileMeta): Uint8Array {
  const encoding: Encoding = { explicitVr: true, littleEndian: true, deflated: false };
  const content = new ByteSink(true);
  writeElements(content, encoding, [
    bytesElement(0x00020001, 'OB', Uint8Array.of(0, 1)),
    text(0x00020002, 'UI', meta.sopClassUid),
    text(0x00020003, 'UI', meta.sopInstanceUid),
    text(0x00020010, 'UI', meta.transferSyntaxUid),
    text(0x00020012, 'UI', ImplementationClassUid),
    text(0x00020013, 'SH', ImplementationVersionName),
  ]);
  const group = new ByteSink(true);
  writeHeader(group, encoding, 0x00020000, 'UL', 4);
  group.u32(content.length);
  group.bytes(content.concat());
  return group.concat();
}

/** A Part 10 file: 128-byte preamble, "DICM", File Meta, dataset. */
export function encodePart10(meta: FileMeta, elements: readonly DataElement[]): Uint8Array {
  const preamble = new Uint8Array(132);
  preamble.set(utf8.encode('DICM'), 128);
  return Buffer.concat([preamble, encodeFileMeta(meta), encodeDataset(elements, meta.transferSyntaxUid)]);
}
