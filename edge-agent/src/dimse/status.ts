/** C-STORE response statuses (PS3.4 Annex B.2.3) the SCP answers with. */
export const CStoreStatus = {
  Success: 0x0000,
  /** Refused: Out of Resources. The disk is (nearly) full. */
  OutOfResources: 0xa700,
  /** Error: Cannot understand. The dataset is not readable DICOM. */
  CannotUnderstand: 0xc000,
  ProcessingFailure: 0x0110,
} as const;
