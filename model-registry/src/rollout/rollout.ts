import { createHash } from 'node:crypto';
import { compareModelVersions, signDocument, type ModelDeployment, type SignedEnvelope } from '@cxr/inference';
import type { RegistryObjectStore } from '../deps.js';
import { getOrCreateSigningKey } from '../sign/signing-key.js';
import {
  cohortDeploymentsPrefix,
  newestFirstSegment,
  stationCohortKey,
  stationDeploymentsPrefix,
  stationsPrefix,
  timeId,
  versionKey,
} from '../store/keys.js';
import { putJsonOnce, readJsonOptional } from '../store/json.js';
import type { VersionRecord } from '../versions/push.js';

export type Target = { readonly station: string } | { readonly cohort: string; readonly percent: number };

/** A deployment as kept in the store: the signed document the stations get, and who issued it. Immutable. */
export interface DeploymentRecord {
  readonly kind: 'deploy';
  readonly deploymentId: string;
  readonly target: Target;
  readonly name: string;
  readonly version: string;
  readonly rollback: boolean;
  /** `name@version` this rollback moved away from (a later rollback skips it) */
  readonly rolledBackFrom: string | null;
  readonly thresholds: Record<string, number>;
  readonly issuedAt: string;
  readonly issuedBy: string;
  readonly signed: SignedEnvelope;
}

/**
 * The station has no deployment of its own from here on: it follows its cohort (after `unpin`, or after a move to
 * another cohort).
 */
export interface UnpinRecord {
  readonly kind: 'unpin';
  readonly deploymentId: string;
  readonly target: { readonly station: string };
  readonly issuedAt: string;
  readonly issuedBy: string;
  /** why: an unpin, or a move to another cohort (absent in records written before moves made one) */
  readonly reason?: 'unpin' | 'cohort';
  /**
   * The cohort deployment that applied to the station then, signed anew for it, issued now and as a rollback:
   * a station refuses a deployment issued before the one in force (a replayed document), and its cohort's may be
   * older than the pin it leaves, or name an older version. Served while that cohort deployment still applies.
   */
  readonly follow?: { readonly cohort: string; readonly source: string; readonly deployment: DeploymentRecord };
}

export type TargetEntry = DeploymentRecord | UnpinRecord;

export interface CohortMembership {
  readonly stationId: string;
  readonly cohort: string;
  readonly updatedAt: string;
  readonly updatedBy: string;
}

/** Why an action was refused, with the gateway error code to answer it with. */
export class RolloutError extends Error {
  constructor(
    readonly code: 'CXR_NOT_FOUND' | 'CXR_VALIDATION' | 'CXR_CONFLICT',
    message: string,
  ) {
    super(message);
    this.name = 'RolloutError';
  }
}

/**
 * A station's place in a cohort for canary percentages, in [0, 100): a stable hash of cohort and station id, so
 * a station in the first 10% stays in the first 50%, and the same stations are picked by every gateway process.
 */
export function canaryBucket(cohort: string, stationId: string): number {
  const h = createHash('sha256').update(`${cohort}/${stationId}`).digest();
  return (h.readUInt32BE(0) % 10_000) / 100;
}

const prefixOf = (target: Target): string => ('station' in target ? stationDeploymentsPrefix(target.station) : cohortDeploymentsPrefix(target.cohort));
const targetLabel = (target: Target): string => ('station' in target ? `station ${target.station}` : `cohort ${target.cohort}`);

/** The entries of a target, newest first, read lazily: resolution usually stops at the first one. */
async function* history(store: RegistryObjectStore, target: Target): AsyncGenerator<TargetEntry> {
  for await (const info of store.list(prefixOf(target))) {
    if (!info.key.endsWith('.json')) continue;
    const entry = await readJsonOptional<TargetEntry>(store, info.key);
    if (entry) yield entry;
  }
}

export async function targetHistory(store: RegistryObjectStore, target: Target, limit = 50): Promise<TargetEntry[]> {
  const out: TargetEntry[] = [];
  for await (const entry of history(store, target)) {
    out.push(entry);
    if (out.length >= limit) break;
  }
  return out;
}

export interface Resolved {
  readonly deployment: DeploymentRecord;
  readonly source: 'station' | 'cohort';
}

/**
 * Resolves deployments for stations, caching each cohort's history for the life of one request (the fleet view
 * resolves every station against the same few cohorts).
 */
export class Resolver {
  readonly #cohorts = new Map<string, Promise<DeploymentRecord[]>>();
  constructor(private readonly store: RegistryObjectStore) {}

  /** The deployments of a cohort newest first, down to the first one that covers the whole cohort. */
  #cohortChain(cohort: string): Promise<DeploymentRecord[]> {
    let chain = this.#cohorts.get(cohort);
    if (!chain) {
      chain = (async () => {
        const out: DeploymentRecord[] = [];
        for await (const entry of history(this.store, { cohort, percent: 100 })) {
          if (entry.kind !== 'deploy' || !('cohort' in entry.target)) continue;
          out.push(entry);
          if (entry.target.percent >= 100) break;
        }
        return out;
      })();
      this.#cohorts.set(cohort, chain);
    }
    return chain;
  }

  /**
   * The deployment that applies to a station: its own (unless unpinned since), else the newest deployment of its
   * cohort whose canary percent covers it.
   */
  async forStation(stationId: string, cohort: string | null): Promise<Resolved | null> {
    let follow: UnpinRecord['follow'];
    for await (const entry of history(this.store, { station: stationId })) {
      if (entry.kind === 'deploy') return { deployment: entry, source: 'station' };
      follow = entry.follow;
      break;
    }
    if (!cohort) return null;
    const applies = await this.forCohortMember(stationId, cohort);
    if (!applies) return null;
    // The copy signed for this station when it came to follow the cohort, while the cohort has not moved on.
    // People see the cohort's deployment; the station gets its copy.
    if (follow && follow.cohort === cohort && follow.source === applies.deploymentId) return { deployment: { ...applies, signed: follow.deployment.signed }, source: 'cohort' };
    return { deployment: applies, source: 'cohort' };
  }

  /**
   * The newest deployment of the cohort whose canary percent covers the station. (A station never falls back to an
   * older one within its cohort: a canary's stations stay covered by it when a newer deployment has a lower
   * percent, and a station's bucket is fixed; a move or an unpin is signed anew, see `UnpinRecord`.)
   */
  async forCohortMember(stationId: string, cohort: string): Promise<DeploymentRecord | undefined> {
    const bucket = canaryBucket(cohort, stationId);
    return (await this.#cohortChain(cohort)).find((d) => 'cohort' in d.target && bucket < d.target.percent);
  }
}

export async function cohortOf(store: RegistryObjectStore, stationId: string): Promise<string | null> {
  return (await readJsonOptional<CohortMembership>(store, stationCohortKey(stationId)))?.cohort ?? null;
}

/** Every station's cohort (stations in none are absent). */
export async function memberships(store: RegistryObjectStore): Promise<Map<string, CohortMembership>> {
  const out = new Map<string, CohortMembership>();
  for await (const info of store.list(stationsPrefix)) {
    if (!info.key.endsWith('/cohort.json')) continue;
    const m = await readJsonOptional<CohortMembership>(store, info.key);
    if (m) out.set(m.stationId, m);
  }
  return out;
}

/**
 * Puts a station in a cohort (a station is in one cohort at most: this moves it). A station without a deployment
 * of its own follows the new cohort from now: what applies to it there is signed anew for it (see `UnpinRecord`).
 */
export async function setCohort(store: RegistryObjectStore, stationId: string, cohort: string, by: string): Promise<CohortMembership> {
  const before = await cohortOf(store, stationId);
  const membership: CohortMembership = { stationId, cohort, updatedAt: new Date().toISOString(), updatedBy: by };
  await store.put(stationCohortKey(stationId), Buffer.from(JSON.stringify(membership)), { contentType: 'application/json' });
  if (before !== cohort && !(await isPinned(store, stationId))) await appendFollow(store, stationId, cohort, by, 'cohort');
  return membership;
}

async function isPinned(store: RegistryObjectStore, stationId: string): Promise<boolean> {
  for await (const entry of history(store, { station: stationId })) return entry.kind === 'deploy';
  return false;
}

/** Records that the station follows `cohort` from now, with the cohort's deployment for it signed anew. */
async function appendFollow(store: RegistryObjectStore, stationId: string, cohort: string | null, issuedBy: string, reason: 'unpin' | 'cohort'): Promise<UnpinRecord> {
  const now = await issueTime(store, { station: stationId });
  const applies = cohort ? await new Resolver(store).forCohortMember(stationId, cohort) : undefined;
  const follow =
    cohort && applies
      ? {
          cohort,
          source: applies.deploymentId,
          deployment: await signDeployment(
            store,
            { target: { station: stationId }, name: applies.name, version: applies.version, rollback: true, rolledBackFrom: null, thresholds: applies.thresholds, issuedBy },
            now,
          ),
        }
      : undefined;
  const record: UnpinRecord = { kind: 'unpin', deploymentId: timeId(now), target: { station: stationId }, issuedAt: now.toISOString(), issuedBy, reason, ...(follow ? { follow } : {}) };
  await putJsonOnce(store, `${stationDeploymentsPrefix(stationId)}${newestFirstSegment(now)}.json`, record);
  return record;
}

export async function leaveCohort(store: RegistryObjectStore, stationId: string): Promise<void> {
  await store.delete(stationCohortKey(stationId));
}

/**
 * Per-site thresholds from a thresholds file's JSON: a flat `{code: number}` or a `cxr calibrate` file
 * (`{"thresholds": {...}}`). Every code must be a label of the version, every value in [0, 1].
 */
export function thresholdsFor(json: unknown, labels: readonly string[], what: string): Record<string, number> {
  if (json === undefined || json === null) return {};
  const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
  if (!isObject(json)) throw new RolloutError('CXR_VALIDATION', 'thresholds: expected an object of label code to a number in [0, 1]');
  const map = isObject(json.thresholds) ? json.thresholds : json;
  const problems: string[] = [];
  const out: Record<string, number> = {};
  for (const [code, value] of Object.entries(map)) {
    if (!labels.includes(code)) problems.push(`"${code}" is not a label of ${what} (its labels: ${labels.join(', ')})`);
    else if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) problems.push(`"${code}": ${JSON.stringify(value)} is not a number in [0, 1]`);
    else out[code] = value;
  }
  if (problems.length > 0) throw new RolloutError('CXR_VALIDATION', `thresholds: ${problems.join('; ')}`);
  return out;
}

interface DeploymentInput {
  target: Target;
  name: string;
  version: string;
  rollback: boolean;
  rolledBackFrom: string | null;
  thresholds: Record<string, number>;
  issuedBy: string;
}

/**
 * When an entry of `target` is issued: now, or just after the newest entry of the target when that one looks later
 * (issued by a gateway whose clock runs ahead). Several gateways issue deployments; a target's entries must stay
 * in the order people made them, for the registry (newest first by key) and for the stations (they refuse a
 * deployment issued before the one in force).
 */
async function issueTime(store: RegistryObjectStore, target: Target): Promise<Date> {
  const now = Date.now();
  for await (const entry of history(store, target)) {
    const newest = Date.parse(entry.issuedAt);
    return new Date(Number.isFinite(newest) && newest >= now ? newest + 1 : now);
  }
  return new Date(now);
}

async function signAndStore(store: RegistryObjectStore, input: DeploymentInput): Promise<DeploymentRecord> {
  const now = await issueTime(store, input.target);
  const record = await signDeployment(store, input, now);
  await putJsonOnce(store, `${prefixOf(input.target)}${newestFirstSegment(now)}.json`, record);
  return record;
}

/** A deployment record with its document signed by the registry key, issued `now`. */
async function signDeployment(store: RegistryObjectStore, input: DeploymentInput, now: Date): Promise<DeploymentRecord> {
  const deploymentId = timeId(now);
  const document: ModelDeployment = {
    kind: 'cxr-model-deployment',
    deploymentId,
    target: 'station' in input.target ? { station: input.target.station } : { cohort: input.target.cohort, percent: input.target.percent },
    name: input.name,
    version: input.version,
    rollback: input.rollback,
    thresholds: input.thresholds,
    issuedAt: now.toISOString(),
  };
  const key = await getOrCreateSigningKey(store);
  const record: DeploymentRecord = {
    kind: 'deploy',
    deploymentId,
    target: document.target,
    name: input.name,
    version: input.version,
    rollback: input.rollback,
    rolledBackFrom: input.rolledBackFrom,
    thresholds: input.thresholds,
    issuedAt: document.issuedAt,
    issuedBy: input.issuedBy,
    signed: signDocument(document, key.privateKeyPem),
  };
  return record;
}

export interface DeployInput {
  readonly name: string;
  readonly version: string;
  readonly target: Target;
  /** the thresholds file's JSON, as read by the command line */
  readonly thresholds?: unknown;
  /** sign as a rollback: needed to send a version older than the one the target runs */
  readonly rollback?: boolean;
  readonly issuedBy: string;
}

/** Sets the desired version of a station or of (a canary percent of) a cohort. */
export async function deploy(store: RegistryObjectStore, input: DeployInput, checks: { stationExists: (id: string) => Promise<boolean> }): Promise<DeploymentRecord> {
  const version = await readJsonOptional<VersionRecord>(store, versionKey(input.name, input.version));
  if (!version) throw new RolloutError('CXR_NOT_FOUND', `no accepted version ${input.name}@${input.version} in the registry (push it first)`);
  const thresholds = thresholdsFor(input.thresholds, version.labels.map((l) => l.code), `${input.name}@${input.version}`);
  const { target } = input;
  if ('station' in target) {
    if (!(await checks.stationExists(target.station))) throw new RolloutError('CXR_NOT_FOUND', `no station ${target.station}`);
  } else {
    if (!Number.isFinite(target.percent) || target.percent <= 0 || target.percent > 100) throw new RolloutError('CXR_VALIDATION', 'percent must be in (0, 100]');
    const members = [...(await memberships(store)).values()].filter((m) => m.cohort === target.cohort);
    if (members.length === 0) throw new RolloutError('CXR_NOT_FOUND', `cohort ${target.cohort} has no station (add some with: cxr-registry cohort add ${target.cohort} STATION_ID...)`);
  }
  const newest = (await targetHistory(store, target, 10)).find((e): e is DeploymentRecord => e.kind === 'deploy');
  if (newest && !input.rollback && compareModelVersions(input.version, newest.version) < 0) {
    throw new RolloutError(
      'CXR_CONFLICT',
      `${input.version} is older than ${newest.name}@${newest.version} deployed to ${targetLabel(target)}: stations refuse an older version unless it is signed as a rollback (cxr-registry rollback, or deploy --rollback)`,
    );
  }
  return signAndStore(store, { target, name: input.name, version: input.version, rollback: input.rollback === true, rolledBackFrom: null, thresholds, issuedBy: input.issuedBy });
}

/**
 * Rolls a cohort (or a station) back to the version it ran before, for all its stations, signed as a rollback.
 * Versions already rolled back from are skipped, so two rollbacks in a row go two versions back.
 */
export async function rollback(store: RegistryObjectStore, target: { cohort: string } | { station: string }, issuedBy: string): Promise<DeploymentRecord> {
  const full: Target = 'cohort' in target ? { cohort: target.cohort, percent: 100 } : target;
  const deployments = (await targetHistory(store, full, 500)).filter((e): e is DeploymentRecord => e.kind === 'deploy');
  const current = deployments[0];
  if (!current) throw new RolloutError('CXR_NOT_FOUND', `nothing was deployed to ${targetLabel(full)}`);
  const abandoned = new Set([`${current.name}@${current.version}`]);
  let previous: DeploymentRecord | undefined;
  for (const d of deployments) {
    if (d.rolledBackFrom) abandoned.add(d.rolledBackFrom);
    if (!abandoned.has(`${d.name}@${d.version}`)) {
      previous = d;
      break;
    }
  }
  if (!previous) throw new RolloutError('CXR_CONFLICT', `${targetLabel(full)} has no earlier version to roll back to (it runs ${current.name}@${current.version})`);
  return signAndStore(store, {
    target: full,
    name: previous.name,
    version: previous.version,
    rollback: true,
    rolledBackFrom: `${current.name}@${current.version}`,
    thresholds: previous.thresholds,
    issuedBy,
  });
}

/** Ends a station's own deployment so that it follows its cohort again (its deployment signed anew for it). */
export async function unpin(store: RegistryObjectStore, stationId: string, issuedBy: string): Promise<UnpinRecord> {
  return appendFollow(store, stationId, await cohortOf(store, stationId), issuedBy, 'unpin');
}
