import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { limited } from './limited.js';

async function pass(chunks: readonly Buffer[], limit: number): Promise<{ bytes: number; error?: Error }> {
  let bytes = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      bytes += chunk.length;
      callback();
    },
  });
  try {
    await pipeline(Readable.from(chunks), limited(limit, () => new Error(`more than ${limit} bytes`)), sink);
    return { bytes };
  } catch (err) {
    return { bytes, error: err as Error };
  }
}

describe('limited stream', () => {
  it('passes a stream of exactly the limit untouched', async () => {
    expect(await pass([Buffer.alloc(6), Buffer.alloc(4)], 10)).toEqual({ bytes: 10 });
  });

  it("fails with the caller's error one byte past the limit, before the chunk that passes it goes through", async () => {
    const outcome = await pass([Buffer.alloc(6), Buffer.alloc(5)], 10);
    expect(outcome.error?.message).toBe('more than 10 bytes');
    expect(outcome.bytes).toBe(6);
  });
});
