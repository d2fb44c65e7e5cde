export {
  DEFAULT_CONTENT_TYPE,
  MAX_KEY_LENGTH,
  MAX_METADATA_BYTES,
  MAX_SEGMENT_LENGTH,
  ObjectStoreError,
  ObjectStoreErrorCodes,
  RESERVED_METADATA_PREFIX,
  assertValidKey,
  assertValidMetadata,
  assertValidPrefix,
  isObjectStoreError,
  isValidKey,
  type ListOptions,
  type ObjectBody,
  type ObjectInfo,
  type ObjectStore,
  type ObjectStoreErrorCode,
  type PutOptions,
} from './object-store.js';
export { createFsObjectStore, type FsObjectStore, type FsObjectStoreOptions } from './fs-store.js';
export { createS3ObjectStore, isValidBucketName, type S3ObjectStore, type S3ObjectStoreOptions } from './s3-store.js';
export { StoreConfigError, parseStoreUrl, storeFromUrl, type StoreConfig, type StoreEnv } from './parse-store-url.js';
// The conformance suite (./conformance.js) imports vitest: tests import it directly, it is not exported here.
