/** Transfer syntaxes a CR/DX unit may send. Logic refers to these names, never to UID literals. */
export const TransferSyntax = {
  ImplicitVRLittleEndian: '1.2.840.10008.1.2',
  ExplicitVRLittleEndian: '1.2.840.10008.1.2.1',
  DeflatedExplicitVRLittleEndian: '1.2.840.10008.1.2.1.99',
  ExplicitVRBigEndian: '1.2.840.10008.1.2.2',
  JPEGBaseline8Bit: '1.2.840.10008.1.2.4.50',
  JPEGExtended12Bit: '1.2.840.10008.1.2.4.51',
  JPEGLossless: '1.2.840.10008.1.2.4.57',
  JPEGLosslessSV1: '1.2.840.10008.1.2.4.70',
  JPEGLSLossless: '1.2.840.10008.1.2.4.80',
  JPEGLSNearLossless: '1.2.840.10008.1.2.4.81',
  JPEG2000Lossless: '1.2.840.10008.1.2.4.90',
  JPEG2000: '1.2.840.10008.1.2.4.91',
  HTJ2KLossless: '1.2.840.10008.1.2.4.201',
  HTJ2KLosslessRPCL: '1.2.840.10008.1.2.4.202',
  HTJ2K: '1.2.840.10008.1.2.4.203',
  RLELossless: '1.2.840.10008.1.2.5',
} as const;
export type TransferSyntaxUid = (typeof TransferSyntax)[keyof typeof TransferSyntax];

const transferSyntaxNames = new Map<string, string>(Object.entries(TransferSyntax).map(([name, uid]) => [uid, name]));

/**
 * The name of a transfer syntax this build knows, the UID itself when it is a well-formed UID, and otherwise only
 * its length: the value comes from the file, and a hostile one (a Transfer Syntax UID element whose length swallows
 * the dataset) would carry patient names into messages and logs.
 */
export function transferSyntaxName(uid: string): string {
  return transferSyntaxNames.get(uid) ?? (isValidUid(uid) ? uid : `an invalid transfer syntax UID (${uid.length} characters)`);
}

/** PS3.5 9.1: components of digits without a leading zero (unless the component is "0"), dots between, 64 characters at most. */
const uidGrammar = /^(?:0|[1-9][0-9]*)(?:\.(?:0|[1-9][0-9]*))*$/u;

/**
 * Whether a value is a DICOM UID by the grammar of PS3.5 9.1. A UID that passes is safe as a path segment (digits
 * and single dots, never "." or ".."); anything else from a file is never put in a URL or a path.
 */
export function isValidUid(value: string): boolean {
  return value.length <= 64 && uidGrammar.test(value);
}

export function isKnownTransferSyntax(uid: string): uid is TransferSyntaxUid {
  return transferSyntaxNames.has(uid);
}

/** Storage SOP classes the edge accepts. */
export const SopClass = {
  ComputedRadiographyImageStorage: '1.2.840.10008.5.1.4.1.1.1',
  DigitalXRayImageStorageForPresentation: '1.2.840.10008.5.1.4.1.1.1.1',
  DigitalXRayImageStorageForProcessing: '1.2.840.10008.5.1.4.1.1.1.1.1',
  SecondaryCaptureImageStorage: '1.2.840.10008.5.1.4.1.1.7',
  Verification: '1.2.840.10008.1.1',
} as const;
export type SopClassUid = (typeof SopClass)[keyof typeof SopClass];
