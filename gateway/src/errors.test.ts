import { describe, expect, it } from 'vitest';
import { GatewayErrors } from './errors.js';

describe('the gateway error registry', () => {
  it('keeps every code with its status: codes are never renamed, reused or dropped', () => {
    expect(Object.fromEntries(Object.entries(GatewayErrors).map(([code, { status }]) => [code, status]))).toEqual({
      CXR_AUTH_REQUIRED: 401,
      CXR_AUTH_INVALID: 401,
      CXR_FORBIDDEN: 403,
      CXR_NOT_FOUND: 404,
      CXR_VALIDATION: 400,
      CXR_CONFLICT: 409,
      CXR_ALREADY_REPORTED: 409,
      CXR_PAYLOAD_TOO_LARGE: 413,
      CXR_HASH_MISMATCH: 422,
      CXR_UPLOAD_OFFSET: 409,
      CXR_UPLOAD_INCOMPLETE: 409,
      CXR_CLIENT_CERT_REQUIRED: 403,
      CXR_UNAVAILABLE: 503,
      CXR_RATE_LIMITED: 429,
    });
  });
});
