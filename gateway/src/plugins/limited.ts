import { Transform } from 'node:stream';
import { GatewayError } from '../errors.js';

/** Fails a stream that grows past `limit` bytes, so an upload cannot fill the store. */
export function limited(limit: number): Transform {
  let seen = 0;
  return new Transform({
    transform(chunk: Buffer, _enc, callback) {
      seen += chunk.length;
      if (seen > limit) callback(new GatewayError('CXR_PAYLOAD_TOO_LARGE', `more than ${limit} bytes`));
      else callback(null, chunk);
    },
  });
}
