import { describe, expect, it } from 'vitest';
import type { Label, ModelManifest } from '../contracts/index.js';
import { activate } from './activation.js';
import { checkApplicability, type ImageFacts } from './applicability.js';
import { triage } from './triage.js';

const label = (code: string, priority: Label['priority'], threshold = 0.5, role: Label['role'] = 'finding'): Label => ({
  code,
  display: code,
  displayVi: code,
  threshold,
  priority,
  role,
});

describe('triage', () => {
  const labels = [label('nodule', 'routine'), label('effusion', 'urgent'), label('pneumothorax', 'stat'), label('normal', 'routine', 0.5, 'normal')];

  it('is routine with no positive finding, and never lists a "normal" label as a finding', () => {
    const { findings, priority } = triage(labels, [0.1, 0.2, 0.3, 0.9]);
    expect(priority).toBe('routine');
    expect(findings.map((f) => f.code)).toEqual(['nodule', 'effusion', 'pneumothorax']);
    expect(findings.every((f) => !f.positive)).toBe(true);
  });

  it('is positive at exactly the threshold, and takes the highest priority among positives', () => {
    expect(triage(labels, [0.5, 0.49, 0.1, 0]).priority).toBe('routine');
    expect(triage(labels, [0.5, 0.5, 0.1, 0]).priority).toBe('urgent');
    expect(triage(labels, [0.9, 0.5, 0.5, 0]).priority).toBe('stat');
    expect(triage(labels, [0.5, 0.5, 0.1, 0]).findings.filter((f) => f.positive).map((f) => f.code)).toEqual(['nodule', 'effusion']);
  });

  it('applies per-site threshold overrides', () => {
    const { findings, priority } = triage(labels, [0.1, 0.3, 0.1, 0], { effusion: 0.25 });
    expect(priority).toBe('urgent');
    expect(findings[1]).toMatchObject({ code: 'effusion', threshold: 0.25, positive: true });
  });
});

describe('activation', () => {
  it('computes sigmoid and softmax', () => {
    expect(activate([0], 'sigmoid')).toEqual([0.5]);
    const soft = activate([1, 2, 3], 'softmax');
    expect(soft.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 12);
    expect(soft[2]).toBeCloseTo(Math.exp(3) / (Math.exp(1) + Math.exp(2) + Math.exp(3)), 12);
    expect(activate([0.3], 'none')).toEqual([0.3]);
  });
});

describe('applicability gate', () => {
  const manifest = { applicability: { modalities: ['CR', 'DX'], bodyParts: ['CHEST'], views: ['PA', 'AP'] } } as ModelManifest;
  const facts = (over: Partial<ImageFacts>): ImageFacts => ({ modality: 'CR', bodyPart: 'CHEST', view: 'PA', colour: false, format: 'dicom', ...over });

  it('accepts a PA chest CR and says it was verified', () => {
    expect(checkApplicability(manifest, facts({}))).toMatchObject({ applicable: true, applicability: { verified: true } });
  });

  it('refuses a lateral view with the Vietnamese reason radiographers read', () => {
    const gate = checkApplicability(manifest, facts({ view: 'LL' }));
    expect(gate).toMatchObject({ applicable: false, applicability: { reasonCode: 'lateral-view', reasonVi: 'ảnh chụp nghiêng, mô hình chỉ đọc phim thẳng (PA/AP)' } });
    expect(gate.reason).toContain('lateral view');
  });

  it('refuses another body part, another modality and a colour image', () => {
    expect(checkApplicability(manifest, facts({ bodyPart: 'HIP' })).applicability.reasonCode).toBe('body-part');
    expect(checkApplicability(manifest, facts({ modality: 'MR' })).applicability.reasonCode).toBe('modality');
    expect(checkApplicability(manifest, facts({ colour: true })).applicability.reasonCode).toBe('colour');
  });

  it('treats THORAX as CHEST', () => {
    expect(checkApplicability(manifest, facts({ bodyPart: 'THORAX' })).applicable).toBe(true);
  });

  it('does not gate on a missing body part or view, but says applicability was not verified', () => {
    const gate = checkApplicability(manifest, facts({ bodyPart: undefined, view: undefined }));
    expect(gate.applicable).toBe(true);
    expect(gate.applicability.verified).toBe(false);
    expect(gate.applicability.notes).toEqual(['body part not in the header', 'view position not in the header']);
    expect(gate.applicability.noteCodes).toEqual(['body-part-missing', 'view-missing']);
  });
});
