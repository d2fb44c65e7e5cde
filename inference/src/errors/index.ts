export { ErrorCodes, type ErrorCode } from './codes.js';
export { CxrError, boundedDetail, errorLine, isCxrError, toCxrError } from './cxr-error.js';
