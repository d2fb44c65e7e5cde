/**
 * De-identification by DICOM PS3.15 E.1.1, the Basic Application Level Confidentiality Profile, with the Retain
 * Longitudinal Temporal Information Modified Dates Option (dates shifted by one offset, so intervals survive).
 *
 * What it does to each attribute, at every depth of sequences:
 * - private attributes, curves (50xx) and overlays (60xx) are removed;
 * - the profile's actions (`profile.ts`): X removes, Z empties, D writes a dummy value, U maps the UID with a
 *   keyed hash (same input UID, same key: same output UID, in every file of the run); for the X/Z, X/D, X/Z/D
 *   choices we remove (none of those is required in the CR/DX IODs), except the Acquisition Context Sequence,
 *   which DX requires and is emptied; X/Z/U* sequences are kept with their UIDs mapped;
 * - Patient ID and Patient's Name become one pseudonym made with the same keyed hash from the Patient ID, so the
 *   studies of one patient stay together; Patient's Birth Date is emptied;
 * - every DA and DT value is shifted by the same number of days; times of day (TM) are kept, as a whole-day shift
 *   leaves them true;
 * - the file gets Patient Identity Removed YES, the De-identification Method and its code sequence, and
 *   Longitudinal Temporal Information Modified.
 * Pixel Data is copied byte for byte (native or encapsulated, fragments as they are). Whether the pixels show
 * identifying text is not checked: images that may have it are flagged for review.
 */
import { createHmac } from 'node:crypto';
import { CxrError, SopClass, parseDicom, type DicomDataset, type DicomElement, type ParsedDicom } from '@cxr/inference';
import { keywordOf, standardVr } from '../dicom/dictionary.js';
import { UidMapper } from '../dicom/uid.js';
import { encodePart10, sequence, text, type DataElement } from '../dicom/writer.js';
import { DeidentificationCodes, basicProfile } from './profile.js';

export interface DeidentifyOptions {
  /** Key of the keyed hash for UIDs, the patient pseudonym and (when no shift is given) the date offset. */
  readonly key: Uint8Array;
  /** Days added to every date (negative: into the past). */
  readonly shiftDays: number;
  /** Keep Patient's Sex, Age, Size and Weight (part of the Retain Patient Characteristics Option). */
  readonly keepPatientCharacteristics: boolean;
}

export type ChangeKind = 'removed' | 'emptied' | 'replaced' | 'uidsRemapped' | 'datesShifted' | 'privateRemoved';

export interface DeidentifyResult {
  readonly bytes: Uint8Array;
  readonly transferSyntaxUid: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
  /** Attribute keywords (never values) by what was done to them. */
  readonly changes: Readonly<Record<ChangeKind, readonly string[]>>;
  readonly warnings: readonly string[];
  readonly needsReview: boolean;
  readonly reviewReasons: readonly string[];
}

const Tags = {
  SopClassUid: 0x00080016,
  SopInstanceUid: 0x00080018,
  PatientName: 0x00100010,
  PatientId: 0x00100020,
  PatientBirthDate: 0x00100030,
  PatientBirthTime: 0x00100032,
  PatientSex: 0x00100040,
  PatientAge: 0x00101010,
  PatientSize: 0x00101020,
  PatientWeight: 0x00101030,
  LastMenstrualDate: 0x001021d0,
  PatientIdentityRemoved: 0x00120062,
  DeidentificationMethod: 0x00120063,
  DeidentificationMethodCodeSequence: 0x00120064,
  StudyInstanceUid: 0x0020000d,
  BurnedInAnnotation: 0x00280301,
  LongitudinalTemporalInformationModified: 0x00280303,
  AcquisitionContextSequence: 0x00400555,
  PixelData: 0x7fe00010,
} as const;

/** Attributes this tool writes itself: any earlier value is dropped. */
const writtenByUs = new Set<number>([
  Tags.PatientIdentityRemoved,
  Tags.DeidentificationMethod,
  Tags.DeidentificationMethodCodeSequence,
  Tags.LongitudinalTemporalInformationModified,
]);

/** Dates that identify the patient and follow the profile instead of the date shift. */
const patientDates = new Set<number>([Tags.PatientBirthDate, Tags.PatientBirthTime, Tags.LastMenstrualDate]);

const patientCharacteristics = new Set<number>([Tags.PatientSex, Tags.PatientAge, Tags.PatientSize, Tags.PatientWeight]);

const latin1 = new TextDecoder('latin1');

function textOf(element: DicomElement): string {
  return latin1.decode(element.value).replace(/[\0 ]+$/u, '').replace(/^ +/u, '');
}

const DAY_MS = 86_400_000;

/** YYYYMMDD shifted by `days`; also reads the old YYYY.MM.DD form. Undefined for anything else. */
export function shiftDate(value: string, days: number): string | undefined {
  const match = /^(\d{4})\.?(\d{2})\.?(\d{2})$/u.exec(value.trim());
  if (!match) return undefined;
  const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
  const time = Date.UTC(year, month - 1, day);
  const check = new Date(time);
  if (check.getUTCFullYear() !== year || check.getUTCMonth() !== month - 1 || check.getUTCDate() !== day) return undefined;
  const shifted = new Date(time + days * DAY_MS);
  const y = shifted.getUTCFullYear();
  if (y < 1 || y > 9999) return undefined;
  return `${String(y).padStart(4, '0')}${String(shifted.getUTCMonth() + 1).padStart(2, '0')}${String(shifted.getUTCDate()).padStart(2, '0')}`;
}

/** A DT value with its date part shifted (time and UTC offset kept); undefined when it has no full date. */
export function shiftDateTime(value: string, days: number): string | undefined {
  const trimmed = value.trim();
  if (!/^\d{8}/u.test(trimmed)) return undefined;
  const date = shiftDate(trimmed.slice(0, 8), days);
  return date === undefined ? undefined : date + trimmed.slice(8);
}

/** A dummy value consistent with the VR, for the profile's D action. */
function dummyValue(vr: string, length: number): Uint8Array {
  const textual: Record<string, string> = {
    AE: 'ANONYMIZED',
    AS: '000D',
    CS: 'ANONYMIZED',
    DA: '19000101',
    DS: '0',
    DT: '19000101000000',
    IS: '0',
    LO: 'ANONYMIZED',
    LT: 'ANONYMIZED',
    PN: 'ANONYMIZED',
    SH: 'ANONYMIZED',
    ST: 'ANONYMIZED',
    TM: '000000',
    UC: 'ANONYMIZED',
    UT: 'ANONYMIZED',
  };
  const value = textual[vr];
  // Binary values become zeros of the same length.
  return value === undefined ? new Uint8Array(length) : new TextEncoder().encode(value);
}

class Cleaner {
  readonly changes = new Map<ChangeKind, Set<string>>();
  readonly warnings: string[] = [];
  readonly #uids: UidMapper;
  readonly #options: DeidentifyOptions;
  readonly #pseudonym: string;
  readonly #explicitVr: boolean;

  constructor(options: DeidentifyOptions, pseudonym: string, explicitVr: boolean) {
    this.#options = options;
    this.#uids = new UidMapper(options.key);
    this.#pseudonym = pseudonym;
    this.#explicitVr = explicitVr;
  }

  #note(kind: ChangeKind, path: string): void {
    let set = this.changes.get(kind);
    if (!set) this.changes.set(kind, (set = new Set()));
    set.add(path);
  }

  mapUids(value: string): string {
    return value
      .split('\\')
      .map((uid) => (uid.trim() === '' ? '' : this.#uids.map(uid.trim())))
      .join('\\');
  }

  /** The cleaned elements of one dataset or item; `prefix` names the enclosing sequences for the manifest. */
  clean(dataset: DicomDataset, prefix: string): DataElement[] {
    const out: DataElement[] = [];
    for (const tag of dataset.tags()) {
      const element = dataset.element(tag);
      if (!element) continue;
      const group = tag >>> 16;
      const path = prefix + keywordOf(tag);
      // Group lengths would be wrong after any change (they are retired anyway); command (0000) and File Meta
      // (0002) elements do not belong in a dataset, and the File Meta is written anew.
      if ((tag & 0xffff) === 0 || group === 0x0000 || group === 0x0002) continue;
      if (group % 2 === 1) {
        this.#note('privateRemoved', `${prefix}(${group.toString(16).padStart(4, '0').toUpperCase()},xxxx)`);
        continue;
      }
      if ((group & 0xff00) === 0x5000 || (group & 0xff00) === 0x6000) {
        this.#note('removed', `${prefix}${(group & 0xff00) === 0x5000 ? 'Curve' : 'Overlay'} group ${group.toString(16).toUpperCase()}`);
        continue;
      }
      if (prefix === '' && writtenByUs.has(tag)) continue;
      // The VR the value really has: Implicit VR files give none, and a standard attribute may come as UN.
      const vr = element.vr !== '' && element.vr !== 'UN' ? element.vr : (standardVr(tag) ?? (element.vr || 'UN'));
      // Copies keep the file's own VR in Implicit VR output (where none is written) and get one in Explicit VR
      // output (items parsed from an undefined-length UN have none).
      const copyVr = this.#explicitVr ? vr : element.vr;
      const keep = (): void => {
        out.push(element.items ? this.#sequence(tag, element, path) : { tag, vr: copyVr, value: { kind: 'bytes', bytes: element.value } });
      };
      const replace = (value: string, kind: ChangeKind = 'replaced'): void => {
        out.push(text(tag, vr, value));
        this.#note(kind, path);
      };
      const action = basicProfile.get(tag);

      if (this.#options.keepPatientCharacteristics && patientCharacteristics.has(tag)) {
        keep();
        continue;
      }
      if ((vr === 'DA' || vr === 'DT' || vr === 'TM') && !patientDates.has(tag) && !element.items) {
        this.#date(tag, vr, copyVr, element, path, out);
        continue;
      }
      if (element.items) {
        if (action === undefined || action === 'X/Z/U*') keep();
        else if (action === 'X' || action === 'X/D' || action === 'X/Z/D' || (action === 'X/Z' && tag !== Tags.AcquisitionContextSequence)) {
          this.#note('removed', path);
        } else {
          // Z, D, Z/D and the DX-required X/Z: an empty sequence, no item that could identify anyone.
          out.push(sequence(tag, []));
          this.#note('emptied', path);
        }
        continue;
      }
      switch (action) {
        case undefined:
          keep();
          break;
        case 'U':
          replace(this.mapUids(textOf(element)), 'uidsRemapped');
          break;
        case 'Z':
          if (tag === Tags.PatientName) replace(this.#pseudonym);
          else replace('', 'emptied');
          break;
        case 'Z/D':
          if (tag === Tags.PatientId) replace(this.#pseudonym);
          else replace('', 'emptied');
          break;
        case 'D':
          out.push({ tag, vr, value: { kind: 'bytes', bytes: dummyValue(vr, element.value.length) } });
          this.#note('replaced', path);
          break;
        default:
          // X, and the X/... choices: none is required by the CR and DX IODs.
          this.#note('removed', path);
      }
    }
    return out;
  }

  #sequence(tag: number, element: DicomElement, path: string): DataElement {
    const items = (element.items ?? []).map((item) => this.clean(item, `${path} > `));
    return { tag, vr: 'SQ', value: { kind: 'sequence', items } };
  }

  #date(tag: number, vr: string, copyVr: string, element: DicomElement, path: string, out: DataElement[]): void {
    const original = textOf(element);
    if (vr === 'TM' || original === '') {
      out.push({ tag, vr: copyVr, value: { kind: 'bytes', bytes: element.value } });
      return;
    }
    const shift = vr === 'DA' ? shiftDate : shiftDateTime;
    const values = original.split('\\').map((v) => shift(v, this.#options.shiftDays));
    if (values.some((v) => v === undefined)) {
      // A partial or unreadable date cannot be shifted exactly: it goes, rather than stay true.
      out.push(text(tag, vr, ''));
      this.#note('emptied', path);
      this.warnings.push(`${path}: a date that cannot be shifted was emptied`);
      return;
    }
    out.push(text(tag, vr, values.join('\\')));
    this.#note('datesShifted', path);
  }
}

function codeItem(code: { value: string; meaning: string }): DataElement[] {
  return [text(0x00080100, 'SH', code.value), text(0x00080102, 'SH', 'DCM'), text(0x00080104, 'LO', code.meaning)];
}

/** Why an image's pixels must be looked at before the data leaves: text may be burned into them. */
export function reviewReasons(dataset: DicomDataset): string[] {
  const reasons: string[] = [];
  const burnedIn = dataset.string(Tags.BurnedInAnnotation)?.toUpperCase();
  const sopClass = dataset.string(Tags.SopClassUid) ?? '';
  if (burnedIn === 'YES') reasons.push('Burned In Annotation is YES');
  if (sopClass === SopClass.SecondaryCaptureImageStorage || sopClass.startsWith(`${SopClass.SecondaryCaptureImageStorage}.`)) {
    reasons.push('secondary capture: a screen or film capture often carries text in its pixels');
  }
  if (burnedIn === undefined) reasons.push('Burned In Annotation is not stated');
  return reasons;
}

/** The key-derived date offset used when none is given: 1 to 3650 days into the past. */
export function defaultShiftDays(key: Uint8Array): number {
  const digest = createHmac('sha256', key).update('date-shift').digest();
  return -(1 + (digest.readUInt32BE(0) % 3650));
}

function pseudonymFor(key: Uint8Array, dataset: DicomDataset): string {
  const identity = dataset.string(Tags.PatientId) ?? dataset.string(Tags.PatientName) ?? '';
  if (identity === '') return 'ANONYMOUS';
  return `ANON${createHmac('sha256', key).update(`patient:${identity}`).digest('hex').slice(0, 12).toUpperCase()}`;
}

export function deidentifyParsed(parsed: ParsedDicom, options: DeidentifyOptions): DeidentifyResult {
  const { dataset, transferSyntaxUid } = parsed;
  const explicitVr = transferSyntaxUid !== '1.2.840.10008.1.2';
  const cleaner = new Cleaner(options, pseudonymFor(options.key, dataset), explicitVr);
  const elements = cleaner.clean(dataset, '').filter((el) => el.tag !== Tags.PixelData);

  if (parsed.pixelData) {
    const pixel = parsed.pixelData;
    elements.push(
      pixel.encapsulated
        ? { tag: Tags.PixelData, vr: 'OB', value: { kind: 'encapsulated', offsetTable: pixel.basicOffsetTable, fragments: pixel.fragments } }
        : { tag: Tags.PixelData, vr: explicitVr ? pixel.vr || 'OW' : '', value: { kind: 'bytes', bytes: pixel.bytes } },
    );
  }

  const warnings = [...cleaner.warnings];
  let sopInstanceUid = dataset.string(Tags.SopInstanceUid);
  if (sopInstanceUid) sopInstanceUid = cleaner.mapUids(sopInstanceUid);
  else {
    sopInstanceUid = cleaner.mapUids(parsed.meta?.string(0x00020003) ?? `no-uid:${dataset.string(Tags.StudyInstanceUid) ?? ''}:${elements.length}`);
    elements.push(text(Tags.SopInstanceUid, 'UI', sopInstanceUid));
    warnings.push('the file had no SOP Instance UID: one was made');
  }
  const sopClassUid = dataset.string(Tags.SopClassUid) ?? parsed.meta?.string(0x00020002);
  if (!sopClassUid) throw new CxrError('CXR_MALFORMED', 'no SOP Class UID: not a storable image');
  const studyUid = dataset.string(Tags.StudyInstanceUid);

  const modifiedDates = options.shiftDays !== 0;
  const codes = [
    DeidentificationCodes.basicProfile,
    modifiedDates ? DeidentificationCodes.retainLongitudinalModifiedDates : DeidentificationCodes.retainLongitudinalFullDates,
    ...(options.keepPatientCharacteristics ? [DeidentificationCodes.retainPatientCharacteristics] : []),
  ];
  elements.push(
    text(Tags.PatientIdentityRemoved, 'CS', 'YES'),
    text(Tags.DeidentificationMethod, 'LO', ['PS3.15 E.1.1 Basic Profile', modifiedDates ? 'dates shifted' : 'dates kept', 'cxr-datasets'].join('\\')),
    sequence(Tags.DeidentificationMethodCodeSequence, codes.map(codeItem)),
    text(Tags.LongitudinalTemporalInformationModified, 'CS', modifiedDates ? 'MODIFIED' : 'UNMODIFIED'),
  );

  const bytes = encodePart10({ sopClassUid, sopInstanceUid, transferSyntaxUid }, elements);
  const reasons = reviewReasons(dataset);
  const changes = Object.fromEntries(
    (['removed', 'emptied', 'replaced', 'uidsRemapped', 'datesShifted', 'privateRemoved'] as const).map((kind) => [kind, [...(cleaner.changes.get(kind) ?? [])].sort()]),
  ) as Record<ChangeKind, string[]>;
  return {
    bytes,
    transferSyntaxUid,
    sopClassUid,
    sopInstanceUid,
    studyInstanceUid: studyUid ? cleaner.mapUids(studyUid) : '',
    changes,
    warnings,
    needsReview: reasons.length > 0,
    reviewReasons: reasons,
  };
}

export function deidentifyBytes(bytes: Uint8Array, options: DeidentifyOptions): DeidentifyResult {
  return deidentifyParsed(parseDicom(bytes), options);
}
