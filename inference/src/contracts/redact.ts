/**
 * The one list of patient-identifying field names, for every process's log redaction (pino `redact.paths`):
 * any field of these names, at the top or one level down, never reaches a log line. It covers every patient field
 * of the edge's instance records (spool/db.ts) and the page's study view (`patient`), in our spelling and DICOM's.
 */
export const patientRedactPaths: readonly string[] = [
  'patientName',
  'patientId',
  'patientBirthDate',
  'patientSex',
  'birthDate',
  'accessionNumber',
  'studyDescription',
  'patient',
  'PatientName',
  'PatientID',
  'PatientBirthDate',
  'AccessionNumber',
].flatMap((field) => [field, `*.${field}`]);
