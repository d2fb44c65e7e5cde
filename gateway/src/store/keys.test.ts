import { describe, expect, it } from 'vitest';
import {
  auditKey,
  consultKeys,
  instanceFileKey,
  instancePrefix,
  isConsultRecordKey,
  joinedKeyOfUpload,
  parseConsultKey,
  stationKey,
  studyInstancesPrefix,
  uploadOfPart,
  uploadPartsPrefix,
  userKey,
} from './keys.js';

// The keys are the layout of stores already in use: written out here in full, so a change to keys.ts that would
// strand existing objects fails.
describe('gateway object-store layout', () => {
  it('keeps consults, their reports and claims under consults/<id>/', () => {
    expect(consultKeys('tram-1-0123456789abcdef0123')).toEqual({
      consult: 'consults/tram-1-0123456789abcdef0123/consult.json',
      report: 'consults/tram-1-0123456789abcdef0123/report.json',
      claim: 'consults/tram-1-0123456789abcdef0123/claim.json',
    });
    expect(parseConsultKey('consults/c-1/report.json')).toEqual({ consultId: 'c-1', file: 'report.json' });
    expect(isConsultRecordKey('consults/c-1/consult.json')).toBe(true);
    expect(isConsultRecordKey('consults/c-1/report.json')).toBe(false);
    expect(isConsultRecordKey('studies/s/1.2/instances/1.2.3/abc/consult.json')).toBe(false);
  });

  it('keeps an instance by station, study, instance and content, and its upload chunks beside the layout', () => {
    const prefix = instancePrefix('tram-1', '1.2.3', '1.2.3.4', 'ab'.repeat(32));
    expect(prefix).toBe(`studies/tram-1/1.2.3/instances/1.2.3.4/${'ab'.repeat(32)}`);
    expect(prefix.startsWith(studyInstancesPrefix('tram-1', '1.2.3'))).toBe(true);
    expect(instanceFileKey(prefix, 'result.json')).toBe(`${prefix}/result.json`);
    const part = `${uploadPartsPrefix(prefix)}1048576`;
    expect(part).toBe(`uploads/${prefix}/part-1048576`);
    const upload = uploadOfPart(part);
    expect(upload).toBe(`uploads/${prefix}`);
    expect(joinedKeyOfUpload(upload ?? '')).toBe(`${prefix}/instance.dcm`);
    expect(uploadOfPart(`uploads/${prefix}/stray`)).toBeUndefined();
  });

  it('keeps accounts and the audit trail by name and by day', () => {
    expect(userKey('bs.lan')).toBe('accounts/users/bs.lan.json');
    expect(stationKey('tram-1')).toBe('accounts/stations/tram-1.json');
    expect(auditKey('2026-11-23T08:00:01.123Z', 'u')).toBe('audit/2026-11-23/2026-11-23T08-00-01-123Z-u.json');
  });
});
