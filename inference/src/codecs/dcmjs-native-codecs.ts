import { createRequire } from 'node:module';
import { CxrError } from '../errors/index.js';
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
  initializeAsync(opts?: { logCodecsInfo?: boolean; logCodecsTrace?: boolean }): Promise<void>;
  isInitialized(): boolean;
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
    throw new CxrError('CXR_DECODE_FAILED', `${codec}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const bytes = out.getDecodedBuffer();
  const pixels = geometry.rows * geometry.columns * geometry.samplesPerPixel;
  const bytesPerSample = geometry.bitsAllocated <= 8 ? 1 : 2;
  if (!bytes || bytes.length < pixels * bytesPerSample) {
    throw new CxrError('CXR_DECODE_FAILED', `${codec}: decoded ${bytes?.length ?? 0} bytes, expected ${pixels * bytesPerSample}`);
  }
  // The buffer may be a view into WebAssembly memory that the next call reuses: copy it out.
  const copy = bytes.slice(0, pixels * bytesPerSample);
  const samples =
    bytesPerSample === 1
      ? geometry.pixelRepresentation === 1
        ? new Int8Array(copy.buffer, 0, pixels)
        : copy
      : geometry.pixelRepresentation === 1
        ? new Int16Array(copy.buffer, 0, pixels)
        : new Uint16Array(copy.buffer, 0, pixels);
  return {
    samples,
    rows: geometry.rows,
    columns: geometry.columns,
    samplesPerPixel: geometry.samplesPerPixel,
    origin: 'decoded',
    decoder: `dcmjs-codecs ${mod.version} (${codec})`,
  };
}
