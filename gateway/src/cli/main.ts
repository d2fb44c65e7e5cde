import { readFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { readPackageVersion } from '@cxr/inference';
import { build } from '../app.js';
import { openContext, type GatewayContext } from '../context.js';
import { AuditTrail, type AuditAction } from '../audit.js';
import { DEFAULT_SIGN_IN_LIMITS, type SignInLimits } from '../accounts/sign-in-limiter.js';
import { createLogger } from '../log.js';
import { AccountError, roles, type Role } from '../accounts/accounts.js';
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

/** Reads the TLS files at start, adding every problem to `problems`. */
function readTlsFiles(opts: { tlsCert?: string; tlsKey?: string; tlsCa?: string }, problems: string[]): { cert: Buffer; key: Buffer; ca?: Buffer } | undefined {
  if (!opts.tlsCert && !opts.tlsKey && !opts.tlsCa) return undefined;
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
  return cert && key ? { cert, key, ...(ca ? { ca } : {}) } : undefined;
}

/** The sign-in limits of the command line, each checked, every problem added to `problems`. */
function signInLimits(opts: { signInWindowSeconds: string; signInMaxFailuresPerAccount: string; signInMaxFailuresPerAddress: string }, problems: string[]): SignInLimits {
  const whole = (flag: string, text: string): number => {
    const n = Number(text);
    if (!/^[0-9]+$/u.test(text) || !Number.isSafeInteger(n) || n < 1) problems.push(`${flag} ${text}: expected a whole number, at least 1`);
    return n;
  };
  return {
    windowSeconds: whole('--sign-in-window-seconds', opts.signInWindowSeconds),
    maxFailuresPerAccount: whole('--sign-in-max-failures-per-account', opts.signInMaxFailuresPerAccount),
    maxFailuresPerAddress: whole('--sign-in-max-failures-per-address', opts.signInMaxFailuresPerAddress),
  };
}

const configError = (problems: readonly string[]): Error =>
  Object.assign(new Error(`invalid settings:\n${problems.map((p) => `  - ${p}`).join('\n')}`), { code: 'CXR_CONFIG' });

const usageError = (message: string): Error => Object.assign(new Error(message), { code: 'CXR_USAGE' });

/** Strips the one line end a file or a pipe adds after a password. */
const oneLine = (text: string): string => text.replace(/\r?\n$/u, '');

/**
 * A password from `--password-file FILE`, else the environment (CXR_GATEWAY_PASSWORD: readable only by the same user
 * and root), else standard input (a pipe: all of it; a terminal: one line, not echoed), or, where allowed, from
 * `--password` (visible to every user of the machine in `ps`).
 */
async function readPassword(opts: { password?: string; passwordFile?: string }): Promise<string> {
  if (opts.password !== undefined && opts.passwordFile !== undefined) throw usageError('give --password or --password-file, not both');
  const fromEnv = process.env.CXR_GATEWAY_PASSWORD;
  let password: string;
  if (opts.password !== undefined) password = opts.password;
  else if (opts.passwordFile === undefined && fromEnv !== undefined) password = fromEnv;
  else if (opts.passwordFile !== undefined) {
    try {
      password = oneLine(readFileSync(opts.passwordFile, 'utf8'));
    } catch (err) {
      throw usageError(`--password-file ${opts.passwordFile}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
  } else if (process.stdin.isTTY) {
    password = await promptHidden('Password: ');
  } else {
    const chunks: Buffer[] = [];
    for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
    password = oneLine(Buffer.concat(chunks).toString('utf8'));
  }
  if (password.length === 0) throw usageError('the password is empty (give it with --password-file FILE or on standard input)');
  return password;
}

/** One line from the terminal with nothing echoed. */
async function promptHidden(prompt: string): Promise<string> {
  process.stderr.write(prompt);
  const muted = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: true });
  try {
    return await new Promise<string>((resolve) => rl.question('', resolve));
  } finally {
    rl.close();
    process.stderr.write('\n');
  }
}

/** `cxr-gateway`: serve the API, or administer accounts. Returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const program = new Command()
    .name('cxr-gateway')
    .version(readPackageVersion(new URL('../../package.json', import.meta.url)), '-V, --version', 'print the version of cxr-gateway')
    .description('The hospital side of CXR triage: station ingest, consult queue, radiologists.')
    .exitOverride();
  // Whatever serve or an admin command writes (the folder store's objects, accounts, the registry's private key) is
  // for this user only; the folder store also sets the modes itself.
  program.hook('preAction', () => {
    process.umask(0o077);
  });

  program
    .command('serve')
    .description('Run the gateway API (stateless: run several against one Redis and one store).')
    .requiredOption('--store <url>', storeHelp, process.env.CXR_STORE)
    .requiredOption('--redis <url>', 'redis://HOST:PORT', process.env.CXR_REDIS_URL)
    .option('--port <n>', 'HTTP port (0: any free)', port, 8443)
    .option('--host <host>', 'address to listen on: 127.0.0.1 (this machine only); 0.0.0.0 or an address of the machine to serve the network (env CXR_GATEWAY_HOST)', process.env.CXR_GATEWAY_HOST ?? '127.0.0.1')
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
    .option('--sign-in-window-seconds <s>', 'failed sign-ins are counted over this many seconds (env CXR_SIGN_IN_WINDOW_SECONDS)', process.env.CXR_SIGN_IN_WINDOW_SECONDS ?? String(DEFAULT_SIGN_IN_LIMITS.windowSeconds))
    .option(
      '--sign-in-max-failures-per-account <n>',
      'failed sign-ins to one account in the window before its sign-ins get 429 (env CXR_SIGN_IN_MAX_FAILURES_PER_ACCOUNT)',
      process.env.CXR_SIGN_IN_MAX_FAILURES_PER_ACCOUNT ?? String(DEFAULT_SIGN_IN_LIMITS.maxFailuresPerAccount),
    )
    .option(
      '--sign-in-max-failures-per-address <n>',
      'failed sign-ins from one address in the window before its sign-ins get 429 (env CXR_SIGN_IN_MAX_FAILURES_PER_ADDRESS)',
      process.env.CXR_SIGN_IN_MAX_FAILURES_PER_ADDRESS ?? String(DEFAULT_SIGN_IN_LIMITS.maxFailuresPerAddress),
    )
    .action(async (opts: ServeFlags) => {
      const problems: string[] = [];
      const https = readTlsFiles(opts, problems);
      const signIn = signInLimits(opts, problems);
      if (problems.length > 0) throw configError(problems);
      const log = createLogger({ level: opts.logLevel });
      const context = await openContext({ store: opts.store, redis: opts.redis, signIn, log });
      // The start's rebuild, then a watch for a Redis that loses its data while this process serves.
      const watch = new RedisLossWatch({ redis: context.redis, store: context.store, queue: context.queue, log }, { checkIntervalMs: opts.redisCheckMs });
      await watch.start();
      const swept = await sweepStaleUploads(context.store, { olderThan: new Date(Date.now() - STALE_UPLOAD_MS) });
      if (swept.uploads > 0) log.info(swept, 'unfinished uploads older than 7 days removed');
      const joined = await removeJoinedChunks(context.store);
      if (joined.uploads > 0) log.info(joined, 'chunks of joined uploads removed');
      const app = await build({ ...context, log }, https ? { https } : {});
      await app.listen({ port: opts.port, host: opts.host });
      // The throwaway hash for unknown users is made now rather than on the first sign-in (accounts.ts).
      void context.accounts.authenticate('', '').catch(() => undefined);
      const address = app.server.address();
      const bound = typeof address === 'object' && address ? address.port : opts.port;
      const where = isLoopback(opts.host) ? `listening on ${opts.host} only: this machine; --host 0.0.0.0 serves the network` : `listening on ${opts.host}`;
      process.stderr.write(`cxr-gateway: ready on ${https ? 'https' : 'http'}://localhost:${bound}/${https?.ca ? ' (stations need their client certificate)' : ''} (${where})\n`);
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

  /** Runs an admin command over the store and Redis; an account error is printed with its code (exit code 1). */
  const adminAction =
    <A extends unknown[]>(work: (context: GatewayContext, audit: (action: AuditAction, target: string) => Promise<void>, ...args: A) => Promise<void>) =>
    async (...args: unknown[]): Promise<void> => {
      // commander passes the arguments, then the options, then the command itself
      const opts = args[args.length - 2] as AdminFlags;
      const log = createLogger({ level: 'warn', destination: process.stderr as never });
      const context = await openContext({ store: opts.store, redis: opts.redis, log });
      const actor = `admin-cli:${adminName()}`;
      const audit = new AuditTrail(context.store);
      try {
        await work(context, (action, target) => audit.record({ actor, action, target }), ...(args.slice(0, -1) as A));
      } catch (err) {
        if (!(err instanceof AccountError)) throw err;
        process.stderr.write(`cxr-gateway: ${err.code}: ${err.message}\n`);
        exitCode = 1;
      } finally {
        await context.close();
      }
    };
  const adminCommand = (name: string, description: string): Command =>
    admin
      .command(name)
      .description(description)
      .requiredOption('--store <url>', storeHelp, process.env.CXR_STORE)
      .requiredOption('--redis <url>', 'redis://HOST:PORT', process.env.CXR_REDIS_URL);
  const passwordFileHelp = 'a file holding the password; without it, the password comes from CXR_GATEWAY_PASSWORD or standard input';

  const admin = program.command('admin').description('Accounts: stations and users.');
  adminCommand('add-station', 'Create a station; prints its token on the last line (shown once, stored hashed).')
    .argument('<stationId>')
    .option('--name <name>', 'display name of the station')
    .action(
      adminAction(async (context, audit, stationId: string, opts: { name?: string }) => {
        const { token } = await context.accounts.addStation({ stationId, name: opts.name });
        await audit('account.add-station', stationId);
        process.stdout.write(`station ${stationId} created; its token (keep it, it is not shown again):\n${token}\n`);
      }),
    );
  adminCommand('rotate-station-token', "Give a station a new token, revoking its others at once; prints the new token on the last line.")
    .argument('<stationId>')
    .action(
      adminAction(async (context, audit, stationId: string) => {
        const token = await context.accounts.rotateStationToken(stationId);
        await audit('account.rotate-station-token', stationId);
        process.stdout.write(`station ${stationId}: every earlier token is revoked; its new token (keep it, it is not shown again):\n${token}\n`);
      }),
    );
  adminCommand('revoke-station', 'Revoke every token of a station: refused at once (rotate-station-token lets it in again).')
    .argument('<stationId>')
    .action(
      adminAction(async (context, audit, stationId: string) => {
        const { revoked } = await context.accounts.revokeStation(stationId);
        await audit('account.revoke-station', stationId);
        process.stdout.write(`station ${stationId}: ${revoked} token(s) revoked; it is refused from now on\n`);
      }),
    );
  adminCommand('add-user', 'Create a user (radiologist, admin or mlops).')
    .argument('<username>')
    .requiredOption('--role <role>', roles.join(', '))
    .option('--password-file <file>', passwordFileHelp)
    .option('--password <password>', 'the password on the command line (at least 10 characters): every user of this machine can read it in `ps`; prefer --password-file or standard input')
    .option('--display-name <name>', 'name shown on reports')
    .action(
      adminAction(async (context, audit, username: string, opts: { role: string; password?: string; passwordFile?: string; displayName?: string }) => {
        const password = await readPassword(opts);
        const user = await context.accounts.addUser({ username, password, role: opts.role as Role, displayName: opts.displayName });
        await audit('account.add-user', user.username);
        process.stdout.write(`user ${user.username} created with role ${user.role}\n`);
      }),
    );
  adminCommand('set-password', "Set a user's password (from --password-file or standard input, never the command line); ends the user's sessions at once.")
    .argument('<username>')
    .option('--password-file <file>', passwordFileHelp)
    .action(
      adminAction(async (context, audit, username: string, opts: { passwordFile?: string }) => {
        const password = await readPassword(opts);
        await context.accounts.setPassword(username, password);
        await audit('account.set-password', username);
        process.stdout.write(`user ${username}: password set; their sessions are ended\n`);
      }),
    );
  adminCommand('disable-user', 'Disable a user: no sign-in, and their sessions are refused at once.')
    .argument('<username>')
    .action(
      adminAction(async (context, audit, username: string) => {
        await context.accounts.disableUser(username);
        await audit('account.disable-user', username);
        process.stdout.write(`user ${username} disabled; their sessions are ended\n`);
      }),
    );
  adminCommand('enable-user', 'Enable a disabled user again (they sign in anew; their old sessions stay ended).')
    .argument('<username>')
    .action(
      adminAction(async (context, audit, username: string) => {
        await context.accounts.enableUser(username);
        await audit('account.enable-user', username);
        process.stdout.write(`user ${username} enabled\n`);
      }),
    );
  adminCommand('registry-key', "Print the model registry's public key on the last line (the edge's --registry-key), creating the key pair if there is none.").action(
    adminAction(async (context) => {
      const key = await getOrCreateSigningKey(context.store);
      process.stdout.write(`the model registry's public key (Ed25519, for the edge's --registry-key):\n${key.publicKey}\n`);
    }),
  );

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    const code = (err as { code?: string }).code;
    process.stderr.write(`cxr-gateway: ${code ?? 'CXR_INTERNAL'}: ${(err as Error).message}\n`);
    return code === 'CXR_USAGE' ? 2 : 1;
  }
  return exitCode;
}

interface ServeFlags {
  store: string;
  redis: string;
  port: number;
  host: string;
  logLevel: string;
  tlsCert?: string;
  tlsKey?: string;
  tlsCa?: string;
  redisCheckMs: number;
  signInWindowSeconds: string;
  signInMaxFailuresPerAccount: string;
  signInMaxFailuresPerAddress: string;
}

interface AdminFlags {
  store: string;
  redis: string;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\./u.test(host);
}

/** Who ran an admin command, for the audit trail: the operating system's user. */
function adminName(): string {
  try {
    return userInfo().username;
  } catch {
    return 'unknown';
  }
}
