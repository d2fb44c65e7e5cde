import { createReadStream } from 'node:fs';
import http from 'node:http';
import https from 'node:https';

/** A refused or failed call: the gateway's `{"error": {"code", "message"}}`, or a network failure (status 0). */
export class GatewayCallError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
    this.name = 'GatewayCallError';
  }
}

export interface Answer {
  readonly status: number;
  readonly json: unknown;
}

/**
 * The gateway as the command line sees it: JSON calls and streamed uploads with the user's bearer token. Plain
 * node:http rather than fetch: a push waits for the server's validation (minutes with a labelled set), longer than
 * fetch's header timeout.
 */
export class GatewayClient {
  readonly #base: URL;
  readonly #token: string | undefined;

  constructor(baseUrl: string, token?: string) {
    let url: URL;
    try {
      url = new URL(baseUrl);
    } catch {
      throw new GatewayCallError(0, 'CXR_USAGE', `--gateway "${baseUrl}" is not a URL (e.g. http://localhost:8443)`, null);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new GatewayCallError(0, 'CXR_USAGE', `--gateway must be http:// or https://, not ${url.protocol}`, null);
    this.#base = url;
    this.#token = token;
  }

  #request(method: string, route: string, headers: Record<string, string>, body?: Buffer | string): Promise<{ status: number; text: string }> {
    const url = new URL(route, this.#base);
    const lib = url.protocol === 'https:' ? https : http;
    const all: Record<string, string> = { accept: 'application/json', ...headers };
    if (this.#token) all.authorization = `Bearer ${this.#token}`;
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { method, headers: all }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', (err) => reject(new GatewayCallError(0, 'CXR_UNAVAILABLE', `cannot reach the gateway at ${this.#base.origin}: ${err.message}`, null)));
      if (body === undefined) req.end();
      else req.end(body);
    });
  }

  static #parse(text: string): unknown {
    if (text === '') return null;
    try {
      return JSON.parse(text);
    } catch {
      return text;
    }
  }

  /** A JSON call. Answers whose status is not in `ok` throw a GatewayCallError with the server's code. */
  async call(method: string, route: string, body?: unknown, ok: readonly number[] = [200, 201, 204]): Promise<Answer> {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const res = await this.#request(method, route, payload === undefined ? {} : { 'content-type': 'application/json' }, payload);
    const json = GatewayClient.#parse(res.text);
    if (!ok.includes(res.status)) throw GatewayClient.#failure(res.status, json);
    return { status: res.status, json };
  }

  static #failure(status: number, json: unknown): GatewayCallError {
    const error = (json as { error?: { code?: string; message?: string } } | null)?.error;
    const byStatus: Record<number, string> = { 401: 'CXR_AUTH_INVALID', 403: 'CXR_FORBIDDEN', 404: 'CXR_NOT_FOUND', 413: 'CXR_PAYLOAD_TOO_LARGE', 503: 'CXR_UNAVAILABLE' };
    const hint = status === 401 ? ' (sign in again: cxr-registry login)' : status === 403 ? ' (the account needs the mlops or admin role)' : '';
    return new GatewayCallError(status, error?.code ?? byStatus[status] ?? 'CXR_INTERNAL', `${error?.message ?? `HTTP ${status}`}${hint}`, json);
  }

  /** True when the gateway already has this blob. */
  async hasBlob(sha256: string): Promise<boolean> {
    const res = await this.#request('HEAD', `/api/v1/registry/blobs/${sha256}`, {});
    if (res.status === 200) return true;
    if (res.status === 404) return false;
    throw GatewayClient.#failure(res.status, null);
  }

  /** Streams a file to the registry's blob store under its sha256. */
  async putBlob(file: string, sha256: string, size: number): Promise<void> {
    const url = new URL(`/api/v1/registry/blobs/${sha256}`, this.#base);
    const lib = url.protocol === 'https:' ? https : http;
    const headers: Record<string, string> = { 'content-type': 'application/octet-stream', 'content-length': String(size), accept: 'application/json' };
    if (this.#token) headers.authorization = `Bearer ${this.#token}`;
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = lib.request(url, { method: 'PUT', headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      });
      req.on('error', (err) => reject(new GatewayCallError(0, 'CXR_UNAVAILABLE', `upload of ${file} failed: ${err.message}`, null)));
      const source = createReadStream(file);
      source.on('error', (err) => req.destroy(err));
      source.pipe(req);
    });
    if (answer.status !== 200 && answer.status !== 201) throw GatewayClient.#failure(answer.status, GatewayClient.#parse(answer.text));
  }
}
