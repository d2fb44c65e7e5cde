/**
 * The store from one setting (`--store` / CXR_STORE):
 *   DIR, file://DIR, file:///abs/dir   the folder store (relative paths from the working directory)
 *   s3://BUCKET                        S3, with the endpoint and keys from the environment:
 *       CXR_S3_ENDPOINT    http://127.0.0.1:9000 or https://s3.example.org (required)
 *       CXR_S3_ACCESS_KEY  (required)
 *       CXR_S3_SECRET_KEY  (required)
 *       CXR_S3_REGION      (optional, default us-east-1)
 *       CXR_S3_SPOOL_DIR   (optional, folder for spooling bodies above 8 MiB; default the system temp folder)
 * Every problem is reported at once; secrets never appear in messages.
 */
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createFsObjectStore, type FsObjectStoreOptions } from './fs-store.js';
import { ObjectStoreError, type ObjectStore } from './object-store.js';
import { createS3ObjectStore, isValidBucketName, type S3ObjectStoreOptions } from './s3-store.js';

export interface StoreEnv {
  CXR_S3_ENDPOINT?: string | undefined;
  CXR_S3_ACCESS_KEY?: string | undefined;
  CXR_S3_SECRET_KEY?: string | undefined;
  CXR_S3_REGION?: string | undefined;
  CXR_S3_SPOOL_DIR?: string | undefined;
}

export type StoreConfig = { kind: 'fs'; options: FsObjectStoreOptions } | { kind: 's3'; options: S3ObjectStoreOptions };

export class StoreConfigError extends ObjectStoreError {
  readonly problems: readonly string[];
  constructor(problems: readonly string[]) {
    super('CXR_STORE_CONFIG', problems.join('; '));
    this.problems = problems;
  }
}

/** The store's settings, or every problem with them (for a config check that reports all problems at once). */
export function parseStoreUrl(url: string, env: StoreEnv = {}): { config: StoreConfig; problems: [] } | { config: undefined; problems: string[] } {
  const problems: string[] = [];
  const fail = (): { config: undefined; problems: string[] } => ({ config: undefined, problems });
  if (typeof url !== 'string' || url.trim() === '') {
    problems.push('store: give a folder, file://DIR or s3://BUCKET');
    return fail();
  }
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//u.exec(url)?.[1]?.toLowerCase();

  if (scheme === undefined || scheme === 'file') {
    let root: string;
    if (scheme === undefined) root = url;
    else if (url.startsWith('file:///')) {
      try {
        root = fileURLToPath(url);
      } catch (err) {
        problems.push(`store ${url}: ${err instanceof Error ? err.message : String(err)}`);
        return fail();
      }
    } else root = decodeURIComponent(url.slice('file://'.length)); // file://relative/dir
    if (root === '') {
      problems.push('store: the folder is empty');
      return fail();
    }
    return { config: { kind: 'fs', options: { root: path.resolve(root) } }, problems: [] };
  }

  if (scheme !== 's3') {
    problems.push(`store ${url}: unsupported scheme ${scheme}:// (use a folder, file://DIR or s3://BUCKET)`);
    return fail();
  }
  const rest = url.slice('s3://'.length).replace(/\/$/u, '');
  const bucket = rest.split('/')[0] ?? '';
  if (rest.includes('/')) problems.push(`store ${url}: a key prefix after the bucket is not supported (give s3://BUCKET)`);
  if (!isValidBucketName(bucket)) problems.push(`store ${url}: "${bucket}" is not a valid bucket name (3..63 of a-z 0-9 . -)`);

  const endpointText = env.CXR_S3_ENDPOINT?.trim() ?? '';
  let endpoint: { endPoint: string; port: number; useSSL: boolean } | undefined;
  if (endpointText === '') {
    problems.push('CXR_S3_ENDPOINT is not set (for example http://127.0.0.1:9000)');
  } else {
    let parsed: URL | undefined;
    try {
      parsed = new URL(endpointText);
    } catch {
      problems.push(`CXR_S3_ENDPOINT ${endpointText} is not a URL (for example http://127.0.0.1:9000)`);
    }
    if (parsed) {
      const bad: string[] = [];
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') bad.push('must start with http:// or https://');
      if (parsed.username || parsed.password) bad.push('must not hold credentials (use CXR_S3_ACCESS_KEY and CXR_S3_SECRET_KEY)');
      if (parsed.pathname !== '/' || parsed.search || parsed.hash) bad.push('must have no path or query');
      if (bad.length > 0) problems.push(`CXR_S3_ENDPOINT ${parsed.protocol}//${parsed.host} ${bad.join(', ')}`);
      else {
        const useSSL = parsed.protocol === 'https:';
        endpoint = { endPoint: parsed.hostname.replace(/^\[(.*)\]$/u, '$1'), port: parsed.port ? Number(parsed.port) : useSSL ? 443 : 80, useSSL };
      }
    }
  }
  const accessKey = env.CXR_S3_ACCESS_KEY ?? '';
  const secretKey = env.CXR_S3_SECRET_KEY ?? '';
  if (accessKey === '') problems.push('CXR_S3_ACCESS_KEY is not set');
  if (secretKey === '') problems.push('CXR_S3_SECRET_KEY is not set');
  const region = env.CXR_S3_REGION?.trim() || undefined;
  if (region !== undefined && !/^[a-z0-9-]{1,64}$/u.test(region)) problems.push(`CXR_S3_REGION ${region} is not a region name`);
  const spoolDir = env.CXR_S3_SPOOL_DIR?.trim() || undefined;

  if (problems.length > 0 || !endpoint) return fail();
  return {
    config: {
      kind: 's3',
      options: {
        ...endpoint,
        accessKey,
        secretKey,
        bucket,
        ...(region === undefined ? {} : { region }),
        ...(spoolDir === undefined ? {} : { spoolDir: path.resolve(spoolDir) }),
      },
    },
    problems: [],
  };
}

/** Opens the store a URL names (see the top of this file); `StoreConfigError` lists every problem. */
export async function storeFromUrl(url: string, env: StoreEnv = process.env): Promise<ObjectStore> {
  const { config, problems } = parseStoreUrl(url, env);
  if (!config) throw new StoreConfigError(problems);
  return config.kind === 'fs' ? createFsObjectStore(config.options) : createS3ObjectStore(config.options);
}
