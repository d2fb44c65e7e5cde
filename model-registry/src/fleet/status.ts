import { Type, type Static } from '@sinclair/typebox';
import type { RegistryLogger, RegistryObjectStore, RegistryRedis } from '../deps.js';
import { Resolver, memberships, type DeploymentRecord } from '../rollout/rollout.js';
import { stationStatusKey } from '../store/keys.js';
import { readJsonOptional, writeJson } from '../store/json.js';

const Identity = Type.Object({ name: Type.String({ maxLength: 128 }), version: Type.String({ maxLength: 64 }) });

/** The body of `POST /api/v1/stations/:stationId/model/status` (PROTOCOL.md). Extra fields are kept, not refused. */
export const StationStatusSchema = Type.Object(
  {
    running: Type.Union([Type.Object({ name: Type.String({ maxLength: 128 }), version: Type.String({ maxLength: 64 }), sha256: Type.String({ maxLength: 64 }) }), Type.Null()]),
    lastGood: Type.Union([Identity, Type.Null()]),
    state: Type.Union([Type.Literal('ok'), Type.Literal('downloading'), Type.Literal('verifying'), Type.Literal('failed')]),
    error: Type.Optional(
      Type.Union([
        Type.Object({
          code: Type.String({ maxLength: 64 }),
          message: Type.String({ maxLength: 2000 }),
          name: Type.Optional(Type.String({ maxLength: 128 })),
          version: Type.Optional(Type.String({ maxLength: 64 })),
        }),
        Type.Null(),
      ]),
    ),
    counts: Type.Object({ studies: Type.Integer({ minimum: 0 }), failed: Type.Integer({ minimum: 0 }) }),
    at: Type.String({ minLength: 10, maxLength: 40 }),
  },
  { additionalProperties: true },
);
export type StationStatus = Static<typeof StationStatusSchema>;

export interface StoredStatus {
  readonly stationId: string;
  readonly report: StationStatus;
  readonly receivedAt: string;
}

export async function recordStatus(store: RegistryObjectStore, stationId: string, report: StationStatus): Promise<StoredStatus> {
  const stored: StoredStatus = { stationId, report, receivedAt: new Date().toISOString() };
  await writeJson(store, stationStatusKey(stationId), stored);
  return stored;
}

export async function readStatus(store: RegistryObjectStore, stationId: string): Promise<StoredStatus | undefined> {
  return readJsonOptional<StoredStatus>(store, stationStatusKey(stationId));
}

/**
 * When each station last called the registry, in Redis: a poll is frequent and must not write to the store. Lost
 * with Redis, it falls back to the time of the last status report (in the store); Redis being down never fails a
 * station's request or the fleet view.
 */
export class LastSeen {
  constructor(
    private readonly redis: RegistryRedis,
    private readonly prefix: string,
    private readonly log: RegistryLogger,
  ) {}

  async touch(stationId: string): Promise<void> {
    try {
      await this.redis.set(`${this.prefix}seen:${stationId}`, new Date().toISOString());
    } catch (err) {
      this.log.warn({ stationId, err: (err as Error).message }, 'could not note when the station was seen');
    }
  }

  async many(stationIds: readonly string[]): Promise<Map<string, string>> {
    const out = new Map<string, string>();
    if (stationIds.length === 0) return out;
    let values: (string | null)[];
    try {
      values = await this.redis.mget(stationIds.map((id) => `${this.prefix}seen:${id}`));
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'last-seen times unavailable; using the status reports');
      return out;
    }
    stationIds.forEach((id, i) => {
      const v = values[i];
      if (v) out.set(id, v);
    });
    return out;
  }
}

export type SyncState = 'in-sync' | 'pending' | 'failed' | 'no-deployment' | 'never-seen';

/** One row of the fleet view (`GET /api/v1/registry/status`, `cxr-registry status --json`). */
export interface FleetRow {
  readonly stationId: string;
  readonly cohort: string | null;
  readonly desired: { name: string; version: string; deploymentId: string; source: 'station' | 'cohort'; rollback: boolean; thresholds: Record<string, number>; issuedAt: string } | null;
  readonly running: { name: string; version: string; sha256: string } | null;
  readonly lastGood: { name: string; version: string } | null;
  /** what the station last reported: ok, downloading, verifying, failed; null when it never reported */
  readonly state: StationStatus['state'] | null;
  readonly lastError: { code: string; message: string; name?: string; version?: string } | null;
  readonly counts: { studies: number; failed: number } | null;
  readonly lastSeen: string | null;
  readonly lastReportAt: string | null;
  /** failing (its last report says so), running the desired version, still on its way, nothing deployed, or never heard from */
  readonly sync: SyncState;
}

function desiredOf(d: DeploymentRecord, source: 'station' | 'cohort'): NonNullable<FleetRow['desired']> {
  return { name: d.name, version: d.version, deploymentId: d.deploymentId, source, rollback: d.rollback, thresholds: d.thresholds, issuedAt: d.issuedAt };
}

export async function fleetStatus(store: RegistryObjectStore, stationIds: readonly string[], seen: LastSeen): Promise<FleetRow[]> {
  const [cohorts, lastSeen] = await Promise.all([memberships(store), seen.many(stationIds)]);
  const resolver = new Resolver(store);
  const rows: FleetRow[] = [];
  for (const stationId of [...stationIds].sort()) {
    const cohort = cohorts.get(stationId)?.cohort ?? null;
    const [resolved, status] = await Promise.all([resolver.forStation(stationId, cohort), readStatus(store, stationId)]);
    const report = status?.report;
    const desired = resolved ? desiredOf(resolved.deployment, resolved.source) : null;
    const running = report?.running ?? null;
    const seenAt = [lastSeen.get(stationId), status?.receivedAt].filter((x): x is string => Boolean(x)).sort().at(-1) ?? null;
    let sync: SyncState;
    if (!desired) sync = 'no-deployment';
    else if (!report) sync = seenAt ? 'pending' : 'never-seen';
    else if (report.state === 'failed') sync = 'failed';
    else if (running?.name === desired.name && running.version === desired.version) sync = 'in-sync';
    else sync = 'pending';
    rows.push({
      stationId,
      cohort,
      desired,
      running,
      lastGood: report?.lastGood ?? null,
      state: report?.state ?? null,
      lastError: report?.error ?? null,
      counts: report?.counts ?? null,
      lastSeen: seenAt,
      lastReportAt: status?.receivedAt ?? null,
      sync,
    });
  }
  return rows;
}
