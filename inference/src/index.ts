export * from './contracts/index.js';
export * from './errors/index.js';
export { parseDicom, defaultParseLimits, type ParsedDicom, type ParseLimits, type PixelDataElement } from './dicom/parse.js';
export { readImageInfo, type ImageInfo } from './dicom/image-info.js';
export { firstFrame, type EncodedFrame } from './dicom/frames.js';
export { DicomDataset, type DicomElement } from './dicom/dataset.js';
export { Tag, formatTag } from './dicom/tags.js';
export { SopClass, TransferSyntax, transferSyntaxName, type SopClassUid, type TransferSyntaxUid } from './dicom/uids.js';
export { decodeFrame, decodableTransferSyntaxes, isDecodableTransferSyntax, type DecodeOptions, type DecodedFrame } from './codecs/index.js';
export * from './preprocess/index.js';
export * from './findings/index.js';
export * from './runtime/index.js';
export * from './pipeline/index.js';
export * from './images/index.js';
export * from './eval/index.js';
// The individual decoders, for benchmarks that compare them on the same files.
export { decodeWithDcmjs, type DcmjsCodecName } from './codecs/dcmjs-native-codecs.js';
export { decodeWithCharls } from './codecs/charls.js';
export { loadNativeOpenJpeg } from './codecs/openjpeg-native.js';
