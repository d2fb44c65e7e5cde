import { describe, expect, it } from 'vitest';
import { isValidUid, transferSyntaxName } from './uids.js';

describe('DICOM UI grammar (PS3.5 9.1)', () => {
  it('takes UIDs of digit components separated by dots, at most 64 characters', () => {
    for (const uid of ['1.2.840.10008.1.2.1', '0', '1.0.2', '2.25.329800735698586629295641978511506172918', `1.${'2'.repeat(62)}`]) {
      expect(isValidUid(uid), uid).toBe(true);
    }
  });

  it('refuses paths, leading zeros, empty components, padding and anything over 64 characters', () => {
    const bad = [
      '',
      '.',
      '..',
      '../../../../outside-api/x',
      '1.2/3',
      '1..2',
      '.1.2',
      '1.2.',
      '1.02',
      '01.2',
      '1.2 ',
      '1.2\0',
      '1.2%2e',
      '1.2\\3.4',
      'unknown-study-1.2.3',
      `1.${'2'.repeat(63)}`,
    ];
    for (const uid of bad) expect(isValidUid(uid), JSON.stringify(uid)).toBe(false);
  });

  it('names a transfer syntax without ever echoing a malformed value', () => {
    expect(transferSyntaxName('1.2.840.10008.1.2.1')).toBe('ExplicitVRLittleEndian');
    expect(transferSyntaxName('1.2.3.4')).toBe('1.2.3.4');
    const hostile = `1.2.840.10008.1.2.1\0PATIENT^MARKER^19700101${'x'.repeat(70_000)}`;
    const named = transferSyntaxName(hostile);
    expect(named).not.toContain('MARKER');
    expect(named.length).toBeLessThan(80);
  });
});
