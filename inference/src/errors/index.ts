export { ErrorCodes, type ErrorCode } from './codes.js';
export { CxrError, errorLine, isCxrError, toCxrError } from './cxr-error.js';
