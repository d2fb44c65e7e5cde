import { describe, expect, it } from 'vitest';
import { ErrorCodes } from './codes.js';
import { CxrError, toCxrError } from './cxr-error.js';

describe('error registry', () => {
  it('keeps every shipped code (codes are never renamed or reused)', () => {
    // Add new codes at the end of this list; never remove one.
    const shipped = [
      'CXR_FILE_NOT_FOUND',
      'CXR_IO',
      'CXR_EMPTY_FILE',
      'CXR_NOT_DICOM',
      'CXR_TRUNCATED',
      'CXR_MALFORMED',
      'CXR_LIMIT_EXCEEDED',
      'CXR_NO_PIXEL_DATA',
      'CXR_PIXEL_DATA_SHORT',
      'CXR_INVALID_PIXEL_MODULE',
      'CXR_UNSUPPORTED_TRANSFER_SYNTAX',
      'CXR_DECODE_FAILED',
      'CXR_IMAGE_UNREADABLE',
      'CXR_MANIFEST_INVALID',
      'CXR_MODEL_HASH_MISMATCH',
      'CXR_MODEL_LOAD_FAILED',
      'CXR_MODEL_SHAPE_MISMATCH',
      'CXR_INFERENCE_FAILED',
      'CXR_USAGE',
      'CXR_INFERENCE_TIMEOUT',
      'CXR_SIGNATURE_INVALID',
      'CXR_MODEL_DIGEST_MISMATCH',
      'CXR_MODEL_ROLLBACK_REFUSED',
      'CXR_ENCODE_FAILED',
      'CXR_DISK_FULL',
      'CXR_LABELS_INVALID',
      'CXR_MODEL_GOLDEN_MISMATCH',
      'CXR_MODEL_VERSION_EXISTS',
      'CXR_INFERENCE_ABANDONED',
      'CXR_INVALID_UID',
    ];
    for (const code of shipped) expect(Object.keys(ErrorCodes)).toContain(code);
  });

  it('names every code CXR_ in capitals and gives it a message', () => {
    for (const [code, spec] of Object.entries(ErrorCodes)) {
      expect(code).toMatch(/^CXR_[A-Z0-9_]+$/u);
      expect(spec.message.length).toBeGreaterThan(5);
    }
  });

  it('classifies transient and permanent errors', () => {
    expect(new CxrError('CXR_IO').transient).toBe(true);
    expect(new CxrError('CXR_TRUNCATED').transient).toBe(false);
    expect(new CxrError('CXR_TRUNCATED', 'at offset 12').message).toBe('The file ends before its data does (truncated): at offset 12');
  });

  it('maps Node errors to codes', () => {
    const enoent = Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT', errno: -2, path: '/x.dcm' });
    expect(toCxrError(enoent, 'CXR_IO').code).toBe('CXR_FILE_NOT_FOUND');
    const eio = Object.assign(new Error('EIO'), { code: 'EIO', errno: -5 });
    expect(toCxrError(eio, 'CXR_DECODE_FAILED')).toMatchObject({ code: 'CXR_IO', transient: true });
    expect(toCxrError(new Error('boom'), 'CXR_DECODE_FAILED').code).toBe('CXR_DECODE_FAILED');
  });
});
