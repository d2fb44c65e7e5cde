import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { CxrError } from '../errors/index.js';

/**
 * A signed document: the payload is kept as the exact JSON text that was signed, so nothing has to be
 * canonicalised again before verifying (re-serialising JSON is where signature schemes usually break).
 */
export const SignedEnvelopeSchema = Type.Object(
  {
    payload: Type.String({ minLength: 2, description: 'the signed JSON document, as text' }),
    signature: Type.String({ pattern: '^[A-Za-z0-9_-]{86}$', description: 'Ed25519 signature of the payload bytes (UTF-8), base64url' }),
    keyId: Type.String({ description: 'the signing public key, as in RegistryKeyPair.publicKey' }),
  },
  { additionalProperties: false },
);
export type SignedEnvelope = Static<typeof SignedEnvelopeSchema>;

export interface RegistryKeyPair {
  /** raw 32-byte Ed25519 public key, base64url (43 characters): what `--registry-key` takes */
  readonly publicKey: string;
  /** PKCS#8 PEM; kept by the registry only */
  readonly privateKeyPem: string;
}

export function generateRegistryKeyPair(): RegistryKeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  return { publicKey: publicKeyToString(publicKey), privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString() };
}

export function publicKeyToString(key: KeyObject): string {
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'Ed25519' || typeof jwk.x !== 'string') throw new CxrError('CXR_SIGNATURE_INVALID', 'not an Ed25519 public key');
  return jwk.x;
}

export function publicKeyFromString(text: string): KeyObject {
  if (!/^[A-Za-z0-9_-]{43}$/u.test(text)) throw new CxrError('CXR_SIGNATURE_INVALID', 'a registry key is 43 base64url characters (raw Ed25519)');
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: text }, format: 'jwk' });
}

/** Signs a document with the registry's private key (PEM). */
export function signDocument(document: object, privateKeyPem: string): SignedEnvelope {
  const privateKey = createPrivateKey(privateKeyPem);
  const payload = JSON.stringify(document);
  const signature = sign(null, Buffer.from(payload, 'utf8'), privateKey).toString('base64url');
  return { payload, signature, keyId: publicKeyToString(createPublicKey(privateKey)) };
}

/**
 * Verifies the envelope with the trusted key, then parses and validates its payload.
 * Throws CXR_SIGNATURE_INVALID for a bad signature, another key, or a payload that fails the schema.
 */
export function openSignedDocument<S extends TSchema>(envelope: unknown, trustedPublicKey: string, schema: S): Static<S> {
  if (!Value.Check(SignedEnvelopeSchema, envelope)) throw new CxrError('CXR_SIGNATURE_INVALID', 'not a signed envelope');
  const key = publicKeyFromString(trustedPublicKey);
  const ok = verify(null, Buffer.from(envelope.payload, 'utf8'), key, Buffer.from(envelope.signature, 'base64url'));
  if (!ok) throw new CxrError('CXR_SIGNATURE_INVALID', envelope.keyId === trustedPublicKey ? 'the signature does not match the document' : 'signed by another key than the trusted registry key');
  let parsed: unknown;
  try {
    parsed = JSON.parse(envelope.payload);
  } catch {
    throw new CxrError('CXR_SIGNATURE_INVALID', 'the signed payload is not JSON');
  }
  if (!Value.Check(schema, parsed)) {
    const first = [...Value.Errors(schema, parsed)][0];
    throw new CxrError('CXR_SIGNATURE_INVALID', `the signed document is not valid: ${first ? `${first.path} ${first.message}` : 'schema'}`);
  }
  return parsed;
}
