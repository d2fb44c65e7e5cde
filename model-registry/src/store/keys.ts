/**
 * Where the registry keeps things in the object store (the system of record). One place, so the layout reads at a
 * glance:
 *
 *   registry/signing-key.json                           the Ed25519 key pair (created once, never overwritten)
 *   registry/blobs/<sha256>                             uploaded files, by content (shared by versions)
 *   registry/models/<name>/versions/<version>.json      an accepted version: files, report, signed release (immutable)
 *   registry/refused/<newest-first>.json                the report of a refused push
 *   registry/deployments/cohort/<cohort>/<newest-first>.json   deployments to a cohort (immutable)
 *   registry/deployments/station/<station>/<newest-first>.json deployments to one station, and unpins (immutable)
 *   registry/stations/<station>/cohort.json             the cohort a station belongs to (one at most)
 *   registry/stations/<station>/status.json             the station's last status report
 *
 * `<newest-first>` keys start with a countdown from the year 2286, so a listing (ascending by key) gives the
 * newest first and a reader can stop early.
 */
import { randomBytes } from 'node:crypto';

export const SIGNING_KEY = 'registry/signing-key.json';
export const blobKey = (sha256: string): string => `registry/blobs/${sha256}`;
export const modelsPrefix = 'registry/models/';
export const versionsPrefix = (name: string): string => `registry/models/${name}/versions/`;
export const versionKey = (name: string, version: string): string => `${versionsPrefix(name)}${version}.json`;
export const refusedPrefix = 'registry/refused/';
export const cohortDeploymentsPrefix = (cohort: string): string => `registry/deployments/cohort/${cohort}/`;
export const stationDeploymentsPrefix = (stationId: string): string => `registry/deployments/station/${stationId}/`;
export const stationsPrefix = 'registry/stations/';
export const stationCohortKey = (stationId: string): string => `${stationsPrefix}${stationId}/cohort.json`;
export const stationStatusKey = (stationId: string): string => `${stationsPrefix}${stationId}/status.json`;

const COUNTDOWN_FROM = 9_999_999_999_999;

/** A key segment that sorts newest first: a countdown of milliseconds, then a random tail against ties. */
export function newestFirstSegment(now: Date = new Date()): string {
  return `${String(COUNTDOWN_FROM - now.getTime()).padStart(13, '0')}-${randomBytes(4).toString('hex')}`;
}

/** An id people can read and sort: `20251123T143512345Z-1a2b3c4d`. */
export function timeId(now: Date = new Date()): string {
  return `${now.toISOString().replace(/[-:.]/gu, '')}-${randomBytes(4).toString('hex')}`;
}

export const NAME_PATTERN = /^[a-z0-9][a-z0-9._-]{0,99}$/u;
export const VERSION_PATTERN = /^[0-9]+(\.[0-9]+){0,3}(-[0-9A-Za-z.-]+)?$/u;
export const COHORT_PATTERN = /^[a-z0-9][a-z0-9_-]{0,63}$/u;
export const STATION_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{1,63}$/u;
export const SHA256_PATTERN = /^[0-9a-f]{64}$/u;
