import type { FastifyReply } from 'fastify';

/**
 * The codes the edge's page API answers with: stable, never renamed or reused (a test keeps the list), each with its
 * HTTP status. Every error body is `{ "error": { "code", "message" } }`. The image codes of the core
 * (`@cxr/inference` ErrorCodes) appear only inside an instance's `error`, never as an HTTP answer.
 */
export const EdgeHttpErrors = {
  CXR_VALIDATION: { status: 400, message: 'The request is not valid' },
  CXR_NOT_FOUND: { status: 404, message: 'Not found' },
  CXR_NO_GATEWAY: { status: 409, message: 'This station is not linked to a hospital gateway' },
  CXR_DISK_FULL: { status: 503, message: 'The station disk is full; free some space and try again' },
  CXR_INTERNAL: { status: 500, message: 'Internal error' },
  CXR_AUTH_REQUIRED: { status: 401, message: 'Sign in first: the session is missing, has expired, or its account was disabled' },
  CXR_AUTH_INVALID: { status: 401, message: 'Wrong user name or password' },
  CXR_RATE_LIMITED: { status: 429, message: 'Too many failed sign-ins: wait before trying again (see Retry-After)' },
  CXR_HOST_NOT_ALLOWED: { status: 421, message: 'This page answers only to its own names and addresses (Host header); add a name with --allowed-hosts' },
  CXR_CROSS_SITE: { status: 403, message: 'Refused: the request comes from another site' },
  CXR_UNSUPPORTED_MEDIA_TYPE: { status: 415, message: 'Changes are sent as JSON (content-type: application/json)' },
} as const satisfies Record<string, { status: number; message: string }>;

export type EdgeHttpErrorCode = keyof typeof EdgeHttpErrors;

/** Sends the code's status and body; `detail` is added to the message (never a patient's data). */
export function sendError(reply: FastifyReply, code: EdgeHttpErrorCode, detail?: string): FastifyReply {
  const { status, message } = EdgeHttpErrors[code];
  return reply.code(status).send({ error: { code, message: detail ? `${message}: ${detail}` : message } });
}

/**
 * What the `cxr-edge` command refuses with, beside the configuration problems and bad usage (`CXR_USAGE`, exit code
 * 2): said on stderr as `CODE: message`, exit code 1.
 */
export const EdgeCommandErrors = {
  /** the agent does not start */
  CXR_NO_ACCOUNTS: { message: "The page is open to the station's network, where radiographers sign in, and no account is enabled" },
  /** `cxr-edge admin`: no such user, or the name is taken */
  CXR_ADMIN_REFUSED: { message: 'The accounts file does not allow that change' },
} as const satisfies Record<string, { message: string }>;

export class EdgeStartError extends Error {
  readonly code: keyof typeof EdgeCommandErrors;
  constructor(code: keyof typeof EdgeCommandErrors, detail: string) {
    super(detail);
    this.name = 'EdgeStartError';
    this.code = code;
  }
}
