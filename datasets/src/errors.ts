import { errorLine as inferenceErrorLine, toCxrError } from '@cxr/inference';

/**
 * An encoder (DCMTK or the JPEG 2000 codec) failed or is missing. Its code is not in the shared registry of
 * `@cxr/inference` yet (that package is another team's); until it is, it is defined here, with the same shape.
 */
export class EncodeError extends Error {
  readonly code = 'CXR_ENCODE_FAILED';
  readonly transient = false;

  constructor(detail: string, options?: { cause?: unknown }) {
    super(`The image could not be encoded: ${detail}`, options);
    this.name = 'EncodeError';
  }
}

/** `{code, message}` of anything thrown, for the manifest and one-line reports. */
export function errorLine(err: unknown): { code: string; message: string } {
  if (err instanceof EncodeError) return { code: err.code, message: err.message };
  // File system errors (ENOENT, EACCES) get the registry's file codes rather than CXR_INTERNAL.
  const systemError = err instanceof Error && 'errno' in err;
  return inferenceErrorLine(systemError ? toCxrError(err, 'CXR_IO') : err);
}
