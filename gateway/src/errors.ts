/**
 * The gateway's HTTP error registry: stable codes, never reused, each with its status. Every error response is
 * `{ "error": { "code", "message" } }`.
 */
export const GatewayErrors = {
  CXR_AUTH_REQUIRED: { status: 401, message: 'Sign in first (Authorization: Bearer TOKEN)' },
  CXR_AUTH_INVALID: { status: 401, message: 'The token or the password is not valid' },
  CXR_FORBIDDEN: { status: 403, message: 'This account may not do that' },
  CXR_NOT_FOUND: { status: 404, message: 'Not found' },
  CXR_VALIDATION: { status: 400, message: 'The request is not valid' },
  CXR_CONFLICT: { status: 409, message: 'The request conflicts with the current state' },
  CXR_ALREADY_REPORTED: { status: 409, message: 'This consult already has a signed report' },
  CXR_PAYLOAD_TOO_LARGE: { status: 413, message: 'The body is larger than allowed' },
  CXR_HASH_MISMATCH: { status: 422, message: 'The body does not match its sha256' },
  CXR_UPLOAD_OFFSET: { status: 409, message: 'The chunk does not start where the upload stands (see x-upload-offset)' },
  CXR_UPLOAD_INCOMPLETE: { status: 409, message: 'The upload does not have all its bytes yet (see x-upload-offset)' },
  CXR_CLIENT_CERT_REQUIRED: { status: 403, message: "A station must present its own client certificate (mTLS) on this gateway" },
  CXR_UNAVAILABLE: { status: 503, message: 'A backing service (Redis or the object store) is not reachable' },
  CXR_RATE_LIMITED: { status: 429, message: 'Too many failed sign-ins; wait and try again (see Retry-After)' },
} as const;

export type GatewayErrorCode = keyof typeof GatewayErrors;

export class GatewayError extends Error {
  readonly code: GatewayErrorCode;
  readonly status: number;
  /** headers sent with the error answer (e.g. Retry-After) */
  readonly headers: Readonly<Record<string, string>>;
  constructor(code: GatewayErrorCode, detail?: string, headers: Record<string, string> = {}) {
    super(detail ? `${GatewayErrors[code].message}: ${detail}` : GatewayErrors[code].message);
    this.name = 'GatewayError';
    this.code = code;
    this.status = GatewayErrors[code].status;
    this.headers = headers;
  }
}
