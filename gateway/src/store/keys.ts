/**
 * Where the gateway keeps things in the object store (the system of record). One place, so the layout reads at a
 * glance:
 *
 *   consults/<consultId>/consult.json                       the consult request (written once)
 *   consults/<consultId>/report.json                        the radiologist's signed report (written once)
 *   consults/<consultId>/claim.json                         who holds the consult, until when
 *   studies/<station>/<study>/instances/<sop>/<sha256>/     one instance, by content:
 *       result.json, preview.png, heatmap.png, instance.dcm
 *   uploads/<instance prefix>/part-<offset>                 chunks of a resumable DICOM upload, until joined
 *   accounts/users/<username>.json                          a hospital user
 *   accounts/stations/<stationId>.json                      a station and its token
 *   audit/<yyyy-mm-dd>/<time>-<uuid>.json                   one audit event (written once)
 *
 * Every segment is checked before it gets here (ids.ts: UIDs, sha256, consult ids; accounts: names).
 */

export const CONSULTS_PREFIX = 'consults/';
export type ConsultFile = 'consult.json' | 'report.json' | 'claim.json';
export const consultKey = (consultId: string, file: ConsultFile = 'consult.json'): string => `${CONSULTS_PREFIX}${consultId}/${file}`;
export const consultKeys = (consultId: string): { consult: string; report: string; claim: string } => ({
  consult: consultKey(consultId, 'consult.json'),
  report: consultKey(consultId, 'report.json'),
  claim: consultKey(consultId, 'claim.json'),
});

/** A key under consults/ split into its consult id and file name (undefined parts when it has fewer segments). */
export function parseConsultKey(key: string): { consultId: string | undefined; file: string | undefined } {
  const [, consultId, file] = key.split('/');
  return { consultId, file };
}

/** A consult request is stored once per station and study; a replay carries another arrival time, not a conflict. */
export const isConsultRecordKey = (key: string): boolean => key.startsWith(CONSULTS_PREFIX) && key.endsWith('/consult.json');

export type InstanceFile = 'result.json' | 'preview.png' | 'heatmap.png' | 'instance.dcm';
export const studyInstancesPrefix = (stationId: string, studyUid: string): string => `studies/${stationId}/${studyUid}/instances/`;
export const instancePrefix = (stationId: string, studyUid: string, sopUid: string, contentSha256: string): string =>
  `${studyInstancesPrefix(stationId, studyUid)}${sopUid}/${contentSha256}`;
export const instanceFileKey = (prefix: string, file: InstanceFile): string => `${prefix}/${file}`;

export const UPLOADS_PREFIX = 'uploads/';
export const uploadPartsPrefix = (prefix: string): string => `${UPLOADS_PREFIX}${prefix}/part-`;
/** The upload whose chunk this is (`uploads/<instance prefix>`), or undefined for a key that is not a chunk. */
export function uploadOfPart(key: string): string | undefined {
  const at = key.lastIndexOf('/part-');
  return at < 0 ? undefined : key.slice(0, at);
}
/** The instance file an upload (`uploads/<instance prefix>`) is joined into. */
export const joinedKeyOfUpload = (upload: string): string => instanceFileKey(upload.slice(UPLOADS_PREFIX.length), 'instance.dcm');

export const USERS_PREFIX = 'accounts/users/';
export const userKey = (username: string): string => `${USERS_PREFIX}${username}.json`;
export const STATIONS_PREFIX = 'accounts/stations/';
export const stationKey = (stationId: string): string => `${STATIONS_PREFIX}${stationId}.json`;

export const auditDayPrefix = (date: string): string => `audit/${date}/`;
/** `at` is an ISO 8601 time; its date names the day folder, and its colons and dot are made safe for file names. */
export const auditKey = (at: string, unique: string): string => `${auditDayPrefix(at.slice(0, 10))}${at.replace(/[:.]/gu, '-')}-${unique}.json`;
