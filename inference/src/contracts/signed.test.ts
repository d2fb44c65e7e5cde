import { describe, expect, it } from 'vitest';
import { compareModelVersions, ModelDeploymentSchema, type ModelDeployment } from './model-release.js';
import { generateRegistryKeyPair, openSignedDocument, publicKeyFromString, signDocument } from './signed.js';

const deployment: ModelDeployment = {
  kind: 'cxr-model-deployment',
  deploymentId: 'd-1',
  target: { station: 'tram-a' },
  name: 'densenet121-cxr18-random',
  version: '0.1.0',
  rollback: false,
  thresholds: { pneumothorax: 0.4 },
  issuedAt: '2026-11-23T10:00:00.000Z',
};

describe('signed registry documents', () => {
  const keys = generateRegistryKeyPair();

  it('opens what the registry signed, with its public key', () => {
    const envelope = signDocument(deployment, keys.privateKeyPem);
    expect(envelope.keyId).toBe(keys.publicKey);
    expect(openSignedDocument(envelope, keys.publicKey, ModelDeploymentSchema)).toEqual(deployment);
  });

  it('refuses a payload changed after signing', () => {
    const envelope = signDocument(deployment, keys.privateKeyPem);
    const tampered = { ...envelope, payload: envelope.payload.replace('0.1.0', '0.0.9') };
    expect(() => openSignedDocument(tampered, keys.publicKey, ModelDeploymentSchema)).toThrow(/CXR_SIGNATURE_INVALID|does not match/u);
  });

  it('refuses a document signed by another key', () => {
    const other = generateRegistryKeyPair();
    const envelope = signDocument(deployment, other.privateKeyPem);
    expect(() => openSignedDocument(envelope, keys.publicKey, ModelDeploymentSchema)).toThrow(/another key/u);
  });

  it('refuses a signed document that is not of the expected kind', () => {
    const envelope = signDocument({ ...deployment, kind: 'something-else' }, keys.privateKeyPem);
    expect(() => openSignedDocument(envelope, keys.publicKey, ModelDeploymentSchema)).toThrow(/not valid/u);
  });

  it('refuses a malformed key', () => {
    expect(() => publicKeyFromString('not-a-key')).toThrow(/43 base64url/u);
  });

  it('orders versions numerically', () => {
    expect(compareModelVersions('1.2.10', '1.2.9')).toBe(1);
    expect(compareModelVersions('1.0', '1.0.0')).toBe(0);
    expect(compareModelVersions('1.0.0-rc1', '1.0.0')).toBe(-1);
    expect(compareModelVersions('0.9.0', '1.0.0')).toBe(-1);
  });
});
