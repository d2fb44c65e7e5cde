/**
 * Optional native JPEG 2000 decoder (system OpenJPEG 2.5 through the N-API
 * addon in inference/native). Decodes on the libuv thread pool with OpenJPEG's
 * own worker threads, so the event loop is never blocked.
 *
 * `loadNativeOpenJpeg()` returns null (never throws) when the addon has not
 * been built, fails to load, or CXR_DISABLE_NATIVE_J2K=1 is set; callers then
 * use the WebAssembly codec.
 *
 * Rejections are Errors with a `code`:
 *   ERR_J2K_INVALID_INPUT  not a J2K codestream / JP2 file, malformed header
 *   ERR_J2K_TOO_LARGE      width*height*components > maxPixels (checked on the
 *                          main header, before any tile is decoded)
 *   ERR_J2K_UNSUPPORTED    subsampled components, >4 components, >4096 tiles,
 *                          JP2 palette, components of differing precision
 *   ERR_J2K_DECODE         OpenJPEG failed (corrupt or truncated data)
 *   ERR_J2K_NO_MEMORY      allocation failure
 *   ERR_INVALID_ARG_TYPE   bad arguments
 */
import { loadOptionalAddon, nativeAddonPath } from '../native-addon.js';

export interface J2kDecodedFrame {
  width: number;
  height: number;
  components: number;
  /** Bits per sample of the decoded components (all components share it). */
  precision: number;
  signed: boolean;
  /**
   * Samples interleaved pixel-major (c0 c1 c2 c0 c1 c2 ...), exactly as
   * OpenJPEG decoded them. Container: precision <= 8 and unsigned -> Uint8Array;
   * <= 16 -> Uint16Array (unsigned) / Int16Array (signed); else Int32Array.
   */
  data: Uint8Array | Uint16Array | Int16Array | Int32Array;
}

export interface J2kDecodeOptions {
  /** OpenJPEG worker threads, clamped to 1..16. 1 decodes on the libuv worker itself. */
  threads: number;
  /** Upper bound for width * height * components; larger images are rejected from the header. */
  maxPixels: number;
}

export interface NativeOpenJpeg {
  decode(codestream: Uint8Array, options: J2kDecodeOptions): Promise<J2kDecodedFrame>;
  readonly openjpegVersion: string;
}

export const NATIVE_J2K_DISABLE_ENV = 'CXR_DISABLE_NATIVE_J2K';
export const NATIVE_J2K_MAX_THREADS = 16;

/** Shape of the raw addon exports (validated at load time). */
interface RawAddon {
  decode(input: Uint8Array, threads: number, maxPixels: number): Promise<unknown>;
  openjpegVersion: string;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return (typeof value === 'object' && value !== null) || typeof value === 'function';
}

function isRawAddon(value: unknown): value is RawAddon {
  return isRecord(value) && typeof value['decode'] === 'function' && typeof value['openjpegVersion'] === 'string';
}

function isDecodedFrame(value: unknown): value is J2kDecodedFrame {
  if (!isRecord(value)) return false;
  const { width, height, components, precision, data } = value;
  return (
    typeof width === 'number' &&
    typeof height === 'number' &&
    typeof components === 'number' &&
    typeof precision === 'number' &&
    typeof value['signed'] === 'boolean' &&
    (data instanceof Uint8Array || data instanceof Uint16Array || data instanceof Int16Array || data instanceof Int32Array) &&
    data.length === width * height * components
  );
}

/** Absolute path of the built addon (same relative location from src/codecs and dist/codecs). */
export function nativeOpenJpegAddonPath(): string {
  return nativeAddonPath('cxr_openjpeg');
}

function clampThreads(threads: number): number {
  if (!Number.isFinite(threads)) return 1;
  return Math.min(NATIVE_J2K_MAX_THREADS, Math.max(1, Math.trunc(threads)));
}

function wrap(addon: RawAddon): NativeOpenJpeg {
  return {
    openjpegVersion: addon.openjpegVersion,
    async decode(codestream: Uint8Array, options: J2kDecodeOptions): Promise<J2kDecodedFrame> {
      if (!(codestream instanceof Uint8Array)) {
        throw new TypeError('codestream must be a Uint8Array');
      }
      const { maxPixels } = options;
      if (!Number.isSafeInteger(maxPixels) || maxPixels < 1) {
        throw new RangeError(`maxPixels must be a positive safe integer, got ${String(maxPixels)}`);
      }
      const result = await addon.decode(codestream, clampThreads(options.threads), maxPixels);
      if (!isDecodedFrame(result)) {
        throw new Error('cxr_openjpeg returned an unexpected result shape');
      }
      return result;
    },
  };
}

/**
 * Loads the native decoder, or returns null when it is disabled
 * (CXR_DISABLE_NATIVE_J2K=1, checked on every call), not built, or not
 * loadable. Never throws.
 */
export function loadNativeOpenJpeg(): NativeOpenJpeg | null {
  return loadOptionalAddon('cxr_openjpeg', NATIVE_J2K_DISABLE_ENV, (raw) => (isRawAddon(raw) ? wrap(raw) : null));
}
