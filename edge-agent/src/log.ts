import pino, { type DestinationStream, type Logger } from 'pino';

/**
 * Patient identifiers never reach a log line. One central list: any field of these names, at any of these depths,
 * is replaced. Code logs UIDs and ids, never a dataset or a request body.
 */
export const redactPaths = [
  'patientName',
  'patientId',
  'patientBirthDate',
  'patient',
  '*.patientName',
  '*.patientId',
  '*.patientBirthDate',
  '*.patient',
  'PatientName',
  'PatientID',
  '*.PatientName',
  '*.PatientID',
];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    { level: options.level, base: { service: 'cxr-edge' }, redact: { paths: redactPaths, censor: '[redacted]' } },
    options.destination ?? pino.destination(1),
  );
}

export type { Logger };
