/** A radiologist's side of the API, as the page uses it: sign in, the worklist, claim, release, report. */
export interface WorklistRow {
  readonly consultId: string;
  readonly stationId: string;
  readonly studyInstanceUid: string;
  readonly priority: 'stat' | 'urgent' | 'routine';
  readonly receivedAt: string;
  readonly status: 'queued' | 'claimed';
  readonly claimedBy: string | null;
}

export interface ApiAnswer {
  readonly status: number;
  readonly json: unknown;
}

export class Radiologist {
  private constructor(
    readonly baseUrl: string,
    readonly username: string,
    readonly token: string,
  ) {}

  /** Signs in through the gateway at `baseUrl` (a session in Redis, good on every gateway process). */
  static async signIn(baseUrl: string, user: { username: string; password: string }): Promise<Radiologist> {
    const res = await fetch(`${baseUrl}/api/v1/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(user) });
    if (res.status !== 200) throw new Error(`sign-in of ${user.username}: HTTP ${res.status} ${await res.text()}`);
    return new Radiologist(baseUrl, user.username, ((await res.json()) as { token: string }).token);
  }

  /** The same session through another gateway process. */
  via(baseUrl: string): Radiologist {
    return new Radiologist(baseUrl, this.username, this.token);
  }

  async call(method: string, route: string, body?: unknown): Promise<ApiAnswer> {
    const res = await fetch(`${this.baseUrl}${route}`, {
      method,
      headers: { authorization: `Bearer ${this.token}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: keep the text
    }
    return { status: res.status, json };
  }

  async worklist(): Promise<WorklistRow[]> {
    const res = await this.call('GET', '/api/v1/worklist?limit=1000');
    if (res.status !== 200) throw new Error(`worklist: HTTP ${res.status} ${JSON.stringify(res.json)}`);
    return res.json as WorklistRow[];
  }

  claim(consultId: string): Promise<ApiAnswer> {
    return this.call('POST', `/api/v1/consults/${consultId}/claim`);
  }

  release(consultId: string): Promise<ApiAnswer> {
    return this.call('POST', `/api/v1/consults/${consultId}/release`);
  }

  /** A report for a consult whose study has no AI-flagged finding (nothing to agree or disagree with). */
  report(consultId: string, impression = 'Không thấy bất thường.'): Promise<ApiAnswer> {
    return this.call('POST', `/api/v1/consults/${consultId}/report`, { impression, findings: [] });
  }
}

/** Polls `probe` until it returns something other than undefined, or fails after `timeoutMs` with `what`. */
export async function waitFor<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000, everyMs = 100): Promise<T> {
  const until = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Queue order: priority (stat, urgent, routine), then arrival. */
export function inQueueOrder<T extends { priority: 'stat' | 'urgent' | 'routine'; receivedAt: string; consultId: string }>(items: readonly T[]): T[] {
  const rank = { stat: 1, urgent: 2, routine: 3 } as const;
  return [...items].sort((x, y) => rank[x.priority] - rank[y.priority] || x.receivedAt.localeCompare(y.receivedAt) || x.consultId.localeCompare(y.consultId));
}
