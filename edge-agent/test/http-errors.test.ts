import { describe, expect, it } from 'vitest';
import { EdgeHttpErrors, EdgeCommandErrors } from '../src/web/errors.js';

describe("the edge's error registry", () => {
  it('keeps every shipped code with its status (codes are never renamed or reused)', () => {
    // Add new codes at the end of these lists; never remove one or change its status.
    const shipped: [string, number][] = [
      ['CXR_VALIDATION', 400],
      ['CXR_NOT_FOUND', 404],
      ['CXR_NO_GATEWAY', 409],
      ['CXR_DISK_FULL', 503],
      ['CXR_INTERNAL', 500],
      ['CXR_AUTH_REQUIRED', 401],
      ['CXR_AUTH_INVALID', 401],
      ['CXR_RATE_LIMITED', 429],
      ['CXR_HOST_NOT_ALLOWED', 421],
      ['CXR_CROSS_SITE', 403],
      ['CXR_UNSUPPORTED_MEDIA_TYPE', 415],
    ];
    for (const [code, status] of shipped) expect({ code, status: EdgeHttpErrors[code as keyof typeof EdgeHttpErrors]?.status }).toEqual({ code, status });
    expect(Object.keys(EdgeCommandErrors)).toEqual(expect.arrayContaining(['CXR_NO_ACCOUNTS', 'CXR_ADMIN_REFUSED']));
  });

  it('gives every code a message, and a code only the CXR_ form', () => {
    for (const [code, { message }] of [...Object.entries(EdgeHttpErrors), ...Object.entries(EdgeCommandErrors)]) {
      expect(code).toMatch(/^CXR_[A-Z0-9_]+$/u);
      expect(message.length).toBeGreaterThan(5);
    }
  });
});
