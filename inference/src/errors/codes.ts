/**
 * The error registry. Codes are stable: once shipped, a code keeps its meaning and is never reused.
 * `transient` errors may succeed when retried (I/O pressure, a busy runtime); permanent ones never will.
 */
export const ErrorCodes = {
  CXR_FILE_NOT_FOUND: { transient: false, message: 'File not found' },
  CXR_IO: { transient: true, message: 'Could not read or write the file' },
  CXR_EMPTY_FILE: { transient: false, message: 'The file is empty' },
  CXR_NOT_DICOM: { transient: false, message: 'Not a DICOM, PNG or JPEG file' },
  CXR_TRUNCATED: { transient: false, message: 'The file ends before its data does (truncated)' },
  CXR_MALFORMED: { transient: false, message: 'The DICOM structure is invalid' },
  CXR_LIMIT_EXCEEDED: { transient: false, message: 'The file exceeds a safety limit' },
  CXR_NO_PIXEL_DATA: { transient: false, message: 'The DICOM file has no image (Pixel Data)' },
  CXR_PIXEL_DATA_SHORT: { transient: false, message: 'Pixel Data is shorter than Rows x Columns needs' },
  CXR_INVALID_PIXEL_MODULE: { transient: false, message: 'The image attributes are inconsistent' },
  CXR_UNSUPPORTED_TRANSFER_SYNTAX: { transient: false, message: 'The transfer syntax is not supported' },
  CXR_DECODE_FAILED: { transient: false, message: 'The compressed image could not be decoded' },
  CXR_IMAGE_UNREADABLE: { transient: false, message: 'The PNG/JPEG image could not be read' },
  CXR_MANIFEST_INVALID: { transient: false, message: 'The model manifest is invalid' },
  CXR_MODEL_HASH_MISMATCH: { transient: false, message: 'The model file does not match the sha256 in its manifest' },
  CXR_MODEL_LOAD_FAILED: { transient: false, message: 'The model could not be loaded by its runtime' },
  CXR_MODEL_SHAPE_MISMATCH: { transient: false, message: 'The model inputs or outputs disagree with its manifest' },
  CXR_INFERENCE_FAILED: { transient: true, message: 'The model failed to run on this image' },
  CXR_USAGE: { transient: false, message: 'Invalid command line usage' },
  CXR_INFERENCE_TIMEOUT: { transient: false, message: 'The image took too long to decode and analyse, and was stopped' },
  CXR_SIGNATURE_INVALID: { transient: false, message: 'The signature does not verify with the registry key' },
  CXR_MODEL_DIGEST_MISMATCH: { transient: false, message: 'A model file does not match the digest in its signed release' },
  CXR_ENCODE_FAILED: { transient: false, message: 'The image could not be encoded' },
  CXR_DISK_FULL: { transient: true, message: 'Not enough free disk space' },
  CXR_MODEL_ROLLBACK_REFUSED: { transient: false, message: 'The model is older than the trusted one and its deployment is not a signed rollback' },
  CXR_LABELS_INVALID: { transient: false, message: 'The labelled set (CSV of images and truth columns) is invalid' },
  CXR_MODEL_GOLDEN_MISMATCH: { transient: false, message: 'The model does not reproduce the expected outputs of its golden cases' },
  CXR_MODEL_VERSION_EXISTS: { transient: false, message: 'This model version is already in the registry with other bytes (versions are immutable)' },
  CXR_INFERENCE_ABANDONED: { transient: false, message: 'The analysis of this image was cut short several times (the process stopped during it) and is not tried again' },
  CXR_INVALID_UID: { transient: false, message: 'A UID in the file is not a valid DICOM UID (digits and dots, at most 64 characters)' },
} as const satisfies Record<string, { transient: boolean; message: string }>;

export type ErrorCode = keyof typeof ErrorCodes;
