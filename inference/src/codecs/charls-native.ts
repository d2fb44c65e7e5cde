/**
 * Optional native JPEG-LS decoder (system CharLS 2.x through the N-API addon
 * in inference/native). Decodes on the libuv thread pool, so the event loop is
 * never blocked.
 *
 * `loadNativeCharls()` returns null (never throws) when the addon has not been
 * built, fails to load, or CXR_DISABLE_NATIVE_JLS=1 is set; callers then use
 * the WebAssembly CharLS (`charls.ts`). The dispatcher uses it only when asked
 * to with CXR_NATIVE_JLS=1 (`nativeCharlsForDispatch`): it is slower here.
 *
 * Rejections of `NativeCharls.decode` are Errors with a `code`:
 *   ERR_JLS_INVALID_INPUT  not a JPEG-LS codestream (no SOI), invalid headers
 *   ERR_JLS_TRUNCATED      no end-of-image marker (refused before CharLS runs:
 *                          CharLS 2.4 takes 8 to 11 s to give up on a cut-off scan)
 *   ERR_JLS_TOO_LARGE      width*height*components > maxPixels, from the header,
 *                          before the output is allocated; the error carries
 *                          frameWidth, frameHeight and frameComponents
 *   ERR_JLS_UNSUPPORTED    planar (non-interleaved) colour, more than 4 components
 *   ERR_JLS_DECODE         CharLS failed in the scan data (corrupt data)
 *   ERR_JLS_NO_MEMORY      allocation failure
 *   ERR_INVALID_ARG_TYPE   bad arguments
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { MAX_PIXELS } from '../dicom/image-info.js';
import { CxrError } from '../errors/index.js';
import { decodeWithCharls } from './charls.js';
import type { DecodedFrame, FrameGeometry } from './types.js';

export interface JlsDecodedFrame {
  width: number;
  height: number;
  components: number;
  /** Bits per sample of the frame header (2..16). */
  bitsPerSample: number;
  /** The NEAR parameter of the first scan: 0 is lossless. */
  nearLossless: number;
  /** 0 none (single component only here), 1 line, 2 sample. */
  interleaveMode: number;
  /** Samples interleaved pixel-major; Uint8Array up to 8 bits per sample, else Uint16Array. */
  data: Uint8Array | Uint16Array;
}

export interface JlsDecodeOptions {
  /** Upper bound for width * height * components; larger images are refused from the header. */
  maxPixels: number;
}

export interface NativeCharls {
  decode(codestream: Uint8Array, options: JlsDecodeOptions): Promise<JlsDecodedFrame>;
  readonly charlsVersion: string;
}

export const NATIVE_JLS_DISABLE_ENV = 'CXR_DISABLE_NATIVE_JLS';
/** Asks the dispatcher for the native decoder (see `nativeCharlsForDispatch`). */
export const NATIVE_JLS_PREFER_ENV = 'CXR_NATIVE_JLS';

/** Shape of the raw addon exports (validated at load time). */
interface RawAddon {
  decode(input: Uint8Array, maxPixels: number): Promise<unknown>;
  charlsVersion: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function isRawAddon(value: unknown): value is RawAddon {
  return isRecord(value) && typeof value['decode'] === 'function' && typeof value['charlsVersion'] === 'string';
}

function isDecodedFrame(value: unknown): value is JlsDecodedFrame {
  if (!isRecord(value)) return false;
  const { width, height, components, bitsPerSample, nearLossless, interleaveMode, data } = value;
  return (
    typeof width === 'number' &&
    typeof height === 'number' &&
    typeof components === 'number' &&
    typeof bitsPerSample === 'number' &&
    typeof nearLossless === 'number' &&
    typeof interleaveMode === 'number' &&
    (data instanceof Uint8Array || data instanceof Uint16Array) &&
    data instanceof (bitsPerSample > 8 ? Uint16Array : Uint8Array) &&
    data.length === width * height * components
  );
}

/** Absolute path of the built addon (same relative location from src/codecs and dist/codecs). */
export function nativeCharlsAddonPath(): string {
  return fileURLToPath(new URL('../../native/build/Release/cxr_charls.node', import.meta.url));
}

function wrap(addon: RawAddon): NativeCharls {
  return {
    charlsVersion: addon.charlsVersion,
    async decode(codestream: Uint8Array, options: JlsDecodeOptions): Promise<JlsDecodedFrame> {
      if (!(codestream instanceof Uint8Array)) throw new TypeError('codestream must be a Uint8Array');
      const { maxPixels } = options;
      if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
        throw new RangeError(`maxPixels must be a positive safe integer, got ${String(maxPixels)}`);
      }
      const result = await addon.decode(codestream, maxPixels);
      if (!isDecodedFrame(result)) throw new Error('cxr_charls returned an unexpected result shape');
      return result;
    },
  };
}

let loaded: NativeCharls | undefined;

/**
 * Loads the native decoder, or returns null when it is disabled
 * (CXR_DISABLE_NATIVE_JLS=1, checked on every call), not built, or not
 * loadable. A successful load is cached; a failed one is retried on the next
 * call (cheap: one existsSync). Never throws.
 */
export function loadNativeCharls(): NativeCharls | null {
  try {
    if (process.env[NATIVE_JLS_DISABLE_ENV] === '1') return null;
    if (loaded) return loaded;
    const addonPath = nativeCharlsAddonPath();
    if (!existsSync(addonPath)) return null;
    const addon: unknown = createRequire(import.meta.url)(addonPath);
    if (!isRawAddon(addon)) return null;
    loaded = wrap(addon);
    return loaded;
  } catch {
    return null;
  }
}

/**
 * The decoder `decodeFrame` uses for JPEG-LS: the native one only when CXR_NATIVE_JLS=1 and it loads, else null
 * (the WebAssembly CharLS). Debian's CharLS 2.4.1 through the addon needs 1.2 to 1.6 times the CPU time of the
 * WebAssembly build of CharLS 2.4.4 on the shared files here (benchmarks/README.md), so it is opt-in.
 */
export function nativeCharlsForDispatch(): NativeCharls | null {
  return process.env[NATIVE_JLS_PREFER_ENV] === '1' ? loadNativeCharls() : null;
}

function errorField(err: unknown, key: string): unknown {
  return isRecord(err) ? err[key] : undefined;
}

/**
 * The frame as `decodeWithCharls` (WebAssembly) returns it, with the same error codes, from the native addon.
 * The size limit is the DICOM header's own Rows x Columns x Samples (already checked against MAX_PIXELS), so a
 * codestream claiming more is refused before anything is allocated for it.
 */
export async function decodeWithNativeCharls(native: NativeCharls, codestream: Uint8Array, geometry: FrameGeometry): Promise<DecodedFrame> {
  const headerSize = `${geometry.columns}x${geometry.rows}x${geometry.samplesPerPixel}`;
  let decoded: JlsDecodedFrame;
  try {
    decoded = await native.decode(codestream, { maxPixels: geometry.rows * geometry.columns * geometry.samplesPerPixel });
  } catch (err) {
    const code = errorField(err, 'code');
    const message = err instanceof Error ? err.message : String(err);
    // Planar colour and the like: the WebAssembly decoder has the last word (and its own error for them).
    if (code === 'ERR_JLS_UNSUPPORTED') return decodeWithCharls(codestream, geometry);
    if (code === 'ERR_JLS_TOO_LARGE') {
      const width = Number(errorField(err, 'frameWidth'));
      const height = Number(errorField(err, 'frameHeight'));
      const frameSize = `${width}x${height}x${String(errorField(err, 'frameComponents'))}`;
      // Beyond the parser's own pixel limit it is a safety limit; otherwise the two headers simply disagree.
      if (width * height > MAX_PIXELS) throw new CxrError('CXR_LIMIT_EXCEEDED', `JPEG-LS frame is ${frameSize}, more than ${MAX_PIXELS} pixels`);
      throw new CxrError('CXR_DECODE_FAILED', `JPEG-LS frame is ${frameSize}, the header says ${headerSize}`);
    }
    throw new CxrError('CXR_DECODE_FAILED', `JPEG-LS: ${message}`);
  }
  if (decoded.width !== geometry.columns || decoded.height !== geometry.rows || decoded.components !== geometry.samplesPerPixel) {
    throw new CxrError('CXR_DECODE_FAILED', `JPEG-LS frame is ${decoded.width}x${decoded.height}x${decoded.components}, the header says ${headerSize}`);
  }
  const { data } = decoded;
  // As the WebAssembly path: 16-bit words are two's complement when Pixel Representation says signed.
  const samples = data instanceof Uint16Array && geometry.pixelRepresentation === 1 ? new Int16Array(data.buffer, data.byteOffset, data.length) : data;
  return {
    samples,
    rows: geometry.rows,
    columns: geometry.columns,
    samplesPerPixel: geometry.samplesPerPixel,
    origin: 'decoded',
    decoder: `charls ${native.charlsVersion} (native)`,
  };
}
