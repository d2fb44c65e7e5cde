import { createHash } from 'node:crypto';
import { isValidUid } from '@cxr/inference';
import { GatewayError } from '../errors.js';

const shaPattern = /^[0-9a-f]{64}$/u;

/** A DICOM UID (the UI grammar of PS3.5 9.1, at most 64 characters, as the edge checks at intake): safe as an object-store key segment. */
export function assertUid(value: string, what: string): string {
  if (!isValidUid(value)) throw new GatewayError('CXR_VALIDATION', `${what} is not a DICOM UID`);
  return value;
}

export function assertSha256(value: string | undefined, what: string): string {
  if (!value || !shaPattern.test(value)) throw new GatewayError('CXR_VALIDATION', `${what} must be 64 lower-case hex digits`);
  return value;
}

/** One consult per station and study: a replayed request finds the same consult. */
export function consultIdOf(stationId: string, studyInstanceUid: string): string {
  return `${stationId}-${createHash('sha256').update(`${stationId}/${studyInstanceUid}`).digest('hex').slice(0, 20)}`;
}

/** A consult id as consultIdOf makes it; anything else is no consult (and never reaches a store key). */
export function safeConsultId(consultId: string): string {
  if (!/^[A-Za-z0-9_-]{2,64}-[0-9a-f]{20}$/u.test(consultId)) throw new GatewayError('CXR_NOT_FOUND', 'no such consult');
  return consultId;
}
