/** The part of s3rver 3.7 (CommonJS, no typings) that the S3 store's tests use. */
declare module 's3rver' {
  import type { Server } from 'node:http';
  import type { AddressInfo } from 'node:net';

  export interface S3rverOptions {
    address?: string;
    port?: number;
    silent?: boolean;
    directory?: string;
    resetOnClose?: boolean;
    allowMismatchedSignatures?: boolean;
    vhostBuckets?: boolean;
    configureBuckets?: { name: string; configs?: (string | Buffer)[] }[];
  }

  /** s3rver's object as its store sees it: headers already reduced to content-type and x-amz-meta-*. */
  export interface S3rverObject {
    bucket: string;
    key: string;
    content: NodeJS.ReadableStream | Buffer | null;
    metadata: Record<string, string>;
  }

  /** lib/stores/filesystem.js: objects live at DIR/BUCKET/KEY._S3rver_object (+ .md5, _S3rver_metadata.json). */
  export interface S3rverFilesystemStore {
    rootDirectory: string;
    getResourcePath(bucket: string, key: string | undefined, resource: string): string;
    existsObject(bucket: string, key: string): Promise<boolean>;
    getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<unknown>;
    putObject(object: S3rverObject): Promise<{ md5: string; size: number }>;
    deleteObject(bucket: string, key: string): Promise<void>;
    listObjects(
      bucket: string,
      options: { prefix?: string; startAfter?: string; maxKeys?: number; delimiter?: string },
    ): Promise<{ objects: { key: string }[]; commonPrefixes: string[]; isTruncated: boolean }>;
  }

  export default class S3rver {
    constructor(options?: S3rverOptions);
    readonly store: S3rverFilesystemStore;
    httpServer?: Server;
    run(): Promise<AddressInfo>;
    close(): Promise<void>;
    reset(): void;
    on(event: 'error', listener: (err: Error) => void): this;
  }
}
