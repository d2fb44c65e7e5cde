import { createHmac, randomUUID } from 'node:crypto';

/** A UID under the 2.25 root (PS3.5 B.2): the decimal form of a 128-bit UUID, at most 44 characters. */
export function uidFromUuidHex(hex32: string): string {
  return `2.25.${BigInt(`0x${hex32}`).toString(10)}`;
}

/** A fresh UID from a random (version 4) UUID. */
export function newUid(): string {
  return uidFromUuidHex(randomUUID().replaceAll('-', ''));
}

/**
 * Maps UIDs to new ones with a keyed hash: the same input UID gives the same output UID for the same key, and the
 * output tells nothing about the input without the key. The hash is shaped as a version 8 (custom) UUID, RFC 9562,
 * so the result is a proper 2.25 UID.
 */
export class UidMapper {
  readonly #key: Uint8Array;

  constructor(key: Uint8Array) {
    this.#key = key;
  }

  map(uid: string): string {
    const digest = createHmac('sha256', this.#key).update(`uid:${uid}`).digest();
    const bytes = digest.subarray(0, 16);
    bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x80; // version 8
    bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80; // RFC 9562 variant
    return uidFromUuidHex(Buffer.from(bytes).toString('hex'));
  }
}
