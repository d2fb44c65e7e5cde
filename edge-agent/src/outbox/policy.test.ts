import type { Priority, TriageResult } from '@cxr/inference';
import { describe, expect, it } from 'vitest';
import type { InstanceRecord } from '../spool/db.js';
import { asksForConsult, instancePriority, owedItems, studyPriority, type ForwardingPolicy } from './policy.js';

const model = { name: 'm', version: '1.0.0', sha256: 'a'.repeat(64) };
function result(priority: Priority, applicable = true): TriageResult {
  return {
    schemaVersion: 1,
    sopInstanceUid: '1.2.3.4',
    studyInstanceUid: '1.2.3',
    applicable,
    applicability: { verified: true, notes: [] },
    probabilities: [0.9],
    findings: [],
    priority,
    model,
    timingsMs: { decode: 1, preprocess: 1, infer: 1, total: 3 },
  };
}

function record(overrides: Partial<InstanceRecord> = {}): InstanceRecord {
  return {
    id: 1, sopInstanceUid: '1.2.3.4', version: 1, conflict: false, contentSha256: '0'.repeat(64), file: 'objects/1.dcm', size: 1, studyInstanceUid: '1.2.3',
    seriesInstanceUid: null, sopClassUid: null, transferSyntaxUid: null, modality: 'CR', bodyPart: 'CHEST', viewPosition: 'PA',
    patientName: null, patientId: null, patientSex: null, patientBirthDate: null, studyDate: null, studyTime: null, accessionNumber: null,
    studyDescription: null, source: 'dicom', callingAe: null, status: 'inferred', receivedAt: '2026-01-01T00:00:00.000Z',
    processedAt: '2026-01-01T00:00:01.000Z', result: result('urgent'), priority: 'urgent', errorCode: null, errorMessage: null,
    previewFile: null, heatmapFile: null, heatmapLabel: null, complete: false, attempts: 0,
    ...overrides,
  };
}

const policy: ForwardingPolicy = { enabled: true, consultPriorities: ['stat', 'urgent'] };

describe('outbox policy: what an instance owes the hospital', () => {
  it('owes the result alone at the early stage, then the images it has and the DICOM file', () => {
    expect(owedItems(record(), { images: false })).toEqual(['result']);
    expect(owedItems(record({ previewFile: 'p.png', heatmapFile: 'h.png' }), { images: true })).toEqual(['result', 'preview', 'heatmap', 'dicom']);
    expect(owedItems(record({ previewFile: 'p.png' }), { images: true })).toEqual(['result', 'preview', 'dicom']);
  });

  it('owes nothing for an instance the model did not analyse', () => {
    expect(owedItems(record({ status: 'failed', result: null }), { images: true })).toEqual([]);
    expect(owedItems(record({ status: 'received', result: null }), { images: true })).toEqual([]);
  });

  it('sends an instance at its AI priority, routine when the model did not apply to the image', () => {
    expect(instancePriority(record({ result: result('stat') }))).toBe('stat');
    expect(instancePriority(record({ result: result('stat', false) }))).toBe('routine');
    expect(instancePriority(record({ status: 'failed', result: null }))).toBe('routine');
  });
});

describe('outbox policy: when a consult is asked without the button', () => {
  it('asks for the configured priorities only', () => {
    expect(asksForConsult(record({ result: result('stat') }), policy)).toBe(true);
    expect(asksForConsult(record({ result: result('urgent') }), policy)).toBe(true);
    expect(asksForConsult(record({ result: result('routine') }), policy)).toBe(false);
    expect(asksForConsult(record({ result: result('urgent') }), { enabled: true, consultPriorities: ['stat'] })).toBe(false);
  });

  it('never asks for an image the model did not apply to, a failed one, or when the agent works alone', () => {
    expect(asksForConsult(record({ result: result('stat', false) }), policy)).toBe(false);
    expect(asksForConsult(record({ status: 'failed', result: null }), policy)).toBe(false);
    expect(asksForConsult(record({ result: result('stat') }), { ...policy, enabled: false })).toBe(false);
  });
});

describe('outbox policy: a study priority', () => {
  it('is the highest applicable priority of its instances, routine when none', () => {
    expect(studyPriority([])).toBe('routine');
    expect(studyPriority([record({ result: result('urgent') }), record({ result: result('stat') }), record({ result: result('routine') })])).toBe('stat');
    expect(studyPriority([record({ result: result('routine') }), record({ result: result('urgent') })])).toBe('urgent');
    // An image outside the model's scope does not raise the study, whatever its raw output said.
    expect(studyPriority([record({ result: result('stat', false) }), record({ result: result('routine') })])).toBe('routine');
    expect(studyPriority([record({ status: 'failed', result: null })])).toBe('routine');
  });
});
