/** The station's side of the registry routes of model-registry/PROTOCOL.md, with the station token. */

export type FetchLike = (url: URL, init: RequestInit) => Promise<Response>;

export interface RegistryLink {
  readonly url: string;
  readonly stationId: string;
  readonly token: string;
  /** the gateway's fetch (TLS and client certificate as the outbox uses); default: Node's fetch */
  readonly fetch?: FetchLike;
  /** one request's time limit before its body starts, ms. Default 30 000. */
  readonly timeoutMs?: number;
}

/** The gateway could not be reached, or answered 5xx, 401/403, 408 or 429: try again later. */
export class RegistryUnavailable extends Error {
  readonly status: number | null;
  constructor(message: string, status: number | null) {
    super(message);
    this.name = 'RegistryUnavailable';
    this.status = status;
  }
}

/** The gateway answered with another 4xx (404: no registry at this gateway, or no such file for this station). */
export class RegistryRefused extends Error {
  readonly status: number;
  constructor(message: string, status: number) {
    super(message);
    this.name = 'RegistryRefused';
    this.status = status;
  }
}

/** What a station's GET .../model answers: envelopes not yet verified. */
export interface DesiredModel {
  readonly deployment: unknown;
  readonly release: unknown;
}

export interface ModelStatusReport {
  readonly running: { name: string; version: string; sha256: string } | null;
  readonly lastGood: { name: string; version: string } | null;
  readonly state: 'ok' | 'downloading' | 'verifying' | 'failed';
  readonly error?: { code: string; message: string; name: string; version: string };
  readonly counts: { studies: number; failed: number };
  readonly at: string;
}

export class RegistryClient {
  readonly #link: RegistryLink;
  readonly #fetch: FetchLike;

  constructor(link: RegistryLink) {
    this.#link = link;
    this.#fetch = link.fetch ?? ((url, init) => fetch(url, init));
  }

  get #station(): string {
    return `/api/v1/stations/${encodeURIComponent(this.#link.stationId)}`;
  }

  async publicKey(signal?: AbortSignal): Promise<string> {
    const res = await this.request('/api/v1/registry/public-key', {}, signal);
    const body = (await res.json()) as { publicKey?: unknown };
    if (typeof body.publicKey !== 'string') throw new RegistryRefused('the gateway sent no registry public key', res.status);
    return body.publicKey;
  }

  async desired(signal?: AbortSignal): Promise<DesiredModel> {
    const res = await this.request(`${this.#station}/model`, {}, signal);
    const body = (await res.json()) as { deployment?: unknown; release?: unknown };
    return { deployment: body.deployment ?? null, release: body.release ?? null };
  }

  /**
   * One file of a release, from `offset` on (a Range request when offset > 0; If-Range with the signed digest, so a
   * server holding other bytes answers the whole file instead). The body is the caller's to read.
   */
  async file(name: string, version: string, file: string, sha256: string, offset: number, signal?: AbortSignal): Promise<Response> {
    const route = `${this.#station}/model/files/${encodeURIComponent(name)}/${encodeURIComponent(version)}/${file.split('/').map(encodeURIComponent).join('/')}`;
    // Only the wait for the answer is timed here: the body may take long on a slow link (the caller times stalls).
    return this.request(route, offset > 0 ? { range: `bytes=${offset}-`, 'if-range': `"${sha256}"` } : {}, signal, [416], 'GET', undefined, 'headers');
  }

  async report(status: ModelStatusReport, signal?: AbortSignal): Promise<void> {
    await this.request(`${this.#station}/model/status`, { 'content-type': 'application/json' }, signal, [], 'POST', JSON.stringify(status));
  }

  /** A request to the gateway; `pass` lists statuses handed back to the caller instead of thrown. */
  async request(
    route: string,
    headers: Record<string, string>,
    signal?: AbortSignal,
    pass: readonly number[] = [],
    method = 'GET',
    body?: string,
    timed: 'whole' | 'headers' = 'whole',
  ): Promise<Response> {
    let res: Response;
    const timeout = new AbortController();
    const timer = setTimeout(() => timeout.abort(new Error(`no answer within ${this.#link.timeoutMs ?? 30_000} ms`)), this.#link.timeoutMs ?? 30_000);
    timer.unref();
    try {
      res = await this.#fetch(new URL(route, this.#link.url), {
        method,
        headers: { ...headers, authorization: `Bearer ${this.#link.token}` },
        ...(body !== undefined ? { body } : {}),
        signal: signal ? AbortSignal.any([signal, timeout.signal]) : timeout.signal,
      });
    } catch (err) {
      clearTimeout(timer);
      throw new RegistryUnavailable(`gateway unreachable: ${(err as Error).message}`, null);
    }
    if (timed === 'headers') clearTimeout(timer);
    if (res.ok || pass.includes(res.status)) return res;
    const text = await res.text().catch(() => '');
    // Never the station token or a full route with ids in a message: the first path segments and the answer.
    const detail = `${method} ${route.split('/').slice(0, 6).join('/')}: ${res.status} ${text.slice(0, 200)}`;
    if (res.status >= 500 || [401, 403, 408, 429].includes(res.status)) throw new RegistryUnavailable(detail, res.status);
    throw new RegistryRefused(detail, res.status);
  }
}
