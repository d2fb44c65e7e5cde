import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { access, copyFile, mkdir, readdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { inferenceNodeFlags, readPackageVersion, startedWithInferenceFlags, type Priority } from '@cxr/inference';
import { registerAdminCommands } from './accounts/admin.js';
import { signInRequired, startEdgeAgent } from './agent.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './log.js';
import { OutboxDb } from './outbox/outbox-db.js';
import { SpoolDb } from './spool/db.js';
import { checkInvariants } from './spool/invariants.js';

const sharedDir = fileURLToPath(new URL('../../../shared/', import.meta.url));

function portNumber(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new InvalidArgumentError('expected a port number (0-65535)');
  return n;
}

/** A list flag given once or more: `--calling-ae A --calling-ae B` is `A,B`, as is `--calling-ae A,B`. */
function collect(value: string, previous: string | undefined): string {
  return previous ? `${previous},${value}` : value;
}

/** `cxr-edge`: starts the agent; `cxr-edge send-demo` sends the shared radiographs to one. Returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  // Every file and folder this process makes (DICOM, database, images, accounts) is its user's alone.
  process.umask(0o077);
  let exitCode = 0;
  const program = new Command()
    .name('cxr-edge')
    .version(readPackageVersion(new URL('../package.json', import.meta.url)), '-V, --version', 'print the version of cxr-edge')
    .description("The station's edge agent: receives DICOM from the X-ray unit, runs the AI at once, shows the radiographer's page.")
    // Options after a subcommand belong to it (send-demo has its own --dicom-port).
    .enablePositionalOptions()
    .option('--data-dir <dir>', 'spool, database and images (env CXR_EDGE_DATA_DIR)')
    .option('--model <dir>', 'model folder to run (env CXR_EDGE_MODEL)')
    .option('--dicom-port <n>', 'C-STORE / C-ECHO port (default 11112)')
    .option('--http-port <n>', 'page and API port (default 8080)')
    .option('--http-host <host>', "page and API address (default 127.0.0.1: the station PC only; another address opens the page to the station's network, with sign-in)")
    .option('--allowed-hosts <names>', 'more host names the page answers to, comma-separated (besides localhost, IP addresses and this PC\'s name)', collect)
    .option('--require-sign-in', 'radiographers sign in even on 127.0.0.1 (env CXR_EDGE_REQUIRE_SIGN_IN)')
    .option('--session-ttl-ms <ms>', 'how long a sign-in lasts (default 43200000: 12 hours)')
    .option('--calling-ae <entries>', 'devices allowed to send DICOM: AETITLE or AETITLE@IP, comma-separated or repeated (default: any, with a warning)', collect)
    .option('--ae-title <title>', 'our AE title (default CXR_EDGE)')
    .option('--watch-dir <dir>', 'watched folder (default DATA_DIR/incoming)')
    .option('--threads <n>', 'threads for the model and the JPEG 2000 decoder (default 2)')
    .option('--workers <n>', 'inference worker threads (default 1)')
    .option('--inference-timeout-ms <ms>', "stop an image's decode and analysis after this long from its start (default 120000)")
    .option('--min-free-bytes <n>', 'refuse new images below this much free disk (default 200 MiB)')
    .option('--dimse-timeout-ms <ms>', 'abort a DICOM association whose sender stays silent this long, removing any partial file (default 60000)')
    .option('--gateway <url>', "the hospital gateway (env CXR_EDGE_GATEWAY); without it the agent works alone")
    .option('--station-id <id>', 'this station at the gateway (env CXR_EDGE_STATION_ID)')
    .option('--station-token <token>', "this station's token (env CXR_EDGE_STATION_TOKEN); --station-token-file keeps it out of `ps`")
    .option('--station-token-file <file>', "file whose first line is this station's token (env CXR_EDGE_STATION_TOKEN_FILE)")
    .option('--link-retry-max-ms <ms>', 'longest wait between two checks of a hospital link that is down (default 30000)')
    .option('--upload-chunk-bytes <n>', 'DICOM files above this size go up in resumable chunks of it (default 8 MiB)')
    .option('--gateway-ca <file>', "PEM file of the CA that signed the gateway's certificate (env CXR_EDGE_GATEWAY_CA)")
    .option('--client-cert <file>', "this station's client certificate for mTLS, PEM (env CXR_EDGE_CLIENT_CERT)")
    .option('--client-key <file>', "this station's client key for mTLS, PEM (env CXR_EDGE_CLIENT_KEY)")
    .option('--registry-key <key>', "the model registry's public key, 43 base64url characters (env CXR_EDGE_REGISTRY_KEY); without it the first key the gateway gives is pinned")
    .option('--model-poll-ms <ms>', 'ms between asking the gateway which model to run (default 300000: 5 minutes)')
    .option('--no-model-sync', 'run only the --model folder, take no model updates from the registry (env CXR_EDGE_MODEL_SYNC=false)')
    .option('--consult-priorities <list>', 'AI priorities sent for a consult by themselves (default stat,urgent; "" for none)')
    .option('--log-level <level>', 'fatal, error, warn, info, debug, trace or silent (default info)')
    .option('--config <file>', 'JSON file with any of these settings (flags and environment win)')
    .exitOverride()
    .action(async (opts: Record<string, string | number | boolean | undefined>) => {
      let config;
      try {
        config = loadConfig({
          file: opts.config as string | undefined,
          env: process.env,
          flags: {
            dataDir: opts.dataDir,
            modelDir: opts.model,
            dicomPort: opts.dicomPort,
            httpPort: opts.httpPort,
            httpHost: opts.httpHost,
            allowedHosts: opts.allowedHosts,
            requireSignIn: opts.requireSignIn,
            sessionTtlMs: opts.sessionTtlMs,
            callingAe: opts.callingAe,
            stationTokenFile: opts.stationTokenFile,
            aeTitle: opts.aeTitle,
            watchDir: opts.watchDir,
            inferenceThreads: opts.threads,
            workers: opts.workers,
            inferenceTimeoutMs: opts.inferenceTimeoutMs,
            minFreeBytes: opts.minFreeBytes,
            dimseTimeoutMs: opts.dimseTimeoutMs,
            logLevel: opts.logLevel,
            gatewayUrl: opts.gateway,
            stationId: opts.stationId,
            stationToken: opts.stationToken,
            consultPriorities: opts.consultPriorities,
            uploadChunkBytes: opts.uploadChunkBytes,
            linkRetryMaxMs: opts.linkRetryMaxMs,
            gatewayCa: opts.gatewayCa,
            clientCert: opts.clientCert,
            clientKey: opts.clientKey,
            registryKey: opts.registryKey,
            modelPollMs: opts.modelPollMs,
            // commander sets the default of a --no- flag itself: only a flag given on the command line overrides the file and environment
            modelSync: program.getOptionValueSource('modelSync') === 'cli' ? opts.modelSync : undefined,
          },
        });
      } catch (err) {
        if (err instanceof ConfigError) {
          process.stderr.write(`cxr-edge: ${err.message}\n`);
          exitCode = 2;
          return;
        }
        throw err;
      }
      const log = createLogger({ level: config.logLevel });
      if (config.stationTokenFile) {
        const mode = statSync(config.stationTokenFile).mode & 0o777;
        if ((mode & 0o077) !== 0) log.warn({ file: config.stationTokenFile, mode: mode.toString(8) }, 'the station token file is readable by other users of the PC: chmod 600 it');
      }
      if (!startedWithInferenceFlags()) {
        log.warn({ flags: inferenceNodeFlags }, 'node was started without these flags: V8 garbage collection threads will slow the model on a 2-core PC');
      }
      let agent;
      try {
        agent = await startEdgeAgent({ log }, config);
      } catch (err) {
        log.fatal({ code: (err as { code?: string }).code, err: (err as Error).message }, 'edge agent failed to start');
        process.stderr.write(`cxr-edge: ${(err as { code?: string }).code ?? 'CXR_INTERNAL'}: ${(err as Error).message}\n`);
        exitCode = 1;
        return;
      }
      // Last line of defence: every write handles a full disk where it happens (the agent goes degraded and takes
      // the work up again once there is room); should one slip through, it must not end the agent either.
      const lastResort = (err: unknown): void => {
        if (agent.disk.report(err)) {
          log.error({ code: (err as { code?: string }).code }, 'disk full, caught at the top: the agent carries on degraded');
          return;
        }
        log.fatal({ err: err instanceof Error ? err.message : String(err), code: (err as { code?: string } | null)?.code }, 'unexpected error: the agent stops');
        process.exit(1);
      };
      process.on('uncaughtException', lastResort);
      process.on('unhandledRejection', lastResort);
      // The handlers go in before "ready" is said: whoever waits for that line may stop the agent at once.
      const stopped = new Promise<void>((resolve) => {
        const shutdown = (signal: string): void => {
          log.info({ signal }, 'shutting down');
          void agent.stop().then(resolve, resolve);
        };
        process.once('SIGTERM', () => shutdown('SIGTERM'));
        process.once('SIGINT', () => shutdown('SIGINT'));
      });
      if (config.callingAe.length === 0) {
        process.stderr.write(
          `cxr-edge: WARNING: no --calling-ae: any device on the station's network can send studies to ${config.aeTitle}@${agent.dicomPort}, and they go to the hospital under this station's name. Name the X-ray unit: --calling-ae AETITLE@IP\n`,
        );
      }
      if (signInRequired(config)) process.stderr.write(`cxr-edge: the page listens on ${config.httpHost}:${agent.httpPort}; radiographers sign in\n`);
      process.stderr.write(`cxr-edge: ready. DICOM ${config.aeTitle}@${agent.dicomPort}, page http://localhost:${agent.httpPort}/\n`);
      await stopped;
    });

  program
    .command('send-demo')
    .description('Send DICOM files (default: the shared chest radiographs) to a running agent with DCMTK storescu, each in its own transfer syntax.')
    .argument('[files...]', 'DICOM files or folders')
    .option('--host <host>', 'agent address', '127.0.0.1')
    .option('--dicom-port <n>', 'agent DICOM port', portNumber, 11112)
    .option('--ae-title <title>', "agent's AE title", 'CXR_EDGE')
    .option('--watch-dir <dir>', 'copy into this watched folder instead (when DCMTK is not installed)')
    .action(async (files: string[], opts: { host: string; dicomPort: number; aeTitle: string; watchDir?: string }) => {
      const chosen = files.length > 0 ? await expand(files) : await demoFiles();
      if (opts.watchDir) {
        await mkdir(opts.watchDir, { recursive: true });
        for (const f of chosen) await copyFile(f, path.join(opts.watchDir, path.basename(f)));
        process.stderr.write(`copied ${chosen.length} files into ${opts.watchDir}\n`);
        return;
      }
      const profile = path.join(sharedDir, 'dcmtk', 'storescu-all-ts.cfg');
      const args = ['-xf', profile, 'AllTS', '-aec', opts.aeTitle, opts.host, String(opts.dicomPort), ...chosen];
      try {
        await access(profile);
      } catch {
        args.splice(0, 3);
      }
      try {
        await promisify(execFile)('storescu', args);
        process.stderr.write(`sent ${chosen.length} files to ${opts.aeTitle}@${opts.host}:${opts.dicomPort}\n`);
      } catch (err) {
        process.stderr.write(`cxr-edge send-demo: storescu failed: ${(err as { stderr?: string }).stderr ?? (err as Error).message}\n`);
        exitCode = 1;
      }
    });

  program
    .command('check')
    .description(
      "Check the promises the agent keeps after any crash or full disk: every image it acknowledged is analysed (or failed with its code) with its files on disk, and, linked to a gateway, everything owed to the hospital is waiting in the outbox or acknowledged. Safe while the agent runs (an image being analysed shows as unfinished). Exit code 1 when a promise is broken.",
    )
    .requiredOption('--data-dir <dir>', "the agent's data folder")
    .option('--linked', 'the agent is linked to a gateway (check what it owes the hospital)', false)
    .option('--consult-priorities <list>', 'AI priorities that ask for a consult by themselves', 'stat,urgent')
    .option('--json', 'one JSON object per broken promise', false)
    .action((opts: { dataDir: string; linked: boolean; consultPriorities: string; json: boolean }) => {
      const file = path.join(opts.dataDir, 'edge.db');
      if (!existsSync(file)) {
        process.stderr.write(`cxr-edge check: no agent database in ${opts.dataDir}\n`);
        exitCode = 2;
        return;
      }
      const priorities = opts.consultPriorities.split(',').map((p) => p.trim()).filter((p): p is Priority => p === 'stat' || p === 'urgent' || p === 'routine');
      const db = new SpoolDb(file);
      try {
        const violations = checkInvariants({ db, outbox: new OutboxDb(db), absolute: (f) => path.join(opts.dataDir, f) }, { enabled: opts.linked, consultPriorities: priorities });
        for (const v of violations) {
          process.stdout.write(opts.json ? `${JSON.stringify(v)}\n` : `${v.rule}: ${v.instanceId !== undefined ? `instance ${v.instanceId} ` : ''}study ${v.studyInstanceUid ?? '-'}: ${v.detail}\n`);
        }
        const instances = db.counts();
        process.stderr.write(`${instances.received + instances.inferred + instances.failed} instances, ${violations.length} broken promises\n`);
        if (violations.length > 0) exitCode = 1;
      } finally {
        db.close();
      }
    });

  registerAdminCommands(program, { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, env: process.env, setExitCode: (code) => (exitCode = code) });

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    throw err;
  }
  return exitCode;
}

async function demoFiles(): Promise<string[]> {
  const dir = path.join(sharedDir, 'dicom');
  const names = ['cr_chest_pa_RG1_J2KI.dcm', 'cr_chest_pa_RG1_JLSN.dcm', 'cr_chest_CR-MONO1-10-chest.dcm', 'dx_chest_nih_secondary_capture.dcm', 'cr_hip_RG2_JPLY.dcm'];
  return names.map((n) => path.join(dir, n));
}

async function expand(items: readonly string[]): Promise<string[]> {
  const out: string[] = [];
  for (const item of items) {
    try {
      const entries = await readdir(item, { withFileTypes: true });
      for (const e of entries) if (e.isFile()) out.push(path.join(item, e.name));
    } catch {
      out.push(item);
    }
  }
  return out;
}
