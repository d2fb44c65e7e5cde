import { CxrError } from '../errors/index.js';
import type { DicomDataset } from './dataset.js';
import { declaredFrameBytes, defaultParseLimits, frameTooLarge, type ParsedDicom, type ParseLimits } from './parse.js';
import { Tag } from './tags.js';
import { SopClass, transferSyntaxName } from './uids.js';

export type VoiLutFunction = 'LINEAR' | 'LINEAR_EXACT' | 'SIGMOID';

export interface VoiLut {
  /** Entries in the table (LUT Descriptor's first value, 0 meaning 65536). */
  readonly entries: number;
  /** First stored value mapped (LUT Descriptor's second value). */
  readonly firstValue: number;
  /** Bits per entry (LUT Descriptor's third value). */
  readonly bits: number;
  readonly data: Uint16Array;
}

/** The image attributes the pipeline uses. Carries no patient identifiers. */
export interface ImageInfo {
  readonly transferSyntaxUid: string;
  readonly transferSyntax: string;
  readonly hasFileMeta: boolean;
  readonly sopClassUid: string | undefined;
  readonly sopInstanceUid: string | undefined;
  readonly studyInstanceUid: string | undefined;
  readonly seriesInstanceUid: string | undefined;
  readonly modality: string | undefined;
  readonly bodyPartExamined: string | undefined;
  readonly viewPosition: string | undefined;
  readonly manufacturer: string | undefined;
  readonly rows: number;
  readonly columns: number;
  readonly samplesPerPixel: number;
  readonly photometricInterpretation: string;
  readonly planarConfiguration: number;
  readonly bitsAllocated: number;
  readonly bitsStored: number;
  readonly highBit: number;
  readonly pixelRepresentation: 0 | 1;
  readonly numberOfFrames: number;
  readonly rescaleSlope: number | undefined;
  readonly rescaleIntercept: number | undefined;
  readonly windowCenters: readonly number[];
  readonly windowWidths: readonly number[];
  readonly voiLutFunction: VoiLutFunction;
  readonly voiLuts: readonly VoiLut[];
}

/** Largest image accepted, in pixels per frame (a 16k x 16k detector fits). */
export const MAX_PIXELS = 16384 * 16384;

export function readImageInfo(parsed: ParsedDicom, limits: Pick<ParseLimits, 'maxFrameBytes'> = defaultParseLimits): ImageInfo {
  const ds = parsed.dataset;
  const problems: string[] = [];
  const rows = ds.uint16(Tag.Rows);
  const columns = ds.uint16(Tag.Columns);
  const bitsAllocated = ds.uint16(Tag.BitsAllocated);
  if (!rows) problems.push('Rows missing or 0');
  if (!columns) problems.push('Columns missing or 0');
  if (bitsAllocated === undefined) problems.push('BitsAllocated missing');
  const bitsStored = ds.uint16(Tag.BitsStored) ?? bitsAllocated;
  const highBit = ds.uint16(Tag.HighBit) ?? (bitsStored === undefined ? undefined : bitsStored - 1);
  const samplesPerPixel = ds.uint16(Tag.SamplesPerPixel) ?? 1;
  const pixelRepresentation = ds.uint16(Tag.PixelRepresentation) ?? 0;
  if (bitsAllocated !== undefined) {
    if (![1, 8, 16, 32].includes(bitsAllocated)) problems.push(`BitsAllocated ${bitsAllocated} is not 1, 8, 16 or 32`);
    if (bitsStored !== undefined && (bitsStored < 1 || bitsStored > bitsAllocated)) {
      problems.push(`BitsStored ${bitsStored} outside 1..BitsAllocated (${bitsAllocated})`);
    }
    if (highBit !== undefined && highBit >= bitsAllocated) problems.push(`HighBit ${highBit} must be below BitsAllocated (${bitsAllocated})`);
    if (highBit !== undefined && bitsStored !== undefined && highBit + 1 < bitsStored) {
      problems.push(`HighBit ${highBit} leaves no room for BitsStored ${bitsStored}`);
    }
  }
  if (samplesPerPixel !== 1 && samplesPerPixel !== 3) problems.push(`SamplesPerPixel ${samplesPerPixel} is not 1 or 3`);
  if (pixelRepresentation !== 0 && pixelRepresentation !== 1) problems.push(`PixelRepresentation ${pixelRepresentation} is not 0 or 1`);
  if (problems.length > 0) {
    if (!parsed.pixelData) throw missingImage(parsed, problems);
    throw new CxrError('CXR_INVALID_PIXEL_MODULE', problems.join('; '));
  }
  if ((rows ?? 0) * (columns ?? 0) > MAX_PIXELS) {
    throw new CxrError('CXR_LIMIT_EXCEEDED', `${rows} x ${columns} pixels is more than ${MAX_PIXELS}`);
  }
  // Before any decoder allocates the frame: a header may declare far more than the file holds.
  const frameBytes = declaredFrameBytes(ds) ?? 0;
  if (frameBytes > limits.maxFrameBytes) throw frameTooLarge(frameBytes, limits);

  const photometric = ds.string(Tag.PhotometricInterpretation)?.toUpperCase() ?? (samplesPerPixel === 3 ? 'RGB' : 'MONOCHROME2');
  const frames = Math.max(1, Math.floor(ds.decimal(Tag.NumberOfFrames) ?? 1));
  const voiFunction = (ds.string(Tag.VoiLutFunction)?.toUpperCase() ?? 'LINEAR') as string;

  return {
    transferSyntaxUid: parsed.transferSyntaxUid,
    transferSyntax: transferSyntaxName(parsed.transferSyntaxUid),
    hasFileMeta: parsed.hasFileMeta,
    sopClassUid: ds.string(Tag.SopClassUid) ?? parsed.meta?.string(Tag.MediaStorageSopClassUid),
    sopInstanceUid: ds.string(Tag.SopInstanceUid) ?? parsed.meta?.string(Tag.MediaStorageSopInstanceUid),
    studyInstanceUid: ds.string(Tag.StudyInstanceUid),
    seriesInstanceUid: ds.string(Tag.SeriesInstanceUid),
    modality: ds.string(Tag.Modality)?.toUpperCase(),
    bodyPartExamined: bodyPartOf(ds),
    viewPosition: viewPositionOf(ds),
    manufacturer: ds.string(Tag.Manufacturer),
    rows: rows ?? 0,
    columns: columns ?? 0,
    samplesPerPixel,
    photometricInterpretation: photometric,
    planarConfiguration: ds.uint16(Tag.PlanarConfiguration) ?? 0,
    bitsAllocated: bitsAllocated ?? 0,
    bitsStored: bitsStored ?? 0,
    highBit: highBit ?? 0,
    pixelRepresentation: pixelRepresentation === 1 ? 1 : 0,
    numberOfFrames: frames,
    rescaleSlope: ds.decimal(Tag.RescaleSlope),
    rescaleIntercept: ds.decimal(Tag.RescaleIntercept),
    windowCenters: ds.decimals(Tag.WindowCenter),
    windowWidths: ds.decimals(Tag.WindowWidth),
    voiLutFunction: voiFunction === 'LINEAR_EXACT' || voiFunction === 'SIGMOID' ? voiFunction : 'LINEAR',
    voiLuts: ds.sequence(Tag.VoiLutSequence).flatMap((item) => voiLutOf(item, pixelRepresentation === 1)),
  };
}

/** Image storage classes: a file of one of these without Pixel Data or its Image Pixel Module was cut short. */
const imageStorageClasses: ReadonlySet<string> = new Set(Object.values(SopClass).filter((uid) => uid !== SopClass.Verification));

const pixelModuleTags = [
  Tag.SamplesPerPixel,
  Tag.PhotometricInterpretation,
  Tag.Rows,
  Tag.Columns,
  Tag.BitsAllocated,
  Tag.BitsStored,
  Tag.HighBit,
  Tag.PixelRepresentation,
];

/**
 * No Pixel Data and an incomplete Image Pixel Module. A file cut on an element boundary looks exactly like this, so
 * when the file says it is an image (its SOP class, or part of the module present) it is reported as truncated;
 * anything else (a structured report, say) simply has no image.
 */
function missingImage(parsed: ParsedDicom, problems: readonly string[]): CxrError {
  const ds = parsed.dataset;
  const sopClass = ds.string(Tag.SopClassUid) ?? parsed.meta?.string(Tag.MediaStorageSopClassUid);
  const someModule = pixelModuleTags.some((tag) => ds.has(tag));
  if (someModule || (sopClass !== undefined && imageStorageClasses.has(sopClass))) {
    return new CxrError('CXR_TRUNCATED', `the dataset ends without Pixel Data (${problems.join('; ')})`);
  }
  return new CxrError('CXR_NO_PIXEL_DATA', problems.join('; '));
}

/** Reads one VOI LUT item in the item's own byte order (an undefined-length UN item is little endian in any file). */
function voiLutOf(item: DicomDataset, signedPixels: boolean): VoiLut[] {
  const littleEndian = item.littleEndian;
  const descriptor = item.uint16s(Tag.LutDescriptor);
  const dataBytes = item.bytes(Tag.LutData);
  if (descriptor.length < 3 || !dataBytes) return [];
  const [rawEntries = 0, rawFirst = 0, bits = 16] = descriptor;
  const entries = rawEntries === 0 ? 65536 : rawEntries;
  // The first mapped value is SS when the pixels are signed (PS3.3 C.11.2.1.1).
  const firstValue = signedPixels && rawFirst > 0x7fff ? rawFirst - 0x10000 : rawFirst;
  const view = new DataView(dataBytes.buffer, dataBytes.byteOffset, dataBytes.byteLength);
  const count = Math.min(entries, Math.floor(dataBytes.length / 2));
  const data = new Uint16Array(count);
  for (let i = 0; i < count; i++) data[i] = view.getUint16(i * 2, littleEndian);
  if (count === 0) return [];
  return [{ entries: count, firstValue, bits, data }];
}

function bodyPartOf(ds: DicomDataset): string | undefined {
  const direct = ds.string(Tag.BodyPartExamined)?.toUpperCase();
  if (direct) return direct;
  const region = ds.codeMeaning(Tag.AnatomicRegionSequence)?.meaning?.toLowerCase();
  if (!region) return undefined;
  if (region.includes('chest') || region.includes('thorax')) return 'CHEST';
  return region.toUpperCase();
}

function viewPositionOf(ds: DicomDataset): string | undefined {
  const direct = ds.string(Tag.ViewPosition)?.toUpperCase();
  if (direct) return direct;
  const meaning = ds.codeMeaning(Tag.ViewCodeSequence)?.meaning?.toLowerCase();
  if (!meaning) return undefined;
  if (meaning.includes('lateral')) return 'LL';
  if (meaning.includes('postero-anterior') || meaning.includes('posteroanterior')) return 'PA';
  if (meaning.includes('antero-posterior') || meaning.includes('anteroposterior')) return 'AP';
  return meaning.toUpperCase();
}
