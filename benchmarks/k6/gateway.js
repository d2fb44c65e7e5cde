// The gateway under load, for those who have k6 (https://k6.io): the scenario of `npm run gateway -w benchmarks`
// (benchmarks/src/gateway-load.ts) as two k6 scenarios, with thresholds on p99 and on the error rate.
//
//   npm run gateway -w benchmarks -- --serve /tmp/cxr-k6.json     # redis, 2 gateways, 200 stations, 50 radiologists
//   k6 run -e CXR_K6_SETUP=/tmp/cxr-k6.json benchmarks/k6/gateway.js
//
// Against a gateway of your own, write the same JSON by hand: {"urls": ["http://HOST:PORT"], "stations":
// [{"id", "token"}], "radiologists": [{"username", "password"}], "result": <a TriageResult>, "previewFile": "/abs/x.png",
// "consultShare": 0.3, "reportShare": 0.2} (tokens from `cxr-gateway admin add-station`, users from `admin add-user`).
// Environment: CXR_K6_SETUP (that file), CXR_K6_DURATION (default 30s), CXR_K6_STATIONS / CXR_K6_RADIOLOGISTS (VUs,
// default: one per station and per radiologist in the file).
import { check } from 'k6';
import crypto from 'k6/crypto';
import exec from 'k6/execution';
import http from 'k6/http';

const fixture = JSON.parse(open(__ENV.CXR_K6_SETUP || '/tmp/cxr-k6.json'));
const preview = open(fixture.previewFile, 'b');
const previewSha = crypto.sha256(preview, 'hex');
const duration = __ENV.CXR_K6_DURATION || '30s';
const stationVus = Number(__ENV.CXR_K6_STATIONS || fixture.stations.length);
const radiologistVus = Number(__ENV.CXR_K6_RADIOLOGISTS || fixture.radiologists.length);

export const options = {
  scenarios: {
    stations: { executor: 'constant-vus', exec: 'station', vus: stationVus, duration },
    radiologists: { executor: 'constant-vus', exec: 'radiologist', vus: radiologistVus, duration },
  },
  thresholds: {
    'http_req_duration{scenario:stations}': ['p(99)<2000'],
    'http_req_duration{scenario:radiologists}': ['p(99)<2000'],
    'http_req_duration{name:GET worklist}': ['p(99)<1000'],
    // A claim another radiologist won (409), or a consult reported meanwhile (404), is expected: see below.
    'http_req_failed{scenario:stations}': ['rate<0.01'],
    'http_req_failed{scenario:radiologists}': ['rate<0.01'],
  },
  summaryTrendStats: ['med', 'p(99)', 'max', 'count'],
};

/** The radiologists sign in once; every VU then uses one of their sessions. */
export function setup() {
  return {
    tokens: fixture.radiologists.map((r) => {
      const res = http.post(`${fixture.urls[0]}/api/v1/login`, JSON.stringify(r), { headers: { 'content-type': 'application/json' }, tags: { name: 'POST login' } });
      if (res.status !== 200) throw new Error(`login ${r.username}: ${res.status} ${res.body}`);
      return res.json('token');
    }),
  };
}

const vu = () => exec.vu.idInTest - 1;
const base = () => fixture.urls[vu() % fixture.urls.length];
/** The share of a cycle of 10 that does something, as the npm benchmark chooses it. */
const chosen = (j, share) => Math.floor((j + 1) * share + 1e-9) > Math.floor(j * share + 1e-9);
const priorities = ['urgent', 'urgent', 'stat', 'urgent', 'routine'];

/** One study per iteration: the AI result, the preview, and for a share of studies a consult request. */
export function station() {
  const s = fixture.stations[vu() % fixture.stations.length];
  const n = exec.vu.iterationInScenario;
  const uid = `1.2.826.0.1.3680043.10.1417.6.${vu() + 1}.${n + 1}`;
  const at = `${base()}/api/v1/stations/${s.id}/studies/${uid}/instances/${uid}.1/${crypto.sha256(uid, 'hex')}`;
  const auth = { authorization: `Bearer ${s.token}` };
  const result = Object.assign({}, fixture.result, { studyInstanceUid: uid, sopInstanceUid: `${uid}.1` });
  const put = http.put(`${at}/result`, JSON.stringify({ result }), { headers: Object.assign({ 'content-type': 'application/json' }, auth), tags: { name: 'PUT result' } });
  check(put, { 'result stored': (r) => r.status === 201 || r.status === 200 });
  const png = http.put(`${at}/preview`, preview, { headers: Object.assign({ 'content-type': 'image/png', 'x-content-sha256': previewSha }, auth), tags: { name: 'PUT preview' } });
  check(png, { 'preview stored': (r) => r.status === 201 || r.status === 200 });
  if (chosen(n % 10, fixture.consultShare)) {
    const priority = priorities[n % priorities.length];
    const body = { studyInstanceUid: uid, priority, reason: priority === 'routine' ? 'requested' : 'policy' };
    const res = http.post(`${base()}/api/v1/stations/${s.id}/consults`, JSON.stringify(body), { headers: Object.assign({ 'content-type': 'application/json' }, auth), tags: { name: 'POST consult' } });
    check(res, { 'consult queued': (r) => r.status === 201 || r.status === 200 });
  }
}

/** One reading per iteration: the worklist, a consult from its first 100 unclaimed, its preview; a share reported. */
export function radiologist(data) {
  const auth = { headers: { authorization: `Bearer ${data.tokens[vu() % data.tokens.length]}` } };
  const list = http.get(`${base()}/api/v1/worklist`, Object.assign({ tags: { name: 'GET worklist' } }, auth));
  check(list, { 'worklist read': (r) => r.status === 200 });
  const open = list.status === 200 ? list.json().filter((c) => c.status === 'queued').slice(0, 100) : [];
  if (open.length === 0) return;
  const consultId = open[Math.floor(Math.random() * open.length)].consultId;
  const view = http.get(`${base()}/api/v1/consults/${consultId}`, Object.assign({ tags: { name: 'GET consult' } }, auth));
  check(view, { 'consult read': (r) => r.status === 200 });
  if (view.status !== 200) return;
  const instances = view.json('instances');
  const withPreview = instances.find((i) => i.previewUrl);
  if (withPreview) {
    const img = http.get(`${base()}${withPreview.previewUrl}`, Object.assign({ tags: { name: 'GET preview' } }, auth));
    check(img, { 'preview read': (r) => r.status === 200 });
  }
  if (!chosen(exec.vu.iterationInScenario % 10, fixture.reportShare)) return;
  // Another radiologist may take the consult first (409), or sign it meanwhile (404): a race, not a failure.
  const raced = { responseCallback: http.expectedStatuses({ min: 200, max: 299 }, 404, 409) };
  const claim = http.post(`${base()}/api/v1/consults/${consultId}/claim`, null, Object.assign({ tags: { name: 'POST claim' } }, auth, raced));
  if (claim.status !== 200) return;
  const flagged = [];
  for (const i of instances) for (const f of (i.result && i.result.applicable ? i.result.findings : [])) if (f.positive && !flagged.includes(f.code)) flagged.push(f.code);
  const report = { impression: 'Đồng ý với kết quả AI. Agree with the AI reading.', findings: flagged.map((code) => ({ code, agree: true })), recommendation: 'Theo dõi tại trạm' };
  const signed = http.post(`${base()}/api/v1/consults/${consultId}/report`, JSON.stringify(report), {
    headers: Object.assign({ 'content-type': 'application/json' }, auth.headers),
    tags: { name: 'POST report' },
  });
  check(signed, { 'report signed': (r) => r.status === 201 });
}
