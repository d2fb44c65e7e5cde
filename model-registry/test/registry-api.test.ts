/**
 * The registry through the gateway's own app (build() with the real plugin, inject()), over a real redis-server and
 * a folder store: push (accepted, refused with every reason, immutable versions), signatures, deployments to a
 * station, a cohort and a canary percent, thresholds, the station routes (model, resumable download, status), fleet
 * status, rollback, auth on every route, and two gateway processes behaving as one.
 */
import { cp, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ModelDeploymentSchema, ModelReleaseSchema, openSignedDocument } from '@cxr/inference';
import { buildGateway } from '../../gateway/test/support/gateway.js';
import { canaryBucket, getOrCreateSigningKey } from '../src/index.js';
import { auth, login, pushFolder, startTestGateway, type TestGateway } from './support/app.js';
import { DENSENET, SQUEEZENET, makeModelFolder, repoRoot, sha256 } from './support/models.js';

let gw: TestGateway;
let mlops = '';
let radiologist = '';
const stationTokens = new Map<string, string>();
/** ten stations for the canary percentages, plus tram-a, tram-b and tram-c */
const pilot = Array.from({ length: 10 }, (_, i) => `tram-p${String(i).padStart(2, '0')}`);
const folders: string[] = [];
let sqz100 = '';
let sqz110 = '';

const stationToken = (id: string): string => stationTokens.get(id) ?? '';
const inject = (method: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'HEAD', url: string, token: string | undefined, payload?: unknown, headers: Record<string, string> = {}) =>
  gw.app.inject({ method, url, headers: { ...(token ? auth(token) : {}), ...headers }, ...(payload === undefined ? {} : { payload: payload as string }) });

async function folder(model: string, spec: Parameters<typeof makeModelFolder>[1] = {}): Promise<string> {
  const dir = await makeModelFolder(model, spec);
  folders.push(dir);
  return dir;
}

beforeAll(async () => {
  await buildGateway();
  gw = await startTestGateway();
  for (const id of ['tram-a', 'tram-b', 'tram-c', ...pilot]) stationTokens.set(id, (await gw.accounts.addStation({ stationId: id })).token);
  await gw.accounts.addUser({ username: 'kt.hung', password: 'mat-khau-dai-3', role: 'mlops' });
  await gw.accounts.addUser({ username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist' });
  mlops = await login(gw.app, 'kt.hung', 'mat-khau-dai-3');
  radiologist = await login(gw.app, 'bs.lan', 'mat-khau-dai-1');
  sqz100 = await folder(SQUEEZENET);
  sqz110 = await folder(SQUEEZENET, { manifest: (m) => void (m.version = '1.1.0') });
}, 120_000);

afterAll(async () => {
  await gw?.close();
  for (const dir of folders) await rm(dir, { recursive: true, force: true });
});

describe('push', () => {
  it('accepts a valid model with golden cases, signs its release and reports every check', async () => {
    const { status, body } = await pushFolder(gw.app, mlops, sqz100);
    expect(body.errors).toEqual([]);
    expect(status).toBe(201);
    expect(body).toMatchObject({ accepted: true, name: SQUEEZENET, version: '1.0.0', existing: false });
    const v = body.validation as Record<string, { status: string; [k: string]: unknown }>;
    for (const check of ['manifest', 'sha256', 'runtime', 'shapes', 'golden', 'latency']) expect(v[check]?.status, check).toBe('passed');
    expect(v.metrics?.status).toBe('skipped');
    expect(v.golden?.cases).toHaveLength(2);
    expect(v.latency?.medianMs).toBeGreaterThan(0);
    // The release is signed with the registry key and lists every file with its digest.
    const { publicKey } = (await inject('GET', '/api/v1/registry/public-key', mlops)).json() as { publicKey: string };
    const release = openSignedDocument(body.release, publicKey, ModelReleaseSchema);
    const model = await readFile(path.join(sqz100, 'model.onnx'));
    expect(release).toMatchObject({ kind: 'cxr-model-release', name: SQUEEZENET, version: '1.0.0', runtime: 'onnx' });
    expect(release.files.map((f) => f.path).sort()).toEqual(['golden/cases.json', 'golden/cr_chest_CR-MONO1-10-chest.dcm', 'golden/cr_chest_pa_RG1_J2KI.dcm', 'manifest.json', 'model.onnx']);
    expect(release.files.find((f) => f.path === 'model.onnx')).toEqual({ path: 'model.onnx', sha256: sha256(model), size: model.length });
  });

  it('accepts the same version with the same bytes again with the report it already has, and refuses it with other bytes', async () => {
    const first = (await inject('GET', `/api/v1/registry/models/${SQUEEZENET}/versions/1.0.0`, mlops)).json() as { validation: { validatedAt: string } };
    const again = await pushFolder(gw.app, mlops, sqz100);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ accepted: true, existing: true, errors: [] });
    expect((again.body.validation as { validatedAt: string }).validatedAt).toBe(first.validation.validatedAt);

    const other = await folder(SQUEEZENET, { tolerance: 2e-3 });
    const res = await pushFolder(gw.app, mlops, other);
    expect(res.status).toBe(422);
    expect(res.body.accepted).toBe(false);
    expect(res.body.errors).toContainEqual(expect.objectContaining({ code: 'CXR_MODEL_VERSION_EXISTS', check: 'version' }));
    const stored = (await inject('GET', `/api/v1/registry/models/${SQUEEZENET}/versions/1.0.0`, mlops)).json() as { validation: { validatedAt: string } };
    expect(stored.validation.validatedAt).toBe(first.validation.validatedAt);
  });

  it('accepts the 18-label DenseNet with its golden cases', async () => {
    const { status, body } = await pushFolder(gw.app, mlops, await folder(DENSENET));
    expect(body.errors).toEqual([]);
    expect(status).toBe(201);
    expect(body).toMatchObject({ accepted: true, name: DENSENET, version: '0.1.0' });
  });

  it('accepts the TF.js model (runtime "tfjs", two weight shards) by the same checks, and refuses it with a shard changed', async () => {
    const tfjs = path.join(repoRoot, 'model-registry', 'models', 'tiny-cxr-tfjs');
    const { status, body } = await pushFolder(gw.app, mlops, tfjs);
    expect(body.errors).toEqual([]);
    expect(status).toBe(201);
    expect(body).toMatchObject({ accepted: true, name: 'tiny-cxr-tfjs', validation: { runtime: { status: 'passed', runtime: 'tfjs' }, golden: { status: 'passed' } } });
    expect((body.validation as { golden: { cases: unknown[] } }).golden.cases).toHaveLength(3);
    // The same folder with one shard's bytes changed (and a new version): the digest and the golden cases both say so.
    const copy = await mkdtemp(path.join(tmpdir(), 'cxr-reg-tfjs-'));
    folders.push(copy);
    await cp(tfjs, copy, { recursive: true });
    const manifest = JSON.parse(await readFile(path.join(copy, 'manifest.json'), 'utf8')) as { version: string };
    manifest.version = '9.0.0';
    await writeFile(path.join(copy, 'manifest.json'), JSON.stringify(manifest));
    const shard = await readFile(path.join(copy, 'group1-shard1of2.bin'));
    shard.writeFloatLE(shard.readFloatLE(64) + 0.5, 64);
    await writeFile(path.join(copy, 'group1-shard1of2.bin'), shard);
    const refused = await pushFolder(gw.app, mlops, copy);
    expect(refused.status).toBe(422);
    expect(refused.body.errors).toContainEqual(expect.objectContaining({ check: 'sha256', code: 'CXR_MODEL_HASH_MISMATCH', message: expect.stringMatching(/^group1-shard1of2\.bin has sha256/u) }));
  });

  it('refuses a bad manifest and a wrong sha256 in one push, listing both', async () => {
    const dir = await folder(SQUEEZENET, {
      manifest: (m) => {
        m.version = '2.0.0';
        m.sha256 = 'f'.repeat(64);
        m.input.intensity = 'log';
        m.labels = [];
      },
    });
    const { status, body } = await pushFolder(gw.app, mlops, dir);
    expect(status).toBe(422);
    const codes = body.errors.map((e) => `${e.check}:${e.code}`);
    expect(codes).toContain('manifest:CXR_MANIFEST_INVALID');
    expect(codes).toContain('sha256:CXR_MODEL_HASH_MISMATCH');
    expect(body.errors.filter((e) => e.code === 'CXR_MANIFEST_INVALID').map((e) => e.message).join('\n')).toMatch(/\/input\/intensity[\s\S]*\/labels|\/labels[\s\S]*\/input\/intensity/u);
    expect((body.validation as { runtime: { status: string } }).runtime.status).toBe('skipped');
  });

  it('refuses a model whose shapes disagree with its manifest, and also says its sha256 is wrong', async () => {
    const dir = await folder(SQUEEZENET, {
      manifest: (m) => {
        m.version = '2.0.1';
        m.sha256 = '0'.repeat(64);
        m.input.channels = 1;
        m.input.normalize = { scale: 1, offset: 0 };
        m.labels = (m.labels as unknown[]).slice(0, 2);
      },
      noGolden: true,
    });
    const { status, body } = await pushFolder(gw.app, mlops, dir);
    expect(status).toBe(422);
    const codes = body.errors.map((e) => e.code);
    expect(codes).toContain('CXR_MODEL_HASH_MISMATCH');
    expect(codes).toContain('CXR_MODEL_SHAPE_MISMATCH');
    const shapes = body.errors.filter((e) => e.check === 'shapes').map((e) => e.message);
    expect(shapes.join('\n')).toMatch(/input "input" has shape/u);
    expect(shapes.join('\n')).toMatch(/3 values, the manifest has 2 labels/u);
  });

  it('refuses a model whose golden cases do not reproduce, naming each case, with its wrong sha256 too', async () => {
    const dir = await folder(SQUEEZENET, {
      manifest: (m) => {
        m.version = '2.0.2';
        m.sha256 = '1'.repeat(64);
      },
      golden: (p, input) => (input.includes('J2KI') ? p.map((x, i) => (i === 0 ? x + 0.05 : x)) : p),
    });
    const { status, body } = await pushFolder(gw.app, mlops, dir);
    expect(status).toBe(422);
    expect(body.errors.map((e) => e.code).sort()).toEqual(['CXR_MODEL_GOLDEN_MISMATCH', 'CXR_MODEL_HASH_MISMATCH']);
    expect(body.errors.find((e) => e.code === 'CXR_MODEL_GOLDEN_MISMATCH')?.message).toMatch(/^golden\/cr_chest_pa_RG1_J2KI\.dcm: probabilities differ by up to 0\.05 \(tolerance 0\.001\)/u);
    const golden = (body.validation as { golden: { cases: { input: string; ok: boolean }[] } }).golden.cases;
    expect(golden.map((c) => c.ok)).toEqual([true, false]);
    // None of the refused versions exists; the refusals are kept for the ML page.
    for (const v of ['2.0.0', '2.0.1', '2.0.2']) expect((await inject('GET', `/api/v1/registry/models/${SQUEEZENET}/versions/${v}`, mlops)).statusCode).toBe(404);
    const refused = (await inject('GET', '/api/v1/registry/refused', mlops)).json() as { version: string; errors: unknown[] }[];
    expect(refused.slice(0, 3).map((r) => r.version)).toEqual(['2.0.2', '2.0.1', '2.0.0']);
  });

  it('refuses an upload whose bytes do not match its name, and a push naming a file never uploaded', async () => {
    const res = await inject('PUT', `/api/v1/registry/blobs/${sha256('something else')}`, mlops, Buffer.from('these bytes'), { 'content-type': 'application/octet-stream' });
    expect(res.statusCode).toBe(422);
    expect(res.json()).toMatchObject({ error: { code: 'CXR_HASH_MISMATCH' } });
    const push = await inject('POST', '/api/v1/registry/versions', mlops, { files: [{ path: 'manifest.json', sha256: sha256('never sent'), size: 10 }] });
    expect(push.statusCode).toBe(422);
    expect(push.json()).toMatchObject({ accepted: false, errors: [{ check: 'files', message: expect.stringMatching(/was not uploaded/u) }] });
  });
});

describe('deployments and the station routes', () => {
  it('deploys to one station of two: only that station is told, and only it may download the files', async () => {
    const res = await inject('POST', '/api/v1/registry/deployments', mlops, { name: SQUEEZENET, version: '1.0.0', station: 'tram-a' });
    expect(res.statusCode).toBe(201);
    const { publicKey } = (await inject('GET', '/api/v1/registry/public-key', stationToken('tram-a'))).json() as { publicKey: string };
    const a = (await inject('GET', '/api/v1/stations/tram-a/model', stationToken('tram-a'))).json() as { deployment: unknown; release: unknown };
    const deployment = openSignedDocument(a.deployment, publicKey, ModelDeploymentSchema);
    expect(deployment).toMatchObject({ kind: 'cxr-model-deployment', target: { station: 'tram-a' }, name: SQUEEZENET, version: '1.0.0', rollback: false, thresholds: {} });
    expect(openSignedDocument(a.release, publicKey, ModelReleaseSchema)).toMatchObject({ name: SQUEEZENET, version: '1.0.0' });
    expect((await inject('GET', '/api/v1/stations/tram-b/model', stationToken('tram-b'))).json()).toEqual({ deployment: null, release: null });

    const url = (station: string, file: string): string => `/api/v1/stations/${station}/model/files/${SQUEEZENET}/1.0.0/${file}`;
    const model = await readFile(path.join(sqz100, 'model.onnx'));
    const whole = await inject('GET', url('tram-a', 'model.onnx'), stationToken('tram-a'));
    expect(whole.statusCode).toBe(200);
    expect(whole.headers.etag).toBe(`"${sha256(model)}"`);
    expect(whole.headers['accept-ranges']).toBe('bytes');
    expect(whole.rawPayload.equals(model)).toBe(true);
    // Resumed download: from byte N, and a closed range.
    const n = 1_000_003;
    const rest = await inject('GET', url('tram-a', 'model.onnx'), stationToken('tram-a'), undefined, { range: `bytes=${n}-` });
    expect(rest.statusCode).toBe(206);
    expect(rest.headers['content-range']).toBe(`bytes ${n}-${model.length - 1}/${model.length}`);
    expect(rest.rawPayload.equals(model.subarray(n))).toBe(true);
    const middle = await inject('GET', url('tram-a', 'model.onnx'), stationToken('tram-a'), undefined, { range: 'bytes=10-19' });
    expect(middle.rawPayload.equals(model.subarray(10, 20))).toBe(true);
    const stale = await inject('GET', url('tram-a', 'model.onnx'), stationToken('tram-a'), undefined, { range: `bytes=${n}-`, 'if-range': '"0000"' });
    expect(stale.statusCode).toBe(200);
    expect((await inject('GET', url('tram-a', 'model.onnx'), stationToken('tram-a'), undefined, { range: `bytes=${model.length}-` })).statusCode).toBe(416);
    const golden = await inject('GET', url('tram-a', 'golden/cases.json'), stationToken('tram-a'));
    expect(golden.statusCode).toBe(200);
    // tram-b has nothing deployed; tram-a may not read tram-b's routes; a version not deployed is not served.
    expect((await inject('GET', url('tram-b', 'model.onnx'), stationToken('tram-b'))).statusCode).toBe(404);
    expect((await inject('GET', url('tram-b', 'model.onnx'), stationToken('tram-a'))).statusCode).toBe(403);
    expect((await inject('GET', `/api/v1/stations/tram-a/model/files/${DENSENET}/0.1.0/model.onnx`, stationToken('tram-a'))).statusCode).toBe(404);
    expect((await inject('GET', url('tram-a', '../../registry/signing-key.json'), stationToken('tram-a'))).statusCode).toBe(404);
  });

  it("serves a station only the version its deployment names, whatever it reports it runs", async () => {
    // tram-a has 1.0.0 deployed (above); tram-b has nothing deployed and reports tram-a's version as running and
    // as its last good one, which is what a station would say to be served it.
    const model = await readFile(path.join(sqz100, 'model.onnx'));
    const url = (station: string, file: string): string => `/api/v1/stations/${station}/model/files/${SQUEEZENET}/1.0.0/${file}`;
    const claim = {
      running: { name: SQUEEZENET, version: '1.0.0', sha256: sha256(model) },
      lastGood: { name: SQUEEZENET, version: '1.0.0' },
      state: 'ok',
      counts: { studies: 0, failed: 0 },
      at: new Date().toISOString(),
    };
    expect((await inject('POST', '/api/v1/stations/tram-b/model/status', stationToken('tram-b'), claim)).statusCode).toBe(204);
    for (const file of ['model.onnx', 'manifest.json', 'golden/cases.json']) {
      const refused = await inject('GET', url('tram-b', file), stationToken('tram-b'));
      expect(refused.statusCode, file).toBe(404);
      expect(refused.json(), file).toMatchObject({ error: { code: 'CXR_NOT_FOUND' } });
    }
    const served = await inject('GET', url('tram-a', 'model.onnx'), stationToken('tram-a'));
    expect(served.statusCode).toBe(200);
    expect(served.rawPayload.equals(model)).toBe(true);
  });

  it('deploys to a cohort, then a canary percent of it picked by a stable hash, with thresholds per site', async () => {
    expect((await pushFolder(gw.app, mlops, sqz110)).status).toBe(201);
    const add = await inject('POST', '/api/v1/registry/cohorts/pilot/stations', mlops, { stations: pilot });
    expect(add.statusCode).toBe(200);
    expect((await inject('POST', '/api/v1/registry/cohorts/pilot/stations', mlops, { stations: ['tram-zz', 'tram-a'] })).json()).toMatchObject({ error: { code: 'CXR_NOT_FOUND', message: expect.stringMatching(/tram-zz/u) } });
    expect((await inject('POST', '/api/v1/registry/deployments', mlops, { name: SQUEEZENET, version: '1.0.0', cohort: 'pilot' })).statusCode).toBe(201);
    const canary = await inject('POST', '/api/v1/registry/deployments', mlops, {
      name: SQUEEZENET,
      version: '1.1.0',
      cohort: 'pilot',
      percent: 40,
      thresholds: { schemaVersion: 1, kind: 'cxr-thresholds', thresholds: { bacterial_pneumonia: 0.3, viral_pneumonia: 0.35 } },
    });
    expect(canary.statusCode).toBe(201);
    const inCanary = pilot.filter((id) => canaryBucket('pilot', id) < 40);
    expect(inCanary.length).toBeGreaterThan(0);
    expect(inCanary.length).toBeLessThan(pilot.length);
    for (const id of pilot) {
      const { deployment } = (await inject('GET', `/api/v1/stations/${id}/model`, stationToken(id))).json() as { deployment: { payload: string } };
      const doc = JSON.parse(deployment.payload) as { version: string; thresholds: Record<string, number>; target: unknown };
      if (inCanary.includes(id)) expect(doc).toMatchObject({ version: '1.1.0', thresholds: { bacterial_pneumonia: 0.3, viral_pneumonia: 0.35 }, target: { cohort: 'pilot', percent: 40 } });
      else expect(doc).toMatchObject({ version: '1.0.0', thresholds: {}, target: { cohort: 'pilot', percent: 100 } });
    }
    // The canary's files go to the canary's stations only, even to a station of the cohort that says it runs 1.1.0.
    const [canaryStation = '', outside = ''] = [inCanary[0], pilot.find((id) => !inCanary.includes(id))];
    const file = (id: string, version: string) => inject('GET', `/api/v1/stations/${id}/model/files/${SQUEEZENET}/${version}/manifest.json`, stationToken(id));
    const claims110 = { running: { name: SQUEEZENET, version: '1.1.0', sha256: 'b'.repeat(64) }, lastGood: null, state: 'ok', counts: { studies: 0, failed: 0 }, at: new Date().toISOString() };
    expect((await inject('POST', `/api/v1/stations/${outside}/model/status`, stationToken(outside), claims110)).statusCode).toBe(204);
    expect((await file(outside, '1.1.0')).statusCode).toBe(404);
    expect((await file(outside, '1.0.0')).statusCode).toBe(200);
    expect((await file(canaryStation, '1.1.0')).statusCode).toBe(200);
    // Thresholds must name the version's labels and be in [0, 1]; every problem is named.
    const bad = await inject('POST', '/api/v1/registry/deployments', mlops, { name: SQUEEZENET, version: '1.1.0', cohort: 'pilot', thresholds: { pneumothorax: 0.5, viral_pneumonia: 1.5 } });
    expect(bad.statusCode).toBe(400);
    expect((bad.json() as { error: { message: string } }).error.message).toMatch(/"pneumothorax" is not a label[\s\S]*"viral_pneumonia": 1\.5/u);
    // An older version would be refused by the stations unless signed as a rollback: the registry says so first.
    const older = await inject('POST', '/api/v1/registry/deployments', mlops, { name: SQUEEZENET, version: '1.0.0', cohort: 'pilot' });
    expect(older.statusCode).toBe(409);
    expect((await inject('POST', '/api/v1/registry/deployments', mlops, { name: SQUEEZENET, version: '9.9.9', station: 'tram-b' })).statusCode).toBe(404);
    expect((await inject('POST', '/api/v1/registry/deployments', mlops, { name: SQUEEZENET, version: '1.1.0', cohort: 'nobody' })).statusCode).toBe(404);
  });

  it('keeps each station status and shows the fleet: desired, running, last seen, state and errors', async () => {
    const report = (running: string | null, state: string, error?: unknown) => ({
      running: running ? { name: SQUEEZENET, version: running, sha256: 'a'.repeat(64) } : null,
      lastGood: running ? { name: SQUEEZENET, version: running } : null,
      state,
      ...(error ? { error } : {}),
      counts: { studies: 12, failed: 0 },
      at: new Date().toISOString(),
    });
    const inCanary = pilot.filter((id) => canaryBucket('pilot', id) < 40);
    const [canaryStation = '', otherStation = ''] = [inCanary[0], pilot.find((id) => !inCanary.includes(id))];
    expect((await inject('POST', `/api/v1/stations/${canaryStation}/model/status`, stationToken(canaryStation), report('1.1.0', 'ok'))).statusCode).toBe(204);
    const failure = { code: 'CXR_MODEL_GOLDEN_MISMATCH', message: 'golden case 1 differs by 0.2', name: SQUEEZENET, version: '1.1.0' };
    expect((await inject('POST', `/api/v1/stations/${otherStation}/model/status`, stationToken(otherStation), report('1.0.0', 'failed', failure))).statusCode).toBe(204);
    expect((await inject('POST', `/api/v1/stations/${otherStation}/model/status`, stationToken(canaryStation), report('1.0.0', 'ok'))).statusCode).toBe(403);
    expect((await inject('POST', `/api/v1/stations/${canaryStation}/model/status`, stationToken(canaryStation), { state: 'ok' })).statusCode).toBe(400);

    const { stations } = (await inject('GET', '/api/v1/registry/status', mlops)).json() as { stations: { stationId: string; [k: string]: unknown }[] };
    expect(stations.map((s) => s.stationId)).toEqual(['tram-a', 'tram-b', 'tram-c', ...pilot]);
    const row = (id: string) => stations.find((s) => s.stationId === id);
    expect(row(canaryStation)).toMatchObject({ cohort: 'pilot', desired: { version: '1.1.0', source: 'cohort' }, running: { version: '1.1.0' }, state: 'ok', sync: 'in-sync', lastError: null });
    expect(row(canaryStation)?.lastSeen).toEqual(expect.any(String));
    expect(row(otherStation)).toMatchObject({ desired: { version: '1.0.0' }, running: { version: '1.0.0' }, state: 'failed', lastError: failure });
    // tram-a asked for its model earlier (seen) but never reported; tram-b has nothing deployed.
    expect(row('tram-a')).toMatchObject({ desired: { version: '1.0.0', source: 'station' }, running: null, state: null, sync: 'pending' });
    expect(row('tram-b')).toMatchObject({ cohort: null, desired: null, sync: 'no-deployment', lastSeen: expect.any(String) });
  });

  it('rolls a cohort back to its previous version, signed as a rollback, and a second time further back', async () => {
    const res = await inject('POST', '/api/v1/registry/rollbacks', mlops, { cohort: 'pilot' });
    expect(res.statusCode).toBe(201);
    expect(res.json()).toMatchObject({ name: SQUEEZENET, version: '1.0.0', rollback: true, rolledBackFrom: `${SQUEEZENET}@1.1.0`, target: { cohort: 'pilot', percent: 100 } });
    const { publicKey } = (await inject('GET', '/api/v1/registry/public-key', mlops)).json() as { publicKey: string };
    for (const id of pilot) {
      const { deployment } = (await inject('GET', `/api/v1/stations/${id}/model`, stationToken(id))).json() as { deployment: unknown };
      expect(openSignedDocument(deployment, publicKey, ModelDeploymentSchema)).toMatchObject({ version: '1.0.0', rollback: true });
    }
    // 1.1.0 was rolled back from and 1.0.0 is current: there is nothing earlier.
    const again = await inject('POST', '/api/v1/registry/rollbacks', mlops, { cohort: 'pilot' });
    expect(again.statusCode).toBe(409);
    expect((again.json() as { error: { message: string } }).error.message).toMatch(/no earlier version/u);
    expect((await inject('POST', '/api/v1/registry/rollbacks', mlops, { cohort: 'never-deployed' })).statusCode).toBe(404);
    const history = (await inject('GET', '/api/v1/registry/deployments?cohort=pilot', mlops)).json() as { version: string; rollback: boolean }[];
    expect(history.map((d) => `${d.version}${d.rollback ? ' rollback' : ''}`)).toEqual(['1.0.0 rollback', '1.1.0', '1.0.0']);
  });

  it("keeps a target's deployments in the order they were made when a gateway's clock runs ahead", async () => {
    const deployTo = async (body: object): Promise<{ issuedAt: string; deploymentId: string }> => {
      const res = await inject('POST', '/api/v1/registry/deployments', mlops, body);
      expect(res.statusCode).toBe(201);
      return res.json() as { issuedAt: string; deploymentId: string };
    };
    // One gateway, its clock ten minutes ahead, deploys; another, on time, rolls back a moment later.
    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 10 * 60_000 });
    let ahead: { issuedAt: string; deploymentId: string };
    try {
      ahead = await deployTo({ name: SQUEEZENET, version: '1.1.0', station: 'tram-c' });
    } finally {
      vi.useRealTimers();
    }
    const back = await deployTo({ name: SQUEEZENET, version: '1.0.0', station: 'tram-c', rollback: true });
    expect(Date.parse(back.issuedAt)).toBeGreaterThan(Date.parse(ahead.issuedAt));
    const history = (await inject('GET', '/api/v1/registry/deployments?station=tram-c', mlops)).json() as { deploymentId: string }[];
    expect(history.map((d) => d.deploymentId).slice(0, 2)).toEqual([back.deploymentId, ahead.deploymentId]);
    const served = JSON.parse(((await inject('GET', '/api/v1/stations/tram-c/model', stationToken('tram-c'))).json() as { deployment: { payload: string } }).deployment.payload) as { version: string; issuedAt: string };
    expect(served).toMatchObject({ version: '1.0.0', issuedAt: back.issuedAt });
  });

  it('lets a station follow its cohort again after its own deployment is unpinned', async () => {
    expect((await inject('POST', '/api/v1/registry/cohorts/pilot/stations', mlops, { stations: ['tram-a'] })).statusCode).toBe(200);
    expect(JSON.parse(((await inject('GET', '/api/v1/stations/tram-a/model', stationToken('tram-a'))).json() as { deployment: { payload: string } }).deployment.payload)).toMatchObject({ target: { station: 'tram-a' } });
    const pinned = JSON.parse(((await inject('GET', '/api/v1/stations/tram-a/model', stationToken('tram-a'))).json() as { deployment: { payload: string } }).deployment.payload) as { issuedAt: string };
    expect((await inject('POST', '/api/v1/registry/stations/tram-a/unpin', mlops)).statusCode).toBe(201);
    // The cohort's deployment, signed anew for this station: issued after its pin (stations refuse an older one
    // as a replay) and as a rollback (the cohort's version may be older than the pinned one).
    const cohortNow = ((await inject('GET', '/api/v1/registry/deployments?cohort=pilot', mlops)).json() as { deploymentId: string; name: string; version: string; thresholds: object }[])[0];
    const followed = JSON.parse(((await inject('GET', '/api/v1/stations/tram-a/model', stationToken('tram-a'))).json() as { deployment: { payload: string } }).deployment.payload) as { deploymentId: string; issuedAt: string };
    expect(followed).toMatchObject({ target: { station: 'tram-a' }, name: cohortNow?.name, version: cohortNow?.version, thresholds: cohortNow?.thresholds, rollback: true });
    expect(followed.deploymentId).not.toBe(cohortNow?.deploymentId);
    expect(Date.parse(followed.issuedAt)).toBeGreaterThan(Date.parse(pinned.issuedAt));
    // The fleet view shows the cohort's deployment itself.
    const fleet = ((await inject('GET', '/api/v1/registry/status', mlops)).json() as { stations: { stationId: string; desired: { deploymentId: string; source: string; rollback: boolean } | null }[] }).stations;
    expect(fleet.find((r) => r.stationId === 'tram-a')?.desired).toMatchObject({ deploymentId: cohortNow?.deploymentId, source: 'cohort' });
    // Once the cohort moves on, its own deployment.
    expect((await inject('POST', '/api/v1/registry/deployments', mlops, { name: cohortNow?.name, version: cohortNow?.version, cohort: 'pilot' })).statusCode).toBe(201);
    expect(JSON.parse(((await inject('GET', '/api/v1/stations/tram-a/model', stationToken('tram-a'))).json() as { deployment: { payload: string } }).deployment.payload)).toMatchObject({ target: { cohort: 'pilot' } });
    expect((await inject('DELETE', '/api/v1/registry/cohorts/pilot/stations/tram-a', mlops)).statusCode).toBe(204);
    expect((await inject('GET', '/api/v1/stations/tram-a/model', stationToken('tram-a'))).json()).toEqual({ deployment: null, release: null });
  });
});

describe('auth', () => {
  it('refuses every registry route without a token, and the wrong kind of caller', async () => {
    const mlRoutes: [string, string][] = [
      ['GET', '/api/v1/registry/models'],
      ['GET', `/api/v1/registry/models/${SQUEEZENET}/versions/1.0.0`],
      ['GET', '/api/v1/registry/refused'],
      ['PUT', `/api/v1/registry/blobs/${'a'.repeat(64)}`],
      ['HEAD', `/api/v1/registry/blobs/${'a'.repeat(64)}`],
      ['POST', '/api/v1/registry/versions'],
      ['GET', '/api/v1/registry/cohorts'],
      ['POST', '/api/v1/registry/cohorts/pilot/stations'],
      ['DELETE', '/api/v1/registry/cohorts/pilot/stations/tram-a'],
      ['POST', '/api/v1/registry/deployments'],
      ['GET', '/api/v1/registry/deployments?cohort=pilot'],
      ['POST', '/api/v1/registry/rollbacks'],
      ['POST', '/api/v1/registry/stations/tram-a/unpin'],
      ['GET', '/api/v1/registry/status'],
    ];
    const stationRoutes: [string, string][] = [
      ['GET', '/api/v1/stations/tram-a/model'],
      ['GET', `/api/v1/stations/tram-a/model/files/${SQUEEZENET}/1.0.0/model.onnx`],
      ['POST', '/api/v1/stations/tram-a/model/status'],
    ];
    const call = (method: string, url: string, token?: string) => inject(method as 'GET', url, token, method === 'GET' || method === 'HEAD' || method === 'DELETE' ? undefined : {});
    for (const [method, url] of [...mlRoutes, ...stationRoutes, ['GET', '/api/v1/registry/public-key'] as [string, string]]) {
      expect((await call(method, url)).statusCode, `${method} ${url}`).toBe(401);
    }
    for (const [method, url] of mlRoutes) {
      expect((await call(method, url, radiologist)).statusCode, `radiologist ${method} ${url}`).toBe(403);
      expect((await call(method, url, stationToken('tram-a'))).statusCode, `station ${method} ${url}`).toBe(403);
    }
    for (const [method, url] of stationRoutes) {
      expect((await call(method, url, mlops)).statusCode, `mlops ${method} ${url}`).toBe(403);
      expect((await call(method, url, stationToken('tram-b'))).statusCode, `other station ${method} ${url}`).toBe(403);
    }
  });
});

describe('the OpenAPI document', () => {
  it("lists the registry's routes", async () => {
    const doc = (await inject('GET', '/api/openapi.json', undefined)).json() as { paths: Record<string, unknown> };
    for (const route of ['/api/v1/registry/versions', '/api/v1/registry/deployments', '/api/v1/registry/rollbacks', '/api/v1/stations/{stationId}/model', '/api/v1/stations/{stationId}/model/status']) {
      expect(Object.keys(doc.paths)).toContain(route);
    }
  });
});

describe('several gateway processes', () => {
  it('share one signing key, one registry and one fleet view', async () => {
    const other = await gw.second();
    const key = await getOrCreateSigningKey(gw.store);
    expect(((await other.inject({ method: 'GET', url: '/api/v1/registry/public-key', headers: auth(mlops) })).json() as { publicKey: string }).publicKey).toBe(key.publicKey);
    const deployed = await other.inject({ method: 'POST', url: '/api/v1/registry/deployments', headers: auth(mlops), payload: { name: DENSENET, version: '0.1.0', station: 'tram-b' } });
    expect(deployed.statusCode).toBe(201);
    const seenByFirst = (await inject('GET', '/api/v1/stations/tram-b/model', stationToken('tram-b'))).json() as { deployment: { payload: string } };
    expect(JSON.parse(seenByFirst.deployment.payload)).toMatchObject({ name: DENSENET, version: '0.1.0' });
    // The same push through both at once: one version, both accepted.
    const dir = await folder(SQUEEZENET, { manifest: (m) => void (m.version = '1.2.0') });
    const [x, y] = await Promise.all([pushFolder(gw.app, mlops, dir), pushFolder(other, mlops, dir)]);
    expect([x.body.accepted, y.body.accepted]).toEqual([true, true]);
    expect([x.body.existing, y.body.existing].sort()).toEqual([false, true]);
    const models = (await other.inject({ method: 'GET', url: '/api/v1/registry/models', headers: auth(mlops) })).json() as { name: string; versions: { version: string }[] }[];
    expect(models.find((m) => m.name === SQUEEZENET)?.versions.map((v) => v.version)).toEqual(['1.2.0', '1.1.0', '1.0.0']);
  });

  it("keeps the registry's private key in the folder store readable by the gateway's user only", async () => {
    const key = await getOrCreateSigningKey(gw.store);
    const pem = key.privateKeyPem.split('\n').find((l) => l.length > 40) ?? key.privateKeyPem;
    // Every file holding the key (found by its contents, whatever the store's layout), and the folders above it.
    const holders: string[] = [];
    const walk = async (dir: string): Promise<void> => {
      for (const entry of await readdir(dir, { withFileTypes: true })) {
        const full = path.join(dir, entry.name);
        if (entry.isDirectory()) await walk(full);
        else if ((await readFile(full, 'utf8')).includes(pem)) holders.push(full);
      }
    };
    await walk(gw.storeDir);
    expect(holders).not.toEqual([]);
    for (const file of holders) {
      expect(((await stat(file)).mode & 0o777).toString(8), file).toBe('600');
      for (let dir = path.dirname(file); dir.startsWith(gw.storeDir); dir = path.dirname(dir)) {
        expect(((await stat(dir)).mode & 0o777).toString(8), dir).toBe('700');
      }
    }
  });

  it('audits pushes, deployments, cohorts and rollbacks by who did them', async () => {
    const admin = await gw.accounts.addUser({ username: 'qt.admin', password: 'mat-khau-dai-9', role: 'admin' });
    const token = await login(gw.app, admin.username, 'mat-khau-dai-9');
    const events = (await inject('GET', `/api/v1/audit?date=${new Date().toISOString().slice(0, 10)}`, token)).json() as { action: string; actor: string }[];
    const actions = new Set(events.filter((e) => e.actor === 'user:kt.hung').map((e) => e.action));
    for (const a of ['registry.push', 'registry.deploy', 'registry.cohort', 'registry.rollback']) expect(actions).toContain(a);
  });
});

describe('with Redis down', () => {
  it('still gives a station its model, its files and takes its status: the store is the system of record', async () => {
    await gw.redisServer.kill();
    try {
      const { deployment } = (await inject('GET', '/api/v1/stations/tram-b/model', stationToken('tram-b'))).json() as { deployment: { payload: string } };
      expect(JSON.parse(deployment.payload)).toMatchObject({ name: DENSENET, version: '0.1.0' });
      const file = await inject('GET', `/api/v1/stations/tram-b/model/files/${DENSENET}/0.1.0/manifest.json`, stationToken('tram-b'));
      expect(file.statusCode).toBe(200);
      const status = { running: null, lastGood: null, state: 'downloading', counts: { studies: 0, failed: 0 }, at: new Date().toISOString() };
      expect((await inject('POST', '/api/v1/stations/tram-b/model/status', stationToken('tram-b'), status)).statusCode).toBe(204);
    } finally {
      await gw.redisServer.start();
    }
  });
});
