import pino, { type DestinationStream, type Logger } from 'pino';

/** One central list: patient fields never reach a log line, whatever object carries them; nor do secrets. */
export const redactPaths = [
  'patientName',
  'patientId',
  'patientBirthDate',
  'patient',
  '*.patientName',
  '*.patientId',
  '*.patientBirthDate',
  '*.patient',
  'password',
  '*.password',
  'token',
  '*.token',
  'req.headers.authorization',
];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    { level: options.level, base: { service: 'cxr-gateway' }, redact: { paths: redactPaths, censor: '[redacted]' } },
    options.destination ?? pino.destination(1),
  );
}
