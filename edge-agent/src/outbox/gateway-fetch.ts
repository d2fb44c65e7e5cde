import { readFileSync } from 'node:fs';
import { Agent, fetch as undiciFetch } from 'undici';

/** TLS settings for the link to the gateway: PEM file paths (validated at start by the config). */
export interface GatewayTls {
  /** CA that signed the gateway's certificate (a private hospital CA, say); default: the system's CAs */
  readonly caFile?: string;
  /** this station's client certificate and key, for a gateway that requires mTLS */
  readonly certFile?: string;
  readonly keyFile?: string;
}

export type GatewayFetch = (url: URL, init: RequestInit) => Promise<Response>;

/**
 * The fetch every request to the gateway goes through. Node's own fetch cannot take a client certificate, so
 * with TLS settings it is undici's fetch (the same library Node's is built on) with an agent that carries them.
 */
export function createGatewayFetch(tls: GatewayTls = {}): GatewayFetch {
  if (!tls.caFile && !tls.certFile) return (url, init) => fetch(url, init);
  const dispatcher = new Agent({
    connect: {
      ...(tls.caFile ? { ca: readFileSync(tls.caFile) } : {}),
      ...(tls.certFile && tls.keyFile ? { cert: readFileSync(tls.certFile), key: readFileSync(tls.keyFile) } : {}),
    },
  });
  // undici's Response is the class Node's global fetch returns; only the type declarations differ.
  return async (url, init) => (await undiciFetch(url, { ...(init as Parameters<typeof undiciFetch>[1]), dispatcher })) as unknown as Response;
}
