import { CxrError, boundedDetail } from '../errors/index.js';
import type { EncodedFrame } from '../dicom/frames.js';
import { TransferSyntax, transferSyntaxName } from '../dicom/uids.js';
import { decodeWithCharls } from './charls.js';
import { decodeWithDcmjs, type DcmjsCodecName } from './dcmjs-native-codecs.js';
import { loadNativeDcmjpeg } from './dcmjpeg-native.js';
import { loadNativeOpenJpeg, type J2kDecodedFrame } from './openjpeg-native.js';
import type { DecodedFrame, FrameGeometry } from './types.js';
import { readUncompressed } from './uncompressed.js';

export type { DecodedFrame, FrameGeometry, SampleArray } from './types.js';

export interface DecodeOptions {
  /** Threads for the native JPEG 2000 decoder. Default 2 (the station PCs have two cores). */
  readonly j2kThreads?: number;
}

type Route = { kind: 'uncompressed' } | { kind: 'dcmjs'; codec: DcmjsCodecName } | { kind: 'charls' } | { kind: 'jpeg2000' } | { kind: 'jpeg-lossless' };

/** Which decoder handles which transfer syntax; the README's codec table mirrors this. */
const routes: ReadonlyMap<string, Route> = new Map<string, Route>([
  [TransferSyntax.ImplicitVRLittleEndian, { kind: 'uncompressed' }],
  [TransferSyntax.ExplicitVRLittleEndian, { kind: 'uncompressed' }],
  [TransferSyntax.DeflatedExplicitVRLittleEndian, { kind: 'uncompressed' }],
  [TransferSyntax.ExplicitVRBigEndian, { kind: 'uncompressed' }],
  [TransferSyntax.RLELossless, { kind: 'dcmjs', codec: 'rle' }],
  [TransferSyntax.JPEGBaseline8Bit, { kind: 'dcmjs', codec: 'jpeg' }],
  [TransferSyntax.JPEGExtended12Bit, { kind: 'dcmjs', codec: 'jpeg' }],
  [TransferSyntax.JPEGLossless, { kind: 'jpeg-lossless' }],
  [TransferSyntax.JPEGLosslessSV1, { kind: 'jpeg-lossless' }],
  [TransferSyntax.JPEGLSLossless, { kind: 'charls' }],
  [TransferSyntax.JPEGLSNearLossless, { kind: 'charls' }],
  [TransferSyntax.JPEG2000Lossless, { kind: 'jpeg2000' }],
  [TransferSyntax.JPEG2000, { kind: 'jpeg2000' }],
  [TransferSyntax.HTJ2KLossless, { kind: 'dcmjs', codec: 'htj2k' }],
  [TransferSyntax.HTJ2KLosslessRPCL, { kind: 'dcmjs', codec: 'htj2k' }],
  [TransferSyntax.HTJ2K, { kind: 'dcmjs', codec: 'htj2k' }],
]);

export function isDecodableTransferSyntax(uid: string): boolean {
  return routes.has(uid);
}

export function decodableTransferSyntaxes(): string[] {
  return [...routes.keys()];
}

export async function decodeFrame(
  transferSyntaxUid: string,
  frame: EncodedFrame,
  geometry: FrameGeometry,
  options: DecodeOptions = {},
): Promise<DecodedFrame> {
  const route = routes.get(transferSyntaxUid);
  if (!route) throw new CxrError('CXR_UNSUPPORTED_TRANSFER_SYNTAX', transferSyntaxName(transferSyntaxUid));
  if (route.kind === 'uncompressed') {
    if (frame.encapsulated) throw new CxrError('CXR_MALFORMED', 'encapsulated Pixel Data in an uncompressed transfer syntax');
    return readUncompressed(frame.bytes, frame.littleEndian, geometry);
  }
  if (!frame.encapsulated) {
    throw new CxrError('CXR_MALFORMED', `${transferSyntaxName(transferSyntaxUid)} needs encapsulated Pixel Data`);
  }
  if (frame.codestream.length === 0) throw new CxrError('CXR_DECODE_FAILED', 'empty codestream');
  switch (route.kind) {
    case 'dcmjs':
      return decodeWithDcmjs(route.codec, frame.codestream, geometry);
    case 'charls':
      return decodeWithCharls(frame.codestream, geometry);
    case 'jpeg2000':
      return decodeJpeg2000(frame.codestream, geometry, options);
    case 'jpeg-lossless':
      return decodeJpegLossless(frame.codestream, geometry);
  }
}

/** Native DCMTK on the thread pool for one 16-bit-allocated component when the addon is built; WebAssembly otherwise. */
async function decodeJpegLossless(codestream: Uint8Array, geometry: FrameGeometry): Promise<DecodedFrame> {
  const native = geometry.samplesPerPixel === 1 && geometry.bitsAllocated === 16 ? loadNativeDcmjpeg() : null;
  if (!native) return decodeWithDcmjs('jpeg', codestream, geometry);
  let samples: Uint16Array | Int16Array;
  try {
    samples = await native.decodeLossless(codestream, geometry.columns, geometry.rows, geometry.pixelRepresentation === 1);
  } catch (err) {
    // Shapes it leaves alone (8 bits or fewer, colour, a size unlike the header's) go to the WebAssembly build,
    // which decides on them as before.
    if ((err as { code?: string }).code === 'ERR_JPEG_UNSUPPORTED') return decodeWithDcmjs('jpeg', codestream, geometry);
    throw new CxrError('CXR_DECODE_FAILED', `jpeg: ${boundedDetail(err)}`);
  }
  return {
    samples,
    rows: geometry.rows,
    columns: geometry.columns,
    samplesPerPixel: 1,
    origin: 'decoded',
    decoder: `dcmtk ${native.dcmtkVersion} (native, jpeg lossless)`,
  };
}

/** Native OpenJPEG on the thread pool when the addon is built; the WebAssembly OpenJPEG otherwise. */
async function decodeJpeg2000(codestream: Uint8Array, geometry: FrameGeometry, options: DecodeOptions): Promise<DecodedFrame> {
  const native = loadNativeOpenJpeg();
  if (!native) return decodeWithDcmjs('jpeg2000', codestream, geometry);
  let decoded: J2kDecodedFrame;
  try {
    decoded = await native.decode(codestream, {
      threads: options.j2kThreads ?? 2,
      maxPixels: geometry.rows * geometry.columns * geometry.samplesPerPixel,
    });
  } catch (err) {
    // Shapes the addon refuses on principle (palettes, many tiles, mixed precision) may still be fine in WASM.
    if ((err as { code?: string }).code === 'ERR_J2K_UNSUPPORTED') return decodeWithDcmjs('jpeg2000', codestream, geometry);
    throw new CxrError('CXR_DECODE_FAILED', `JPEG 2000: ${boundedDetail(err)}`);
  }
  if (decoded.width !== geometry.columns || decoded.height !== geometry.rows || decoded.components !== geometry.samplesPerPixel) {
    throw new CxrError(
      'CXR_DECODE_FAILED',
      `JPEG 2000 image is ${decoded.width}x${decoded.height}x${decoded.components}, the header says ${geometry.columns}x${geometry.rows}x${geometry.samplesPerPixel}`,
    );
  }
  return {
    samples: decoded.data,
    rows: decoded.height,
    columns: decoded.width,
    samplesPerPixel: decoded.components,
    origin: 'decoded',
    decoder: `openjpeg ${native.openjpegVersion} (native, ${options.j2kThreads ?? 2} threads)`,
  };
}
