import { createRequire } from 'node:module';
import { CxrError, boundedDetail } from '../errors/index.js';
import type { DecodedFrame, FrameGeometry } from './types.js';

/**
 * dcmjs-codecs' WebAssembly build (IJG libjpeg 8/12/16-bit, CharLS, OpenJPEG, OpenJPH, RLE). Called through its
 * NativeCodecs functions, not its Transcoder, which refuses JPEG Extended and headerless files.
 */
interface CodecContext {
  getDecodedBuffer(): Uint8Array;
  getWidth(): number | undefined;
  getHeight(): number | undefined;
  getBitsAllocated(): number | undefined;
}
interface NativeCodecsApi {
  /** The module's WebAssembly instance (not in the package's types; read only to tell a view of its memory). */
  wasmApi?: { wasmMemory?: { buffer: ArrayBufferLike } };
  initializeAsync(opts?: { logCodecsInfo?: boolean; logCodecsTrace?: boolean }): Promise<void>;
  isInitialized(): boolean;
  release(): void;
  decodeRle(ctx: CodecContext, params?: Record<string, unknown>): CodecContext;
  decodeJpeg(ctx: CodecContext, params?: { convertColorspaceToRgb?: boolean }): CodecContext;
  decodeJpegLs(ctx: CodecContext, params?: Record<string, unknown>): CodecContext;
  decodeJpeg2000(ctx: CodecContext, params?: Record<string, unknown>): CodecContext;
  decodeHtJpeg2000(ctx: CodecContext, params?: Record<string, unknown>): CodecContext;
}
interface DcmjsCodecsModule {
  NativeCodecs: NativeCodecsApi;
  Context: new (attrs: Record<string, unknown>) => CodecContext;
  version: string;
}

export type DcmjsCodecName = 'rle' | 'jpeg' | 'jpeg-ls' | 'jpeg2000' | 'htj2k';

const require = createRequire(import.meta.url);
let loaded: Promise<DcmjsCodecsModule> | undefined;

/** Loads and initialises the WebAssembly module once per thread. */
export function loadDcmjsCodecs(): Promise<DcmjsCodecsModule> {
  loaded ??= (async () => {
    const mod = require('dcmjs-codecs') as DcmjsCodecsModule;
    if (!mod.NativeCodecs.isInitialized()) await mod.NativeCodecs.initializeAsync({ logCodecsInfo: false, logCodecsTrace: false });
    return mod;
  })();
  return loaded;
}

/**
 * After a failed decode the module's memory may be corrupt: a few dozen failures later valid images fail too,
 * or a decode never returns. So every failure throws the instance away; the next decode starts a fresh one.
 */
function discardModule(mod: DcmjsCodecsModule): void {
  try {
    mod.NativeCodecs.release();
  } catch {
    // Already unusable: dropping our reference is what matters.
  }
  loaded = undefined;
}

export async function decodeWithDcmjs(codec: DcmjsCodecName, codestream: Uint8Array, geometry: FrameGeometry): Promise<DecodedFrame> {
  const mod = await loadDcmjsCodecs();
  const ctx = new mod.Context({
    width: geometry.columns,
    height: geometry.rows,
    bitsAllocated: geometry.bitsAllocated,
    bitsStored: geometry.bitsStored,
    samplesPerPixel: geometry.samplesPerPixel,
    pixelRepresentation: geometry.pixelRepresentation,
    planarConfiguration: geometry.planarConfiguration,
    photometricInterpretation: geometry.photometricInterpretation,
    encodedBuffer: codestream,
  });
  if (codec === 'rle') checkRleHeader(codestream, geometry);
  if (codec === 'jpeg') checkJpegPrecisionScan(codestream);
  let out: CodecContext;
  try {
    switch (codec) {
      case 'rle':
        out = mod.NativeCodecs.decodeRle(ctx);
        break;
      case 'jpeg':
        // Colour JPEGs come back as RGB; greyscale ones are unaffected.
        out = mod.NativeCodecs.decodeJpeg(ctx, { convertColorspaceToRgb: true });
        break;
      case 'jpeg-ls':
        out = mod.NativeCodecs.decodeJpegLs(ctx);
        break;
      case 'jpeg2000':
        out = mod.NativeCodecs.decodeJpeg2000(ctx);
        break;
      case 'htj2k':
        out = mod.NativeCodecs.decodeHtJpeg2000(ctx);
        break;
    }
  } catch (err) {
    discardModule(mod);
    throw new CxrError('CXR_DECODE_FAILED', `${codec}: ${boundedDetail(err)}`);
  }
  const width = out.getWidth();
  const height = out.getHeight();
  if ((width !== undefined && width !== geometry.columns) || (height !== undefined && height !== geometry.rows)) {
    throw new CxrError('CXR_DECODE_FAILED', `${codec}: the codestream is ${width}x${height}, the header says ${geometry.columns}x${geometry.rows}`);
  }
  const bytes = out.getDecodedBuffer();
  const pixels = geometry.rows * geometry.columns * geometry.samplesPerPixel;
  const bytesPerSample = geometry.bitsAllocated <= 8 ? 1 : 2;
  // The context echoes the header's size; the decoded buffer's length tells the codestream's own.
  if (bytes && bytes.length > pixels * bytesPerSample + 1) {
    throw new CxrError('CXR_DECODE_FAILED', `${codec}: the codestream holds ${bytes.length} bytes of pixels, the header needs ${pixels * bytesPerSample}`);
  }
  if (!bytes || bytes.length < pixels * bytesPerSample) {
    throw new CxrError('CXR_DECODE_FAILED', `${codec}: decoded ${bytes?.length ?? 0} bytes, expected ${pixels * bytesPerSample}`);
  }
  // dcmjs-codecs 0.0.8 already hands back a copy of its output: a second one would only be 7 MB more garbage for a
  // 2k image, and more collections beside the model. A view of the WebAssembly memory (which the next call reuses)
  // or an odd offset is still copied.
  const ownBuffer = bytes.buffer !== mod.NativeCodecs.wasmApi?.wasmMemory?.buffer && bytes.byteOffset % bytesPerSample === 0;
  const own = ownBuffer ? bytes : bytes.slice(0, pixels * bytesPerSample);
  const samples =
    bytesPerSample === 1
      ? geometry.pixelRepresentation === 1
        ? new Int8Array(own.buffer, own.byteOffset, pixels)
        : own.subarray(0, pixels)
      : geometry.pixelRepresentation === 1
        ? new Int16Array(own.buffer, own.byteOffset, pixels)
        : new Uint16Array(own.buffer, own.byteOffset, pixels);
  return {
    samples,
    rows: geometry.rows,
    columns: geometry.columns,
    samplesPerPixel: geometry.samplesPerPixel,
    origin: 'decoded',
    decoder: `dcmjs-codecs ${mod.version} (${codec})`,
  };
}

/**
 * PS3.5 Annex G: a 64-byte header of segment count (1 to 15) and ascending offsets inside the fragment, one
 * segment per byte of each sample. Checked before the codec sees it, which would read outside its buffer.
 */
function checkRleHeader(codestream: Uint8Array, geometry: FrameGeometry): void {
  if (codestream.length < 64) throw new CxrError('CXR_DECODE_FAILED', `rle: ${codestream.length} bytes, shorter than its 64-byte header`);
  const view = new DataView(codestream.buffer, codestream.byteOffset, 64);
  const segments = view.getUint32(0, true);
  const expected = geometry.samplesPerPixel * Math.ceil(geometry.bitsAllocated / 8);
  if (segments !== expected) throw new CxrError('CXR_DECODE_FAILED', `rle: ${segments} segments, ${expected} expected`);
  let previous = 63;
  for (let i = 0; i < segments; i++) {
    const offset = view.getUint32(4 + i * 4, true);
    if (offset <= previous || offset >= codestream.length) throw new CxrError('CXR_DECODE_FAILED', `rle: segment ${i + 1} offset ${offset} is out of order or outside the data`);
    previous = offset;
  }
}

/**
 * dcmjs-codecs picks its 8, 12 or 16-bit JPEG decoder by walking the markers from the first byte to the frame
 * header (its ScanJpegDataForBitDepth, from DCMTK). On a TEM marker (FF 01) that walk never moves on: the thread
 * spins for ever, before libjpeg sees a byte. This is the same walk, step for step, so a codestream that reaches
 * FF 01 is refused here and every other one goes on exactly as before.
 */
function checkJpegPrecisionScan(codestream: Uint8Array): void {
  const segment = (at: number): number => (((codestream[at + 2] ?? 0) << 8) | (codestream[at + 3] ?? 0)) + 2;
  let offset = 0;
  while (offset + 4 < codestream.length) {
    if (codestream[offset] !== 0xff) return;
    const marker = codestream[offset + 1] ?? 0;
    if (marker === 0x01) throw new CxrError('CXR_DECODE_FAILED', `jpeg: a TEM marker (FF 01) at byte ${offset}, before the frame header`);
    if (marker === 0xff) offset += 1;
    else if (marker >= 0xc0 && marker <= 0xcf) {
      // A frame header ends the walk; DHT, JPG and DAC are segments to step over.
      if (marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return;
      offset += segment(offset);
    } else if (marker >= 0xd0 && marker <= 0xd9) offset += 2;
    else if (marker >= 0xda) offset += segment(offset);
    else if (marker > 0x02 && marker <= 0xbf) offset += 2;
    else return;
  }
}
