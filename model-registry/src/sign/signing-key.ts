import { generateRegistryKeyPair, publicKeyFromString, type RegistryKeyPair } from '@cxr/inference';
import type { RegistryObjectStore } from '../deps.js';
import { SIGNING_KEY } from '../store/keys.js';
import { putJsonOnce, readJsonOptional } from '../store/json.js';

interface StoredKey extends RegistryKeyPair {
  readonly createdAt: string;
}

/**
 * The registry's Ed25519 key pair, created on first use. Several gateway processes may ask at once: the first write
 * wins (an immutable put) and every process then uses that one, so there is only ever one key.
 */
export async function getOrCreateSigningKey(store: RegistryObjectStore): Promise<RegistryKeyPair> {
  const existing = await readJsonOptional<StoredKey>(store, SIGNING_KEY);
  if (existing) return check(existing);
  const fresh: StoredKey = { ...generateRegistryKeyPair(), createdAt: new Date().toISOString() };
  const winner = await putJsonOnce(store, SIGNING_KEY, fresh);
  return check(winner ?? fresh);
}

function check(key: StoredKey): RegistryKeyPair {
  // A damaged key file must stop signing, not sign with something the edges cannot verify.
  publicKeyFromString(key.publicKey);
  return { publicKey: key.publicKey, privateKeyPem: key.privateKeyPem };
}
