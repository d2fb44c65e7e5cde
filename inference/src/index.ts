export * from './contracts/index.js';
export * from './errors/index.js';
export { parseDicom, defaultParseLimits, type ParsedDicom, type ParseLimits, type PixelDataElement } from './dicom/parse.js';
export { readImageInfo, type ImageInfo } from './dicom/image-info.js';
export { firstFrame, type EncodedFrame } from './dicom/frames.js';
export { DicomDataset, type DicomElement } from './dicom/dataset.js';
export { Tag, formatTag } from './dicom/tags.js';
export { SopClass, TransferSyntax, isValidUid, transferSyntaxName, type SopClassUid, type TransferSyntaxUid } from './dicom/uids.js';
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
export { loadNativeDcmjpeg } from './codecs/dcmjpeg-native.js';
export { loadNativeResize } from './preprocess/native-resize.js';
export { sharedUiDir } from './ui.js';
export { readPackageVersion } from './cli/package-version.js';
export { crashPoint, crashPointLine, stallPoint, stallPointLine } from './faults/crash-point.js';
// Password hashing and rules, shared by the gateway's users and the edge's radiographers.
export { createPasswordHasher, hashPassword, verifyPassword, scryptDerive, passwordProblem, PasswordHashError, DEFAULT_SCRYPT_COST, MAX_PASSWORD_BYTES, MIN_PASSWORD_CHARACTERS, type DeriveKey, type PasswordHasher, type ScryptCost } from './accounts/passwords.js';
export { limited } from './streams/limited.js';
