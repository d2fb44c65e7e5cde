/**
 * The page as another machine on the station's network sees it: plain HTTP requests with the headers a browser or an
 * attacker would send (any Host, Origin, Sec-Fetch-Site, cookie), the machine's own network address as "another
 * machine", and radiographers' accounts made with the real `cxr-edge admin` command.
 */
import { execFile, spawn } from 'node:child_process';
import { request as httpRequest } from 'node:http';
import { networkInterfaces } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { repoRoot } from '../harness/agent-process.js';

const bin = path.join(repoRoot, 'edge-agent', 'bin', 'cxr-edge.js');
export const squeezenet = path.join(repoRoot, '..', 'shared', 'models', 'squeezenet-pneumonia-peds');

/**
 * This machine's first non-loopback IPv4 address: a connection to it comes from it, not from 127.0.0.1, as one from
 * another machine on the station's network would. Undefined when the machine has none.
 */
export function lanAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

export interface Answer {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly text: string;
  json<T = { error?: { code: string; message: string } }>(): T;
}

/** One HTTP request, headers exactly as given (Host included, which fetch() will not let a caller set). */
export function call(
  address: string,
  port: number,
  route: string,
  init: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: address, port, path: route, method: init.method ?? 'GET', headers: { host: `${address}:${port}`, ...init.headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json: <T>() => JSON.parse(text) as T });
      });
      // An event stream never ends: its head is enough.
      if ((res.headers['content-type'] ?? '').startsWith('text/event-stream')) {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text: '', json: <T>() => ({}) as T });
        req.destroy();
      }
    });
    req.on('error', reject);
    if (init.body !== undefined) req.write(init.body);
    req.end();
  });
}

/** A JSON POST as the page sends it. */
export function postJson(address: string, port: number, route: string, body: unknown, headers: Record<string, string> = {}): Promise<Answer> {
  return call(address, port, route, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

/** Signs in; resolves with the `Cookie` header value that carries the session (throws on a refusal). */
export async function signIn(address: string, port: number, username: string, password: string): Promise<string> {
  const res = await postJson(address, port, '/api/sign-in', { username, password });
  if (res.status !== 200) throw new Error(`sign-in ${username}: HTTP ${res.status} ${res.text}`);
  return cookieOf(res);
}

/** The `name=value` of the Set-Cookie of an answer. */
export function cookieOf(res: Answer): string {
  const header = res.headers['set-cookie'];
  const first = Array.isArray(header) ? header[0] : header;
  return (first ?? '').split(';')[0] ?? '';
}

export interface AdminOutcome {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `cxr-edge admin ARGS...`, with `stdin` written to its standard input (the password, as a pipe gives it). */
export function admin(args: readonly string[], stdin = ''): Promise<AdminOutcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, 'admin', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

/** Adds an account (password on standard input) and throws when the command refuses. */
export async function addUser(dataDir: string, username: string, password: string): Promise<void> {
  const out = await admin(['add-user', username, '--data-dir', dataDir], `${password}\n`);
  if (out.code !== 0) throw new Error(`add-user ${username}: ${out.code} ${out.stderr}`);
}

/** Runs `cxr-edge` with these arguments to its end (for start-up refusals). */
export async function runEdge(args: readonly string[]): Promise<AdminOutcome> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [bin, ...args]);
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
