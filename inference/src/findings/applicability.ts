import type { Applicability, ModelManifest } from '../contracts/index.js';

/** What the header says about the image, as far as the gate needs it. Undefined means "not in the header". */
export interface ImageFacts {
  readonly modality: string | undefined;
  readonly bodyPart: string | undefined;
  readonly view: string | undefined;
  readonly colour: boolean;
  readonly format: 'dicom' | 'png' | 'jpeg';
}

const LATERAL_VIEWS = new Set(['LL', 'RL', 'LAT', 'LATERAL', 'LLD', 'RLD', 'XTABLE LATERAL']);
const BODY_PART_SYNONYMS: Readonly<Record<string, string>> = { THORAX: 'CHEST', LUNG: 'CHEST', 'CHEST_PA': 'CHEST' };

export interface GateResult {
  readonly applicable: boolean;
  /** English reason, when not applicable. */
  readonly reason?: string;
  readonly applicability: Applicability;
}

/**
 * The "AI not applicable" gate. A lateral view, another body part or modality, or a colour image gets a reason,
 * never a silent score. A missing body part or view does not gate, but the result says it was not verified.
 */
export function checkApplicability(manifest: ModelManifest, facts: ImageFacts): GateResult {
  const { modalities, bodyParts, views } = manifest.applicability;
  const notes: string[] = [];
  const bodyPart = facts.bodyPart ? (BODY_PART_SYNONYMS[facts.bodyPart] ?? facts.bodyPart) : undefined;
  const base = { modality: facts.modality, bodyPart: facts.bodyPart, view: facts.view };
  const refuse = (reasonCode: string, reason: string, reasonVi: string): GateResult => ({
    applicable: false,
    reason,
    applicability: { verified: true, ...base, reasonCode, reasonVi, notes, noteCodes: [] },
  });

  if (facts.colour) {
    return refuse('colour', 'colour image: the model reads greyscale radiographs only', 'ảnh màu, mô hình chỉ đọc phim X-quang đen trắng');
  }
  if (facts.modality && !modalities.includes(facts.modality)) {
    return refuse(
      'modality',
      `modality ${facts.modality}: the model reads ${modalities.join(', ')} only`,
      `ảnh ${facts.modality}, mô hình chỉ đọc ảnh X-quang (${modalities.join(', ')})`,
    );
  }
  if (bodyPart && !bodyParts.includes(bodyPart)) {
    return refuse(
      'body-part',
      `body part ${facts.bodyPart}: not a chest image, the model reads ${bodyParts.join(', ')} only`,
      `không phải ảnh ngực (${facts.bodyPart})`,
    );
  }
  if (facts.view && !views.includes(facts.view)) {
    const lateral = LATERAL_VIEWS.has(facts.view);
    return refuse(
      lateral ? 'lateral-view' : 'view',
      lateral
        ? `lateral view (${facts.view}): the model reads frontal (${views.join('/')}) views only`
        : `view ${facts.view}: the model reads ${views.join('/')} views only`,
      lateral ? `ảnh chụp nghiêng, mô hình chỉ đọc phim thẳng (${views.join('/')})` : `tư thế chụp ${facts.view}, mô hình chỉ đọc phim thẳng (${views.join('/')})`,
    );
  }
  const noteCodes: string[] = [];
  if (!facts.modality) {
    noteCodes.push('modality-missing');
    notes.push(facts.format === 'dicom' ? 'modality not in the header' : `${facts.format.toUpperCase()} file: no modality`);
  }
  if (!bodyPart) {
    noteCodes.push('body-part-missing');
    notes.push(facts.format === 'dicom' ? 'body part not in the header' : `${facts.format.toUpperCase()} file: no body part`);
  }
  if (!facts.view) {
    noteCodes.push('view-missing');
    notes.push(facts.format === 'dicom' ? 'view position not in the header' : `${facts.format.toUpperCase()} file: no view position`);
  }
  return { applicable: true, applicability: { verified: notes.length === 0, ...base, notes, noteCodes } };
}
