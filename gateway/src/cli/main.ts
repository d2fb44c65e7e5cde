import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readPackageVersion } from '@cxr/inference';
import { build } from '../app.js';
import { openContext } from '../context.js';
import { createLogger } from '../log.js';
import { roles, type Role } from '../accounts/accounts.js';
import { DEFAULT_REDIS_CHECK_INTERVAL_MS, RedisLossWatch } from '../queue/redis-loss.js';
import { removeJoinedChunks, sweepStaleUploads } from '../plugins/uploads.js';
import { getOrCreateSigningKey } from '@cxr/model-registry';

/** Chunks of an upload untouched for this long are removed at start (the station starts it again if it must). */
const STALE_UPLOAD_MS = 7 * 24 * 3600 * 1000;

function positiveMs(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('expected a whole number of milliseconds, at least 1');
  return n;
}

function port(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number (0-65535)');
  return n;
}

const storeHelp = 'object store: DIR, file://DIR or s3://BUCKET (CXR_S3_ENDPOINT, CXR_S3_ACCESS_KEY, CXR_S3_SECRET_KEY)';

/** Reads the TLS files at start, reporting every problem at once. */
function readTlsFiles(opts: { tlsCert?: string; tlsKey?: string; tlsCa?: string }): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  if (!opts.tlsCert && !opts.tlsKey && !opts.tlsCa) return undefined;
  const problems: string[] = [];
  if (!opts.tlsCert || !opts.tlsKey) problems.push('--tls-cert and --tls-key go together');
  if (opts.tlsCa && !opts.tlsCert) problems.push('--tls-ca needs --tls-cert and --tls-key (mTLS is on top of HTTPS)');
  const read = (flag: string, file: string | undefined): Buffer | undefined => {
    if (!file) return undefined;
    try {
      const bytes = readFileSync(file);
      if (!bytes.includes('-----BEGIN ')) problems.push(`${flag} ${file}: not a PEM file`);
      return bytes;
    } catch (err) {
      problems.push(`${flag} ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      return undefined;
    }
  };
  const cert = read('--tls-cert', opts.tlsCert);
  const key = read('--tls-key', opts.tlsKey);
  const ca = read('--tls-ca', opts.tlsCa);
  if (problems.length > 0 || !cert || !key) throw Object.assign(new Error(`invalid TLS settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`), { code: 'CXR_CONFIG' });
  return { cert, key, ...(ca ? { ca } : {}) };
}

/** `cxr-gateway`: serve the API, or administer accounts. Returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('cxr-gateway')
    .version(readPackageVersion(new URL('../../package.json', import.meta.url)), '-V, --version', 'print the version of cxr-gateway')
    .description('The hospital side of CXR triage: station ingest, consult queue, radiologists.')
    .exitOverride();

  program
    .command('serve')
    .description('Run the gateway API (stateless: run several against one Redis and one store).')
    .requiredOption('--store <url>', storeHelp, process.env.CXR_STORE)
    .requiredOption('--redis <url>', 'redis://HOST:PORT', process.env.CXR_REDIS_URL)
    .option('--port <n>', 'HTTP port (0: any free)', port, 8443)
    .option('--host <host>', 'address to listen on', '0.0.0.0')
    .option('--log-level <level>', 'log level', 'info')
    .option('--tls-cert <file>', "HTTPS: the gateway's certificate, PEM (env CXR_TLS_CERT)", process.env.CXR_TLS_CERT)
    .option('--tls-key <file>', "HTTPS: the gateway's private key, PEM (env CXR_TLS_KEY)", process.env.CXR_TLS_KEY)
    .option('--tls-ca <file>', 'mTLS: the CA that signs station certificates; each station must then present its own (env CXR_TLS_CA)', process.env.CXR_TLS_CA)
    .option(
      '--redis-check-ms <ms>',
      'how often to check that Redis still holds its data, in ms (also on every reconnect); if not, the queue is rebuilt from the store (env CXR_REDIS_CHECK_MS)',
      positiveMs,
      process.env.CXR_REDIS_CHECK_MS ? positiveMs(process.env.CXR_REDIS_CHECK_MS) : DEFAULT_REDIS_CHECK_INTERVAL_MS,
    )
    .action(async (opts: { store: string; redis: string; port: number; host: string; logLevel: string; tlsCert?: string; tlsKey?: string; tlsCa?: string; redisCheckMs: number }) => {
      const https = readTlsFiles(opts);
      const log = createLogger({ level: opts.logLevel });
      const context = await openContext({ store: opts.store, redis: opts.redis, log });
      // The start's rebuild, then a watch for a Redis that loses its data while this process serves.
      const watch = new RedisLossWatch({ redis: context.redis, store: context.store, queue: context.queue, log }, { checkIntervalMs: opts.redisCheckMs });
      await watch.start();
      const swept = await sweepStaleUploads(context.store, { olderThan: new Date(Date.now() - STALE_UPLOAD_MS) });
      if (swept.uploads > 0) log.info(swept, 'unfinished uploads older than 7 days removed');
      const joined = await removeJoinedChunks(context.store);
      if (joined.uploads > 0) log.info(joined, 'chunks of joined uploads removed');
      const app = await build({ ...context, log }, https ? { https } : {});
      await app.listen({ port: opts.port, host: opts.host });
      const address = app.server.address();
      const bound = typeof address === 'object' && address ? address.port : opts.port;
      process.stderr.write(`cxr-gateway: ready on ${https ? 'https' : 'http'}://localhost:${bound}/${https?.ca ? ' (stations need their client certificate)' : ''}\n`);
      await new Promise<void>((resolve) => {
        const stop = (): void => {
          void watch
            .stop()
            .then(() => app.close())
            .then(() => context.close())
            .finally(resolve);
        };
        process.once('SIGTERM', stop);
        process.once('SIGINT', stop);
      });
    });

  const admin = program.command('admin').description('Accounts: stations and users.');
  admin
    .command('add-station')
    .description("Create a station; prints its token on the last line (shown once, stored hashed).")
    .argument('<stationId>')
    .requiredOption('--store <url>', storeHelp, process.env.CXR_STORE)
    .requiredOption('--redis <url>', 'redis://HOST:PORT', process.env.CXR_REDIS_URL)
    .option('--name <name>', 'display name of the station')
    .action(async (stationId: string, opts: { store: string; redis: string; name?: string }) => {
      const log = createLogger({ level: 'warn', destination: process.stderr as never });
      const context = await openContext({ store: opts.store, redis: opts.redis, log });
      try {
        const { token } = await context.accounts.addStation({ stationId, name: opts.name });
        process.stdout.write(`station ${stationId} created; its token (keep it, it is not shown again):\n${token}\n`);
      } catch (err) {
        process.stderr.write(`cxr-gateway: ${(err as { code?: string }).code ?? 'CXR_INTERNAL'}: ${(err as Error).message}\n`);
        exitCode = 1;
      } finally {
        await context.close();
      }
    });
  admin
    .command('add-user')
    .description('Create a user (radiologist, admin or mlops).')
    .argument('<username>')
    .requiredOption('--store <url>', storeHelp, process.env.CXR_STORE)
    .requiredOption('--redis <url>', 'redis://HOST:PORT', process.env.CXR_REDIS_URL)
    .requiredOption('--role <role>', roles.join(', '))
    .requiredOption('--password <password>', 'at least 10 characters')
    .option('--display-name <name>', 'name shown on reports')
    .action(async (username: string, opts: { store: string; redis: string; role: string; password: string; displayName?: string }) => {
      const log = createLogger({ level: 'warn', destination: process.stderr as never });
      const context = await openContext({ store: opts.store, redis: opts.redis, log });
      try {
        const user = await context.accounts.addUser({ username, password: opts.password, role: opts.role as Role, displayName: opts.displayName });
        process.stdout.write(`user ${user.username} created with role ${user.role}\n`);
      } catch (err) {
        process.stderr.write(`cxr-gateway: ${(err as { code?: string }).code ?? 'CXR_INTERNAL'}: ${(err as Error).message}\n`);
        exitCode = 1;
      } finally {
        await context.close();
      }
    });
  admin
    .command('registry-key')
    .description("Print the model registry's public key on the last line (the edge's --registry-key), creating the key pair if there is none.")
    .requiredOption('--store <url>', storeHelp, process.env.CXR_STORE)
    .requiredOption('--redis <url>', 'redis://HOST:PORT', process.env.CXR_REDIS_URL)
    .action(async (opts: { store: string; redis: string }) => {
      const log = createLogger({ level: 'warn', destination: process.stderr as never });
      const context = await openContext({ store: opts.store, redis: opts.redis, log });
      try {
        const key = await getOrCreateSigningKey(context.store);
        process.stdout.write(`the model registry's public key (Ed25519, for the edge's --registry-key):\n${key.publicKey}\n`);
      } finally {
        await context.close();
      }
    });

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    process.stderr.write(`cxr-gateway: ${(err as { code?: string }).code ?? 'CXR_INTERNAL'}: ${(err as Error).message}\n`);
    return 1;
  }
  return exitCode;
}
