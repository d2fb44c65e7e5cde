import { ErrorCodes, type ErrorCode } from './codes.js';

export class CxrError extends Error {
  readonly code: ErrorCode;
  readonly transient: boolean;

  constructor(code: ErrorCode, detail?: string, options?: { cause?: unknown }) {
    const base = ErrorCodes[code].message;
    super(detail ? `${base}: ${detail}` : base, options);
    this.name = 'CxrError';
    this.code = code;
    this.transient = ErrorCodes[code].transient;
  }

  toJSON(): { code: ErrorCode; message: string; transient: boolean } {
    return { code: this.code, message: this.message, transient: this.transient };
  }
}

export function isCxrError(value: unknown): value is CxrError {
  return value instanceof CxrError;
}

/** Any thrown value as a CxrError; unknown failures keep their message under the fallback code. */
export function toCxrError(value: unknown, fallback: ErrorCode): CxrError {
  if (value instanceof CxrError) return value;
  if (isNodeError(value)) {
    if (value.code === 'ENOENT') return new CxrError('CXR_FILE_NOT_FOUND', value.path ?? value.message);
    if (value.code === 'EISDIR') return new CxrError('CXR_NOT_DICOM', 'is a directory');
    return new CxrError('CXR_IO', value.message, { cause: value });
  }
  const message = value instanceof Error ? value.message : String(value);
  return new CxrError(fallback, message, { cause: value });
}

function isNodeError(value: unknown): value is NodeJS.ErrnoException {
  return value instanceof Error && typeof (value as NodeJS.ErrnoException).code === 'string' && 'errno' in value;
}

/**
 * The message of something a library threw, fit for a CxrError's detail: one line of printable characters, at most
 * `max` of them. Messages from decoders and zlib name no values, but they are not ours, and an error message reaches
 * the log, the quarantine's reason files and the page: a long one is cut, never carried whole.
 */
export function boundedDetail(err: unknown, max = 200): string {
  const text = (err instanceof Error ? err.message : String(err)).replace(/[^\x20-\x7e\u00a0-\u024f]+/gu, ' ').trim();
  return text.length > max ? `${text.slice(0, max)}… (${text.length} characters)` : text;
}

/** `{code, message}` of anything thrown, for results and one-line reports; unknown failures are CXR_INTERNAL. */
export function errorLine(err: unknown): { code: string; message: string } {
  if (isCxrError(err)) return { code: err.code, message: err.message };
  return { code: 'CXR_INTERNAL', message: boundedDetail(err) };
}
