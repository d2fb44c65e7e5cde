/**
 * The hospital's API as drills drive it beyond site.ts: a second `cxr-gateway serve` over the same store and Redis,
 * a station calling its own routes with its token, radiologists who sign in again when their session went (sessions
 * live only in Redis), and the gateway's audit trail read back from its store.
 */
import type { ChildProcess } from 'node:child_process';
import { consultKey, storeFromUrl } from '@cxr/gateway';
import { endProcess, freePort, spawnGateway, type Hospital } from '../../../edge-agent/test/support/hospital.js';
import type { WorklistRow } from '../../../gateway/test/support/radiologist.js';

/** No call of a drill waits for ever: a gateway whose Redis is down answers 503 within 5 s. */
const CALL_TIMEOUT_MS = 20_000;

export interface Answer<T = unknown> {
  readonly status: number;
  readonly body: T;
}

/** The `{ error: { code } }` of a gateway's refusal, or '' (for problem lines). */
export function errorCode(answer: Answer): string {
  const body = answer.body as { error?: { code?: unknown } } | null;
  return typeof body?.error?.code === 'string' ? body.error.code : '';
}

async function call(url: string, token: string | undefined, method: string, body?: unknown): Promise<Answer> {
  const res = await fetch(url, {
    method,
    headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    signal: AbortSignal.timeout(CALL_TIMEOUT_MS),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed };
}

/** Another `cxr-gateway serve` process on a free port, over the hospital's store and Redis. */
export interface GatewayProcess {
  readonly url: string;
  readonly child: ChildProcess;
  stop(): Promise<void>;
}

export async function startSecondGateway(hospital: Hospital): Promise<GatewayProcess> {
  const port = await freePort();
  const child = await spawnGateway(['--port', String(port), '--store', hospital.store, '--redis', hospital.redis.url, '--log-level', 'warn']);
  return {
    url: `http://127.0.0.1:${port}`,
    child,
    stop: async () => {
      await endProcess(child);
    },
  };
}

/** A station's side: its routes, with its token, on whichever gateway process is named. */
export class StationClient {
  constructor(
    readonly stationId: string,
    readonly token: string,
  ) {}

  call(baseUrl: string, method: string, route: string, body?: unknown): Promise<Answer> {
    return call(`${baseUrl}${route}`, this.token, method, body);
  }
}

/** A row of `GET /api/v1/worklist`, as the gateway's own tests read it. */
export type { WorklistRow };

/**
 * A radiologist as the page behaves: signs in on first use, and again after a 401 (the session went with Redis's
 * data), then repeats the call once. Sessions are good on every gateway process.
 */
export class RadiologistSession {
  #token: string | undefined;

  constructor(
    readonly username: string,
    readonly password: string,
  ) {}

  async call<T = unknown>(baseUrl: string, method: string, route: string, body?: unknown): Promise<Answer<T>> {
    for (let attempt = 0; ; attempt++) {
      this.#token ??= await this.#signIn(baseUrl);
      const answer = await call(`${baseUrl}${route}`, this.#token, method, body);
      if (answer.status !== 401 || attempt > 0) return answer as Answer<T>;
      this.#token = undefined;
    }
  }

  /** The whole worklist as one snapshot (one page of up to 1000: the drills keep theirs shorter). */
  async worklist(baseUrl: string): Promise<WorklistRow[]> {
    const answer = await this.call<WorklistRow[]>(baseUrl, 'GET', '/api/v1/worklist?limit=1000');
    if (answer.status !== 200) throw new Error(`worklist: HTTP ${answer.status} ${errorCode(answer)}`);
    return answer.body;
  }

  async #signIn(baseUrl: string): Promise<string> {
    const answer = await call(`${baseUrl}/api/v1/login`, undefined, 'POST', { username: this.username, password: this.password });
    if (answer.status !== 200) throw new Error(`sign-in of ${this.username}: HTTP ${answer.status} ${errorCode(answer)}`);
    return (answer.body as { token: string }).token;
  }
}

/**
 * Calls until the gateway answers other than 5xx (a Redis down or reconnecting answers 503) or the time is up; the
 * last answer, or the error when it never answered.
 */
export async function untilAnswered(attempt: () => Promise<Answer>, options: { timeoutMs?: number; everyMs?: number; onRetry?: () => void } = {}): Promise<Answer> {
  const deadline = Date.now() + (options.timeoutMs ?? 120_000);
  for (;;) {
    let answer: Answer | undefined;
    let failure: unknown;
    try {
      answer = await attempt();
      if (answer.status < 500) return answer;
    } catch (err) {
      failure = err;
    }
    if (Date.now() >= deadline) {
      if (answer) return answer;
      throw failure instanceof Error ? failure : new Error(String(failure));
    }
    options.onRetry?.();
    await new Promise((resolve) => setTimeout(resolve, options.everyMs ?? 250));
  }
}

/** An event of the gateway's audit trail (gateway/src/audit.ts). */
export interface AuditEvent {
  readonly at: string;
  readonly actor: string;
  readonly action: string;
  readonly target: string;
  readonly detail?: Record<string, string | number | boolean>;
}

/** Every event of the audit trail in the gateway's store, oldest first. */
export async function readAuditTrail(storeDir: string): Promise<AuditEvent[]> {
  const store = await storeFromUrl(storeDir);
  const events: AuditEvent[] = [];
  try {
    for await (const info of store.list('audit/')) events.push(JSON.parse(Buffer.from(await store.getBytes(info.key)).toString('utf8')) as AuditEvent);
  } finally {
    await store.close();
  }
  return events.sort((x, y) => x.at.localeCompare(y.at));
}

/** The study a consult is for, from its record in the gateway's store; undefined when there is none. */
export async function consultStudies(storeDir: string, consultIds: Iterable<string>): Promise<Map<string, string>> {
  const store = await storeFromUrl(storeDir);
  const studies = new Map<string, string>();
  try {
    for (const consultId of consultIds) {
      try {
        const record = JSON.parse(Buffer.from(await store.getBytes(consultKey(consultId))).toString('utf8')) as { studyInstanceUid: string };
        studies.set(consultId, record.studyInstanceUid);
      } catch {
        // no record: the caller counts it
      }
    }
  } finally {
    await store.close();
  }
  return studies;
}
