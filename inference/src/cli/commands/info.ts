import { readFile } from 'node:fs/promises';
import { readImageInfo, type ImageInfo } from '../../dicom/image-info.js';
import { parseDicom } from '../../dicom/parse.js';
import { CxrError, toCxrError } from '../../errors/index.js';
import { rasterFormatOf } from '../../images/raster.js';
import { isDecodableTransferSyntax } from '../../codecs/index.js';

/** The header fields the pipeline uses. Deliberately no patient name, ID, birth date or institution. */
export type InfoOutput = Omit<ImageInfo, 'voiLuts'> & { file: string; voiLuts: { entries: number; firstValue: number; bits: number }[]; decodable: boolean };

export async function infoCommand(file: string): Promise<InfoOutput> {
  let bytes: Uint8Array;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw toCxrError(err, 'CXR_IO');
  }
  if (rasterFormatOf(bytes)) throw new CxrError('CXR_NOT_DICOM', 'a PNG/JPEG file has no DICOM header (infer and preprocess accept it)');
  const parsed = parseDicom(bytes);
  const info = readImageInfo(parsed);
  return {
    file,
    ...info,
    voiLuts: info.voiLuts.map(({ entries, firstValue, bits }) => ({ entries, firstValue, bits })),
    decodable: isDecodableTransferSyntax(info.transferSyntaxUid) && parsed.pixelData !== undefined,
  };
}
