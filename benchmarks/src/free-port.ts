import { createServer } from 'node:net';

/**
 * A loopback port free at the time of the call (the kernel's pick for port 0). The same as the tests' copy in
 * gateway/src/test-support/free-port.ts: the benchmarks compile on their own, from src/ only.
 */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}
