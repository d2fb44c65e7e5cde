/** Tags the pipeline reads, as (group << 16 | element). */
export const Tag = {
  FileMetaInformationGroupLength: 0x00020000,
  MediaStorageSopClassUid: 0x00020002,
  MediaStorageSopInstanceUid: 0x00020003,
  TransferSyntaxUid: 0x00020010,
  SpecificCharacterSet: 0x00080005,
  SopClassUid: 0x00080016,
  SopInstanceUid: 0x00080018,
  StudyDate: 0x00080020,
  StudyTime: 0x00080030,
  AccessionNumber: 0x00080050,
  Modality: 0x00080060,
  Manufacturer: 0x00080070,
  InstitutionName: 0x00080080,
  StudyDescription: 0x00081030,
  SeriesDescription: 0x0008103e,
  AnatomicRegionSequence: 0x00082218,
  CodeValue: 0x00080100,
  CodeMeaning: 0x00080104,
  PatientName: 0x00100010,
  PatientId: 0x00100020,
  PatientBirthDate: 0x00100030,
  PatientSex: 0x00100040,
  PatientAge: 0x00101010,
  BodyPartExamined: 0x00180015,
  ViewPosition: 0x00185101,
  StudyInstanceUid: 0x0020000d,
  SeriesInstanceUid: 0x0020000e,
  InstanceNumber: 0x00200013,
  PatientOrientation: 0x00200020,
  ImageLaterality: 0x00200062,
  SamplesPerPixel: 0x00280002,
  PhotometricInterpretation: 0x00280004,
  PlanarConfiguration: 0x00280006,
  NumberOfFrames: 0x00280008,
  Rows: 0x00280010,
  Columns: 0x00280011,
  PixelSpacing: 0x00280030,
  BitsAllocated: 0x00280100,
  BitsStored: 0x00280101,
  HighBit: 0x00280102,
  PixelRepresentation: 0x00280103,
  WindowCenter: 0x00281050,
  WindowWidth: 0x00281051,
  RescaleIntercept: 0x00281052,
  RescaleSlope: 0x00281053,
  VoiLutFunction: 0x00281056,
  ModalityLutSequence: 0x00283000,
  LutDescriptor: 0x00283002,
  LutData: 0x00283006,
  VoiLutSequence: 0x00283010,
  BurnedInAnnotation: 0x00280301,
  ViewCodeSequence: 0x00540220,
  IconImageSequence: 0x00880200,
  ExtendedOffsetTable: 0x7fe00001,
  ExtendedOffsetTableLengths: 0x7fe00002,
  PixelData: 0x7fe00010,
  Item: 0xfffee000,
  ItemDelimitationItem: 0xfffee00d,
  SequenceDelimitationItem: 0xfffee0dd,
} as const;

export function formatTag(tag: number): string {
  const hex = (tag >>> 0).toString(16).padStart(8, '0').toUpperCase();
  return `(${hex.slice(0, 4)},${hex.slice(4)})`;
}

/**
 * Sequences that may appear with a defined length in Implicit VR files, where the VR is not written.
 * Undefined-length elements are recognised as sequences without this list.
 */
export const implicitSequenceTags: ReadonlySet<number> = new Set([
  Tag.AnatomicRegionSequence,
  Tag.ModalityLutSequence,
  Tag.VoiLutSequence,
  Tag.ViewCodeSequence,
  Tag.IconImageSequence,
]);
