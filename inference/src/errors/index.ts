export { ErrorCodes, type ErrorCode } from './codes.js';
export { CxrError, isCxrError, toCxrError } from './cxr-error.js';
