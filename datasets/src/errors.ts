import { CxrError, errorLine as inferenceErrorLine, toCxrError } from '@cxr/inference';

/** An encoder (DCMTK or the JPEG 2000 codec) failed or is missing: `CXR_ENCODE_FAILED` of the shared registry. */
export class EncodeError extends CxrError {
  constructor(detail: string, options?: { cause?: unknown }) {
    super('CXR_ENCODE_FAILED', detail, options);
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
