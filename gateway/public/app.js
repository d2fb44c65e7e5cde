// The radiologist's page: sign in, the worklist of consults from the stations, the film with the AI result and its
// heatmap, claim / release, and the signed report. Plain ES module, no framework, no build step, nothing from outside.
import { LANGS, strings } from './i18n.js';
import { findingItem, findingName as findingNameIn, modelLine, notApplicableNotice, resultHeadParts } from '/shared/ai-result.js';
import { Viewer } from '/shared/viewer.js';
import { wireSignIn } from '/shared/sign-in.js';
import {
  ageText,
  createApi,
  createWords,
  fmtDate,
  fmtDateTime,
  fmtDecimal as fmtDecimalIn,
  fmtTime,
  h,
  pad,
  sameDay,
  savedLang,
  sessionStore,
  svgIcon,
  syncKeyedList,
  translateDocument,
  wireLangButtons,
  wireListbox,
} from '/shared/page-kit.js';

const LANG_KEY = 'cxr-gw.lang';
const SESSION_KEY = 'cxr-gw.session';
const DRAFT_PREFIX = 'cxr-gw.draft.';
const BELOW_OPEN_KEY = 'cxr-gw.below-open';
const POLL_MS = 5_000;
const FETCH_TIMEOUT_MS = 10_000;
/** A claim lapses on the server after 30 minutes without a report; typing re-claims at most this often. */
const RECLAIM_MS = 10 * 60_000;
const READER_ROLES = ['radiologist', 'admin'];

const $ = (selector) => document.querySelector(selector);
const sessions = sessionStore(SESSION_KEY);

const state = {
  lang: savedLang(LANG_KEY, LANGS),
  /** { token, expiresAt, username, role, displayName } from POST /api/v1/login, kept in sessionStorage. */
  session: sessions.load(),
  worklist: [],
  loaded: false,
  reachable: true,
  updatedAt: null,
  /** server clock minus this clock, from the Date header, so that "12 min ago" is right on a wrong PC clock */
  skewMs: 0,
  selectedId: null,
  /** GET /api/v1/consults/:id of the selected consult */
  detail: null,
  /** 'none' | 'loading' | 'ready' | 'error' */
  detailState: 'none',
  detailError: null,
  instanceKey: null,
  /** the selected consult in the latest worklist: its claimant (null when queued) */
  inWorklist: false,
  liveClaim: null,
  /** set when the selected consult left the worklist and its detail was read again (reported, or gone) */
  goneChecked: false,
  /** bumped by claim / release, so that a worklist read before them does not undo what they did */
  actionEpoch: 0,
  /** 'claim' | 'release' | 'sign' while that request runs */
  busy: null,
  /** the message under the consult head: { kind: 'error' | 'info' | 'ok', text: () => string } */
  action: null,
  draft: null,
  /** a sign was attempted: show what is missing */
  attempted: false,
  lastClaimAt: 0,
};

// ---------------------------------------------------------------------------------------------- words and formats

const { t, tn } = createWords(strings, () => state.lang);
const serverNow = () => Date.now() + state.skewMs;
const isToday = (date) => sameDay(date, new Date(serverNow()));

/** "10:32" today, "22/11/2026 10:32" on other days. */
const fmtWhen = (date) => (isToday(date) ? fmtTime(date) : fmtDateTime(date));
const fmtAge = (date) => ageText((serverNow() - date.getTime()) / 60_000, t, tn);
const fmtDecimal = (x, digits) => fmtDecimalIn(x, digits, state.lang);

const findingName = (f) => findingNameIn(f, state.lang);

const lockIcon = () => svgIcon('M6 11h12v9H6zM8.5 11V8a3.5 3.5 0 0 1 7 0v3');
const penIcon = () => svgIcon('M4 20h4L19 9l-4-4L4 16zM13.5 6.5l4 4');
const checkIcon = () => svgIcon('M5 12.5l4.5 4.5L19 7.5');
const crossIcon = () => svgIcon('M6 6l12 12M18 6 6 18');
const warnIcon = () => svgIcon('M12 3 2 20h20L12 3zm0 6v5m0 3v.5');

function badge(priority, extraClass = '') {
  return h('span', { class: `badge badge-${priority} ${extraClass}`.trim() }, t(priority));
}

/** Who holds a claim, as people read it: "bạn" for me, else the username (the API gives no display names). */
const isMe = (username) => Boolean(username) && username === state.session?.username;

// ---------------------------------------------------------------------------------------------- the server

/**
 * Calls the gateway with the session's bearer token. A 401 on a request made with the current token ends the
 * session (back to the sign-in screen); other failures throw an ApiError (status 0: no answer).
 */
const api = createApi({
  timeoutMs: FETCH_TIMEOUT_MS,
  token: () => state.session?.token,
  onUnauthorized: (token) => {
    if (token === state.session?.token) sessionLost();
  },
});

/** Plain words for a failed request, with what to do next. */
function errorText(err) {
  const status = err?.status ?? 0;
  if (status === 0) return err?.code === 'TIMEOUT' ? t('errTimeout') : t('errNetwork');
  if (status === 401) return t('sessionLost');
  if (status === 403) return t('errForbidden');
  if (status === 404) return t('consultNotFound');
  if (status >= 500) return t('errServer', { status });
  return t('errInvalid', { detail: err?.detail || `HTTP ${status}` });
}

// ---------------------------------------------------------------------------------------------- session

function saveSession(session) {
  state.session = session;
  sessions.save(session);
}

function clearDrafts() {
  try {
    for (const key of Object.keys(sessionStorage)) if (key.startsWith(DRAFT_PREFIX)) sessionStorage.removeItem(key);
  } catch {
    // nothing stored
  }
}

function showSignIn(message, username) {
  stopPolling();
  resetWork();
  $('#work-screen').hidden = true;
  $('#user-box').hidden = true;
  $('#banner').hidden = true;
  signIn.show(message, username);
  document.title = t('appTitle');
}

function showWork() {
  $('#signin-screen').hidden = true;
  $('#work-screen').hidden = false;
  $('#user-box').hidden = false;
  renderUser();
  renderWorklist();
  renderConsult(true);
  void refresh();
  startPolling();
  if (state.selectedId) void loadDetail(state.selectedId);
}

function renderUser() {
  const s = state.session;
  if (!s) return;
  const role = s.role === 'admin' ? t('roleAdmin') : t('roleRadiologist');
  $('#user-name').textContent = s.displayName && s.displayName !== s.username ? `${s.displayName} (${s.username})` : s.username;
  $('#user-name').title = role;
}

/** The server said 401 to the current token: expired, revoked, or the server forgot it. Drafts are kept. */
function sessionLost() {
  const username = state.session?.username;
  saveSession(null);
  showSignIn({ kind: 'error', key: 'sessionLost' }, username);
}

const signIn = wireSignIn({
  t,
  api,
  roles: READER_ROLES,
  onSignedIn: (session) => {
    saveSession(session);
    showWork();
  },
});

$('#sign-out').addEventListener('click', () => {
  const token = state.session?.token;
  saveSession(null);
  clearDrafts();
  state.selectedId = null;
  writeHash();
  if (token) void fetch('/api/v1/logout', { method: 'POST', headers: { authorization: `Bearer ${token}` } }).catch(() => undefined);
  showSignIn({ kind: 'info', key: 'signedOut' });
});

// ---------------------------------------------------------------------------------------------- the worklist

const list = $('#worklist');
/** li elements by consult id: a row is rebuilt only when what it shows changed, so polling never flickers. */
const rows = new Map();
const markSelected = wireListbox(list, rows, { datasetKey: 'id', choose: (id) => select(id) });
const updateSelection = () => markSelected(state.selectedId);

function rowModel(item) {
  const received = new Date(item.receivedAt);
  const status = item.claimedBy ? (isMe(item.claimedBy) ? 'mine' : 'taken') : 'queued';
  return {
    lang: state.lang,
    priority: item.priority,
    station: item.stationId,
    when: fmtWhen(received),
    age: fmtAge(received),
    status,
    who: item.claimedBy ?? '',
  };
}

function fillRow(li, m) {
  li.className = `row row-${m.priority} status-${m.status}`;
  const statusText = m.status === 'queued' ? t('statusQueued') : m.status === 'mine' ? t('statusMine') : t('statusTaken', { who: m.who });
  li.replaceChildren(
    h('div', { class: 'row-top' }, badge(m.priority), h('span', { class: 'row-station', title: t('station', { id: m.station }) }, t('station', { id: m.station })), h('time', { class: 'row-time' }, m.when)),
    h(
      'div',
      { class: 'row-bottom' },
      h('span', { class: 'row-status' }, m.status === 'taken' ? lockIcon() : m.status === 'mine' ? penIcon() : null, h('span', {}, statusText)),
      h('span', { class: 'row-age' }, m.age),
    ),
  );
}

function renderWorklist() {
  syncKeyedList(list, rows, state.worklist, { keyOf: (item) => item.consultId, datasetKey: 'id', rowModel, fillRow });
  updateSelection();
  const open = state.worklist.length;
  $('#list-count').textContent = state.loaded ? String(open) : '';
  $('#list-updated').textContent = state.updatedAt ? t('updatedAt', { time: `${fmtTime(state.updatedAt)}:${pad(state.updatedAt.getSeconds())}` }) : '';
  const empty = $('#list-empty');
  if (open === 0) {
    empty.replaceChildren(
      h('p', { class: 'empty-title' }, state.loaded ? t('emptyList') : t('loading')),
      state.loaded ? h('p', { class: 'empty-hint' }, t('emptyHint')) : null,
    );
    empty.hidden = false;
  } else empty.hidden = true;
  const waiting = state.worklist.filter((c) => !c.claimedBy).length;
  document.title = waiting > 0 ? `(${waiting}) ${t('appTitle')}` : t('appTitle');
}

let inflight = null;
let again = false;

async function refresh() {
  if (!state.session) return undefined;
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = (async () => {
    const epoch = state.actionEpoch;
    try {
      const res = await api('/api/v1/worklist', { as: 'response' });
      const items = await res.json();
      const date = Date.parse(res.headers.get('date') ?? '');
      if (Number.isFinite(date)) state.skewMs = date - Date.now();
      if (!state.session) return;
      // A claim or release happened while this was in flight: what it says about claims may be older.
      if (epoch !== state.actionEpoch) {
        again = true;
        return;
      }
      setReachable(true);
      state.worklist = items;
      state.loaded = true;
      state.updatedAt = new Date();
      noteSelectedInWorklist();
      renderWorklist();
      renderConsult();
    } catch (err) {
      if (err?.status === 401) return;
      if (err?.status === 403) {
        showAction({ kind: 'error', text: () => t('errForbidden') });
        return;
      }
      setReachable(false);
    }
  })();
  try {
    await inflight;
  } finally {
    inflight = null;
    if (again) {
      again = false;
      setTimeout(() => void refresh(), 0);
    }
  }
  return undefined;
}

function setReachable(value) {
  state.reachable = value;
  $('#banner').hidden = value || !state.session;
}

/** Follows the selected consult in the worklist: its claim, or its leaving the list (reported, maybe by someone else). */
function noteSelectedInWorklist() {
  const item = state.worklist.find((c) => c.consultId === state.selectedId);
  state.inWorklist = Boolean(item);
  state.liveClaim = item?.claimedBy ?? null;
  if (item) state.goneChecked = false;
  else if (state.selectedId && state.detail && !state.detail.report && !state.goneChecked) {
    state.goneChecked = true;
    void loadDetail(state.selectedId, { quiet: true });
  }
}

let pollTimer = 0;
function startPolling() {
  if (!pollTimer) pollTimer = setInterval(() => void refresh(), POLL_MS);
}
function stopPolling() {
  clearInterval(pollTimer);
  pollTimer = 0;
}

// ---------------------------------------------------------------------------------------------- selection

function select(id) {
  if (id === state.selectedId && state.detailState !== 'error') {
    updateSelection();
    return;
  }
  state.selectedId = id;
  writeHash();
  updateSelection();
  $('#consult-pane').scrollTop = 0;
  $('#side-col').scrollTop = 0;
  void loadDetail(id);
}

function resetConsult() {
  state.detail = null;
  state.detailState = state.selectedId ? 'loading' : 'none';
  state.detailError = null;
  state.instanceKey = null;
  state.action = null;
  state.attempted = false;
  state.goneChecked = false;
  state.lastClaimAt = 0;
  state.draft = state.selectedId ? loadDraft(state.selectedId) : null;
  const item = state.worklist.find((c) => c.consultId === state.selectedId);
  state.inWorklist = Boolean(item);
  state.liveClaim = item?.claimedBy ?? null;
  images.clear();
}

let detailToken = 0;

/** Reads one consult. `quiet`: keep showing what is there while it loads (a re-read after it left the list). */
async function loadDetail(id, { quiet = false } = {}) {
  const token = ++detailToken;
  if (!quiet) {
    resetConsult();
    renderConsult(true);
  }
  try {
    const detail = await api(`/api/v1/consults/${encodeURIComponent(id)}`);
    if (token !== detailToken || id !== state.selectedId) return;
    state.detail = detail;
    state.detailState = 'ready';
    state.detailError = null;
    if (!state.loaded) state.liveClaim = detail.claimedBy;
    // Read again after a claim or release: what it says about the claim is now the newest.
    if (quiet && !state.inWorklist && !detail.report) state.liveClaim = detail.claimedBy;
  } catch (err) {
    if (token !== detailToken || id !== state.selectedId) return;
    if (err?.status === 401) return;
    if (!quiet || !state.detail) {
      state.detailState = 'error';
      state.detailError = err;
    }
  }
  renderConsult(true);
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.selectedId = params.get('consult');
}

function writeHash() {
  const hash = state.selectedId ? `#consult=${encodeURIComponent(state.selectedId)}` : '';
  history.replaceState(null, '', hash || location.pathname + location.search);
}

function resetWork() {
  state.worklist = [];
  state.loaded = false;
  state.updatedAt = null;
  for (const li of rows.values()) li.remove();
  rows.clear();
  detailToken++;
  resetConsult();
  state.detailState = 'none';
  viewer.show(null);
  renderedSig = { head: '', findings: '', report: '', thumbs: '' };
}

// ---------------------------------------------------------------------------------------------- the consult

/** What the selected consult is, for the head and the report: reported, mine, taken, queued, or gone. */
function claimState() {
  const d = state.detail;
  if (!d) return { kind: 'none' };
  if (d.report) return { kind: 'reported' };
  let holder;
  if (state.inWorklist) holder = state.liveClaim;
  else if (!state.loaded) holder = d.claimedBy;
  else return { kind: 'gone' };
  if (!holder) return { kind: 'queued' };
  return isMe(holder) ? { kind: 'mine' } : { kind: 'taken', who: holder };
}

const instanceKey = (i) => `${i.sopInstanceUid}/${i.contentSha256}`;

function currentInstance() {
  const instances = state.detail?.instances ?? [];
  return instances.find((i) => instanceKey(i) === state.instanceKey) ?? instances.find((i) => i.previewUrl) ?? instances[0] ?? null;
}

let renderedSig = { head: '', findings: '', report: '', thumbs: '' };

function renderConsult(force = false) {
  const placeholder = $('#no-selection');
  const article = $('#consult');
  if (force) renderedSig = { head: '', findings: '', report: '', thumbs: '' };
  if (!state.selectedId || state.detailState !== 'ready') {
    article.hidden = true;
    placeholder.hidden = false;
    viewer.show(null);
    if (state.detailState === 'error') {
      const err = state.detailError;
      placeholder.replaceChildren(
        h('p', { class: 'placeholder-error' }, err?.status === 404 ? t('consultNotFound') : `${t('consultLoadFailed')} ${errorText(err)}`),
        err?.status === 404 ? null : h('button', { type: 'button', class: 'secondary', onclick: () => void loadDetail(state.selectedId) }, t('retry')),
      );
    } else placeholder.replaceChildren(h('p', {}, state.selectedId ? t('loading') : t('noSelection')));
    return;
  }
  placeholder.hidden = true;
  article.hidden = false;
  const claim = claimState();
  const instance = currentInstance();
  const mode = claim.kind === 'mine' ? 'edit' : claim.kind === 'reported' ? 'signed' : 'view';

  const headSig = JSON.stringify([state.lang, state.detail.consult, claim, state.busy]);
  if (headSig !== renderedSig.head) {
    renderedSig.head = headSig;
    renderHead(claim);
  }
  // The age moves on by itself; only its text changes, so focus stays on the head's buttons.
  const received = new Date(state.detail.consult.receivedAt);
  const receivedText = `${fmtTime(received)} ${fmtDate(received)} (${fmtAge(received)})`;
  const receivedEl = $('#received-at');
  if (receivedEl && receivedEl.textContent !== receivedText) receivedEl.textContent = receivedText;
  renderAction();
  const thumbsSig = JSON.stringify([state.lang, state.selectedId, state.detail.instances.map(instanceKey), instance && instanceKey(instance)]);
  if (thumbsSig !== renderedSig.thumbs) {
    renderedSig.thumbs = thumbsSig;
    renderThumbs(instance);
  }
  const findingsSig = JSON.stringify([state.lang, state.selectedId, instance && instanceKey(instance), mode, Boolean(state.detail.report)]);
  if (findingsSig !== renderedSig.findings) {
    renderedSig.findings = findingsSig;
    renderFindings(instance, mode);
  }
  const reportSig = JSON.stringify([state.lang, state.selectedId, claim, state.detail.report?.signedAt ?? null]);
  if (reportSig !== renderedSig.report) {
    renderedSig.report = reportSig;
    renderReport(claim);
  }
  updateChoiceMarks();
  viewer.show(instance);
}

function fact(label, value, attrs = {}, ddAttrs = {}) {
  return value ? h('div', { class: 'fact', ...attrs }, h('dt', {}, `${label}:`), h('dd', ddAttrs, value)) : null;
}

function renderHead(claim) {
  const c = state.detail.consult;
  const received = new Date(c.receivedAt);
  const claimBox = h('div', { class: `ch-claim claim-${claim.kind}` });
  const stateText = {
    queued: t('claimStateQueued'),
    mine: t('claimStateMine'),
    taken: t('claimStateTaken', { who: claim.who }),
    reported: t('claimStateReported'),
    gone: t('claimStateGone'),
  }[claim.kind];
  const icon = claim.kind === 'taken' ? lockIcon() : claim.kind === 'mine' ? penIcon() : claim.kind === 'reported' ? checkIcon() : null;
  claimBox.append(h('p', { class: 'claim-state', id: 'claim-state' }, icon, stateText));
  if (claim.kind === 'queued' || claim.kind === 'taken') {
    claimBox.append(
      h('button', { type: 'button', class: 'primary', id: 'claim-button', disabled: claim.kind === 'taken' || state.busy !== null, onclick: () => void claimConsult() }, t('claim')),
    );
  } else if (claim.kind === 'mine') {
    claimBox.append(h('button', { type: 'button', class: 'secondary', id: 'release-button', disabled: state.busy !== null, onclick: () => void releaseConsult() }, t('release')));
  }
  $('#consult-head').replaceChildren(
    h(
      'div',
      { class: 'ch-main' },
      h('h2', { class: 'ch-title' }, t('consultTitle', { id: c.stationId })),
      h(
        'dl',
        { class: 'facts' },
        fact(t('receivedAt'), `${fmtTime(received)} ${fmtDate(received)} (${fmtAge(received)})`, {}, { id: 'received-at' }),
        fact(t('reasonLabel'), c.reason === 'requested' ? t('reasonRequested') : t('reasonPolicy')),
        fact(t('noteLabel'), c.note, { class: 'fact fact-note' }),
        fact(t('studyUid'), c.studyInstanceUid, { class: 'fact fact-uid', title: c.studyInstanceUid }),
      ),
    ),
    h('div', { class: 'ch-priority' }, h('span', { class: 'ch-priority-label' }, t('priority')), badge(c.priority, 'badge-lg')),
    claimBox,
  );
}

function showAction(action) {
  state.action = action;
  renderAction();
}

function renderAction() {
  const box = $('#action-msg');
  const a = state.action;
  const text = a ? a.text() : '';
  box.hidden = !a;
  const cls = `action-msg ${a?.kind ?? ''}`;
  if (box.className !== cls) box.className = cls;
  if (box.textContent !== text) box.textContent = text;
}

// ---------------------------------------------------------------------------------------------- claim and release

async function claimConsult() {
  const id = state.selectedId;
  state.busy = 'claim';
  state.action = null;
  renderConsult();
  try {
    await api(`/api/v1/consults/${encodeURIComponent(id)}/claim`, { method: 'POST' });
    if (id !== state.selectedId) return;
    state.actionEpoch++;
    state.inWorklist = true;
    state.liveClaim = state.session?.username ?? null;
    state.lastClaimAt = Date.now();
  } catch (err) {
    if (id !== state.selectedId || err?.status === 401) return;
    state.actionEpoch++;
    if (err?.status === 409) {
      // Someone else was faster. Their name comes from the worklist, read again just below.
      state.action = {
        kind: 'error',
        text: () => {
          const who = state.worklist.find((c) => c.consultId === id)?.claimedBy;
          return who && !isMe(who) ? t('errClaimConflictWho', { who }) : t('errClaimConflict');
        },
      };
    } else if (err?.status === 404) state.action = { kind: 'error', text: () => t('errClaimGone') };
    else state.action = { kind: 'error', text: () => errorText(err) };
  } finally {
    state.busy = null;
    renderConsult();
  }
  await refresh();
}

async function releaseConsult() {
  const id = state.selectedId;
  state.busy = 'release';
  state.action = null;
  renderConsult();
  try {
    await api(`/api/v1/consults/${encodeURIComponent(id)}/release`, { method: 'POST' });
    if (id !== state.selectedId) return;
    state.actionEpoch++;
    state.liveClaim = null;
    state.attempted = false;
    state.action = { kind: 'info', text: () => t('released') };
  } catch (err) {
    if (id !== state.selectedId || err?.status === 401) return;
    state.actionEpoch++;
    state.action = { kind: 'error', text: () => (err?.status === 409 ? t('errReleaseConflict') : errorText(err)) };
  } finally {
    state.busy = null;
    renderConsult();
  }
  await refresh();
}

/** While the radiologist writes, the claim is renewed now and then, so that a long report does not lose it. */
function keepClaim() {
  if (claimState().kind !== 'mine' || Date.now() - state.lastClaimAt < RECLAIM_MS) return;
  state.lastClaimAt = Date.now();
  void api(`/api/v1/consults/${encodeURIComponent(state.selectedId)}/claim`, { method: 'POST' }).catch(() => undefined);
}

// ---------------------------------------------------------------------------------------------- images and thumbnails

/** Image bytes need the bearer token, so they are fetched, kept per consult as blobs, and shown via blob URLs. */
const images = {
  blobs: new Map(),
  urls: [],
  blob(url) {
    let p = this.blobs.get(url);
    if (!p) {
      p = api(url, { as: 'blob' });
      this.blobs.set(url, p);
      p.catch(() => this.blobs.delete(url));
    }
    return p;
  },
  async objectUrl(url) {
    const u = URL.createObjectURL(await this.blob(url));
    this.urls.push(u);
    return u;
  },
  clear() {
    this.blobs.clear();
    for (const u of this.urls) URL.revokeObjectURL(u);
    this.urls = [];
  },
};

function renderThumbs(instance) {
  const thumbs = $('#thumbs');
  const instances = state.detail.instances;
  if (instances.length < 2) {
    thumbs.hidden = true;
    thumbs.replaceChildren();
    return;
  }
  thumbs.hidden = false;
  thumbs.setAttribute('aria-label', t('imagesOfStudy'));
  thumbs.replaceChildren(
    ...instances.map((inst, index) => {
      const kind = inst.result?.applicable ? inst.result.priority : 'na';
      const img = h('img', { alt: '', width: '64', height: '64' });
      if (inst.previewUrl) {
        void images
          .objectUrl(inst.previewUrl)
          .then((u) => (img.src = u))
          .catch(() => undefined);
      }
      return h(
        'button',
        {
          type: 'button',
          role: 'tab',
          class: 'thumb',
          'aria-selected': String(instanceKey(inst) === (instance && instanceKey(instance))),
          onclick: () => {
            state.instanceKey = instanceKey(inst);
            renderConsult();
          },
        },
        inst.previewUrl ? img : h('span', { class: 'thumb-empty', 'aria-hidden': 'true' }, '—'),
        h('span', { class: 'thumb-label' }, t('imageN', { i: index + 1 })),
        h('span', { class: `thumb-dot dot-${kind}` }),
      );
    }),
  );
}

// ---------------------------------------------------------------------------------------------- AI findings

/** The AI findings of the whole consult by code (the most probable one where images disagree). */
function consultFindings() {
  const byCode = new Map();
  for (const inst of state.detail?.instances ?? []) {
    if (!inst.result?.applicable) continue;
    for (const f of inst.result.findings) {
      const known = byCode.get(f.code);
      if (!known || (f.positive && !known.positive) || (f.positive === known.positive && f.probability > known.probability)) byCode.set(f.code, f);
    }
  }
  return byCode;
}

const positiveFindings = () => [...consultFindings().values()].filter((f) => f.positive);

function choiceGroup(f) {
  const name = findingName(f);
  return h(
    'div',
    { class: 'choice', role: 'group', 'aria-label': t('opinionOn', { name }), dataset: { code: f.code } },
    h('button', { type: 'button', class: 'choice-agree', 'aria-pressed': 'false', dataset: { agree: 'true' } }, checkIcon(), t('agree')),
    h('button', { type: 'button', class: 'choice-disagree', 'aria-pressed': 'false', dataset: { agree: 'false' } }, crossIcon(), t('disagree')),
  );
}

function verdictChip(agree) {
  return h('span', { class: `verdict ${agree ? 'verdict-agree' : 'verdict-disagree'}` }, agree ? checkIcon() : crossIcon(), agree ? t('agree') : t('disagree'));
}

function consultFindingItem(f, mode) {
  const signed = mode === 'signed' ? state.detail.report.findings.find((x) => x.code === f.code) : null;
  const extras = [mode === 'edit' ? choiceGroup(f) : null, signed ? h('div', { class: 'f-verdict' }, verdictChip(signed.agree)) : null];
  return findingItem(f, { t, lang: state.lang, extras });
}

function belowOpen() {
  try {
    return localStorage.getItem(BELOW_OPEN_KEY) === 'true';
  } catch {
    return false;
  }
}

function renderFindings(instance, mode) {
  const box = $('#findings');
  const out = [h('h3', { class: 'panel-title' }, t('aiResult'), state.detail.instances.length > 1 && instance ? h('span', { class: 'panel-sub' }, ` · ${t('imageN', { i: state.detail.instances.indexOf(instance) + 1 })}`) : null)];
  const result = instance?.result;
  if (!result) {
    out.push(h('p', { class: 'hint' }, t('noResult')));
    box.replaceChildren(...out);
    return;
  }
  if (!result.applicable) {
    out.push(notApplicableNotice(result, { t, lang: state.lang }));
  } else {
    const positives = result.findings.filter((f) => f.positive);
    const negatives = result.findings.filter((f) => !f.positive);
    out.push(...resultHeadParts(result, { t, tn, badge, priorityLabel: t('aiPriority') }));
    const order = (a, b) => b.probability - a.probability || a.code.localeCompare(b.code);
    if (positives.length > 0) {
      out.push(h('h4', { class: 'findings-title' }, t('findingsAbove')), h('ul', { class: 'findings findings-above' }, [...positives].sort(order).map((f) => consultFindingItem(f, mode))));
    }
    if (negatives.length > 0) {
      const details = h(
        'details',
        { class: 'below-list', open: belowOpen() },
        h('summary', {}, tn('findingsBelow', negatives.length)),
        h('ul', { class: 'findings findings-below' }, [...negatives].sort(order).map((f) => consultFindingItem(f, mode))),
      );
      details.addEventListener('toggle', () => {
        try {
          localStorage.setItem(BELOW_OPEN_KEY, String(details.open));
        } catch {
          // not remembered
        }
      });
      out.push(details);
    }
  }
  const model = modelLine(result, { t });
  if (model) out.push(model);
  box.replaceChildren(...out);
}

$('#findings').addEventListener('click', (event) => {
  const button = event.target.closest('.choice button');
  if (!button || !state.draft || claimState().kind !== 'mine') return;
  const code = button.closest('.choice').dataset.code;
  const agree = button.dataset.agree === 'true';
  // A second press on the chosen answer takes it back (a below-threshold finding may stay unanswered).
  if (state.draft.findings[code] === agree) delete state.draft.findings[code];
  else state.draft.findings[code] = agree;
  saveDraft();
  keepClaim();
  updateChoiceMarks();
});

/** Shows the chosen answers, what is still missing after a sign attempt, and the progress line of the form. */
function updateChoiceMarks() {
  const chosen = state.draft?.findings ?? {};
  for (const group of document.querySelectorAll('#findings .choice')) {
    const value = chosen[group.dataset.code];
    for (const b of group.querySelectorAll('button')) b.setAttribute('aria-pressed', String(value !== undefined && String(value) === b.dataset.agree));
    const li = group.closest('li.finding');
    const missing = state.attempted && li.classList.contains('above') && value === undefined;
    li.classList.toggle('needs-choice', missing);
    li.querySelector('.f-need')?.remove();
    if (missing) li.querySelector('.f-text').after(h('span', { class: 'f-need' }, warnIcon(), t('needsChoice')));
  }
  const progress = $('#review-progress');
  if (progress) {
    const positives = positiveFindings();
    const done = positives.filter((f) => chosen[f.code] !== undefined).length;
    progress.textContent = positives.length === 0 ? t('reviewNone') : t('reviewProgress', { done, total: positives.length });
    progress.classList.toggle('complete', done === positives.length);
  }
}

// ---------------------------------------------------------------------------------------------- the report

function emptyDraft() {
  return { findings: {}, added: [], impression: '', recommendation: '' };
}

function loadDraft(id) {
  try {
    const d = JSON.parse(sessionStorage.getItem(DRAFT_PREFIX + id) ?? 'null');
    if (d && typeof d === 'object') return { ...emptyDraft(), ...d };
  } catch {
    // a fresh draft
  }
  return emptyDraft();
}

function saveDraft() {
  if (!state.selectedId || !state.draft) return;
  try {
    sessionStorage.setItem(DRAFT_PREFIX + state.selectedId, JSON.stringify(state.draft));
  } catch {
    // kept on the page only
  }
}

function renderReport(claim) {
  const box = $('#report');
  if (claim.kind === 'reported') {
    box.replaceChildren(...signedReport(state.detail.report));
    box.className = 'report-panel signed';
    return;
  }
  box.className = 'report-panel';
  const editable = claim.kind === 'mine';
  const hint = { queued: t('reportHintQueued'), taken: t('reportHintTaken', { who: claim.who }), gone: t('reportHintGone'), mine: t('reportHintMine') }[claim.kind] ?? '';
  const d = state.draft ?? emptyDraft();
  const addedList = h('ul', { class: 'added-list', id: 'added-list' });
  const addButton = h('button', { type: 'button', class: 'secondary small', id: 'add-finding' }, '+ ', t('addFinding'));
  const impression = h('textarea', { id: 'impression', rows: '4', maxlength: '10000', value: d.impression, 'aria-describedby': 'impression-error' });
  const recommendation = h('textarea', { id: 'recommendation', rows: '2', maxlength: '10000', value: d.recommendation });
  const errors = h('div', { class: 'form-msg error', id: 'report-errors', role: 'alert', hidden: true });
  const signButton = h('button', { type: 'submit', class: 'primary sign', id: 'sign-button' }, t('sign'));

  const addRow = (value, focus) => {
    const input = h('input', { type: 'text', maxlength: '200', value, placeholder: t('addedPlaceholder'), 'aria-label': t('addedFindings') });
    const li = h('li', {}, input, h('button', { type: 'button', class: 'icon-button', title: t('removeFinding'), 'aria-label': t('removeFinding') }, crossIcon()));
    addedList.append(li);
    if (focus) input.focus();
    addButton.disabled = addedList.children.length >= 50;
  };
  for (const v of d.added) addRow(v, false);

  const fieldset = h(
    'fieldset',
    { class: 'report-fields', disabled: !editable },
    editable ? h('p', { class: 'review-progress', id: 'review-progress' }) : null,
    h('div', { class: 'field' }, h('span', { class: 'field-label', id: 'added-label' }, t('addedFindings'), ' ', h('small', {}, `(${t('optional')})`)), addedList, addButton),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'impression', class: 'field-label' }, t('impression'), ' ', h('small', { class: 'req' }, `(${t('required')})`)),
      impression,
      h('p', { class: 'field-error', id: 'impression-error', hidden: true }),
    ),
    h('div', { class: 'field' }, h('label', { for: 'recommendation', class: 'field-label' }, t('recommendation'), ' ', h('small', {}, `(${t('optional')})`)), recommendation),
    errors,
    h('div', { class: 'sign-row' }, signButton, h('p', { class: 'sign-note' }, t('signNote'))),
  );
  const form = h('form', { id: 'report-form', novalidate: true }, fieldset);

  const collect = () => {
    if (!state.draft) return;
    state.draft.impression = impression.value;
    state.draft.recommendation = recommendation.value;
    state.draft.added = [...addedList.querySelectorAll('input')].map((i) => i.value);
    saveDraft();
    keepClaim();
    if (state.attempted) validate(false);
  };
  form.addEventListener('input', collect);
  addButton.addEventListener('click', () => {
    addRow('', true);
    collect();
  });
  addedList.addEventListener('click', (event) => {
    const b = event.target.closest('.icon-button');
    if (!b) return;
    b.closest('li').remove();
    addButton.disabled = addedList.children.length >= 50;
    collect();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    void signReport();
  });

  box.replaceChildren(h('h3', { class: 'panel-title' }, t('report')), h('p', { class: `report-hint hint-${claim.kind}` }, hint), form);
  if (state.attempted && editable) validate(false);
}

/** Checks the form; shows what is missing when `focus` (a sign attempt) or once an attempt was made. */
function validate(focus) {
  const d = state.draft ?? emptyDraft();
  const problems = [];
  const impressionMissing = !d.impression.trim();
  const missing = positiveFindings().filter((f) => d.findings[f.code] === undefined);
  if (impressionMissing) problems.push(t('errImpression'));
  if (missing.length > 0) problems.push(tn('errChoices', missing.length, { names: missing.map(findingName).join(', ') }));
  const impression = $('#impression');
  const impressionError = $('#impression-error');
  if (impression) {
    impression.setAttribute('aria-invalid', String(state.attempted && impressionMissing));
    impressionError.hidden = !(state.attempted && impressionMissing);
    impressionError.textContent = t('errImpression');
  }
  const errors = $('#report-errors');
  if (errors) {
    errors.hidden = problems.length === 0;
    errors.replaceChildren(...(problems.length ? [h('strong', {}, t('notSigned')), ' ', problems.join(' ')] : []));
  }
  updateChoiceMarks();
  if (focus && problems.length > 0) {
    const first = missing.length > 0 ? document.querySelector(`#findings li.finding[data-code="${CSS.escape(missing[0].code)}"] .choice button`) : impression;
    first?.scrollIntoView({ block: 'center' });
    first?.focus({ preventScroll: true });
  }
  return problems.length === 0;
}

async function signReport() {
  if (claimState().kind !== 'mine' || state.busy) return;
  state.attempted = true;
  if (!validate(true)) return;
  const id = state.selectedId;
  const d = state.draft;
  const known = consultFindings();
  const body = {
    impression: d.impression.trim(),
    findings: Object.entries(d.findings)
      .filter(([code, agree]) => known.has(code) && typeof agree === 'boolean')
      .map(([code, agree]) => ({ code, agree })),
  };
  const added = d.added.map((s) => s.trim()).filter(Boolean);
  if (added.length > 0) body.addedFindings = added;
  if (d.recommendation.trim()) body.recommendation = d.recommendation.trim();
  state.busy = 'sign';
  const button = $('#sign-button');
  button.disabled = true;
  button.textContent = t('signing');
  try {
    const report = await api(`/api/v1/consults/${encodeURIComponent(id)}/report`, { method: 'POST', body });
    if (id !== state.selectedId) return;
    state.detail = { ...state.detail, report };
    try {
      sessionStorage.removeItem(DRAFT_PREFIX + id);
    } catch {
      // nothing stored
    }
    state.attempted = false;
    state.actionEpoch++;
    const station = state.detail.consult.stationId;
    state.action = { kind: 'ok', text: () => t('signedJustNow', { id: station }) };
  } catch (err) {
    if (id !== state.selectedId || err?.status === 401) return;
    let text = () => errorText(err);
    if (err?.status === 409) {
      const holder = await api(`/api/v1/consults/${encodeURIComponent(id)}`)
        .then((x) => x.claimedBy)
        .catch(() => null);
      text = holder && !isMe(holder) ? () => t('errReportTaken', { who: holder }) : () => t('errReportConflict');
      state.actionEpoch++;
      state.liveClaim = holder;
    }
    state.action = { kind: 'error', text };
  } finally {
    state.busy = null;
    renderConsult(true);
  }
  if ($('#action-msg') && !$('#action-msg').hidden) $('#action-msg').scrollIntoView({ block: 'nearest' });
  await refresh();
}

function signedReport(report) {
  const byCode = consultFindings();
  const signer = isMe(report.signedBy) && state.session?.displayName && state.session.displayName !== report.signedBy ? `${state.session.displayName} (${report.signedBy})` : report.signedBy;
  const block = (title, ...content) => h('div', { class: 'signed-block' }, h('h4', {}, title), ...content);
  return [
    h('h3', { class: 'panel-title' }, t('report'), ' ', h('span', { class: 'chip-ok' }, checkIcon(), t('signedChip'))),
    h('p', { class: 'signed-by', id: 'signed-by' }, t('signedBy', { who: signer, time: fmtDateTime(new Date(report.signedAt)) })),
    block(t('impression'), h('p', { class: 'signed-text', id: 'signed-impression' }, report.impression)),
    block(t('recommendation'), h('p', { class: 'signed-text', id: 'signed-recommendation' }, report.recommendation || t('none'))),
    block(
      t('aiOpinions'),
      report.findings.length === 0
        ? h('p', { class: 'hint' }, t('none'))
        : h(
            'ul',
            { class: 'signed-list', id: 'signed-findings' },
            report.findings.map((f) => {
              const finding = byCode.get(f.code);
              return h('li', {}, h('span', {}, finding ? findingName(finding) : f.code), verdictChip(f.agree));
            }),
          ),
    ),
    block(
      t('addedFindings'),
      report.addedFindings.length === 0
        ? h('p', { class: 'hint' }, t('none'))
        : h(
            'ul',
            { class: 'signed-list', id: 'signed-added' },
            report.addedFindings.map((s) => h('li', {}, s)),
          ),
    ),
  ];
}

// ---------------------------------------------------------------------------------------------- the viewer

/** Fetches with the session's token, then decodes through a blob URL that is revoked once drawn. */
async function authenticatedImage(url) {
  const blob = await images.blob(url);
  const objectUrl = URL.createObjectURL(blob);
  try {
    const img = new Image();
    img.decoding = 'async';
    img.src = objectUrl;
    await img.decode();
    return img;
  } finally {
    URL.revokeObjectURL(objectUrl);
  }
}

const viewer = new Viewer({ t, formatDecimal: fmtDecimal, loadImage: authenticatedImage, mount: $('#viewer-col') });

// ---------------------------------------------------------------------------------------------- language

function applyLang() {
  translateDocument(state.lang, t);
  list.setAttribute('aria-label', t('worklist'));
  signIn.render();
  if (state.session) {
    renderUser();
    renderWorklist();
    renderConsult(true);
  }
  viewer.relabel();
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
viewer.setTool('wl');
applyLang();
if (state.session) showWork();
else showSignIn(null);
// Ages ("12 min ago") move on between polls too.
setInterval(() => {
  if (state.session && state.loaded) {
    renderWorklist();
    renderConsult();
  }
}, 30_000);
