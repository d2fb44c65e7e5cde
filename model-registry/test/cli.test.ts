/**
 * `cxr-registry` and `cxr-gateway admin registry-key` as an ML engineer runs them: the built bins against a real
 * `cxr-gateway serve` process (real redis-server, folder store, accounts made with `cxr-gateway admin`).
 */
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildGateway, gatewayCli, startGateway, type RunningGateway } from '../../gateway/test/support/gateway.js';
import { canaryBucket } from '../src/rollout/rollout.js';
import { SQUEEZENET, makeModelFolder, repoRoot, sharedDir } from './support/models.js';

const bin = path.join(repoRoot, 'model-registry', 'bin', 'cxr-registry.js');
const HUNG = { username: 'kt.hung', password: 'mat-khau-dai-3', role: 'mlops' } as const;
const LAN = { username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist' } as const;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the built bin; `input` is written to its standard input (closed at once without). */
function registry(args: readonly string[], env: Record<string, string> = {}, input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(process.execPath, [bin, ...args], { env: { ...process.env, ...env }, maxBuffer: 1 << 24 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
    child.stdin?.end(input ?? '');
  });
}

let gateway: RunningGateway;
let token = '';
let conn: string[] = [];
const folders: string[] = [];
const lastLine = (text: string): string => text.trim().split('\n').at(-1)?.trim() ?? '';

beforeAll(async () => {
  await buildGateway();
  gateway = await startGateway({ stations: ['tram-1', 'tram-2', 'tram-3'], users: [HUNG, LAN] });
  for (const spec of [{}, { manifest: (m: { version: string }) => void (m.version = '1.1.0') }, { manifest: (m: { version: string }) => void (m.version = '1.2.0'), golden: (p: number[]) => p.map((x) => x + 0.2) }]) {
    folders.push(await makeModelFolder(SQUEEZENET, spec));
  }
}, 120_000);

afterAll(async () => {
  await gateway?.stop();
  for (const dir of folders) await rm(dir, { recursive: true, force: true });
});

describe('cxr-registry', () => {
  it('cxr-registry --version and cxr-gateway --version print their packages\' versions', async () => {
    const versionOf = (pkg: string): string => (JSON.parse(readFileSync(path.join(repoRoot, pkg, 'package.json'), 'utf8')) as { version: string }).version;
    expect(await registry(['--version'])).toMatchObject({ code: 0, stdout: `${versionOf('model-registry')}\n` });
    expect(await gatewayCli(['--version'])).toBe(`${versionOf('gateway')}\n`);
  });

  it('signs in an mlops account made with cxr-gateway admin add-user --role mlops', async () => {
    const run = await registry(['login', '--gateway', gateway.baseUrl, '--username', HUNG.username, '--password', HUNG.password]);
    expect(run.code).toBe(0);
    token = lastLine(run.stdout);
    expect(token).toMatch(/^cxrsess_/u);
    conn = ['--gateway', gateway.baseUrl, '--token', token];
  });

  it('takes the password and the token from a file, standard input or the environment, keeping --password and --token', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'cxr-reg-secrets-'));
    folders.push(dir);
    const passwordFile = path.join(dir, 'password');
    await writeFile(passwordFile, `${HUNG.password}\n`, { mode: 0o600 });
    const signIn = ['login', '--gateway', gateway.baseUrl, '--username', HUNG.username];
    const fromFile = await registry([...signIn, '--password-file', passwordFile]);
    expect(fromFile.code, fromFile.stderr).toBe(0);
    expect(lastLine(fromFile.stdout)).toMatch(/^cxrsess_/u);
    const fromStdin = await registry([...signIn, '--password-file', '-'], {}, `${HUNG.password}\n`);
    expect(fromStdin.code, fromStdin.stderr).toBe(0);
    expect(lastLine(fromStdin.stdout)).toMatch(/^cxrsess_/u);
    const fromEnvFile = await registry(signIn, { CXR_REGISTRY_PASSWORD_FILE: passwordFile });
    expect(fromEnvFile.code, fromEnvFile.stderr).toBe(0);
    // The command line wins over the environment.
    expect((await registry([...signIn, '--password-file', passwordFile], { CXR_REGISTRY_PASSWORD: 'not-this-one' })).code).toBe(0);

    // login's output kept as it is: the token is its last line.
    const tokenFile = path.join(dir, 'token');
    await writeFile(tokenFile, fromFile.stdout, { mode: 0o600 });
    const models = await registry(['models', '--json', '--gateway', gateway.baseUrl, '--token-file', tokenFile]);
    expect(models.code, models.stderr).toBe(0);
    expect(JSON.parse(models.stdout)).toEqual(expect.any(Array));
    const viaStdin = await registry(['status', '--json', '--gateway', gateway.baseUrl, '--token-file', '-'], {}, `${lastLine(fromStdin.stdout)}\n`);
    expect(viaStdin.code, viaStdin.stderr).toBe(0);
    const viaEnv = await registry(['public-key', '--gateway', gateway.baseUrl], { CXR_REGISTRY_TOKEN_FILE: tokenFile });
    expect(viaEnv.code, viaEnv.stderr).toBe(0);
    expect(lastLine(viaEnv.stdout)).toMatch(/^[A-Za-z0-9_-]{43}$/u);

    // Usage errors (exit 2), every problem at once: two sources at once, a missing file, an empty one, none at all.
    const both = await registry([...signIn, '--password', HUNG.password, '--password-file', passwordFile]);
    expect(both.code).toBe(2);
    expect(both.stderr).toMatch(/CXR_USAGE: give the password one way, not both --password and --password-file/u);
    const missing = await registry(['models', '--gateway', gateway.baseUrl, '--token-file', path.join(dir, 'no-such-file')]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/CXR_USAGE: --token-file .*no-such-file: no such file/u);
    await writeFile(path.join(dir, 'empty'), '\n');
    const empty = await registry([...signIn, '--password-file', path.join(dir, 'empty')]);
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/CXR_USAGE: --password-file .*empty: the file is empty/u);
    const none = await registry(['models', '--gateway', gateway.baseUrl]);
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/CXR_USAGE: no token: give --token-file FILE/u);
    // A secret file others may read is used, with a warning.
    const open = path.join(dir, 'open-token');
    await writeFile(open, fromFile.stdout, { mode: 0o644 });
    const warned = await registry(['models', '--gateway', gateway.baseUrl, '--token-file', open]);
    expect(warned.code).toBe(0);
    expect(warned.stderr).toMatch(/warning: --token-file .*open-token can be read by other users/u);
  });

  it('pushes a model folder: JSON with accepted, name, version, errors and validation; exit 0', async () => {
    const run = await registry(['push', folders[0] ?? '', ...conn]);
    expect(run.stderr).toContain('uploading model.onnx');
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout) as { accepted: boolean; name: string; version: string; errors: unknown[]; validation: Record<string, { status: string }> };
    expect(result).toMatchObject({ accepted: true, name: SQUEEZENET, version: '1.0.0', errors: [] });
    expect(result.validation.golden?.status).toBe('passed');
    // Pushed again: nothing uploaded (the gateway has every file), accepted as it was.
    const again = await registry(['push', folders[0] ?? '', ...conn]);
    expect(again.code).toBe(0);
    expect(again.stderr).not.toContain('uploading');
    expect(JSON.parse(again.stdout)).toMatchObject({ accepted: true, existing: true });
    expect((await registry(['push', folders[1] ?? '', ...conn])).code).toBe(0);
  });

  it('exits non-zero with the reasons when a push is refused, or when the account may not push', async () => {
    const run = await registry(['push', folders[2] ?? '', ...conn]);
    expect(run.code).toBe(1);
    const result = JSON.parse(run.stdout) as { accepted: boolean; name: string; version: string; errors: { code: string }[] };
    expect(result).toMatchObject({ accepted: false, name: SQUEEZENET, version: '1.2.0' });
    expect(result.errors.map((e) => e.code)).toEqual(['CXR_MODEL_GOLDEN_MISMATCH', 'CXR_MODEL_GOLDEN_MISMATCH']);
    expect(run.stderr).toContain('refused: CXR_MODEL_GOLDEN_MISMATCH');

    const lan = lastLine((await registry(['login', '--gateway', gateway.baseUrl, '--username', LAN.username, '--password', LAN.password])).stdout);
    const refused = await registry(['push', folders[1] ?? '', '--gateway', gateway.baseUrl, '--token', lan]);
    expect(refused.code).toBe(1);
    expect(JSON.parse(refused.stdout)).toMatchObject({ accepted: false, name: SQUEEZENET, version: '1.1.0', errors: [{ code: 'CXR_FORBIDDEN' }] });
    const missing = await registry(['push', path.join(tmpdir(), 'no-such-model-folder'), ...conn]);
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toMatchObject({ accepted: false, errors: [{ code: 'CXR_FILE_NOT_FOUND' }] });
  });

  it('records metrics on a labelled set: AUC with its 95% CI, as cxr eval computes them, and refuses a set it cannot score', async () => {
    const labels = path.join(sharedDir, 'eval', 'kermany-pediatric-test', 'labels.csv');
    const dir = await makeModelFolder(SQUEEZENET, { manifest: (m) => void (m.version = '1.3.0') });
    folders.push(dir);
    const bad = await registry(['push', dir, ...conn, '--labels', labels, '--truth', 'no_such_column', '--score', 'bacterial_pneumonia+viral_pneumonia']);
    expect(bad.code).toBe(1);
    expect(JSON.parse(bad.stdout)).toMatchObject({ accepted: false, errors: [{ check: 'metrics', code: 'CXR_USAGE', message: expect.stringMatching(/no truth column "no_such_column"/u) }] });
    const run = await registry(['push', dir, ...conn, '--labels', labels, '--truth', 'pneumonia', '--score', 'bacterial_pneumonia+viral_pneumonia']);
    expect(run.stderr).toContain('uploading the labelled set (417 files)');
    expect(run.code).toBe(0);
    const metrics = (JSON.parse(run.stdout) as { validation: { metrics: { status: string; rows: number; scores: { truth: string; score: string; n: number; positives: number; auc: number; auc95: [number, number] }[] } } }).validation.metrics;
    expect(metrics).toMatchObject({ status: 'passed', rows: 416, labelsFile: 'labels.csv' });
    // shared/README.md: the reference scores give AUC 0.9005 over 416 images (260 positive).
    expect(metrics.scores[0]).toMatchObject({ truth: 'pneumonia', score: 'bacterial_pneumonia+viral_pneumonia', n: 416, positives: 260 });
    expect(metrics.scores[0]?.auc).toBeCloseTo(0.9005, 3);
    const [lo = 0, hi = 0] = metrics.scores[0]?.auc95 ?? [];
    expect(lo).toBeLessThan(0.9005);
    expect(hi).toBeGreaterThan(0.9005);
  }, 300_000);

  it('puts stations in a cohort, deploys to it, to a canary percent and to one station with thresholds, and shows the fleet', async () => {
    const cohort = await registry(['cohort', 'add', 'pilot', 'tram-1', 'tram-2', ...conn]);
    expect(cohort.code).toBe(0);
    expect(cohort.stdout).toBe('station tram-1 is in cohort pilot\nstation tram-2 is in cohort pilot\n');
    const stable = await registry(['deploy', `${SQUEEZENET}@1.0.0`, '--cohort', 'pilot', ...conn]);
    expect(stable.code).toBe(0);
    expect(stable.stdout).toMatch(new RegExp(`^deployed ${SQUEEZENET}@1\\.0\\.0 to cohort pilot; deployment \\S+\\n$`, 'u'));
    const canary = await registry(['deploy', `${SQUEEZENET}@1.1.0`, '--cohort', 'pilot', '--percent', '50', ...conn]);
    expect(canary.stdout).toContain('to cohort pilot (50%)');
    const thresholds = path.join(tmpdir(), `cxr-thresholds-${process.pid}.json`);
    await writeFile(thresholds, JSON.stringify({ bacterial_pneumonia: 0.4 }));
    const one = await registry(['deploy', `${SQUEEZENET}@1.1.0`, '--station', 'tram-3', '--thresholds', thresholds, '--json', ...conn]);
    expect(one.code).toBe(0);
    expect(JSON.parse(one.stdout)).toMatchObject({ target: { station: 'tram-3' }, thresholds: { bacterial_pneumonia: 0.4 } });
    await writeFile(thresholds, JSON.stringify({ thresholds: { pneumothorax: 0.4 } }));
    const bad = await registry(['deploy', `${SQUEEZENET}@1.1.0`, '--station', 'tram-3', '--thresholds', thresholds, ...conn]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/CXR_VALIDATION: .*"pneumothorax" is not a label/u);
    await rm(thresholds);
    expect((await registry(['deploy', `${SQUEEZENET}@1.1.0`, ...conn])).code).toBe(2);

    const status = await registry(['status', '--json', ...conn]);
    expect(status.code).toBe(0);
    const rows = JSON.parse(status.stdout) as { stationId: string; cohort: string | null; desired: { version: string } | null; running: unknown; lastSeen: string | null }[];
    expect(rows.map((r) => r.stationId)).toEqual(['tram-1', 'tram-2', 'tram-3']);
    for (const id of ['tram-1', 'tram-2']) {
      expect(rows.find((r) => r.stationId === id)).toMatchObject({ cohort: 'pilot', desired: { version: canaryBucket('pilot', id) < 50 ? '1.1.0' : '1.0.0' }, running: null, lastSeen: null });
    }
    expect(rows.find((r) => r.stationId === 'tram-3')).toMatchObject({ cohort: null, desired: { version: '1.1.0', source: 'station' } });
    const table = await registry(['status', ...conn]);
    expect(table.stdout.split('\n')[0]).toMatch(/^STATION\s+COHORT\s+DESIRED\s+RUNNING\s+STATE\s+SYNC\s+LAST SEEN/u);
    expect(table.stdout).toMatch(/tram-3\s+-\s+squeezenet-pneumonia-peds@1\.1\.0 \(station\)\s+-\s+-\s+never-seen\s+never/u);
  });

  it('rolls a cohort back in one command', async () => {
    const run = await registry(['rollback', '--cohort', 'pilot', ...conn]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^rolled cohort pilot back from ${SQUEEZENET}@1\\.1\\.0 to ${SQUEEZENET}@1\\.0\\.0; deployment \\S+\\n$`, 'u'));
    const rows = JSON.parse((await registry(['status', '--json', ...conn])).stdout) as { stationId: string; desired: { version: string; rollback: boolean } | null }[];
    for (const id of ['tram-1', 'tram-2']) expect(rows.find((r) => r.stationId === id)?.desired).toMatchObject({ version: '1.0.0', rollback: true });
    const again = await registry(['rollback', '--cohort', 'pilot', ...conn]);
    expect(again.code).toBe(1);
    expect(again.stderr).toMatch(/CXR_CONFLICT: .*no earlier version/u);
  });

  it('prints the same public key from cxr-gateway admin registry-key and from the gateway', async () => {
    const fromAdmin = lastLine(await gatewayCli(['admin', 'registry-key', '--store', gateway.storeDir, '--redis', gateway.redis.url]));
    expect(fromAdmin).toMatch(/^[A-Za-z0-9_-]{43}$/u);
    expect(lastLine((await registry(['public-key', ...conn])).stdout)).toBe(fromAdmin);
  });
});
