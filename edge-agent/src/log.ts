import pino, { type DestinationStream, type Logger } from 'pino';
import { patientRedactPaths } from '@cxr/inference';

/** Patient identifiers never reach a log line (the shared list). Code logs UIDs and ids, never a dataset. */
export const redactPaths = [...patientRedactPaths];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    { level: options.level, base: { service: 'cxr-edge' }, redact: { paths: redactPaths, censor: '[redacted]' } },
    options.destination ?? pino.destination(1),
  );
}

export type { Logger };
