import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';
import { readPackageVersion } from '@cxr/inference';
import type { FleetRow } from '../fleet/status.js';
import type { DeploymentRecord } from '../rollout/rollout.js';
import type { PushError } from '../validate/validate.js';
import type { PushResult } from '../versions/push.js';
import { GatewayCallError, GatewayClient } from './client.js';
import { PASSWORD, TOKEN, UsageError, resolveSecret } from './secrets.js';

interface Connection {
  gateway: string;
  token: string;
}

interface LocalFile {
  /** relative to the folder, with "/" */
  readonly path: string;
  readonly file: string;
  readonly sha256: string;
  readonly size: number;
}

const gatewayOption = (): Option => new Option('--gateway <url>', 'the gateway, e.g. http://localhost:8443 (or CXR_GATEWAY)').env('CXR_GATEWAY').makeOptionMandatory();
// The token: `--token-file FILE` (or CXR_REGISTRY_TOKEN_FILE), CXR_REGISTRY_TOKEN, or `--token` (seen in `ps`): secrets.ts.
const tokenFileOption = (): Option =>
  new Option('--token-file <file>', "a file holding the session token (its last line: login's output as is), - for standard input (or CXR_REGISTRY_TOKEN_FILE)").env('CXR_REGISTRY_TOKEN_FILE');
const tokenOption = (): Option =>
  new Option('--token <token>', 'the session token itself, from `cxr-registry login` (or CXR_REGISTRY_TOKEN); visible to other users in ps: prefer --token-file').env('CXR_REGISTRY_TOKEN');

function percent(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0 || n > 100) throw new InvalidArgumentError('expected a percent in (0, 100]');
  return n;
}

function nameAtVersion(value: string): { name: string; version: string } {
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) throw new InvalidArgumentError('expected NAME@VERSION, e.g. squeezenet-pneumonia-peds@1.0.0');
  return { name: value.slice(0, at), version: value.slice(at + 1) };
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Every regular file under `dir` (hidden files and folders left out), relative paths with "/". */
async function folderFiles(dir: string, prefix = ''): Promise<{ path: string; file: string }[]> {
  const out: { path: string; file: string }[] = [];
  const entries = (await readdir(path.join(dir, prefix), { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : 1));
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue;
    const rel = prefix ? `${prefix}/${entry.name}` : entry.name;
    const full = path.join(dir, rel);
    const info = await stat(full);
    if (info.isDirectory()) out.push(...(await folderFiles(dir, rel)));
    else if (info.isFile()) out.push({ path: rel, file: full });
  }
  return out;
}

async function describe(files: readonly { path: string; file: string }[]): Promise<LocalFile[]> {
  const out: LocalFile[] = [];
  for (const f of files) out.push({ ...f, sha256: await sha256File(f.file), size: (await stat(f.file)).size });
  return out;
}

const mb = (bytes: number): string => (bytes < 1024 * 1024 ? `${Math.ceil(bytes / 1024)} KB` : `${(bytes / 1024 / 1024).toFixed(1)} MB`);

/** Uploads what the gateway does not have yet (content-addressed: a file already there is not sent again). */
async function upload(client: GatewayClient, files: readonly LocalFile[], quiet: boolean): Promise<void> {
  const sent = new Set<string>();
  for (const f of files) {
    if (sent.has(f.sha256)) continue;
    sent.add(f.sha256);
    if (await client.hasBlob(f.sha256)) continue;
    if (!quiet) process.stderr.write(`cxr-registry: uploading ${f.path} (${mb(f.size)})\n`);
    await client.putBlob(f.file, f.sha256, f.size);
  }
}

async function localName(dir: string): Promise<{ name: string | null; version: string | null }> {
  try {
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as { name?: unknown; version?: unknown };
    return { name: typeof m.name === 'string' ? m.name : null, version: typeof m.version === 'string' ? m.version : null };
  } catch {
    return { name: null, version: null };
  }
}

interface PushOpts extends Connection {
  labels?: string;
  imageColumn: string;
  truth?: string;
  score?: string;
}

async function push(dir: string, opts: PushOpts): Promise<PushResult> {
  const client = new GatewayClient(opts.gateway, opts.token);
  const files = await describe(await folderFiles(dir));
  if (files.length === 0) throw new GatewayCallError(0, 'CXR_MANIFEST_INVALID', `${dir} has no files`, null);
  let labelled: { csv: string; files: LocalFile[]; truth?: string; score?: string; imageColumn: string } | undefined;
  if (opts.labels) {
    // Loaded only here: the inference library (and its runtimes) would slow every other command's start.
    const { readLabelledSet } = await import('@cxr/inference');
    const set = await readLabelledSet(opts.labels, opts.imageColumn);
    const folder = path.dirname(path.resolve(opts.labels));
    const outside = set.rows.map((r) => path.relative(folder, r.file)).filter((rel) => rel.startsWith('..') || path.isAbsolute(rel));
    if (outside.length > 0) throw new GatewayCallError(0, 'CXR_LABELS_INVALID', `${opts.labels}: images must sit in the CSV's folder or below it (${outside.slice(0, 3).join(', ')})`, null);
    const csvName = path.basename(opts.labels);
    const images = [...new Set(set.rows.map((r) => path.relative(folder, r.file).split(path.sep).join('/')))];
    labelled = {
      csv: csvName,
      files: await describe([{ path: csvName, file: path.resolve(opts.labels) }, ...images.map((p) => ({ path: p, file: path.join(folder, p) }))]),
      imageColumn: opts.imageColumn,
      ...(opts.truth ? { truth: opts.truth } : {}),
      ...(opts.score ? { score: opts.score } : {}),
    };
  }
  await upload(client, files, false);
  if (labelled) {
    process.stderr.write(`cxr-registry: uploading the labelled set (${labelled.files.length} files)\n`);
    await upload(client, labelled.files, true);
  }
  process.stderr.write('cxr-registry: validating on the registry (schema, digests, runtime, shapes, golden cases, latency' + (labelled ? ', metrics' : '') + ')\n');
  const strip = (f: LocalFile): { path: string; sha256: string; size: number } => ({ path: f.path, sha256: f.sha256, size: f.size });
  const body = { files: files.map(strip), ...(labelled ? { labelled: { ...labelled, files: labelled.files.map(strip) } } : {}) };
  const answer = await client.call('POST', '/api/v1/registry/versions', body, [200, 201, 422]);
  return answer.json as PushResult;
}

function fmtTarget(d: DeploymentRecord): string {
  return 'station' in d.target ? `station ${d.target.station}` : `cohort ${d.target.cohort}${d.target.percent < 100 ? ` (${d.target.percent}%)` : ''}`;
}

function statusTable(rows: readonly FleetRow[]): string {
  const table = [['STATION', 'COHORT', 'DESIRED', 'RUNNING', 'STATE', 'SYNC', 'LAST SEEN', 'LAST ERROR']];
  for (const r of rows) {
    table.push([
      r.stationId,
      r.cohort ?? '-',
      r.desired ? `${r.desired.name}@${r.desired.version}${r.desired.source === 'station' ? ' (station)' : ''}` : '-',
      r.running ? `${r.running.name}@${r.running.version}` : '-',
      r.state ?? '-',
      r.sync,
      r.lastSeen ?? 'never',
      r.lastError ? `${r.lastError.code}: ${r.lastError.message}` : '',
    ]);
  }
  const widths = table[0]?.map((_, i) => Math.max(...table.map((row) => (row[i] ?? '').length))) ?? [];
  return table.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd()).join('\n') + '\n';
}

/** Entry point of `cxr-registry`; returns the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const out = (text: string): void => void process.stdout.write(text);
  const program = new Command()
    .name('cxr-registry')
    .version(readPackageVersion(new URL('../../package.json', import.meta.url)), '-V, --version', 'print the version of cxr-registry')
    .description('The model registry: push (validated, signed) model versions, deploy them to stations and cohorts, watch the fleet, roll back.')
    .exitOverride()
    // Secrets are read once the command line is parsed and before the command runs.
    .hook('preAction', async (_program, command) => {
      if (command.options.some((o) => o.long === '--password-file')) await resolveSecret(command, PASSWORD);
      if (command.options.some((o) => o.long === '--token-file')) await resolveSecret(command, TOKEN);
    });

  program
    .command('login')
    .description('Sign in to the gateway; prints a session token (8 hours) on the last line: save the output in a file (chmod 600) for --token-file, or use CXR_REGISTRY_TOKEN.')
    .addOption(gatewayOption())
    .requiredOption('--username <name>', 'an account with the mlops (or admin) role')
    .addOption(new Option('--password-file <file>', 'a file holding its password on one line, - for standard input (or CXR_REGISTRY_PASSWORD_FILE)').env('CXR_REGISTRY_PASSWORD_FILE'))
    .addOption(new Option('--password <password>', 'its password itself (or CXR_REGISTRY_PASSWORD); visible to other users in ps: prefer --password-file').env('CXR_REGISTRY_PASSWORD'))
    .action(async (opts: { gateway: string; username: string; password: string }) => {
      const answer = await new GatewayClient(opts.gateway).call('POST', '/api/v1/login', { username: opts.username, password: opts.password });
      const session = answer.json as { token: string; role: string; expiresAt: string };
      if (session.role !== 'mlops' && session.role !== 'admin') process.stderr.write(`cxr-registry: ${opts.username} has the role ${session.role}: it cannot push or deploy\n`);
      out(`signed in as ${opts.username} (${session.role}) until ${session.expiresAt}; token:\n${session.token}\n`);
    });

  program
    .command('push')
    .description('Upload a model folder and have the registry validate, sign and keep it. Prints JSON {accepted, name, version, errors, validation}; exit 1 when refused.')
    .argument('<modelDir>', 'the model folder: manifest.json, the model file, optional golden/cases.json and its images')
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .option('--labels <csv>', 'a labelled set (CSV: image column and 0/1 truth columns) for metrics: AUC with 95% CI per label')
    .option('--image-column <name>', 'the CSV column naming the images', 'image')
    .option('--truth <column>', 'with --labels: the 0/1 column to score against (as cxr eval --truth)')
    .option('--score <codes>', 'with --labels: the label, or labels joined by "+", whose probability is the score (as cxr eval --score)')
    .action(async (dir: string, opts: PushOpts) => {
      if (!opts.labels && (opts.truth || opts.score)) throw new UsageError('--truth and --score go with --labels CSV');
      let result: PushResult;
      try {
        result = await push(dir, opts);
      } catch (err) {
        const e = err instanceof GatewayCallError ? err : null;
        const nodeCode = (err as { code?: string }).code;
        const code = e?.code ?? (nodeCode === 'ENOENT' ? 'CXR_FILE_NOT_FOUND' : nodeCode) ?? 'CXR_INTERNAL';
        const local = await localName(dir);
        const error: PushError = { check: 'files', code: code.startsWith('CXR_') ? code : 'CXR_IO', message: (err as Error).message };
        result = { accepted: false, ...local, errors: [error], warnings: [], validation: null, existing: false, files: [] };
      }
      // The fields outside checks read come first.
      const { accepted, name, version, errors, validation, ...rest } = result;
      out(`${JSON.stringify({ accepted, name, version, errors, validation, ...rest })}\n`);
      if (!result.accepted) {
        for (const e of result.errors) process.stderr.write(`cxr-registry: refused: ${e.code}: ${e.message}\n`);
        exitCode = 1;
      } else {
        process.stderr.write(`cxr-registry: ${result.name}@${result.version} ${result.existing ? 'was already in the registry with these bytes' : 'accepted and signed'}\n`);
      }
    });

  program
    .command('deploy')
    .description('Set the version a station, or a cohort (or a canary percent of it), should run.')
    .argument('<name@version>', 'an accepted version', nameAtVersion)
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .option('--station <id>', 'one station')
    .option('--cohort <cohort>', 'a cohort of stations (a channel such as stable or canary is a cohort)')
    .option('--percent <p>', 'only this percent of the cohort (stations picked by a stable hash)', percent)
    .option('--thresholds <file>', "per-site thresholds for this version: {code: number} or a `cxr calibrate` file")
    .option('--rollback', 'sign it as a rollback (needed to send a version older than the one deployed)')
    .option('--json', 'print the deployment as JSON')
    .action(async (model: { name: string; version: string }, opts: Connection & { station?: string; cohort?: string; percent?: number; thresholds?: string; rollback?: boolean; json?: boolean }) => {
      if ((opts.station === undefined) === (opts.cohort === undefined)) throw new UsageError('give --station ID or --cohort C');
      if (opts.station !== undefined && opts.percent !== undefined) throw new UsageError('--percent goes with --cohort');
      let thresholds: unknown;
      if (opts.thresholds) {
        try {
          thresholds = JSON.parse(await readFile(opts.thresholds, 'utf8'));
        } catch (err) {
          throw new GatewayCallError(0, 'CXR_USAGE', `--thresholds ${opts.thresholds}: ${(err as Error).message}`, null);
        }
      }
      const body = { ...model, ...(opts.station ? { station: opts.station } : { cohort: opts.cohort, ...(opts.percent !== undefined ? { percent: opts.percent } : {}) }), ...(thresholds !== undefined ? { thresholds } : {}), ...(opts.rollback ? { rollback: true } : {}) };
      const record = (await new GatewayClient(opts.gateway, opts.token).call('POST', '/api/v1/registry/deployments', body)).json as DeploymentRecord;
      if (opts.json) out(`${JSON.stringify(record)}\n`);
      else out(`deployed ${record.name}@${record.version} to ${fmtTarget(record)}${record.rollback ? ' (signed as a rollback)' : ''}; deployment ${record.deploymentId}\n`);
    });

  program
    .command('rollback')
    .description("Send a cohort (or a station) back to the version it ran before, signed as a rollback.")
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .option('--cohort <cohort>', 'the cohort')
    .option('--station <id>', 'one station (its own deployments)')
    .option('--json', 'print the deployment as JSON')
    .action(async (opts: Connection & { cohort?: string; station?: string; json?: boolean }) => {
      if ((opts.station === undefined) === (opts.cohort === undefined)) throw new UsageError('give --cohort C or --station ID');
      const body = opts.cohort !== undefined ? { cohort: opts.cohort } : { station: opts.station };
      const record = (await new GatewayClient(opts.gateway, opts.token).call('POST', '/api/v1/registry/rollbacks', body)).json as DeploymentRecord;
      if (opts.json) out(`${JSON.stringify(record)}\n`);
      else out(`rolled ${fmtTarget(record)} back from ${record.rolledBackFrom ?? '?'} to ${record.name}@${record.version}; deployment ${record.deploymentId}\n`);
    });

  program
    .command('unpin')
    .description("End a station's own deployment: it follows its cohort again.")
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .requiredOption('--station <id>', 'the station')
    .action(async (opts: Connection & { station: string }) => {
      await new GatewayClient(opts.gateway, opts.token).call('POST', `/api/v1/registry/stations/${encodeURIComponent(opts.station)}/unpin`);
      out(`station ${opts.station} follows its cohort again\n`);
    });

  program
    .command('status')
    .description('Fleet status: per station its cohort, desired and running version, state, last seen, last error.')
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .option('--json', 'print a JSON array, one object per station')
    .action(async (opts: Connection & { json?: boolean }) => {
      const { stations } = (await new GatewayClient(opts.gateway, opts.token).call('GET', '/api/v1/registry/status')).json as { stations: FleetRow[] };
      out(opts.json ? `${JSON.stringify(stations)}\n` : statusTable(stations));
    });

  program
    .command('models')
    .description('The models and their accepted versions.')
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .option('--json', 'print JSON')
    .action(async (opts: Connection & { json?: boolean }) => {
      const models = (await new GatewayClient(opts.gateway, opts.token).call('GET', '/api/v1/registry/models')).json as {
        name: string;
        versions: { version: string; runtime: string; acceptedAt: string; golden: string; latencyMs: number | null }[];
      }[];
      if (opts.json) return out(`${JSON.stringify(models)}\n`);
      for (const m of models) {
        for (const v of m.versions) out(`${m.name}@${v.version}  ${v.runtime}  accepted ${v.acceptedAt}  golden ${v.golden}  latency ${v.latencyMs ?? '-'} ms\n`);
      }
    });

  program
    .command('show')
    .description('One version: its files, signed release and validation report (JSON).')
    .argument('<name@version>', 'the version', nameAtVersion)
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .action(async (model: { name: string; version: string }, opts: Connection) => {
      const record = await new GatewayClient(opts.gateway, opts.token).call('GET', `/api/v1/registry/models/${encodeURIComponent(model.name)}/versions/${encodeURIComponent(model.version)}`);
      out(`${JSON.stringify(record.json, null, 1)}\n`);
    });

  const cohort = program.command('cohort').description('Station cohorts (a station is in one cohort at most; a channel is a cohort).');
  cohort
    .command('add')
    .description('Put stations in a cohort (moving them from the one they were in).')
    .argument('<cohort>')
    .argument('<stationIds...>')
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .action(async (name: string, stationIds: string[], opts: Connection) => {
      const answer = (await new GatewayClient(opts.gateway, opts.token).call('POST', `/api/v1/registry/cohorts/${encodeURIComponent(name)}/stations`, { stations: stationIds })).json as {
        stations: { stationId: string; previous: string | null }[];
      };
      for (const s of answer.stations) out(`station ${s.stationId} is in cohort ${name}${s.previous && s.previous !== name ? ` (was in ${s.previous})` : ''}\n`);
    });
  cohort
    .command('remove')
    .description('Take a station out of its cohort.')
    .argument('<cohort>')
    .argument('<stationId>')
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .action(async (name: string, stationId: string, opts: Connection) => {
      await new GatewayClient(opts.gateway, opts.token).call('DELETE', `/api/v1/registry/cohorts/${encodeURIComponent(name)}/stations/${encodeURIComponent(stationId)}`);
      out(`station ${stationId} left cohort ${name}\n`);
    });
  cohort
    .command('list')
    .description('The cohorts, their stations and their latest deployment.')
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .option('--json', 'print JSON')
    .action(async (opts: Connection & { json?: boolean }) => {
      const cohorts = (await new GatewayClient(opts.gateway, opts.token).call('GET', '/api/v1/registry/cohorts')).json as { cohort: string; stations: string[]; deployments: DeploymentRecord[] }[];
      if (opts.json) return out(`${JSON.stringify(cohorts)}\n`);
      for (const c of cohorts) {
        const latest = c.deployments.find((d) => d.kind === 'deploy');
        out(`${c.cohort}: ${c.stations.join(', ')}${latest ? `; latest: ${latest.name}@${latest.version} ${fmtTarget(latest)}` : ''}\n`);
      }
    });

  program
    .command('public-key')
    .description("The registry's public key (what an edge's --registry-key takes).")
    .addOption(gatewayOption())
    .addOption(tokenFileOption())
    .addOption(tokenOption())
    .action(async (opts: Connection) => {
      out(`${((await new GatewayClient(opts.gateway, opts.token).call('GET', '/api/v1/registry/public-key')).json as { publicKey: string }).publicKey}\n`);
    });

  try {
    await program.parseAsync([...argv]);
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
    const code = (err as { code?: string }).code ?? 'CXR_INTERNAL';
    process.stderr.write(`cxr-registry: ${code}: ${(err as Error).message}\n`);
    return code === 'CXR_USAGE' ? 2 : 1;
  }
  return exitCode;
}
