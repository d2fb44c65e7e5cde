import { Transform, type TransformCallback } from 'node:stream';

/**
 * Fails a stream that grows past `limit` bytes, so an upload cannot fill the store. `fail` makes the error (each
 * service answers with its own error class and code); it is called once, when the limit is passed.
 */
export function limited(limit: number, fail: () => Error): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      seen += chunk.length;
      if (seen > limit) callback(fail());
      else callback(null, chunk);
    },
  });
}
