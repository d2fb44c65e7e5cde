import { isIP } from 'node:net';
import type { FastifyRequest } from 'fastify';
import type { EdgeHttpErrorCode } from './errors.js';

/**
 * Headers on every answer of the page and its API. The page loads only its own scripts, styles and images (the
 * favicon is a data: URL); the shared result panel sets a few `style` attributes (bar widths), the only inline
 * thing allowed. Never framed (clickjacking), never sniffed, no referrer. No HSTS: the page is plain http on the
 * station's network (HSTS is for TLS). `Cross-Origin-Resource-Policy` stops another site embedding its images.
 */
export const securityHeaders: Readonly<Record<string, string>> = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cross-origin-resource-policy': 'same-origin',
};

/** The page's address is on the station PC only. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[(.*)\]$/u, '$1');
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'));
}

/**
 * The names the page answers to (the Host header), against DNS rebinding: a site whose name an attacker points at
 * this PC reaches it with its own name in Host, and is refused. Always: `localhost`, this machine's name, the
 * address it listens on, `--allowed-hosts`; and any IP address (a literal address cannot be rebound, and the PC's
 * own address may change under DHCP while the agent runs).
 */
export class HostAllowList {
  readonly #names: ReadonlySet<string>;

  constructor(options: { httpHost: string; allowedHosts: readonly string[]; machineName: string }) {
    const names = new Set(['localhost', options.machineName.toLowerCase(), ...options.allowedHosts.map((h) => h.toLowerCase())]);
    if (isIP(options.httpHost) === 0) names.add(options.httpHost.toLowerCase());
    this.#names = names;
  }

  /** `host` is the raw Host header (name or address, maybe with a port). */
  allows(host: string | undefined): boolean {
    if (!host) return false;
    const name = hostName(host);
    if (name === undefined) return false;
    if (isIP(name.replace(/^\[(.*)\]$/u, '$1')) !== 0) return true;
    return this.#names.has(name.replace(/\.$/u, ''));
  }
}

/** The name or address of a Host header, without its port; undefined when it is not one. */
function hostName(host: string): string | undefined {
  const h = host.trim().toLowerCase();
  const m = /^(\[[0-9a-f:.]+\]|[a-z0-9.-]+)(?::\d{1,5})?$/u.exec(h);
  return m?.[1];
}

const stateChanging = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/**
 * Cross-site request forgery: a change is taken only as JSON (a form or a `text/plain` fetch from another site needs
 * no preflight; JSON does, and the agent answers none) and only from this page (Origin, when the browser sends it,
 * names this very host; Sec-Fetch-Site, when sent, says same-origin). The API is not read from other sites either
 * (Sec-Fetch-Site cross-site or same-site: another port of the same PC is a "site" too). Returns the refusal's code.
 */
export function crossSiteRefusal(request: FastifyRequest, options: { api: boolean }): EdgeHttpErrorCode | undefined {
  const fetchSite = header(request, 'sec-fetch-site');
  const changes = stateChanging.has(request.method);
  if ((changes || options.api) && fetchSite !== undefined && fetchSite !== 'same-origin' && fetchSite !== 'none') return 'CXR_CROSS_SITE';
  if (!changes) return undefined;
  const origin = header(request, 'origin');
  if (origin !== undefined && !sameOrigin(origin, header(request, 'host'))) return 'CXR_CROSS_SITE';
  const type = (header(request, 'content-type') ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') return 'CXR_UNSUPPORTED_MEDIA_TYPE';
  return undefined;
}

function sameOrigin(origin: string, host: string | undefined): boolean {
  if (!host) return false;
  try {
    const url = new URL(origin);
    return url.protocol === 'http:' && url.host === new URL(`http://${host}`).host;
  } catch {
    // "null" (a sandboxed frame, a file: page) or garbage
    return false;
  }
}

function header(request: FastifyRequest, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

export const sessionCookieName = 'cxr_edge_session';

/**
 * The session cookie: HttpOnly (no script reads it), SameSite=Strict (never sent with a request another site
 * starts), for the whole page. Not Secure: the page is plain http on the station's network, and a browser never sends
 * a Secure cookie over http.
 */
export function sessionCookie(token: string, maxAgeMs: number): string {
  return `${sessionCookieName}=${token}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeMs / 1000))}`;
}

export const clearedSessionCookie = `${sessionCookieName}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0`;

export function sessionToken(request: FastifyRequest): string | undefined {
  const cookies = header(request, 'cookie');
  if (!cookies) return undefined;
  for (const part of cookies.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === sessionCookieName) {
      const value = part.slice(eq + 1).trim();
      return /^[A-Za-z0-9_-]{20,100}$/u.test(value) ? value : undefined;
    }
  }
  return undefined;
}
