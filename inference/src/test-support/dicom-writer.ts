/**
 * A tiny DICOM writer for tests: builds Part 10 files (or bare datasets) from a list of elements, in Explicit VR
 * Little Endian, Implicit VR Little Endian, Explicit VR Big Endian or Deflated Explicit VR Little Endian, with
 * native or encapsulated Pixel Data and sequences of defined or undefined length. It writes what it is told,
 * in the order it is told: hostile files (wrong lengths, raw bytes, made-up UIDs) are as easy as valid ones.
 */
import { createWriteStream } from 'node:fs';
import { once } from 'node:events';
import { createDeflateRaw, deflateRawSync } from 'node:zlib';

export const UNDEFINED_LENGTH = 0xffffffff;

export const Syntax = {
  ImplicitLE: '1.2.840.10008.1.2',
  ExplicitLE: '1.2.840.10008.1.2.1',
  DeflatedLE: '1.2.840.10008.1.2.1.99',
  ExplicitBE: '1.2.840.10008.1.2.2',
} as const;

export interface Encoding {
  readonly explicitVr: boolean;
  readonly littleEndian: boolean;
}

export const implicitLE: Encoding = { explicitVr: false, littleEndian: true };
export const explicitLE: Encoding = { explicitVr: true, littleEndian: true };
export const explicitBE: Encoding = { explicitVr: true, littleEndian: false };

/** How a dataset is encoded under a transfer syntax (anything not implicit/big endian is explicit LE). */
export function encodingOf(transferSyntaxUid: string): Encoding {
  if (transferSyntaxUid === Syntax.ImplicitLE) return implicitLE;
  if (transferSyntaxUid === Syntax.ExplicitBE) return explicitBE;
  return explicitLE;
}

export interface WriterItem {
  readonly elements: readonly WriterNode[];
  /** Write the item with undefined length and an Item Delimitation Item. */
  readonly undefinedLength?: boolean;
}

export type WriterValue =
  | { readonly type: 'text'; readonly text: string }
  | { readonly type: 'u16'; readonly values: ArrayLike<number> }
  | { readonly type: 'u32'; readonly values: ArrayLike<number> }
  | { readonly type: 'bytes'; readonly bytes: Uint8Array }
  | { readonly type: 'seq'; readonly items: readonly WriterItem[] }
  | { readonly type: 'encapsulated'; readonly offsetTable: Uint8Array; readonly fragments: readonly Uint8Array[] };

export interface WriterElement {
  readonly kind: 'element';
  readonly tag: number;
  readonly vr: string;
  readonly value: WriterValue;
  /** Undefined length (sequences, encapsulated Pixel Data, UN sequences). */
  readonly undefinedLength?: boolean;
  /** Write this length in the header instead of the real one (hostile files). The value is still written. */
  readonly lengthOverride?: number;
}

/** Bytes copied verbatim into the stream: hand-made headers, junk, deep nesting. */
export interface WriterRaw {
  readonly kind: 'raw';
  readonly bytes: Uint8Array;
}

export type WriterNode = WriterElement | WriterRaw;

// ---------------------------------------------------------------------------------------------------------------
// Element builders

export function text(tag: number, vr: string, value: string): WriterElement {
  return { kind: 'element', tag, vr, value: { type: 'text', text: value } };
}

export function us(tag: number, ...values: number[]): WriterElement {
  return { kind: 'element', tag, vr: 'US', value: { type: 'u16', values } };
}

export function ul(tag: number, ...values: number[]): WriterElement {
  return { kind: 'element', tag, vr: 'UL', value: { type: 'u32', values } };
}

/** 16-bit words (OW/US/SS): written in the dataset's byte order. */
export function words(tag: number, vr: string, values: ArrayLike<number>): WriterElement {
  return { kind: 'element', tag, vr, value: { type: 'u16', values } };
}

/** Bytes written as they are, whatever the byte order (OB, UN, or a hand-encoded value). */
export function bytes(tag: number, vr: string, value: Uint8Array): WriterElement {
  return { kind: 'element', tag, vr, value: { type: 'bytes', bytes: value } };
}

export function item(elements: readonly WriterNode[], undefinedLength = false): WriterItem {
  return { elements, undefinedLength };
}

/**
 * A sequence. `vr: 'UN'` with `undefinedLength` writes it as PS3.5 6.2.2 says: a UN header, then the items in
 * Implicit VR Little Endian whatever the dataset's encoding.
 */
export function sq(
  tag: number,
  items: readonly (WriterItem | readonly WriterNode[])[],
  options: { undefinedLength?: boolean; itemsUndefinedLength?: boolean; vr?: 'SQ' | 'UN' } = {},
): WriterElement {
  const normalised = items.map((it): WriterItem => ('elements' in it ? it : { elements: it, undefinedLength: options.itemsUndefinedLength ?? false }));
  return { kind: 'element', tag, vr: options.vr ?? 'SQ', value: { type: 'seq', items: normalised }, undefinedLength: options.undefinedLength ?? false };
}

export const PIXEL_DATA = 0x7fe00010;

/** Native 16-bit Pixel Data (OW), written in the dataset's byte order. */
export function pixelWords(values: ArrayLike<number>): WriterElement {
  return words(PIXEL_DATA, 'OW', values);
}

/** Native 8-bit (or any byte-exact) Pixel Data. */
export function pixelBytes(value: Uint8Array, vr = 'OB'): WriterElement {
  return bytes(PIXEL_DATA, vr, value);
}

/** Encapsulated Pixel Data: a Basic Offset Table item (given as offsets or raw bytes; none = empty), fragments, delimiter. */
export function encapsulated(fragments: readonly Uint8Array[], offsetTable: readonly number[] | Uint8Array = []): WriterElement {
  let table: Uint8Array;
  if (offsetTable instanceof Uint8Array) table = offsetTable;
  else {
    table = new Uint8Array(offsetTable.length * 4);
    const view = new DataView(table.buffer);
    offsetTable.forEach((v, i) => view.setUint32(i * 4, v, true));
  }
  return { kind: 'element', tag: PIXEL_DATA, vr: 'OB', value: { type: 'encapsulated', offsetTable: table, fragments }, undefinedLength: true };
}

/** Basic Offset Table entries for fragments where each frame is one fragment (offsets from the first item tag). */
export function offsetsOf(frameFragments: readonly (readonly Uint8Array[])[]): number[] {
  const out: number[] = [];
  let pos = 0;
  for (const frame of frameFragments) {
    out.push(pos);
    for (const f of frame) pos += 8 + f.length + (f.length % 2);
  }
  return out;
}

export function raw(...parts: (Uint8Array | readonly number[])[]): WriterRaw {
  const chunks = parts.map((p) => (p instanceof Uint8Array ? p : Uint8Array.from(p)));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let pos = 0;
  for (const c of chunks) {
    out.set(c, pos);
    pos += c.length;
  }
  return { kind: 'raw', bytes: out };
}

/** A Part 10 file around hand-made File Meta bytes: preamble, "DICM", `meta`, then `dataset`. */
export function part10Raw(meta: Uint8Array, dataset: Uint8Array = new Uint8Array(0)): Uint8Array {
  const out = new Uint8Array(132 + meta.length + dataset.length);
  out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(meta, 132);
  out.set(dataset, 132 + meta.length);
  return out;
}

export const ImageTag = {
  SpecificCharacterSet: 0x00080005,
  SopClassUid: 0x00080016,
  SopInstanceUid: 0x00080018,
  Modality: 0x00080060,
  PatientName: 0x00100010,
  BodyPartExamined: 0x00180015,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  HighBit: 0x00280102,
  PixelRepresentation: 0x00280103,
  WindowCenter: 0x00281050,
  WindowWidth: 0x00281051,
  LutDescriptor: 0x00283002,
  LutExplanation: 0x00283003,
  LutData: 0x00283006,
  VoiLutSequence: 0x00283010,
} as const;

export interface PixelModule {
  rows: number;
  columns: number;
  bitsAllocated?: number;
  bitsStored?: number;
  highBit?: number;
  samplesPerPixel?: number;
  photometric?: string;
  pixelRepresentation?: number;
  frames?: number;
}

/** The Image Pixel Module elements (and a minimal identity) in tag order, before Pixel Data. */
export function imageModule(m: PixelModule): WriterElement[] {
  const bitsAllocated = m.bitsAllocated ?? 16;
  const bitsStored = m.bitsStored ?? bitsAllocated;
  const out: WriterElement[] = [
    text(ImageTag.SopClassUid, 'UI', '1.2.840.10008.5.1.4.1.1.1'),
    text(ImageTag.SopInstanceUid, 'UI', '1.2.826.0.1.3680043.2.1125.1.1'),
    text(ImageTag.Modality, 'CS', 'CR'),
    us(ImageTag.SamplesPerPixel, m.samplesPerPixel ?? 1),
    text(ImageTag.PhotometricInterpretation, 'CS', m.photometric ?? 'MONOCHROME2'),
  ];
  if (m.frames !== undefined) out.push(text(ImageTag.NumberOfFrames, 'IS', String(m.frames)));
  out.push(
    us(ImageTag.Rows, m.rows),
    us(ImageTag.Columns, m.columns),
    us(ImageTag.BitsAllocated, bitsAllocated),
    us(ImageTag.BitsStored, bitsStored),
    us(ImageTag.HighBit, m.highBit ?? bitsStored - 1),
    us(ImageTag.PixelRepresentation, m.pixelRepresentation ?? 0),
  );
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Encoding

const LONG_LENGTH_VRS = new Set(['OB', 'OD', 'OF', 'OL', 'OV', 'OW', 'SQ', 'SV', 'UC', 'UN', 'UR', 'UT', 'UV']);

class ByteSink {
  #chunks: Uint8Array[] = [];
  #length = 0;

  get length(): number {
    return this.#length;
  }

  push(chunk: Uint8Array): void {
    this.#chunks.push(chunk);
    this.#length += chunk.length;
  }

  bytes(): Uint8Array {
    const out = new Uint8Array(this.#length);
    let pos = 0;
    for (const c of this.#chunks) {
      out.set(c, pos);
      pos += c.length;
    }
    return out;
  }
}

/** An 8-byte tag + 32-bit length header, as items, delimiters and Implicit VR elements have. */
export function tagHeader(tag: number, length: number, littleEndian = true): Uint8Array {
  const out = new Uint8Array(8);
  const view = new DataView(out.buffer);
  view.setUint16(0, tag >>> 16, littleEndian);
  view.setUint16(2, tag & 0xffff, littleEndian);
  view.setUint32(4, length >>> 0, littleEndian);
  return out;
}

/** An element header in the given encoding (any length, undefined included). */
export function elementHeader(tag: number, vr: string, length: number, enc: Encoding = explicitLE): Uint8Array {
  if (!enc.explicitVr) return tagHeader(tag, length, enc.littleEndian);
  const long = LONG_LENGTH_VRS.has(vr);
  const out = new Uint8Array(long ? 12 : 8);
  const view = new DataView(out.buffer);
  view.setUint16(0, tag >>> 16, enc.littleEndian);
  view.setUint16(2, tag & 0xffff, enc.littleEndian);
  out[4] = vr.charCodeAt(0);
  out[5] = vr.charCodeAt(1);
  if (long) view.setUint32(8, length >>> 0, enc.littleEndian);
  else view.setUint16(6, length & 0xffff, enc.littleEndian);
  return out;
}

function encodeText(value: string, vr: string): Uint8Array {
  const body = new TextEncoder().encode(value);
  if (body.length % 2 === 0) return body;
  const out = new Uint8Array(body.length + 1);
  out.set(body);
  out[body.length] = vr === 'UI' ? 0 : 0x20;
  return out;
}

function encodeNumbers(values: ArrayLike<number>, size: 2 | 4, littleEndian: boolean): Uint8Array {
  const out = new Uint8Array(values.length * size);
  const view = new DataView(out.buffer);
  for (let i = 0; i < values.length; i++) {
    const v = values[i] ?? 0;
    if (size === 2) view.setUint16(i * 2, v & 0xffff, littleEndian);
    else view.setUint32(i * 4, v >>> 0, littleEndian);
  }
  return out;
}

function padEven(value: Uint8Array): Uint8Array {
  if (value.length % 2 === 0) return value;
  const out = new Uint8Array(value.length + 1);
  out.set(value);
  return out;
}

function writeItems(sink: ByteSink, items: readonly WriterItem[], enc: Encoding): void {
  for (const it of items) {
    const body = writeDataset(it.elements, enc);
    sink.push(tagHeader(0xfffee000, it.undefinedLength ? UNDEFINED_LENGTH : body.length, enc.littleEndian));
    sink.push(body);
    if (it.undefinedLength) sink.push(tagHeader(0xfffee00d, 0, enc.littleEndian));
  }
}

function writeElement(sink: ByteSink, el: WriterElement, enc: Encoding): void {
  const { value } = el;
  if (value.type === 'seq') {
    // An undefined-length UN sequence is always Implicit VR Little Endian inside.
    const inner = el.vr === 'UN' && el.undefinedLength ? implicitLE : enc;
    const itemSink = new ByteSink();
    writeItems(itemSink, value.items, inner);
    const body = itemSink.bytes();
    const length = el.lengthOverride ?? (el.undefinedLength ? UNDEFINED_LENGTH : body.length);
    sink.push(elementHeader(el.tag, el.vr, length, enc));
    sink.push(body);
    if (el.undefinedLength) sink.push(tagHeader(0xfffee0dd, 0, inner.littleEndian));
    return;
  }
  if (value.type === 'encapsulated') {
    sink.push(elementHeader(el.tag, el.vr, el.lengthOverride ?? UNDEFINED_LENGTH, enc));
    // Encapsulated items are always little endian (only little endian syntaxes encapsulate).
    sink.push(tagHeader(0xfffee000, value.offsetTable.length, true));
    sink.push(value.offsetTable);
    for (const f of value.fragments) {
      const padded = padEven(f);
      sink.push(tagHeader(0xfffee000, padded.length, true));
      sink.push(padded);
    }
    sink.push(tagHeader(0xfffee0dd, 0, true));
    return;
  }
  let body: Uint8Array;
  switch (value.type) {
    case 'text':
      body = encodeText(value.text, el.vr);
      break;
    case 'u16':
      body = encodeNumbers(value.values, 2, enc.littleEndian);
      break;
    case 'u32':
      body = encodeNumbers(value.values, 4, enc.littleEndian);
      break;
    case 'bytes':
      body = padEven(value.bytes);
      break;
  }
  sink.push(elementHeader(el.tag, el.vr, el.lengthOverride ?? (el.undefinedLength ? UNDEFINED_LENGTH : body.length), enc));
  sink.push(body);
}

/** A bare dataset (no preamble, no File Meta) in the given encoding. */
export function writeDataset(nodes: readonly WriterNode[], enc: Encoding): Uint8Array {
  const sink = new ByteSink();
  for (const node of nodes) {
    if (node.kind === 'raw') sink.push(node.bytes);
    else writeElement(sink, node, enc);
  }
  return sink.bytes();
}

export interface Part10Options {
  /** The Transfer Syntax UID written in File Meta. */
  readonly transferSyntaxUid: string;
  /** How to encode the dataset; default follows the UID (unknown UIDs: Explicit VR Little Endian). */
  readonly encoding?: Encoding;
  /** Deflate the dataset (default: when the UID is Deflated Explicit VR Little Endian). */
  readonly deflate?: boolean;
  /** Write the 128-byte preamble and "DICM" (default true). */
  readonly preamble?: boolean;
  readonly sopClassUid?: string;
  readonly sopInstanceUid?: string;
}

/** The File Meta Information group, always Explicit VR Little Endian. */
export function writeFileMeta(options: Part10Options): Uint8Array {
  const elements: WriterElement[] = [
    bytes(0x00020001, 'OB', Uint8Array.from([0, 1])),
    text(0x00020002, 'UI', options.sopClassUid ?? '1.2.840.10008.5.1.4.1.1.1'),
    text(0x00020003, 'UI', options.sopInstanceUid ?? '1.2.826.0.1.3680043.2.1125.1.1'),
    text(0x00020010, 'UI', options.transferSyntaxUid),
    text(0x00020012, 'UI', '1.2.826.0.1.3680043.2.1125.99'),
  ];
  const body = writeDataset(elements, explicitLE);
  const groupLength = writeDataset([ul(0x00020000, body.length)], explicitLE);
  const out = new Uint8Array(groupLength.length + body.length);
  out.set(groupLength);
  out.set(body, groupLength.length);
  return out;
}

/** A Part 10 file: preamble, "DICM", File Meta, then the dataset (deflated for the Deflated syntax). */
export function writePart10(nodes: readonly WriterNode[], options: Part10Options): Uint8Array {
  const enc = options.encoding ?? encodingOf(options.transferSyntaxUid);
  let body = writeDataset(nodes, enc);
  if (options.deflate ?? options.transferSyntaxUid === Syntax.DeflatedLE) body = Uint8Array.from(deflateRawSync(body));
  const meta = writeFileMeta(options);
  const preamble = options.preamble ?? true;
  const head = preamble ? 132 : 0;
  const out = new Uint8Array(head + meta.length + body.length);
  if (preamble) out.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.set(meta, head);
  out.set(body, head + meta.length);
  return out;
}

/**
 * `depth` sequences each holding one item holding the next sequence, all of undefined length, built without
 * recursion (so 10 000 levels cost nothing to write). Explicit VR Little Endian bytes.
 */
export function deeplyNestedSequences(tag: number, depth: number, enc: Encoding = explicitLE): Uint8Array {
  const open = new ByteSink();
  const seqHeader = elementHeader(tag, 'SQ', UNDEFINED_LENGTH, enc);
  const itemHeader = tagHeader(0xfffee000, UNDEFINED_LENGTH, enc.littleEndian);
  const itemEnd = tagHeader(0xfffee00d, 0, enc.littleEndian);
  const seqEnd = tagHeader(0xfffee0dd, 0, enc.littleEndian);
  for (let i = 0; i < depth; i++) {
    open.push(seqHeader);
    open.push(itemHeader);
  }
  for (let i = 0; i < depth; i++) {
    open.push(itemEnd);
    open.push(seqEnd);
  }
  return open.bytes();
}

/**
 * Writes a Deflated Explicit VR Little Endian Part 10 file whose dataset is `nodes`, then `zeroBytes` zero bytes of
 * native Pixel Data (OW, declared with that length), then optionally a trailing padding element (FFFC,FFFC) of
 * `trailingZeroBytes` zeros. The zeros are streamed through the compressor a MiB at a time, so a bomb that inflates
 * to 512 MiB is made without holding it: it deflates about 1000 to 1.
 */
export async function writeDeflateBomb(
  file: string,
  nodes: readonly WriterNode[],
  options: { readonly zeroBytes: number; readonly trailingZeroBytes?: number; readonly sopInstanceUid?: string },
): Promise<void> {
  const out = createWriteStream(file);
  const meta = writeFileMeta({ transferSyntaxUid: Syntax.DeflatedLE, ...(options.sopInstanceUid ? { sopInstanceUid: options.sopInstanceUid } : {}) });
  const preamble = new Uint8Array(132);
  preamble.set([0x44, 0x49, 0x43, 0x4d], 128);
  out.write(preamble);
  out.write(meta);
  const deflate = createDeflateRaw();
  deflate.pipe(out);
  const write = async (chunk: Uint8Array): Promise<void> => {
    if (!deflate.write(chunk)) await once(deflate, 'drain');
  };
  const zeros = async (count: number): Promise<void> => {
    const mib = new Uint8Array(1 << 20);
    for (let left = count; left > 0; left -= mib.length) await write(left >= mib.length ? mib : mib.subarray(0, left));
  };
  await write(writeDataset(nodes, explicitLE));
  await write(elementHeader(0x7fe00010, 'OW', options.zeroBytes));
  await zeros(options.zeroBytes);
  if (options.trailingZeroBytes !== undefined) {
    await write(elementHeader(0xfffcfffc, 'OB', options.trailingZeroBytes));
    await zeros(options.trailingZeroBytes);
  }
  deflate.end();
  await once(out, 'close');
}
