import type { RegistryObjectStore } from '../deps.js';

const isCode = (err: unknown, code: string): boolean => (err as { code?: string } | null)?.code === code;

export async function readJson<T>(store: RegistryObjectStore, key: string): Promise<T> {
  return JSON.parse(Buffer.from(await store.getBytes(key)).toString('utf8')) as T;
}

/** The object as JSON, or undefined when there is none (also when it vanished between listing and reading). */
export async function readJsonOptional<T>(store: RegistryObjectStore, key: string): Promise<T | undefined> {
  try {
    return await readJson<T>(store, key);
  } catch (err) {
    if (isCode(err, 'CXR_STORE_NOT_FOUND')) return undefined;
    throw err;
  }
}

export async function writeJson(store: RegistryObjectStore, key: string, value: unknown): Promise<void> {
  await store.put(key, Buffer.from(JSON.stringify(value, null, 1)), { contentType: 'application/json' });
}

/**
 * Writes an immutable object. Returns undefined when this call created it, or the object already there (another
 * process, or an earlier request, got there first): the caller decides whether that one is the same.
 */
export async function putJsonOnce<T>(store: RegistryObjectStore, key: string, value: T): Promise<T | undefined> {
  try {
    await store.put(key, Buffer.from(JSON.stringify(value, null, 1)), { contentType: 'application/json', ifNoneMatch: true });
    return undefined;
  } catch (err) {
    if (!isCode(err, 'CXR_STORE_EXISTS')) throw err;
    return readJson<T>(store, key);
  }
}

/** The objects under a prefix, parsed, in key order; at most `limit`. */
export async function listJson<T>(store: RegistryObjectStore, prefix: string, limit = Number.POSITIVE_INFINITY): Promise<{ key: string; value: T }[]> {
  const out: { key: string; value: T }[] = [];
  if (limit <= 0) return out;
  for await (const info of store.list(prefix)) {
    if (!info.key.endsWith('.json')) continue;
    const value = await readJsonOptional<T>(store, info.key);
    if (value !== undefined) out.push({ key: info.key, value });
    if (out.length >= limit) break;
  }
  return out;
}

export { isCode };
