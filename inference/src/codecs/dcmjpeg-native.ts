/**
 * Optional native JPEG lossless decoder (Debian's DCMTK through the N-API addon in inference/native): the same
 * DCMTK code as dcmjs-codecs' WebAssembly build, natively and on the libuv thread pool, so the event loop stays free.
 *
 * `loadNativeDcmjpeg()` returns null (never throws) when the addon has not been built, fails to load, or
 * CXR_DISABLE_NATIVE_JPEG=1 is set; callers then use the WebAssembly decoder.
 *
 * Rejections are Errors with a `code`:
 *   ERR_JPEG_UNSUPPORTED  not a one-component lossless codestream of 9 to 16 bits, or of another size than asked
 *                         (the caller uses the WebAssembly decoder)
 *   ERR_JPEG_DECODE       DCMTK refused the data
 *   ERR_JPEG_NO_MEMORY    an allocation failed
 */
import { loadOptionalAddon, nativeAddonPath } from '../native-addon.js';

export interface NativeDcmjpeg {
  /** rows x columns 16-bit samples. */
  decodeLossless(codestream: Uint8Array, columns: number, rows: number, signed: boolean): Promise<Uint16Array | Int16Array>;
  readonly dcmtkVersion: string;
}

export const NATIVE_JPEG_DISABLE_ENV = 'CXR_DISABLE_NATIVE_JPEG';

interface RawAddon {
  decodeLossless(codestream: Uint8Array, columns: number, rows: number, signed: boolean): Promise<unknown>;
  dcmtkVersion: string;
}

function isRawAddon(value: unknown): value is RawAddon {
  if (typeof value !== 'object' || value === null) return false;
  const record = value as Record<string, unknown>;
  return typeof record['decodeLossless'] === 'function' && typeof record['dcmtkVersion'] === 'string';
}

export function nativeDcmjpegAddonPath(): string {
  return nativeAddonPath('cxr_dcmjpeg');
}

function wrap(addon: RawAddon): NativeDcmjpeg {
  return {
    dcmtkVersion: addon.dcmtkVersion,
    async decodeLossless(codestream, columns, rows, signed) {
      const bytes = await addon.decodeLossless(codestream, columns, rows, signed);
      if (!(bytes instanceof Uint8Array) || bytes.length !== rows * columns * 2 || bytes.byteOffset !== 0) {
        throw new Error('cxr_dcmjpeg returned an unexpected result');
      }
      return signed ? new Int16Array(bytes.buffer, 0, rows * columns) : new Uint16Array(bytes.buffer, 0, rows * columns);
    },
  };
}

/** The native decoder, or null when disabled (checked on every call), not built or not loadable. Never throws. */
export function loadNativeDcmjpeg(): NativeDcmjpeg | null {
  return loadOptionalAddon('cxr_dcmjpeg', NATIVE_JPEG_DISABLE_ENV, (raw) => (isRawAddon(raw) ? wrap(raw) : null));
}
