/**
 * The one list of patient-identifying field names, for every process's log redaction (pino `redact.paths`):
 * any field of these names, at the top or one level down, never reaches a log line.
 */
export const patientRedactPaths: readonly string[] = ['patientName', 'patientId', 'patientBirthDate', 'patient', 'PatientName', 'PatientID'].flatMap(
  (field) => [field, `*.${field}`],
);
