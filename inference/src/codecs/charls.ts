import { createRequire } from 'node:module';
import { CxrError, boundedDetail } from '../errors/index.js';
import type { DecodedFrame, FrameGeometry } from './types.js';

/** CharLS in WebAssembly from @cornerstonejs/codec-charls: bit-exact and faster than dcmjs-codecs on JPEG-LS. */
interface CharlsDecoder {
  getEncodedBuffer(length: number): Uint8Array;
  decode(): void;
  getFrameInfo(): { width: number; height: number; bitsPerSample: number; componentCount: number };
  getInterleaveMode(): number;
  getDecodedBuffer(): Uint8Array;
  delete(): void;
}
interface CharlsModule {
  JpegLSDecoder: new () => CharlsDecoder;
}

const require = createRequire(import.meta.url);
let loaded: Promise<CharlsModule> | undefined;

/** A failed decode can leave the module's heap corrupt or leaking: start a fresh one after any failure. */
function discardCharls(): void {
  loaded = undefined;
}

export function loadCharls(): Promise<CharlsModule> {
  loaded ??= (async () => {
    const factory = require('@cornerstonejs/codec-charls/decodewasmjs') as (opts?: object) => Promise<CharlsModule>;
    return factory({ print: () => undefined, printErr: () => undefined });
  })();
  return loaded;
}

/** A JPEG-LS codestream ends with the EOI marker (FF D9), perhaps followed by a padding byte or a few (00 or FF). */
function endsWithEoi(codestream: Uint8Array): boolean {
  for (let i = codestream.length - 2; i >= Math.max(0, codestream.length - 16); i--) {
    if (codestream[i] === 0xff && codestream[i + 1] === 0xd9) return true;
  }
  return false;
}

export async function decodeWithCharls(codestream: Uint8Array, geometry: FrameGeometry): Promise<DecodedFrame> {
  // CharLS spends seconds before it gives up on a cut-off codestream; a missing end marker says so at once.
  if (!endsWithEoi(codestream)) throw new CxrError('CXR_DECODE_FAILED', 'JPEG-LS: the codestream is cut short (no end-of-image marker)');
  const charls = await loadCharls();
  const decoder = new charls.JpegLSDecoder();
  try {
    decoder.getEncodedBuffer(codestream.length).set(codestream);
    decoder.decode();
    const info = decoder.getFrameInfo();
    if (info.width !== geometry.columns || info.height !== geometry.rows || info.componentCount !== geometry.samplesPerPixel) {
      throw new CxrError(
        'CXR_DECODE_FAILED',
        `JPEG-LS frame is ${info.width}x${info.height}x${info.componentCount}, the header says ${geometry.columns}x${geometry.rows}x${geometry.samplesPerPixel}`,
      );
    }
    if (info.componentCount > 1 && decoder.getInterleaveMode() === 0) {
      throw new CxrError('CXR_DECODE_FAILED', 'planar (non-interleaved) colour JPEG-LS');
    }
    const decoded = decoder.getDecodedBuffer();
    const pixels = geometry.rows * geometry.columns * geometry.samplesPerPixel;
    const wide = info.bitsPerSample > 8;
    const copy = decoded.slice(0, pixels * (wide ? 2 : 1));
    const samples = wide
      ? geometry.pixelRepresentation === 1
        ? new Int16Array(copy.buffer, 0, pixels)
        : new Uint16Array(copy.buffer, 0, pixels)
      : copy;
    return { samples, rows: geometry.rows, columns: geometry.columns, samplesPerPixel: geometry.samplesPerPixel, origin: 'decoded', decoder: 'charls (@cornerstonejs/codec-charls)' };
  } catch (err) {
    if (err instanceof CxrError) throw err;
    discardCharls();
    // CharLS throws C++ exceptions, which reach JavaScript as bare numbers (pointers), not messages.
    const message = err instanceof Error ? boundedDetail(err) : 'the codestream is not valid JPEG-LS';
    throw new CxrError('CXR_DECODE_FAILED', `JPEG-LS: ${message}`);
  } finally {
    try {
      decoder.delete();
    } catch {
      discardCharls();
    }
  }
}
