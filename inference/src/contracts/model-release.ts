import { Type, type Static } from '@sinclair/typebox';

/** A version string compared field by field as numbers: 1.2.10 > 1.2.9. */
export const ModelVersion = Type.String({ pattern: '^[0-9]+(\\.[0-9]+){0,3}(-[0-9A-Za-z.-]+)?$', maxLength: 64 });
export const ModelName = Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,99}$' });

export const ReleaseFileSchema = Type.Object(
  {
    path: Type.String({ pattern: '^(?!/)(?!.*\\.\\.)[A-Za-z0-9._/-]{1,200}$', description: 'relative to the model folder' }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    size: Type.Integer({ minimum: 0, description: 'bytes' }),
  },
  { additionalProperties: false },
);
export type ReleaseFile = Static<typeof ReleaseFileSchema>;

/**
 * What the registry signs for each accepted version: every file of the model folder with its digest
 * (manifest.json, the model file, golden cases). An edge loads nothing whose bytes differ from this list.
 */
export const ModelReleaseSchema = Type.Object(
  {
    kind: Type.Literal('cxr-model-release'),
    name: ModelName,
    version: ModelVersion,
    runtime: Type.String({ minLength: 1 }),
    files: Type.Array(ReleaseFileSchema, { minItems: 2 }),
    acceptedAt: Type.String({ minLength: 10, description: 'ISO 8601 date-time' }),
  },
  { additionalProperties: false },
);
export type ModelRelease = Static<typeof ModelReleaseSchema>;

/**
 * What the registry signs for each deployment: the version a station (or a cohort) should run and the
 * per-site thresholds that go with that version. `rollback: true` is the only way an edge accepts a version
 * older than the one it already trusts.
 */
export const ModelDeploymentSchema = Type.Object(
  {
    kind: Type.Literal('cxr-model-deployment'),
    deploymentId: Type.String({ minLength: 1, maxLength: 100 }),
    target: Type.Union([
      Type.Object({ station: Type.String({ minLength: 1 }) }, { additionalProperties: false }),
      Type.Object({ cohort: Type.String({ minLength: 1 }), percent: Type.Number({ minimum: 0, maximum: 100 }) }, { additionalProperties: false }),
    ]),
    name: ModelName,
    version: ModelVersion,
    rollback: Type.Boolean(),
    /** label code -> threshold for this version at this site; labels not named keep the manifest's */
    thresholds: Type.Record(Type.String({ pattern: '^[a-z0-9_]+$' }), Type.Number({ minimum: 0, maximum: 1 })),
    issuedAt: Type.String({ minLength: 10, description: 'ISO 8601 date-time' }),
  },
  { additionalProperties: false },
);
export type ModelDeployment = Static<typeof ModelDeploymentSchema>;

/** Numeric comparison of two versions (the pre-release suffix sorts before the release, then as text). */
export function compareModelVersions(a: string, b: string): number {
  const [aCore = '', aPre] = a.split('-', 2);
  const [bCore = '', bPre] = b.split('-', 2);
  const aParts = aCore.split('.').map(Number);
  const bParts = bCore.split('.').map(Number);
  for (let i = 0; i < Math.max(aParts.length, bParts.length); i++) {
    const d = (aParts[i] ?? 0) - (bParts[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  if (aPre === bPre) return 0;
  if (aPre === undefined) return 1;
  if (bPre === undefined) return -1;
  return aPre < bPre ? -1 : 1;
}
