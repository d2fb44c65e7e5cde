import { Type, type Static } from '@sinclair/typebox';

/** Model manifest, version 1: the preprocessing contract of ../shared/DESIGN.md. The one schema source. */
export const Priority = Type.Union([Type.Literal('stat'), Type.Literal('urgent'), Type.Literal('routine')]);
export type Priority = Static<typeof Priority>;

export const LabelSchema = Type.Object(
  {
    code: Type.String({ pattern: '^[a-z0-9_]+$', minLength: 1, maxLength: 64 }),
    display: Type.String({ minLength: 1 }),
    displayVi: Type.String({ minLength: 1 }),
    threshold: Type.Number({ minimum: 0, maximum: 1 }),
    priority: Priority,
    role: Type.Union([Type.Literal('finding'), Type.Literal('normal'), Type.Literal('other')]),
  },
  { additionalProperties: true },
);
export type Label = Static<typeof LabelSchema>;

const NormalizeScale = Type.Object({ scale: Type.Number(), offset: Type.Number() }, { additionalProperties: false });
const NormalizeMeanStd = Type.Object(
  {
    mean: Type.Array(Type.Number(), { minItems: 1, maxItems: 4 }),
    std: Type.Array(Type.Number({ exclusiveMinimum: 0 }), { minItems: 1, maxItems: 4 }),
  },
  { additionalProperties: false },
);

export const ModelInputSchema = Type.Object({
  name: Type.String({ minLength: 1 }),
  channels: Type.Union([Type.Literal(1), Type.Literal(3)]),
  height: Type.Integer({ minimum: 8, maximum: 4096 }),
  width: Type.Integer({ minimum: 8, maximum: 4096 }),
  intensity: Type.Union([Type.Literal('bits'), Type.Literal('window'), Type.Literal('minmax')]),
  crop: Type.Union([Type.Literal('none'), Type.Literal('center-square')]),
  resize: Type.Union([Type.Literal('area'), Type.Literal('bilinear')]),
  quantize: Type.Union([Type.Null(), Type.Literal(8)]),
  normalize: Type.Union([NormalizeScale, NormalizeMeanStd]),
});
export type ModelInput = Static<typeof ModelInputSchema>;

export const GoldenCaseSchema = Type.Object({
  file: Type.String({ minLength: 1 }),
  probabilities: Type.Array(Type.Number()),
  tolerance: Type.Number({ exclusiveMinimum: 0 }),
});
export type GoldenCase = Static<typeof GoldenCaseSchema>;

/** A file of the model folder the runtime reads besides `file`, with its digest. */
export const ModelFileSchema = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'relative to the model folder' }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
  },
  { additionalProperties: false },
);
export type ModelFile = Static<typeof ModelFileSchema>;

export const ModelManifestSchema = Type.Object(
  {
    schemaVersion: Type.Literal(1),
    name: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]*$', minLength: 1, maxLength: 128 }),
    version: Type.String({ pattern: '^\\d+\\.\\d+\\.\\d+([-+][0-9A-Za-z.-]+)?$' }),
    description: Type.Optional(Type.String()),
    runtime: Type.Union([Type.Literal('onnx'), Type.Literal('tfjs')]),
    file: Type.String({ minLength: 1 }),
    sha256: Type.String({ pattern: '^[0-9a-f]{64}$' }),
    files: Type.Optional(
      Type.Array(ModelFileSchema, {
        description: 'more files the model needs besides `file` (TF.js weight shards, ONNX external data), each checked at load',
      }),
    ),
    input: ModelInputSchema,
    outputs: Type.Object({
      probabilities: Type.Object({
        name: Type.String({ minLength: 1 }),
        activation: Type.Union([Type.Literal('none'), Type.Literal('sigmoid'), Type.Literal('softmax')]),
      }),
      cam: Type.Optional(Type.Object({ name: Type.String({ minLength: 1 }) })),
    }),
    labels: Type.Array(LabelSchema, { minItems: 1 }),
    applicability: Type.Object({
      modalities: Type.Array(Type.String(), { minItems: 1 }),
      bodyParts: Type.Array(Type.String(), { minItems: 1 }),
      views: Type.Array(Type.String(), { minItems: 1 }),
    }),
    golden: Type.Optional(Type.Array(GoldenCaseSchema)),
  },
  { additionalProperties: true },
);
export type ModelManifest = Static<typeof ModelManifestSchema>;

export const ModelIdentitySchema = Type.Object({
  name: Type.String(),
  version: Type.String(),
  sha256: Type.String(),
});
export type ModelIdentity = Static<typeof ModelIdentitySchema>;
