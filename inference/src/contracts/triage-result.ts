import { Type, type Static } from '@sinclair/typebox';
import { ModelIdentitySchema, Priority } from './manifest.js';

export const FindingSchema = Type.Object({
  code: Type.String(),
  display: Type.String(),
  displayVi: Type.String(),
  probability: Type.Number(),
  threshold: Type.Number(),
  positive: Type.Boolean(),
  priority: Priority,
});
export type Finding = Static<typeof FindingSchema>;

export const TimingsSchema = Type.Object({
  read: Type.Optional(Type.Number()),
  decode: Type.Number(),
  preprocess: Type.Number(),
  infer: Type.Number(),
  total: Type.Number(),
});
export type Timings = Static<typeof TimingsSchema>;

export const ApplicabilitySchema = Type.Object({
  /** False when the body part or view was missing from the header, so the gate could not be checked. */
  verified: Type.Boolean(),
  modality: Type.Optional(Type.String()),
  bodyPart: Type.Optional(Type.String()),
  view: Type.Optional(Type.String()),
  /** Machine-readable reason when not applicable: modality, body-part, view, colour. */
  reasonCode: Type.Optional(Type.String()),
  reasonVi: Type.Optional(Type.String()),
  notes: Type.Array(Type.String()),
  /** Machine-readable `notes`: modality-missing, body-part-missing, view-missing. */
  noteCodes: Type.Optional(Type.Array(Type.String())),
});
export type Applicability = Static<typeof ApplicabilitySchema>;

/** What `cxr infer --json` prints per file and what the edge stores per instance. Changes only additively. */
export const TriageResultSchema = Type.Object({
  schemaVersion: Type.Literal(1),
  file: Type.Optional(Type.String()),
  sopInstanceUid: Type.Union([Type.String(), Type.Null()]),
  studyInstanceUid: Type.Union([Type.String(), Type.Null()]),
  applicable: Type.Boolean(),
  reason: Type.Optional(Type.String()),
  applicability: ApplicabilitySchema,
  /** Set when the model was run with --force on an image outside its applicability. */
  forced: Type.Optional(Type.Boolean()),
  probabilities: Type.Optional(Type.Array(Type.Number())),
  findings: Type.Array(FindingSchema),
  priority: Priority,
  model: ModelIdentitySchema,
  timingsMs: TimingsSchema,
  decoder: Type.Optional(Type.String()),
});
export type TriageResult = Static<typeof TriageResultSchema>;

export const ErrorResultSchema = Type.Object({
  file: Type.String(),
  error: Type.Object({ code: Type.String(), message: Type.String(), transient: Type.Optional(Type.Boolean()) }),
});
export type ErrorResult = Static<typeof ErrorResultSchema>;
