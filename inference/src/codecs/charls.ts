import { createRequire } from 'node:module';
import { CxrError } from '../errors/index.js';
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

export function loadCharls(): Promise<CharlsModule> {
  loaded ??= (async () => {
    const factory = require('@cornerstonejs/codec-charls/decodewasmjs') as (opts?: object) => Promise<CharlsModule>;
    return factory({ print: () => undefined, printErr: () => undefined });
  })();
  return loaded;
}

export async function decodeWithCharls(codestream: Uint8Array, geometry: FrameGeometry): Promise<DecodedFrame> {
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
    throw new CxrError('CXR_DECODE_FAILED', `JPEG-LS: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    decoder.delete();
  }
}
