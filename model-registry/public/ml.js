// The ML engineer's page: which model each station runs, the models with their validation reports, deployments by
// cohort; deploy and roll back. Plain ES module, no framework, no build step, nothing from outside.
import { LANGS, strings } from './i18n.js';
import { wireSignIn } from '/shared/sign-in.js';
import { ageText, createApi, createWords, fmtDateTime, fmtTime, h, savedLang, sessionStore, translateDocument, wireLangButtons } from '/shared/page-kit.js';

// The language choice is shared with the radiologist's page (same origin, same key).
const LANG_KEY = 'cxr-gw.lang';
const SESSION_KEY = 'cxr-ml.session';
const POLL_MS = 10_000;
const FETCH_TIMEOUT_MS = 15_000;
const ROLES = ['mlops', 'admin'];
const VIEWS = ['fleet', 'models', 'deploy'];

const $ = (selector) => document.querySelector(selector);
const sessions = sessionStore(SESSION_KEY);

const state = {
  lang: savedLang(LANG_KEY, LANGS),
  session: sessions.load(),
  view: 'fleet',
  reachable: true,
  /** GET /api/v1/registry/status rows, and when they were read */
  fleet: null,
  fleetAt: null,
  /** GET /api/v1/registry/models */
  models: null,
  refused: [],
  cohorts: null,
  /** `name@version` shown on the models view, and its record */
  selected: null,
  record: null,
  recordError: null,
  /** the message under the tabs: { kind: 'ok' | 'error', text } */
  action: null,
  skewMs: 0,
};

// ---------------------------------------------------------------------------------------------- words and formats

const { t, tn } = createWords(strings, () => state.lang);
const serverNow = () => Date.now() + state.skewMs;
const fmtAge = (iso) => ageText((serverNow() - new Date(iso).getTime()) / 60_000, t, tn);

/** A decimal as people write it: comma in Vietnamese (0,35), point in English. */
function fmtNumber(x, digits) {
  const s = digits === undefined ? String(x) : x.toFixed(digits);
  return state.lang === 'vi' ? s.replace('.', ',') : s;
}

function fmtBytes(n) {
  if (n >= 1024 * 1024) return `${fmtNumber(n / 1024 / 1024, 1)} MB`;
  if (n >= 1024) return `${fmtNumber(n / 1024, 1)} KB`;
  return `${n} B`;
}

const modelId = (m) => `${m.name}@${m.version}`;

const chip = (kind, text) => h('span', { class: `chip chip-${kind}` }, text);

// ---------------------------------------------------------------------------------------------- the server

/** Calls the gateway with the session's token; every answer tells whether the gateway is reachable and its clock. */
const api = createApi({
  timeoutMs: FETCH_TIMEOUT_MS,
  token: () => state.session?.token,
  onAnswer: (res) => {
    setReachable(res.status !== 502 && res.status !== 503 && res.status !== 504);
    const date = res.headers.get('date');
    if (date) state.skewMs = new Date(date).getTime() - Date.now();
  },
  onNoAnswer: () => setReachable(false),
  onUnauthorized: (token) => {
    if (token === state.session?.token) sessionLost();
  },
});

/** A station's model error in the page's language when its code is known; else the station's own (English) words. */
function stationErrorText(error) {
  const key = `stationErr_${error.code}`;
  const text = t(key);
  return text === key ? error.message : text;
}

/** A refusal's reason: the page's sentence for its code, then the server's own words as detail; or those alone. */
function reasonText(prefix, error) {
  const key = `${prefix}${error.code}`;
  const text = t(key);
  return text === key ? [error.message] : [text, ' ', h('span', { class: 'reason-detail' }, error.message)];
}

/** Plain words for a failed request, with what to do next. */
function errorText(err) {
  const status = err?.status ?? 0;
  if (status === 0) return err?.code === 'TIMEOUT' ? t('errTimeout') : t('errNetwork');
  if (status === 401) return t('sessionLost');
  if (status === 403) return t('errForbidden');
  if (status >= 500) return t('errServer', { status });
  // The server's own words are English and technical: a sentence in the page's language first, then them.
  const lead = status === 404 ? t('errNotFound') : status === 409 ? t('errConflict') : t('errRefused');
  return `${lead} ${t('errDetail', { detail: err?.detail || err?.code || `HTTP ${status}` })}`;
}

function setReachable(value) {
  state.reachable = value;
  $('#banner').hidden = value || !state.session;
}

// ---------------------------------------------------------------------------------------------- session

function saveSession(session) {
  state.session = session;
  sessions.save(session);
}

let pollTimer = null;

function showSignIn(message, username) {
  clearInterval(pollTimer);
  pollTimer = null;
  $('#work-screen').hidden = true;
  $('#tabs').hidden = true;
  $('#user-box').hidden = true;
  $('#banner').hidden = true;
  signIn.show(message, username);
}

function sessionLost() {
  const username = state.session?.username;
  saveSession(null);
  showSignIn({ kind: 'error', key: 'sessionLost' }, username);
}

function showWork() {
  $('#signin-screen').hidden = true;
  $('#work-screen').hidden = false;
  $('#tabs').hidden = false;
  $('#user-box').hidden = false;
  renderUser();
  showView(state.view);
  void refresh();
  clearInterval(pollTimer);
  pollTimer = setInterval(() => void refresh(), POLL_MS);
}

function renderUser() {
  const s = state.session;
  if (!s) return;
  $('#user-name').textContent = s.displayName && s.displayName !== s.username ? `${s.displayName} (${s.username})` : s.username;
  $('#user-name').title = s.role === 'admin' ? t('roleAdmin') : t('roleMlops');
}

const signIn = wireSignIn({
  t,
  api,
  roles: ROLES,
  onSignedIn: (session) => {
    saveSession(session);
    showWork();
  },
  // An account that reads films signed in here: a link to its own page.
  onMessage: (message) => void ($('#to-reader').hidden = message?.key !== 'signInRole'),
});

$('#sign-out').addEventListener('click', () => {
  const token = state.session?.token;
  if (token) void fetch('/api/v1/logout', { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
  saveSession(null);
  showSignIn(null);
});

// ---------------------------------------------------------------------------------------------- views

function readHash() {
  const [view, rest] = decodeURIComponent(location.hash.slice(1)).split('/');
  if (VIEWS.includes(view)) state.view = view;
  if (view === 'models' && rest) state.selected = rest;
}

function writeHash() {
  const hash = state.view === 'models' && state.selected ? `#models/${state.selected}` : `#${state.view}`;
  if (location.hash !== hash) history.replaceState(null, '', hash);
}

function showView(view) {
  state.view = view;
  for (const v of VIEWS) {
    $(`#view-${v}`).hidden = v !== view;
    const tab = $(`#tab-${v}`);
    tab.setAttribute('aria-selected', String(v === view));
    tab.tabIndex = v === view ? 0 : -1;
  }
  writeHash();
  render();
}

for (const tab of document.querySelectorAll('[data-view]')) tab.addEventListener('click', () => showView(tab.dataset.view));

function setAction(kind, text) {
  state.action = text ? { kind, text } : null;
  const box = $('#action-msg');
  box.hidden = !state.action;
  box.className = `action-msg ${kind ?? ''}`;
  box.textContent = text ?? '';
}

async function refresh() {
  if (!state.session) return;
  try {
    const [status, models, refused, cohorts] = await Promise.all([
      api('/api/v1/registry/status'),
      api('/api/v1/registry/models'),
      api('/api/v1/registry/refused?limit=5'),
      api('/api/v1/registry/cohorts'),
    ]);
    state.fleet = status.stations;
    state.fleetAt = status.at;
    state.models = models;
    state.refused = refused;
    state.cohorts = cohorts;
    if (state.selected && state.record?.name && modelId(state.record) !== state.selected) state.record = null;
    if (state.view === 'models' && state.selected && !state.record) await loadRecord(state.selected);
    render();
  } catch (err) {
    if (err?.status !== 401) render();
  }
}

async function loadRecord(id) {
  const at = id.lastIndexOf('@');
  try {
    state.record = await api(`/api/v1/registry/models/${encodeURIComponent(id.slice(0, at))}/versions/${encodeURIComponent(id.slice(at + 1))}`);
    state.recordError = null;
  } catch (err) {
    state.record = null;
    state.recordError = errorText(err);
  }
}

function render() {
  if (!state.session) return;
  if (state.view === 'fleet') renderFleet();
  if (state.view === 'models') renderModels();
  if (state.view === 'deploy') renderCohorts();
}

// ---------------------------------------------------------------------------------------------- fleet

const SYNC = { 'in-sync': ['ok', 'syncInSync'], pending: ['warn', 'syncPending'], failed: ['bad', 'syncFailed'], 'never-seen': ['muted', 'syncNever'], 'no-deployment': ['muted', 'syncNone'] };

function renderFleet() {
  const rows = $('#fleet-rows');
  const fleet = state.fleet;
  $('#fleet-updated').textContent = state.fleetAt ? t('updatedAt', { time: fmtTime(new Date(state.fleetAt)) }) : t('loading');
  if (!fleet) return;
  const count = (s) => fleet.filter((r) => r.sync === s).length;
  $('#fleet-summary').textContent = t('summaryLine', { total: fleet.length, ok: count('in-sync'), pending: count('pending') + count('never-seen'), failed: count('failed') });
  $('#fleet-empty').hidden = fleet.length > 0;
  $('#fleet-empty').textContent = t('emptyFleet');
  rows.replaceChildren(
    ...fleet.map((r) => {
      const [kind, key] = SYNC[r.sync] ?? ['muted', r.sync];
      const stateNote = r.state === 'downloading' ? t('stateDownloading') : r.state === 'verifying' ? t('stateVerifying') : null;
      return h(
        'tr',
        { dataset: { station: r.stationId, sync: r.sync }, class: `sync-${r.sync}` },
        h('th', { scope: 'row', class: 'station' }, r.stationId),
        h('td', { class: r.cohort ? '' : 'muted' }, r.cohort ?? t('noCohort')),
        h('td', { class: 'desired' }, r.desired ? [h('span', { class: 'mono' }, modelId(r.desired)), r.desired.source === 'station' ? h('span', { class: 'note' }, t('fromStation')) : null, r.desired.rollback ? h('span', { class: 'note' }, t('rollbackMark')) : null] : h('span', { class: 'muted' }, t('none'))),
        h('td', { class: 'running' }, r.running ? h('span', { class: 'mono' }, modelId(r.running)) : h('span', { class: 'muted' }, t('none'))),
        h('td', { class: 'sync' }, chip(kind, t(key)), stateNote ? h('span', { class: 'note' }, stateNote) : null),
        h('td', { class: 'seen', title: r.lastSeen ? fmtDateTime(new Date(r.lastSeen)) : '' }, r.lastSeen ? fmtAge(r.lastSeen) : h('span', { class: 'muted' }, t('never'))),
        h('td', { class: 'counts' }, r.counts ? t('countsLine', { studies: r.counts.studies, failed: r.counts.failed }) : ''),
        h('td', { class: 'error', title: r.lastError?.message }, r.lastError ? [h('span', { class: 'err-code' }, r.lastError.code), ' ', stationErrorText(r.lastError)] : ''),
        h('td', { class: 'row-action' }, h('button', { type: 'button', class: 'secondary small', title: t('deployToStation', { id: r.stationId }), 'aria-label': t('deployToStation', { id: r.stationId }), onclick: () => openDeploy({ station: r.stationId }) }, t('deployNew'))),
      );
    }),
  );
}

// ---------------------------------------------------------------------------------------------- models

function renderModels() {
  const list = $('#model-list');
  const models = state.models ?? [];
  $('#models-empty').hidden = state.models === null || models.length > 0;
  $('#models-empty').textContent = t('emptyModels');
  list.replaceChildren(
    ...models.map((m) =>
      h(
        'li',
        { class: 'model' },
        h('h3', {}, m.name),
        h(
          'ul',
          { class: 'versions' },
          m.versions.map((v) => {
            const id = `${m.name}@${v.version}`;
            return h(
              'li',
              {},
              h(
                'button',
                { type: 'button', class: 'version-row', 'aria-current': String(id === state.selected), dataset: { id }, onclick: () => selectVersion(id) },
                h('span', { class: 'v' }, v.version),
                h('span', { class: 'when' }, fmtDateTime(new Date(v.acceptedAt))),
                chip(v.golden === 'passed' ? 'ok' : v.golden === 'failed' ? 'bad' : 'muted', `golden ${t(v.golden)}`),
                v.latencyMs !== null ? h('span', { class: 'lat' }, `${fmtNumber(v.latencyMs, 0)} ms`) : null,
              ),
            );
          }),
        ),
      ),
    ),
  );
  const refused = $('#refused');
  refused.replaceChildren(
    ...(state.refused.length
      ? [
          h('h3', {}, t('refusedTitle')),
          h(
            'ul',
            {},
            state.refused.map((r) =>
              h(
                'li',
                { class: 'refused-item' },
                h('div', { class: 'refused-head' }, t('refusedLine', { model: r.name ? `${r.name}@${r.version}` : t('unnamed'), time: fmtDateTime(new Date(r.refusedAt)), who: r.pushedBy })),
                h('ul', { class: 'reasons' }, r.errors.map((e) => h('li', {}, h('span', { class: 'err-code' }, e.code), ' ', ...reasonText('pushErr_', e)))),
              ),
            ),
          ),
        ]
      : []),
  );
  renderRecord();
}

async function selectVersion(id) {
  state.selected = id;
  state.record = null;
  state.recordError = null;
  writeHash();
  renderModels();
  await loadRecord(id);
  renderModels();
}

const CHECKS = [
  ['manifest', 'checkManifest'],
  ['sha256', 'checkSha256'],
  ['runtime', 'checkRuntime'],
  ['shapes', 'checkShapes'],
  ['golden', 'checkGolden'],
  ['latency', 'checkLatency'],
  ['metrics', 'checkMetrics'],
];

/** The registry's reasons for a skipped check, in the page's words (unknown ones as the server wrote them). */
const SKIP_REASONS = {
  'no labelled set was given (--labels CSV)': 'skipNoLabels',
  'the folder has no golden cases (golden/cases.json)': 'skipNoGolden',
  'the model did not load': 'skipNotLoaded',
  'the manifest is not valid': 'skipManifest',
  'the model disagrees with its manifest': 'skipShapes',
  'the model did not run': 'skipNotRun',
  'a file the manifest names is missing': 'skipMissingFile',
  'the manifest names no model file and digest': 'skipNoDigest',
  'no golden cases: the edge cannot check this model on its own PC after download': 'warnNoGolden',
  'a labelled set was sent but this registry computes no metrics yet': 'warnNoMetrics',
};
const serverWords = (text) => (SKIP_REASONS[text] ? t(SKIP_REASONS[text]) : text);

function checkDetail(name, c) {
  if (c.status === 'skipped') return serverWords(c.reason ?? '');
  if (name === 'latency') return t('latencyLine', { median: fmtNumber(c.medianMs, 1), runs: c.runs, threads: c.threads });
  if (name === 'golden') {
    const diffs = c.cases.map((x) => x.maxAbsDiff ?? 1);
    return [
      t('goldenLine', { ok: c.cases.filter((x) => x.ok).length, n: c.cases.length, max: fmtNumber(Number(Math.max(...diffs).toPrecision(2))), tol: fmtNumber(c.cases[0]?.tolerance ?? 0) }),
      h('ul', { class: 'cases' }, c.cases.map((x) => h('li', { class: x.ok ? '' : 'bad' }, h('span', { class: 'mono' }, x.input), ' — ', x.error ? `${x.error.code}: ${x.error.message}` : t('goldenCase', { diff: fmtNumber(Number((x.maxAbsDiff ?? 0).toPrecision(2))) })))),
    ];
  }
  if (name === 'sha256') return h('ul', { class: 'cases' }, c.files.map((f) => h('li', { class: f.actual === f.expected ? '' : 'bad' }, h('span', { class: 'mono' }, f.path), ' ', h('span', { class: 'mono hash' }, f.actual ?? '—'))));
  if (name === 'metrics') {
    const scores = Array.isArray(c.scores) ? c.scores : [];
    return h('ul', { class: 'cases' }, scores.map((s) => h('li', {}, h('span', { class: 'mono' }, s.score ?? s.truth), ' — ', s.auc === null || s.auc === undefined ? '—' : t('aucLine', { auc: fmtNumber(s.auc, 3), lo: fmtNumber(s.auc95?.[0] ?? 0, 3), hi: fmtNumber(s.auc95?.[1] ?? 0, 3) }))));
  }
  if (name === 'runtime') return c.runtime ?? '';
  if (Array.isArray(c.problems) && c.problems.length) return h('ul', { class: 'cases' }, c.problems.map((p) => h('li', { class: 'bad' }, p)));
  return '';
}

function renderRecord() {
  const box = $('#version-detail');
  const r = state.record;
  if (!state.selected || (!r && !state.recordError)) {
    box.replaceChildren(h('div', { class: 'placeholder' }, state.selected ? t('loading') : t('chooseVersion')));
    return;
  }
  if (!r) {
    box.replaceChildren(h('div', { class: 'placeholder placeholder-error' }, state.recordError));
    return;
  }
  const v = r.validation;
  const bytes = r.files.reduce((n, f) => n + f.size, 0);
  box.replaceChildren(
    h(
      'div',
      { class: 'panel detail-head' },
      h('div', { class: 'dh-main' }, h('h2', {}, r.name, ' ', h('span', { class: 'dh-version' }, t('version', { v: r.version }))), h('p', { class: 'muted' }, t('acceptedBy', { time: fmtDateTime(new Date(r.acceptedAt)), who: r.pushedBy })), r.description ? h('p', { class: 'desc' }, r.description) : null),
      h('dl', { class: 'facts' }, h('div', { class: 'fact' }, h('dt', {}, t('runtime')), h('dd', {}, r.runtime)), h('div', { class: 'fact' }, h('dt', {}, t('sizeLabel')), h('dd', {}, fmtBytes(bytes))), h('div', { class: 'fact' }, h('dt', {}, tn('labelsN', r.labels.length)))),
      h('button', { type: 'button', class: 'primary', id: 'deploy-this', onclick: () => openDeploy({ model: modelId(r) }) }, t('deployThis')),
    ),
    h(
      'section',
      { class: 'panel report' },
      h('h3', {}, t('report')),
      h(
        'ul',
        { class: 'checks' },
        CHECKS.map(([name, key]) => {
          const c = v[name] ?? { status: 'skipped' };
          const kind = c.status === 'passed' ? 'ok' : c.status === 'failed' ? 'bad' : 'muted';
          return h('li', { class: `check check-${c.status}`, dataset: { check: name } }, h('div', { class: 'check-head' }, chip(kind, t(c.status)), h('span', { class: 'check-name' }, t(key))), h('div', { class: 'check-detail' }, checkDetail(name, c)));
        }),
      ),
      r.warnings.length ? h('div', { class: 'warnings' }, h('strong', {}, `${t('warnings')}: `), r.warnings.map(serverWords).join('; ')) : null,
    ),
    h(
      'section',
      { class: 'panel' },
      h('h3', {}, t('labelsTitle')),
      h(
        'table',
        { class: 'grid compact' },
        h('thead', {}, h('tr', {}, h('th', {}, t('colCode')), h('th', {}, t('colName')), h('th', {}, t('colThreshold')), h('th', {}, t('colPriority')))),
        h('tbody', {}, r.labels.map((l) => h('tr', {}, h('td', { class: 'mono' }, l.code), h('td', {}, state.lang === 'vi' ? l.displayVi : l.display), h('td', { class: 'num' }, fmtNumber(l.threshold)), h('td', {}, l.role === 'finding' ? t(l.priority) : '—')))),
      ),
    ),
    h(
      'section',
      { class: 'panel' },
      h('h3', {}, t('filesTitle')),
      h(
        'table',
        { class: 'grid compact' },
        h('thead', {}, h('tr', {}, h('th', {}, t('colPath')), h('th', {}, t('colSize')), h('th', {}, 'sha256'))),
        h('tbody', {}, r.files.map((f) => h('tr', {}, h('td', { class: 'mono' }, f.path), h('td', { class: 'num' }, fmtBytes(f.size)), h('td', { class: 'mono hash' }, f.sha256)))),
      ),
    ),
  );
}

// ---------------------------------------------------------------------------------------------- deployments

function targetText(d) {
  if ('station' in d.target) return t('targetStationName', { s: d.target.station });
  return d.target.percent < 100 ? t('percentOf', { p: fmtNumber(d.target.percent) }) : t('wholeCohort');
}

/** What a rollback of this history goes back to: the newest version not rolled back from (as the registry decides). */
function rollbackTarget(deployments) {
  const current = deployments[0];
  if (!current) return null;
  const abandoned = new Set([modelId(current)]);
  for (const d of deployments) {
    if (d.rolledBackFrom) abandoned.add(d.rolledBackFrom);
    if (!abandoned.has(modelId(d))) return d;
  }
  return null;
}

function renderCohorts() {
  const cohorts = state.cohorts ?? [];
  $('#cohorts-empty').hidden = state.cohorts === null || cohorts.length > 0;
  $('#cohorts-empty').textContent = t('emptyCohorts');
  $('#cohorts').replaceChildren(
    ...cohorts.map((c) => {
      const deployments = c.deployments.filter((d) => d.kind === 'deploy');
      const current = deployments[0];
      const previous = rollbackTarget(deployments);
      return h(
        'article',
        { class: 'panel cohort', dataset: { cohort: c.cohort } },
        h(
          'div',
          { class: 'cohort-head' },
          h('div', { class: 'ch-main' }, h('h3', {}, t('targetCohortName', { c: c.cohort })), h('p', { class: 'muted' }, t('stationsOf', { list: c.stations.join(', ') }))),
          h(
            'div',
            { class: 'cohort-now' },
            h('span', { class: 'muted' }, t('current')),
            current ? [h('span', { class: 'mono now' }, modelId(current)), h('span', { class: 'note' }, targetText(current)), current.rollback ? chip('warn', t('rollbackMark')) : null] : h('span', { class: 'muted' }, t('nothingDeployed')),
          ),
          h(
            'div',
            { class: 'cohort-actions' },
            h('button', { type: 'button', class: 'secondary small', onclick: () => openDeploy({ cohort: c.cohort }) }, t('deployNew')),
            h('button', { type: 'button', class: 'danger small', disabled: !previous, title: previous ? t('rollbackTo', { model: modelId(previous) }) : t('noEarlier'), onclick: () => confirmRollback(c.cohort, current, previous) }, t('rollback')),
          ),
        ),
        deployments.length
          ? h(
              'details',
              { class: 'history', open: true },
              h('summary', {}, t('history')),
              h(
                'table',
                { class: 'grid compact' },
                h('thead', {}, h('tr', {}, h('th', {}, t('colWhen')), h('th', {}, t('colVersion')), h('th', {}, t('colTarget')), h('th', {}, t('colBy')))),
                h(
                  'tbody',
                  {},
                  deployments.map((d) => h('tr', { class: d.rollback ? 'is-rollback' : '' }, h('td', {}, fmtDateTime(new Date(d.issuedAt))), h('td', { class: 'mono' }, modelId(d), d.rollback ? [' ', chip('warn', t('rollbackMark'))] : null), h('td', {}, targetText(d)), h('td', {}, d.issuedBy))),
                ),
              ),
            )
          : null,
      );
    }),
  );
}

// -------------------------------------------------------------------- deploy dialog

const dialog = $('#deploy-dialog');
let dialogLabels = [];

function versionOptions() {
  return (state.models ?? []).flatMap((m) => m.versions.map((v) => `${m.name}@${v.version}`));
}

async function loadThresholdFields() {
  const id = $('#deploy-version').value;
  const box = $('#deploy-thresholds');
  box.replaceChildren();
  dialogLabels = [];
  if (!id) return;
  const at = id.lastIndexOf('@');
  try {
    const record = await api(`/api/v1/registry/models/${encodeURIComponent(id.slice(0, at))}/versions/${encodeURIComponent(id.slice(at + 1))}`);
    if ($('#deploy-version').value !== id) return;
    dialogLabels = record.labels.filter((l) => l.role === 'finding');
    box.replaceChildren(
      ...dialogLabels.map((l) =>
        h('label', { class: 'thr' }, h('span', {}, state.lang === 'vi' ? l.displayVi : l.display), h('input', { type: 'text', inputmode: 'decimal', dataset: { code: l.code }, placeholder: fmtNumber(l.threshold), 'aria-label': `${l.code}` })),
      ),
    );
  } catch (err) {
    box.replaceChildren(h('p', { class: 'form-msg error' }, errorText(err)));
  }
}

function syncTargetFields() {
  const kind = document.querySelector('input[name="target-kind"]:checked')?.value ?? 'cohort';
  $('#deploy-cohort').disabled = kind !== 'cohort';
  $('#deploy-station').disabled = kind !== 'station';
  $('#percent-row').hidden = kind !== 'cohort';
}

function openDeploy(prefill = {}) {
  const versions = versionOptions();
  const msg = $('#deploy-msg');
  msg.hidden = true;
  $('#deploy-version').replaceChildren(...versions.map((id) => h('option', { value: id }, id)));
  $('#deploy-cohort').replaceChildren(...(state.cohorts ?? []).map((c) => h('option', { value: c.cohort }, c.cohort)));
  $('#deploy-station').replaceChildren(...(state.fleet ?? []).map((r) => h('option', { value: r.stationId }, r.stationId)));
  if (prefill.model) $('#deploy-version').value = prefill.model;
  if (prefill.cohort) $('#deploy-cohort').value = prefill.cohort;
  if (prefill.station) $('#deploy-station').value = prefill.station;
  const kind = prefill.station || !(state.cohorts ?? []).length ? 'station' : 'cohort';
  for (const radio of document.querySelectorAll('input[name="target-kind"]')) radio.checked = radio.value === kind;
  $('#deploy-percent').value = '100';
  syncTargetFields();
  $('#deploy-submit').disabled = versions.length === 0;
  if (!versions.length) {
    msg.hidden = false;
    msg.textContent = t('noVersions');
  }
  void loadThresholdFields();
  dialog.showModal();
}

$('#deploy-open').addEventListener('click', () => openDeploy());
$('#deploy-cancel').addEventListener('click', () => dialog.close());
$('#deploy-version').addEventListener('change', () => void loadThresholdFields());
$('#deploy-form').addEventListener('input', () => ($('#deploy-msg').hidden = true));
for (const radio of document.querySelectorAll('input[name="target-kind"]')) radio.addEventListener('change', syncTargetFields);

const parseDecimal = (text) => Number(String(text).trim().replace(',', '.'));

$('#deploy-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const msg = $('#deploy-msg');
  const fail = (text) => {
    msg.hidden = false;
    msg.textContent = text;
  };
  msg.hidden = true;
  const id = $('#deploy-version').value;
  const at = id.lastIndexOf('@');
  const kind = document.querySelector('input[name="target-kind"]:checked')?.value ?? 'cohort';
  const body = { name: id.slice(0, at), version: id.slice(at + 1) };
  if (kind === 'cohort') {
    const percent = parseDecimal($('#deploy-percent').value);
    if (!Number.isFinite(percent) || percent < 1 || percent > 100) return fail(t('errPercentRange'));
    Object.assign(body, { cohort: $('#deploy-cohort').value, percent });
  } else {
    body.station = $('#deploy-station').value;
  }
  const thresholds = {};
  for (const input of document.querySelectorAll('#deploy-thresholds input')) {
    if (input.value.trim() === '') continue;
    const value = parseDecimal(input.value);
    if (!Number.isFinite(value) || value < 0 || value > 1) {
      input.focus();
      return fail(t('errThresholdRange'));
    }
    thresholds[input.dataset.code] = value;
  }
  if (Object.keys(thresholds).length) body.thresholds = thresholds;
  const button = $('#deploy-submit');
  button.disabled = true;
  button.textContent = t('deploying');
  try {
    const record = await api('/api/v1/registry/deployments', { method: 'POST', body });
    dialog.close();
    const target = 'station' in record.target ? t('targetStationName', { s: record.target.station }) : `${t('targetCohortName', { c: record.target.cohort })} (${targetText(record)})`;
    setAction('ok', t('deployed', { model: modelId(record), target }));
    await refresh();
  } catch (err) {
    fail(errorText(err));
  } finally {
    button.disabled = false;
    button.textContent = t('confirmDeploy');
  }
});

// -------------------------------------------------------------------- rollback

const confirmDialog = $('#confirm-dialog');
let pendingRollback = null;

function confirmRollback(cohort, current, previous) {
  pendingRollback = cohort;
  $('#confirm-title').textContent = t('confirmRollbackTitle');
  $('#confirm-body').textContent = t('confirmRollbackBody', { cohort, from: modelId(current), to: modelId(previous) });
  $('#confirm-ok').textContent = t('confirmRollback');
  $('#confirm-msg').hidden = true;
  confirmDialog.showModal();
}

$('#confirm-cancel').addEventListener('click', () => confirmDialog.close());
$('#confirm-ok').addEventListener('click', async () => {
  const cohort = pendingRollback;
  if (!cohort) return;
  const button = $('#confirm-ok');
  button.disabled = true;
  try {
    const record = await api('/api/v1/registry/rollbacks', { method: 'POST', body: { cohort } });
    confirmDialog.close();
    setAction('ok', t('rolledBack', { target: t('targetCohortName', { c: cohort }), model: modelId(record) }));
    await refresh();
  } catch (err) {
    const box = $('#confirm-msg');
    box.hidden = false;
    box.textContent = errorText(err);
  } finally {
    button.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------- language

function applyLang() {
  translateDocument(state.lang, t);
  signIn.render();
  if (state.session) {
    renderUser();
    render();
  }
}

wireLangButtons(
  LANG_KEY,
  () => state.lang,
  (lang) => {
    state.lang = lang;
    applyLang();
  },
);

// ---------------------------------------------------------------------------------------------- start

readHash();
applyLang();
if (state.session) showWork();
else showSignIn(null);
window.addEventListener('hashchange', () => {
  readHash();
  if (state.session) {
    showView(state.view);
    if (state.view === 'models' && state.selected && (!state.record || modelId(state.record) !== state.selected)) void selectVersion(state.selected);
  }
});
