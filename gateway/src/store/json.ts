import { GatewayError } from '../errors.js';
import type { ObjectStore } from './object-store.js';
import { isConsultRecordKey } from './keys.js';

/** Writes an immutable object; false when an identical one is already there, CXR_CONFLICT when another is. */
export async function putOnce(store: ObjectStore, key: string, bytes: Buffer, contentType: string): Promise<boolean> {
  try {
    await store.put(key, bytes, { contentType, ifNoneMatch: true });
    return true;
  } catch (err) {
    if ((err as { code?: string }).code !== 'CXR_STORE_EXISTS') throw err;
    const existing = Buffer.from(await store.getBytes(key));
    if (isConsultRecordKey(key) || existing.equals(bytes)) return false;
    throw new GatewayError('CXR_CONFLICT', `${key} exists with other content`);
  }
}

export async function readJson<T>(store: ObjectStore, key: string): Promise<T> {
  return JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as T;
}

export async function readJsonOptional<T>(store: ObjectStore, key: string): Promise<T | undefined> {
  return (await store.head(key)) ? readJson<T>(store, key) : undefined;
}
