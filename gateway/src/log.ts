import pino, { type DestinationStream, type Logger } from 'pino';
import { patientRedactPaths } from '@cxr/inference';

/** Patient fields (the shared list) never reach a log line, nor do passwords, tokens or credentials. */
export const redactPaths = [...patientRedactPaths, 'password', '*.password', 'token', '*.token', 'req.headers.authorization'];

export function createLogger(options: { level: string; destination?: DestinationStream }): Logger {
  return pino(
    { level: options.level, base: { service: 'cxr-gateway' }, redact: { paths: redactPaths, censor: '[redacted]' } },
    options.destination ?? pino.destination(1),
  );
}
