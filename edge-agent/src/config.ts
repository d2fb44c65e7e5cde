import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { Type, type Static } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { publicKeyFromString } from '@cxr/inference';
import type { AllowedCaller } from './dimse/scp.js';

export type { AllowedCaller };

/** Every setting, with its unit and default. Validated once at start; every problem is reported at once. */
export const EdgeConfigSchema = Type.Object({
  dataDir: Type.String({ minLength: 1, description: 'where the spool, database and derived images live' }),
  modelDir: Type.String({ minLength: 1, description: 'folder of the deployed model (model file + manifest.json)' }),
  aeTitle: Type.String({ pattern: '^[\\x21-\\x5b\\x5d-\\x7e]([\\x20-\\x5b\\x5d-\\x7e]{0,14}[\\x21-\\x5b\\x5d-\\x7e])?$', default: 'CXR_EDGE', description: 'our AE title (1-16 characters, no backslash)' }),
  dicomPort: Type.Integer({ minimum: 0, maximum: 65535, default: 11112, description: 'C-STORE / C-ECHO port; 0 picks a free one' }),
  httpPort: Type.Integer({ minimum: 0, maximum: 65535, default: 8080, description: "port of the radiographer's page and the local API; 0 picks a free one" }),
  /**
   * 127.0.0.1: the station PC's own screen only, no sign-in. Any other address (the PC's address on the station's
   * network, or 0.0.0.0 for all) opens the page to the network, where radiographers sign in.
   */
  httpHost: Type.String({ minLength: 1, default: '127.0.0.1', description: "address the page listens on: 127.0.0.1 for the station PC only; another address opens it to the station's network, with sign-in" }),
  /** Names the page also answers to (Host header) besides localhost, IP addresses, this PC's name and httpHost. */
  allowedHosts: Type.Array(Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})$' }), { default: [], description: 'more host names the page answers to (DNS rebinding guard)' }),
  /** Sign-in even on 127.0.0.1 (a PC shared with people who should not see the station's patients). */
  requireSignIn: Type.Boolean({ default: false, description: 'radiographers sign in even when the page listens on 127.0.0.1' }),
  sessionTtlMs: Type.Integer({ minimum: 60_000, maximum: 7 * 86_400_000, default: 12 * 3_600_000, description: 'ms a sign-in lasts (default 12 hours: a shift)' }),
  /**
   * Who may send DICOM: `AETITLE` or `AETITLE@IP` (the calling AE title, and the address it must come from). Empty:
   * any device that reaches the port (the agent warns at start).
   */
  callingAe: Type.Array(Type.String({ minLength: 1, maxLength: 80 }), { default: [], description: 'calling AE titles allowed to associate, AETITLE or AETITLE@IP' }),
  watchDir: Type.Optional(Type.String({ minLength: 1, description: 'folder watched for DICOM files (default DATA_DIR/incoming)' })),
  /** A file in the watched folder is taken once its size has not changed for this long. */
  watchStableMs: Type.Integer({ minimum: 50, maximum: 600_000, default: 1000, description: 'ms a watched file must stay unchanged' }),
  /** Refuse new instances (out of resources) when less than this is free on the spool's disk. */
  minFreeBytes: Type.Integer({ minimum: 0, default: 200 * 1024 * 1024, description: 'bytes that must stay free on the spool disk' }),
  /** A DICOM sender silent this long (not one byte) has its association aborted and any partial file removed. */
  dimseTimeoutMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 60_000, description: 'ms a DICOM sender may stay silent before its association is aborted' }),
  inferenceThreads: Type.Integer({ minimum: 1, maximum: 64, default: 2, description: 'threads for the model and the JPEG 2000 decoder' }),
  workers: Type.Integer({ minimum: 1, maximum: 16, default: 1, description: 'inference worker threads' }),
  /** An image's decode and analysis is stopped after this long, from its start (a codec that never returns). */
  inferenceTimeoutMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 120_000, description: "ms an image's decode and analysis may take before it is stopped" }),
  gatewayUrl: Type.Optional(Type.String({ pattern: '^https?://', description: "the hospital gateway's address; without it the agent works alone" })),
  stationId: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$', description: 'this station at the gateway' })),
  stationToken: Type.Optional(Type.String({ minLength: 20, description: "this station's token from `cxr-gateway admin add-station`" })),
  /** The token read from this file (its first line) instead: not on the command line, where `ps` shows it. */
  stationTokenFile: Type.Optional(Type.String({ minLength: 1, description: "file holding this station's token" })),
  gatewayPollMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 15_000, description: 'ms between asking the gateway about open consults' }),
  /** While the hospital link is down it is checked after 1 s, then twice as long each time, up to this. */
  linkRetryMaxMs: Type.Integer({ minimum: 100, maximum: 3_600_000, default: 30_000, description: 'longest wait, in ms, between two checks of a hospital link that is down' }),
  /** The registry's public key; without it the first key the gateway gives is pinned in the data folder. */
  registryKey: Type.Optional(Type.String({ pattern: '^[A-Za-z0-9_-]{43}$', description: "the model registry's Ed25519 public key: raw 32 bytes, base64url (43 characters)" })),
  modelPollMs: Type.Integer({ minimum: 100, maximum: 86_400_000, default: 300_000, description: 'ms between asking the gateway which model this station should run' }),
  /** Model updates from the registry, through the gateway; never without a gateway. */
  modelSync: Type.Boolean({ default: true, description: 'take model updates from the registry (needs a gateway)' }),
  /** DICOM files larger than this go up in chunks of this size, resumed where the gateway stands after a drop. */
  uploadChunkBytes: Type.Integer({ minimum: 64 * 1024, maximum: 16 * 1024 * 1024, default: 8 * 1024 * 1024, description: 'bytes per chunk of a resumable DICOM upload (64 KiB to 16 MiB)' }),
  /** mTLS to the gateway: the CA that signed the gateway's certificate, and this station's certificate and key (PEM files). */
  gatewayCa: Type.Optional(Type.String({ minLength: 1, description: "PEM file of the CA that signed the gateway's certificate" })),
  clientCert: Type.Optional(Type.String({ minLength: 1, description: "PEM file of this station's client certificate (mTLS)" })),
  clientKey: Type.Optional(Type.String({ minLength: 1, description: "PEM file of this station's client key (mTLS)" })),
  /** Studies whose AI priority is one of these are sent for a consult without anyone pressing the button. */
  consultPriorities: Type.Array(Type.Union([Type.Literal('stat'), Type.Literal('urgent'), Type.Literal('routine')]), { default: ['stat', 'urgent'] }),
  logLevel: Type.Union(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].map((l) => Type.Literal(l)), { default: 'info' }),
});
export type EdgeConfig = Static<typeof EdgeConfigSchema>;

export class ConfigError extends Error {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
    this.problems = problems;
  }
}

/** Environment variables, one per setting: CXR_EDGE_DATA_DIR, CXR_EDGE_DICOM_PORT, ... */
const envNames: Record<keyof EdgeConfig, string> = {
  dataDir: 'CXR_EDGE_DATA_DIR',
  modelDir: 'CXR_EDGE_MODEL',
  aeTitle: 'CXR_EDGE_AE_TITLE',
  dicomPort: 'CXR_EDGE_DICOM_PORT',
  httpPort: 'CXR_EDGE_HTTP_PORT',
  httpHost: 'CXR_EDGE_HTTP_HOST',
  allowedHosts: 'CXR_EDGE_ALLOWED_HOSTS',
  requireSignIn: 'CXR_EDGE_REQUIRE_SIGN_IN',
  sessionTtlMs: 'CXR_EDGE_SESSION_TTL_MS',
  callingAe: 'CXR_EDGE_CALLING_AE',
  watchDir: 'CXR_EDGE_WATCH_DIR',
  watchStableMs: 'CXR_EDGE_WATCH_STABLE_MS',
  minFreeBytes: 'CXR_EDGE_MIN_FREE_BYTES',
  dimseTimeoutMs: 'CXR_EDGE_DIMSE_TIMEOUT_MS',
  inferenceThreads: 'CXR_EDGE_THREADS',
  workers: 'CXR_EDGE_WORKERS',
  inferenceTimeoutMs: 'CXR_EDGE_INFERENCE_TIMEOUT_MS',
  logLevel: 'CXR_EDGE_LOG_LEVEL',
  gatewayUrl: 'CXR_EDGE_GATEWAY',
  stationId: 'CXR_EDGE_STATION_ID',
  stationToken: 'CXR_EDGE_STATION_TOKEN',
  stationTokenFile: 'CXR_EDGE_STATION_TOKEN_FILE',
  consultPriorities: 'CXR_EDGE_CONSULT_PRIORITIES',
  gatewayPollMs: 'CXR_EDGE_GATEWAY_POLL_MS',
  linkRetryMaxMs: 'CXR_EDGE_LINK_RETRY_MAX_MS',
  registryKey: 'CXR_EDGE_REGISTRY_KEY',
  modelPollMs: 'CXR_EDGE_MODEL_POLL_MS',
  modelSync: 'CXR_EDGE_MODEL_SYNC',
  uploadChunkBytes: 'CXR_EDGE_UPLOAD_CHUNK_BYTES',
  gatewayCa: 'CXR_EDGE_GATEWAY_CA',
  clientCert: 'CXR_EDGE_CLIENT_CERT',
  clientKey: 'CXR_EDGE_CLIENT_KEY',
};

const numeric = new Set<keyof EdgeConfig>(['dicomPort', 'httpPort', 'watchStableMs', 'minFreeBytes', 'dimseTimeoutMs', 'inferenceThreads', 'workers', 'inferenceTimeoutMs', 'gatewayPollMs', 'linkRetryMaxMs', 'uploadChunkBytes', 'modelPollMs', 'sessionTtlMs']);
const booleans = new Set<keyof EdgeConfig>(['modelSync', 'requireSignIn']);
/** Lists: comma-separated in the environment and on the command line. */
const lists = new Set<keyof EdgeConfig>(['consultPriorities', 'allowedHosts', 'callingAe']);

/** An entry of `--calling-ae`: `AETITLE` or `AETITLE@IP` (an AE title may itself hold an @: the last one splits). */

const aeTitlePattern = /^[\x21-\x5b\x5d-\x7e]([\x20-\x5b\x5d-\x7e]{0,14}[\x21-\x5b\x5d-\x7e])?$/u;

export function parseCallingAe(entry: string): AllowedCaller | undefined {
  const at = entry.lastIndexOf('@');
  const address = at > 0 ? entry.slice(at + 1) : '';
  if (at > 0 && isIP(address) !== 0) {
    const aeTitle = entry.slice(0, at);
    return aeTitlePattern.test(aeTitle) ? { aeTitle, address } : undefined;
  }
  return aeTitlePattern.test(entry) ? { aeTitle: entry } : undefined;
}

/**
 * Layers, later wins: defaults, the config file (JSON), the environment, the command line.
 * Numbers from the environment and command line are strings until here.
 */
export function loadConfig(sources: { file?: string; env?: NodeJS.ProcessEnv; flags?: Partial<Record<keyof EdgeConfig, unknown>> }): EdgeConfig {
  const problems: string[] = [];
  let fromFile: Record<string, unknown> = {};
  if (sources.file) {
    try {
      fromFile = JSON.parse(readFileSync(sources.file, 'utf8')) as Record<string, unknown>;
    } catch (err) {
      problems.push(`config file ${sources.file}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  const fromEnv: Record<string, unknown> = {};
  for (const [key, name] of Object.entries(envNames)) {
    const value = sources.env?.[name];
    if (value !== undefined && value !== '') fromEnv[key] = value;
  }
  const merged: Record<string, unknown> = { ...fromFile, ...fromEnv };
  for (const [key, value] of Object.entries(sources.flags ?? {})) if (value !== undefined) merged[key] = value;
  for (const key of lists) {
    const v = merged[key];
    if (typeof v === 'string') merged[key] = v.split(',').map((p) => p.trim()).filter(Boolean);
  }
  for (const key of numeric) {
    const v = merged[key];
    if (typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v))) merged[key] = Number(v);
  }
  for (const key of booleans) {
    const v = merged[key];
    if (typeof v === 'string' && /^(true|1|yes|on)$/iu.test(v.trim())) merged[key] = true;
    else if (typeof v === 'string' && /^(false|0|no|off)$/iu.test(v.trim())) merged[key] = false;
  }
  for (const key of Object.keys(merged)) {
    if (!(key in EdgeConfigSchema.properties)) problems.push(`unknown setting "${key}"`);
  }
  const withDefaults = Value.Default(EdgeConfigSchema, Value.Clone(merged)) as Record<string, unknown>;
  for (const error of Value.Errors(EdgeConfigSchema, withDefaults)) {
    const key = error.path.replace(/^\//u, '') as keyof EdgeConfig;
    const hint = key in envNames ? ` (flag --${kebab(key)} or ${envNames[key]})` : '';
    // A secret is never echoed to the terminal or a log.
    problems.push(`${key || 'config'}: ${error.message}${hint}; got ${key === 'stationToken' ? 'a value of the wrong shape (not shown)' : JSON.stringify(withDefaults[key])}`);
  }
  if (typeof withDefaults.stationTokenFile === 'string') {
    if (withDefaults.stationToken !== undefined) problems.push('stationToken and stationTokenFile: give the token one way only (--station-token-file keeps it out of `ps`)');
    else {
      try {
        const token = (readFileSync(withDefaults.stationTokenFile, 'utf8').split(/\r?\n/u)[0] ?? '').trim();
        if (token.length < 20) problems.push(`stationTokenFile: ${withDefaults.stationTokenFile} does not hold a station token on its first line (flag --station-token-file or CXR_EDGE_STATION_TOKEN_FILE)`);
        else withDefaults.stationToken = token;
      } catch (err) {
        problems.push(`stationTokenFile: cannot read ${withDefaults.stationTokenFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (flag --station-token-file or CXR_EDGE_STATION_TOKEN_FILE)`);
      }
    }
  }
  if (Array.isArray(withDefaults.callingAe)) {
    for (const entry of withDefaults.callingAe) {
      if (typeof entry === 'string' && !parseCallingAe(entry)) problems.push(`callingAe: "${entry}" is not AETITLE or AETITLE@IP (1-16 characters, no backslash; an IPv4 or IPv6 address) (flag --calling-ae or CXR_EDGE_CALLING_AE)`);
    }
  }
  // A token file that could not be read is said above; it still counts as the token given.
  const link = ['gatewayUrl', 'stationId', 'stationToken'].filter((k) => withDefaults[k] !== undefined || (k === 'stationToken' && withDefaults.stationTokenFile !== undefined));
  if (link.length > 0 && link.length < 3) problems.push('gatewayUrl, stationId and stationToken go together (--gateway, --station-id, --station-token or --station-token-file)');
  if ((withDefaults.clientCert === undefined) !== (withDefaults.clientKey === undefined)) problems.push('clientCert and clientKey go together (--client-cert, --client-key)');
  for (const key of ['gatewayCa', 'clientCert', 'clientKey'] as const) {
    const file = withDefaults[key];
    if (typeof file !== 'string') continue;
    try {
      if (!readFileSync(file, 'utf8').includes('-----BEGIN ')) problems.push(`${key}: ${file} is not a PEM file (flag --${kebab(key)})`);
    } catch (err) {
      problems.push(`${key}: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)} (flag --${kebab(key)})`);
    }
  }
  if ((withDefaults.clientCert !== undefined || withDefaults.gatewayCa !== undefined) && typeof withDefaults.gatewayUrl === 'string' && !withDefaults.gatewayUrl.startsWith('https://')) {
    problems.push('gatewayCa, clientCert and clientKey need an https:// gateway address');
  }
  if (typeof withDefaults.registryKey === 'string' && /^[A-Za-z0-9_-]{43}$/u.test(withDefaults.registryKey)) {
    try {
      publicKeyFromString(withDefaults.registryKey);
    } catch (err) {
      problems.push(`registryKey: not an Ed25519 public key: ${(err as Error).message} (flag --registry-key or CXR_EDGE_REGISTRY_KEY)`);
    }
  }
  if (problems.length > 0) throw new ConfigError(problems);
  const config = withDefaults as EdgeConfig;
  return { ...config, dataDir: path.resolve(config.dataDir), modelDir: path.resolve(config.modelDir), ...(config.watchDir ? { watchDir: path.resolve(config.watchDir) } : {}) };
}

function kebab(key: string): string {
  return key.replace(/[A-Z]/gu, (c) => `-${c.toLowerCase()}`);
}
