/**
 * PNG/JPEG to a DICOM Part 10 file: DX (Digital X-Ray Image Storage - For Presentation) or CR, one grey frame.
 */
import { CxrError, SopClass, parseDicom, transferSyntaxName } from '@cxr/inference';
import { TransferSyntaxUid, encodePart10, sequence, text, uint16, bytesElement, type DataElement } from '../dicom/writer.js';
import { newUid } from '../dicom/uid.js';
import { mapSamples, type BitMapping } from './bits.js';
import { dcmtkEncoders, encodeJpeg2000Lossless, encodeWithDcmtk, littleEndianBytes, type DcmtkSyntax } from './encode.js';
import { readRasterSamples } from './raster.js';

export const syntaxNames = ['explicit', 'implicit', 'rle', 'jpeg-ls', 'j2k', 'jpeg-lossless'] as const;
export type SyntaxName = (typeof syntaxNames)[number];

export const syntaxUids: Readonly<Record<SyntaxName, string>> = {
  explicit: TransferSyntaxUid.ExplicitLittle,
  implicit: TransferSyntaxUid.ImplicitLittle,
  rle: TransferSyntaxUid.RleLossless,
  'jpeg-ls': TransferSyntaxUid.JpegLsLossless,
  j2k: TransferSyntaxUid.Jpeg2000Lossless,
  'jpeg-lossless': TransferSyntaxUid.JpegLosslessSV1,
};

/** View Position defined terms (PS3.3 C.8.11.5 and C.8.11.1). */
export const viewPositions = ['PA', 'AP', 'LL', 'RL', 'LLD', 'RLD', 'LLO', 'RLO'] as const;

/** View Code Sequence codes (SNOMED CT, PS3.16 CID 4010 "DX View") of the views that have one. */
const viewCodes: Readonly<Record<string, { code: string; meaning: string }>> = {
  PA: { code: '399348003', meaning: 'postero-anterior' },
  AP: { code: '399182005', meaning: 'antero-posterior' },
  LL: { code: '399173006', meaning: 'left lateral' },
  RL: { code: '399198007', meaning: 'right lateral' },
};

/**
 * Patient Orientation (row direction, then column direction) of the usual display of each view: frontal views as
 * if facing the patient, a left lateral with the patient facing the viewer's left, a right lateral facing right.
 */
const patientOrientations: Readonly<Record<string, string>> = { PA: 'L\\F', AP: 'L\\F', LL: 'P\\F', RL: 'A\\F' };

/**
 * Body Part Examined values with their Anatomic Region code (SNOMED CT, as PS3.16 CID 4009 lists them), which the
 * DX IOD requires. Other values are written to Body Part Examined alone, with a warning.
 */
const anatomicRegions: Readonly<Record<string, { code: string; meaning: string }>> = {
  CHEST: { code: '43799004', meaning: 'Chest' },
  ABDOMEN: { code: '818981001', meaning: 'Abdomen' },
  PELVIS: { code: '816092008', meaning: 'Pelvis' },
  SKULL: { code: '89546000', meaning: 'Skull' },
  HAND: { code: '85562004', meaning: 'Hand' },
  FOOT: { code: '56459004', meaning: 'Foot' },
  KNEE: { code: '72696002', meaning: 'Knee' },
  HIP: { code: '24136001', meaning: 'Hip joint' },
  SHOULDER: { code: '16982005', meaning: 'Shoulder' },
  CSPINE: { code: '122494005', meaning: 'Cervical spine' },
  TSPINE: { code: '122495006', meaning: 'Thoracic spine' },
  LSPINE: { code: '122496007', meaning: 'Lumbar spine' },
};

export interface WrapOptions {
  readonly modality: 'DX' | 'CR';
  /** Bits Stored, 6 to 16; default the source's bit depth. */
  readonly bits?: number;
  readonly mapping: BitMapping;
  readonly monochrome1: boolean;
  readonly syntax: SyntaxName;
  readonly windowCenter?: number;
  readonly windowWidth?: number;
  readonly rescaleSlope?: number;
  readonly rescaleIntercept?: number;
  readonly viewPosition: string;
  readonly bodyPart: string;
  readonly studyInstanceUid?: string;
  readonly seriesInstanceUid?: string;
  readonly patientId?: string;
  readonly patientName?: string;
  /** Imager Pixel Spacing in mm (DX requires one; a PNG does not say). */
  readonly pixelSpacingMm?: number;
  readonly burnedInAnnotation: 'YES' | 'NO';
  readonly now?: Date;
}

export const defaultWrapOptions: WrapOptions = {
  modality: 'DX',
  mapping: 'scale',
  monochrome1: false,
  syntax: 'explicit',
  viewPosition: 'PA',
  bodyPart: 'CHEST',
  burnedInAnnotation: 'YES',
};

export const NOMINAL_PIXEL_SPACING_MM = 0.143;

export interface WrapResult {
  readonly bytes: Uint8Array;
  readonly transferSyntaxUid: string;
  readonly sopClassUid: string;
  readonly sopInstanceUid: string;
  readonly studyInstanceUid: string;
  readonly seriesInstanceUid: string;
  readonly rows: number;
  readonly columns: number;
  readonly bitsStored: number;
  readonly photometricInterpretation: 'MONOCHROME1' | 'MONOCHROME2';
  /** The stored values written (before compression), for checks. */
  readonly stored: Uint8Array | Uint16Array;
  readonly actions: string[];
  readonly warnings: string[];
}

const UID_PATTERN = /^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))+$/u;

/** Every problem with the options at once (CXR_USAGE), or nothing. */
export function checkWrapOptions(options: WrapOptions): void {
  const problems: string[] = [];
  if (options.bits !== undefined && (!Number.isInteger(options.bits) || options.bits < 6 || options.bits > 16)) {
    problems.push(`--bits must be an integer from 6 to 16 (got ${options.bits})`);
  }
  if (!['DX', 'CR'].includes(options.modality)) problems.push(`--modality must be DX or CR (got ${options.modality})`);
  if (!syntaxNames.includes(options.syntax)) problems.push(`--syntax must be one of ${syntaxNames.join(', ')} (got ${options.syntax})`);
  if (options.modality === 'DX' && ((options.rescaleSlope ?? 1) !== 1 || (options.rescaleIntercept ?? 0) !== 0)) {
    problems.push('DX requires Rescale Slope 1 and Intercept 0 (PS3.3 C.8.11.3): use --modality CR for another rescale');
  }
  if (options.rescaleSlope !== undefined && (!Number.isFinite(options.rescaleSlope) || options.rescaleSlope === 0)) {
    problems.push('--rescale-slope must be a non-zero number');
  }
  if ((options.windowCenter === undefined) !== (options.windowWidth === undefined)) {
    problems.push('--window-center and --window-width go together');
  }
  if (options.windowWidth !== undefined && !(options.windowWidth >= 1)) problems.push('--window-width must be at least 1');
  if (!(viewPositions as readonly string[]).includes(options.viewPosition)) {
    problems.push(`--view must be one of ${viewPositions.join(', ')} (got ${options.viewPosition})`);
  }
  if (!/^[A-Z0-9 _]{1,16}$/u.test(options.bodyPart)) problems.push(`--body-part must be 1 to 16 capitals, digits, space or _ (got ${options.bodyPart})`);
  for (const [flag, uid] of [
    ['--study-uid', options.studyInstanceUid],
    ['--series-uid', options.seriesInstanceUid],
  ] as const) {
    if (uid !== undefined && (!UID_PATTERN.test(uid) || uid.length > 64)) problems.push(`${flag} is not a valid UID: ${uid}`);
  }
  if (options.pixelSpacingMm !== undefined && !(options.pixelSpacingMm > 0)) problems.push('--pixel-spacing must be a positive number of mm');
  if (problems.length > 0) throw new CxrError('CXR_USAGE', problems.join('; '));
}

/** DS values: at most 16 characters. */
function decimalString(value: number): string {
  const plain = String(value);
  if (plain.length <= 16) return plain;
  return Number(value.toPrecision(10)).toString();
}

function dicomDate(d: Date): string {
  return `${d.getUTCFullYear()}${String(d.getUTCMonth() + 1).padStart(2, '0')}${String(d.getUTCDate()).padStart(2, '0')}`;
}

function dicomTime(d: Date): string {
  return `${String(d.getUTCHours()).padStart(2, '0')}${String(d.getUTCMinutes()).padStart(2, '0')}${String(d.getUTCSeconds()).padStart(2, '0')}`;
}

export async function wrapImage(source: Uint8Array, options: WrapOptions): Promise<WrapResult> {
  checkWrapOptions(options);
  const raster = await readRasterSamples(source);
  const actions: string[] = [];
  const warnings: string[] = [];
  actions.push(`read ${raster.bitDepth}-bit ${raster.colour ? 'colour' : 'grey'} ${raster.format.toUpperCase()}, ${raster.columns}x${raster.rows}`);
  if (raster.colour) warnings.push('colour input made grey with ITU-R 601-2 luma (0.299 R + 0.587 G + 0.114 B, as PIL convert("L"))');
  if (raster.hadAlpha) warnings.push('alpha channel ignored');

  const bits = options.bits ?? raster.bitDepth;
  const mapped = mapSamples(raster.samples, raster.bitDepth, bits, options.mapping, options.monochrome1);
  actions.push(mapped.description);
  if (!mapped.reversible) warnings.push(`${raster.bitDepth}-bit source reduced to ${bits} bits: some source values merge, not reversible`);

  const photometricInterpretation = options.monochrome1 ? 'MONOCHROME1' : 'MONOCHROME2';
  const bitsAllocated = bits <= 8 ? 8 : 16;
  const now = options.now ?? new Date();
  const sopClassUid = options.modality === 'DX' ? SopClass.DigitalXRayImageStorageForPresentation : SopClass.ComputedRadiographyImageStorage;
  const sopInstanceUid = newUid();
  const studyInstanceUid = options.studyInstanceUid ?? newUid();
  const seriesInstanceUid = options.seriesInstanceUid ?? newUid();
  const slope = options.rescaleSlope ?? 1;
  const intercept = options.rescaleIntercept ?? 0;

  // The default window spans every value the Modality LUT can give: the image looks as the PNG did.
  const lowest = Math.min(intercept, slope * (2 ** bits - 1) + intercept);
  const highest = Math.max(intercept, slope * (2 ** bits - 1) + intercept);
  const windowWidth = options.windowWidth ?? highest - lowest + 1;
  const windowCenter = options.windowCenter ?? lowest + (highest - lowest + 1) / 2;

  const date = dicomDate(now);
  const time = dicomTime(now);
  const le = true;
  const elements: DataElement[] = [
    text(0x00080005, 'CS', 'ISO_IR 192'),
    text(0x00080008, 'CS', 'DERIVED\\PRIMARY'),
    text(0x00080012, 'DA', date),
    text(0x00080013, 'TM', time),
    text(0x00080016, 'UI', sopClassUid),
    text(0x00080018, 'UI', sopInstanceUid),
    text(0x00080020, 'DA', date),
    text(0x00080021, 'DA', date),
    text(0x00080023, 'DA', date),
    text(0x00080030, 'TM', time),
    text(0x00080031, 'TM', time),
    text(0x00080033, 'TM', time),
    text(0x00080050, 'SH', ''),
    text(0x00080060, 'CS', options.modality),
    text(0x00080070, 'LO', ''),
    text(0x00080090, 'PN', ''),
    text(0x00082111, 'ST', `Made by cxr-datasets from a ${raster.format.toUpperCase()} file: ${mapped.description}`.slice(0, 1024)),
    text(0x00100010, 'PN', options.patientName ?? ''),
    text(0x00100020, 'LO', options.patientId ?? ''),
    text(0x00100030, 'DA', ''),
    text(0x00100040, 'CS', ''),
    text(0x00180015, 'CS', options.bodyPart),
    text(0x00185101, 'CS', options.viewPosition),
    text(0x0020000d, 'UI', studyInstanceUid),
    text(0x0020000e, 'UI', seriesInstanceUid),
    text(0x00200010, 'SH', ''),
    text(0x00200011, 'IS', '1'),
    text(0x00200013, 'IS', '1'),
    text(0x00200020, 'CS', patientOrientations[options.viewPosition] ?? ''),
    uint16(0x00280002, le, 1),
    text(0x00280004, 'CS', photometricInterpretation),
    uint16(0x00280010, le, raster.rows),
    uint16(0x00280011, le, raster.columns),
    uint16(0x00280100, le, bitsAllocated),
    uint16(0x00280101, le, bits),
    uint16(0x00280102, le, bits - 1),
    uint16(0x00280103, le, 0),
    text(0x00280301, 'CS', options.burnedInAnnotation),
    text(0x00281050, 'DS', decimalString(windowCenter)),
    text(0x00281051, 'DS', decimalString(windowWidth)),
    text(0x00282110, 'CS', '00'),
  ];
  if (patientOrientations[options.viewPosition] === undefined) warnings.push(`Patient Orientation left empty for view ${options.viewPosition}`);
  if (options.modality === 'DX' || options.rescaleSlope !== undefined || options.rescaleIntercept !== undefined) {
    elements.push(text(0x00281052, 'DS', decimalString(intercept)), text(0x00281053, 'DS', decimalString(slope)), text(0x00281054, 'LO', 'US'));
  }
  if (options.modality === 'DX') {
    const spacing = options.pixelSpacingMm ?? NOMINAL_PIXEL_SPACING_MM;
    if (options.pixelSpacingMm === undefined) {
      warnings.push(`Imager Pixel Spacing is not known from the ${raster.format.toUpperCase()}: wrote a nominal ${spacing} mm (--pixel-spacing)`);
    }
    const region = anatomicRegions[options.bodyPart];
    if (region) {
      elements.push(
        sequence(0x00082218, [[text(0x00080100, 'SH', region.code), text(0x00080102, 'SH', 'SCT'), text(0x00080104, 'LO', region.meaning)]]),
      );
    } else {
      warnings.push(`no Anatomic Region code known for body part ${options.bodyPart}: the DX file lacks the sequence the IOD requires`);
    }
    const view = viewCodes[options.viewPosition];
    if (view) {
      elements.push(sequence(0x00540220, [[text(0x00080100, 'SH', view.code), text(0x00080102, 'SH', 'SCT'), text(0x00080104, 'LO', view.meaning)]]));
    }
    elements.push(
      text(0x00080068, 'CS', 'FOR PRESENTATION'),
      text(0x00181508, 'CS', ''),
      text(0x00181164, 'DS', `${decimalString(spacing)}\\${decimalString(spacing)}`),
      text(0x00187004, 'CS', ''),
      text(0x00200062, 'CS', 'U'),
      text(0x00281040, 'CS', 'LIN'),
      // +1: lower values mean less X-ray intensity (MONOCHROME1 shows them white); -1 for MONOCHROME2.
      bytesElement(0x00281041, 'SS', Uint8Array.of(...(options.monochrome1 ? [1, 0] : [0xff, 0xff]))),
      sequence(0x00400555, []),
      text(0x20500020, 'CS', options.monochrome1 ? 'INVERSE' : 'IDENTITY'),
    );
  }
  if (options.burnedInAnnotation === 'YES') {
    actions.push('Burned In Annotation YES: nothing is known about text in the pixels (--burned-in-annotation no if checked)');
  }

  const frame = { stored: mapped.stored, rows: raster.rows, columns: raster.columns, bitsAllocated, bitsStored: bits, photometricInterpretation } as const;
  const transferSyntaxUid = syntaxUids[options.syntax];
  const nativePixelData = bytesElement(0x7fe00010, bitsAllocated === 8 ? 'OB' : 'OW', littleEndianBytes(mapped.stored));
  const meta = { sopClassUid, sopInstanceUid };
  let bytes: Uint8Array;
  if (options.syntax === 'explicit' || options.syntax === 'implicit') {
    bytes = encodePart10({ ...meta, transferSyntaxUid }, [...elements, nativePixelData]);
  } else if (options.syntax === 'j2k') {
    const { codestream, encoder } = await encodeJpeg2000Lossless(frame);
    const pixelData: DataElement = { tag: 0x7fe00010, vr: 'OB', value: { kind: 'encapsulated', offsetTable: new Uint8Array(0), fragments: [codestream] } };
    bytes = encodePart10({ ...meta, transferSyntaxUid }, [...elements, pixelData]);
    actions.push(`encoded JPEG 2000 lossless with ${encoder}`);
  } else {
    const native = encodePart10({ ...meta, transferSyntaxUid: TransferSyntaxUid.ExplicitLittle }, [...elements, nativePixelData]);
    const syntax: DcmtkSyntax = options.syntax;
    const encoded = await encodeWithDcmtk(native, syntax);
    bytes = encoded.bytes;
    actions.push(`encoded ${transferSyntaxName(transferSyntaxUid)} with ${encoded.encoder} ${dcmtkEncoders[syntax].args.join(' ')}`.trim());
  }
  checkMade(bytes, transferSyntaxUid, sopInstanceUid);
  actions.push(`${options.modality} ${photometricInterpretation}, Bits Stored ${bits} of ${bitsAllocated}, window ${decimalString(windowCenter)}/${decimalString(windowWidth)}`);
  return {
    bytes,
    transferSyntaxUid,
    sopClassUid,
    sopInstanceUid,
    studyInstanceUid,
    seriesInstanceUid,
    rows: raster.rows,
    columns: raster.columns,
    bitsStored: bits,
    photometricInterpretation,
    stored: mapped.stored,
    actions,
    warnings,
  };
}

/** The made file parses with the project's parser, in the syntax asked for, with our UID. */
function checkMade(bytes: Uint8Array, transferSyntaxUid: string, sopInstanceUid: string): void {
  const parsed = parseDicom(bytes);
  if (parsed.transferSyntaxUid !== transferSyntaxUid) {
    throw new CxrError('CXR_MALFORMED', `the encoder wrote ${transferSyntaxName(parsed.transferSyntaxUid)}, not ${transferSyntaxName(transferSyntaxUid)}`);
  }
  if (parsed.dataset.string(0x00080018) !== sopInstanceUid) throw new CxrError('CXR_MALFORMED', 'the encoder changed the SOP Instance UID');
}
