// The radiographer's page: today's studies, live, with the AI result, an image viewer and the heatmap; the remote
// consult with the hospital (request, its state, the radiologist's report) and the hospital link in the header.
// Plain ES module, no framework, no build step, nothing from outside the station.
import { LANGS, strings, errorText } from './i18n.js';
import { findingItem, modelLine, notApplicableNotice, resultHeadParts } from '/shared/ai-result.js';
import { Viewer } from '/shared/viewer.js';
import {
  createWords,
  fmtDate,
  fmtDecimal as fmtDecimalIn,
  fmtTime,
  h,
  sameDay,
  savedLang,
  svgIcon,
  syncKeyedList,
  translateDocument,
  wireLangButtons,
  wireListbox,
} from '/shared/page-kit.js';

const LANG_KEY = 'cxr-edge.lang';
const POLL_MS = 10_000;
const LINK_POLL_MS = 5_000;
const DEBOUNCE_MS = 200;
const FETCH_TIMEOUT_MS = 8_000;

const $ = (selector) => document.querySelector(selector);

const state = {
  lang: savedLang(LANG_KEY, LANGS),
  /** Studies as GET /api/studies returns them (today's, or all with "show all"). */
  studies: [],
  /** The selected study when it is not in the list (an older one): a StudyView, 'gone' or null. */
  extra: null,
  showAll: false,
  selectedUid: null,
  selectedInstanceId: null,
  health: null,
  /** 'connecting' | 'live' | 'down': the event stream. */
  sse: 'connecting',
  reachable: true,
  loaded: false,
  /** Study UIDs already seen, to tell new arrivals apart. */
  known: null,
  /** GET /api/link: the hospital link; null while unknown (not asked yet, or the agent did not answer). */
  link: null,
  /** The page is open to the station's network: radiographers sign in (GET /api/session). */
  signInRequired: false,
  /** The signed-in account ({ username }) when sign-in is on. */
  user: null,
  /** Studies are shown and followed (false on the sign-in screen: nothing of a patient is on the page). */
  live: false,
};

/** The consult request form of the open study: open or not, the note being typed, sending, the last error (a key). */
const consultUi = { uid: null, open: false, note: '', sending: false, error: null };

// ---------------------------------------------------------------------------------------------- words and formats

const { t, tn } = createWords(strings, () => state.lang);
const fmtDecimal = (x, digits) => fmtDecimalIn(x, digits, state.lang);

/** DICOM DA (yyyymmdd) as dd/mm/yyyy. */
function dicomDate(value) {
  const m = /^(\d{4})(\d{2})(\d{2})$/.exec(value ?? '');
  return m ? `${m[3]}/${m[2]}/${m[1]}` : null;
}

const isToday = (date) => sameDay(date, new Date());

function startOfToday() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d;
}

/** "12:38" today, "22/11/2026 12:38" on other days. */
function fmtReceived(date) {
  return isToday(date) ? fmtTime(date) : `${fmtDate(date)} ${fmtTime(date)}`;
}

const personName = (name) => (name ? name.replace(/\^+/g, ' ').trim() : '');

// ---------------------------------------------------------------------------------------------- what a study says

function latestReceived(study) {
  let latest = study.receivedAt;
  for (const i of study.instances) if (i.receivedAt > latest) latest = i.receivedAt;
  return new Date(latest);
}

function positiveCodes(instances) {
  const codes = new Set();
  for (const i of instances) {
    if (i.status === 'inferred' && i.result?.applicable) for (const f of i.result.findings) if (f.positive) codes.add(f.code);
  }
  return codes;
}

/** The badge kind of a study: its priority, or processing / failed / not applicable while it has none. */
function studyBadge(study) {
  const inst = study.instances;
  if (study.priority) return study.priority;
  if (inst.some((i) => i.status === 'received')) return 'processing';
  if (inst.some((i) => i.status === 'inferred')) return 'notApplicable';
  if (inst.some((i) => i.status === 'failed')) return 'failed';
  return 'processing';
}

function badgeText(kind) {
  return kind === 'notApplicable' ? t('notApplicableBadge') : t(kind);
}

function badge(kind, extraClass = '') {
  return h(
    'span',
    { class: `badge badge-${kind} ${extraClass}`.trim() },
    kind === 'processing' ? h('span', { class: 'spinner', 'aria-hidden': 'true' }) : null,
    kind === 'failed' ? warnIcon() : null,
    badgeText(kind),
  );
}

function warnIcon() {
  return svgIcon('M12 3 2 20h20L12 3zm0 6v5m0 3v.5');
}

const checkIcon = () => svgIcon('M4 12.5l5 5L20 6.5', { width: '2.6' });
const sendIcon = () => svgIcon('M3 11.5 21 3l-8.5 18-2.2-7.3zM10.3 13.7 21 3');
const clockIcon = () => svgIcon('M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zm0 4v5l3.5 2');
const eyeIcon = () => svgIcon('M2 12s3.6-6.5 10-6.5S22 12 22 12s-3.6 6.5-10 6.5S2 12 2 12zm10-3a3 3 0 1 0 0 6 3 3 0 0 0 0-6z');

/** The short summary under the patient's name in the list. */
function studySummary(study) {
  const inst = study.instances;
  const processing = inst.filter((i) => i.status === 'received').length;
  const failed = inst.filter((i) => i.status === 'failed').length;
  const inferred = inst.filter((i) => i.status === 'inferred' && i.result);
  const applicable = inferred.filter((i) => i.result.applicable);
  const parts = [];
  if (applicable.length > 0) {
    const n = positiveCodes(applicable).size;
    parts.push(n > 0 ? tn('positives', n) : t('noneAbove'));
  } else if (processing > 0) parts.push(t('aiReading'));
  else if (inferred.length > 0) parts.push(t('notApplicable'));
  else parts.push(t('failedSummary'));
  const main = parts[0];
  if (failed > 0 && (applicable.length > 0 || inferred.length > 0 || processing > 0)) parts.push(tn('someFailed', failed));
  if (processing > 0 && main !== t('aiReading')) parts.push(tn('someProcessing', processing));
  return parts.join(' · ');
}

function modalityText(study) {
  const mods = [...new Set(study.instances.map((i) => i.modality).filter(Boolean))];
  const parts = [...new Set(study.instances.map((i) => i.bodyPart).filter(Boolean))];
  return [mods.join('/'), parts.join('/')].filter(Boolean).join(' · ');
}

// ---------------------------------------------------------------------------------------------- the list

const list = $('#study-list');
/** li elements by study UID: a row is rebuilt only when what it shows changed. */
const rows = new Map();
const markSelected = wireListbox(list, rows, { datasetKey: 'uid', choose: (uid) => select(uid, null, true) });
const updateSelection = () => markSelected(state.selectedUid);

function visibleStudies() {
  const studies = state.showAll ? state.studies : state.studies.filter((s) => isToday(latestReceived(s)));
  return [...studies].sort((a, b) => latestReceived(b) - latestReceived(a));
}

function rowModel(study) {
  const kind = studyBadge(study);
  return {
    lang: state.lang,
    kind,
    name: personName(study.patient.name) || '—',
    id: study.patient.id ?? '',
    time: fmtReceived(latestReceived(study)),
    images: tn('images', study.instances.length),
    modality: modalityText(study),
    summary: studySummary(study),
    consult: study.consult?.status ?? null,
  };
}

/** The small consult marker of a list row. */
function consultMarker(status) {
  if (!status) return null;
  const key = status === 'reported' ? 'consultListReported' : status === 'claimed' ? 'consultListClaimed' : 'consultListSent';
  return h('span', { class: `row-consult rc-${status}` }, status === 'reported' ? checkIcon() : null, t(key));
}

function fillRow(li, m) {
  li.className = `row row-${m.kind}`;
  li.replaceChildren(
    h(
      'div',
      { class: 'row-top' },
      badge(m.kind),
      consultMarker(m.consult),
      h('span', { class: 'row-time' }, h('time', {}, m.time)),
    ),
    h('div', { class: 'row-patient' }, h('span', { class: 'row-name' }, m.name), m.id ? h('span', { class: 'row-id' }, m.id) : null),
    h('div', { class: 'row-summary' }, m.summary),
    h('div', { class: 'row-meta' }, [m.images, m.modality].filter(Boolean).join(' · ')),
  );
}

function renderList() {
  const studies = visibleStudies();
  syncKeyedList(list, rows, studies, { keyOf: (study) => study.studyInstanceUid, datasetKey: 'uid', rowModel, fillRow });
  updateSelection();

  $('#list-title').textContent = state.showAll ? t('listAll') : t('listToday');
  $('#list-count').textContent = state.loaded ? String(studies.length) : '';
  const empty = $('#list-empty');
  if (studies.length === 0) {
    const ae = state.health?.aeTitle;
    const port = state.health?.dicomPort;
    empty.replaceChildren(
      h('p', { class: 'empty-title' }, state.loaded ? (state.showAll ? t('emptyAll') : t('emptyToday')) : t('loading')),
      state.loaded && ae ? h('p', { class: 'empty-hint' }, t('emptyHint', { ae, port })) : null,
    );
    empty.hidden = false;
  } else empty.hidden = true;
}

$('#show-all').addEventListener('change', (event) => {
  state.showAll = event.target.checked;
  void refresh();
});

// ---------------------------------------------------------------------------------------------- selection

function selectedStudy() {
  if (!state.selectedUid) return null;
  return state.studies.find((s) => s.studyInstanceUid === state.selectedUid) ?? (state.extra?.studyInstanceUid === state.selectedUid ? state.extra : null);
}

function select(uid, instanceId, byUser) {
  const changed = uid !== state.selectedUid;
  state.selectedUid = uid;
  state.selectedInstanceId = instanceId ?? (changed ? null : state.selectedInstanceId);
  if (changed) state.extra = null;
  writeHash();
  updateSelection();
  renderStudy();
  if (!selectedStudy() && uid) void fetchSelected();
  if (byUser && changed) $('#study-pane').scrollTop = 0;
}

async function fetchSelected() {
  const uid = state.selectedUid;
  try {
    const res = await fetch(`/api/studies/${encodeURIComponent(uid)}`, { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (res.status === 401) return sessionEnded();
    if (uid !== state.selectedUid) return;
    state.extra = res.ok ? await res.json() : res.status === 404 ? { studyInstanceUid: uid, gone: true } : null;
  } catch {
    state.extra = null;
  }
  renderStudy();
}

function readHash() {
  const params = new URLSearchParams(location.hash.slice(1));
  state.selectedUid = params.get('study');
  state.selectedInstanceId = Number(params.get('image')) || null;
}

function writeHash() {
  const params = new URLSearchParams();
  if (state.selectedUid) params.set('study', state.selectedUid);
  if (state.selectedUid && state.selectedInstanceId) params.set('image', String(state.selectedInstanceId));
  const hash = params.toString();
  history.replaceState(null, '', hash ? `#${hash}` : location.pathname + location.search);
}

// ---------------------------------------------------------------------------------------------- the study view

let studySig = '';

/** The chosen image, or the first one not replaced by a later version of itself. */
function currentInstance(study) {
  const inst = study.instances;
  const chosen = inst.find((i) => i.id === state.selectedInstanceId);
  if (chosen) return chosen;
  const latest = new Map();
  for (const i of inst) if ((latest.get(i.sopInstanceUid)?.version ?? 0) < i.version) latest.set(i.sopInstanceUid, i);
  return inst.find((i) => latest.get(i.sopInstanceUid) === i) ?? inst[0] ?? null;
}

function latestVersion(study, instance) {
  let v = instance.version;
  for (const i of study.instances) if (i.sopInstanceUid === instance.sopInstanceUid && i.version > v) v = i.version;
  return v;
}

function renderStudy(force = false) {
  const placeholder = $('#no-selection');
  const article = $('#study');
  const study = selectedStudy();
  if (!study || study.gone) {
    article.hidden = true;
    placeholder.hidden = false;
    placeholder.textContent = !state.selectedUid ? t('noSelection') : study?.gone ? t('studyGone') : t('loading');
    viewer.show(null);
    studySig = '';
    renderConsult(null);
    return;
  }
  renderConsult(study, force);
  const instance = currentInstance(study);
  const sig = JSON.stringify([state.lang, instance?.id, study]);
  if (!force && sig === studySig) return;
  studySig = sig;
  placeholder.hidden = true;
  article.hidden = false;
  renderStudyHead(study);
  renderThumbs(study, instance);
  renderFindings(study, instance);
  viewer.show(instance);
}

function fact(label, value) {
  return value ? h('div', { class: 'fact' }, h('dt', {}, `${label}:`), h('dd', {}, value)) : null;
}

function renderStudyHead(study) {
  const p = study.patient;
  const sex = p.sex === 'M' ? t('sexM') : p.sex === 'F' ? t('sexF') : p.sex === 'O' ? t('sexO') : null;
  const received = latestReceived(study);
  const kind = studyBadge(study);
  $('#study-head').replaceChildren(
    h(
      'div',
      { class: 'sh-main' },
      h('h2', { class: 'sh-name' }, personName(p.name) || '—', study.description ? h('span', { class: 'sh-desc' }, study.description) : null),
      h(
        'dl',
        { class: 'facts' },
        fact(t('patientId'), p.id),
        fact(t('sex'), sex),
        fact(t('birthDate'), dicomDate(p.birthDate)),
        fact(t('studyDate'), dicomDate(study.studyDate) ?? '—'),
        fact(t('receivedAt'), `${fmtTime(received)} ${fmtDate(received)}`),
        fact(t('accession'), study.accessionNumber),
      ),
    ),
    h('div', { class: 'sh-priority' }, h('span', { class: 'sh-priority-label' }, t('priority')), badge(kind, 'badge-lg')),
  );
}

function renderThumbs(study, instance) {
  const thumbs = $('#thumbs');
  if (study.instances.length < 2) {
    thumbs.hidden = true;
    thumbs.replaceChildren();
    return;
  }
  thumbs.hidden = false;
  thumbs.setAttribute('aria-label', t('imagesOfStudy'));
  thumbs.replaceChildren(
    ...study.instances.map((inst, index) => {
      const kind = inst.status === 'failed' ? 'failed' : inst.status === 'received' ? 'processing' : inst.result?.applicable ? inst.result.priority : 'notApplicable';
      return h(
        'button',
        {
          type: 'button',
          role: 'tab',
          class: 'thumb',
          'aria-selected': String(inst.id === instance?.id),
          dataset: { instance: String(inst.id) },
          onclick: () => select(study.studyInstanceUid, inst.id, true),
        },
        inst.previewUrl
          ? h('img', { src: inst.previewUrl, alt: '', loading: 'lazy', decoding: 'async', width: '64', height: '64' })
          : h('span', { class: 'thumb-empty', 'aria-hidden': 'true' }, inst.status === 'failed' ? warnIcon() : h('span', { class: 'spinner' })),
        h('span', { class: 'thumb-label' }, t('imageN', { i: index + 1 }), inst.conflict ? h('small', {}, t('versionN', { v: inst.version })) : null),
        h('span', { class: `thumb-dot dot-${kind}`, title: badgeText(kind) }),
      );
    }),
  );
}

function renderFindings(study, instance) {
  const box = $('#findings');
  const out = [h('h3', { class: 'panel-title' }, t('aiResult'))];
  if (!instance) {
    box.replaceChildren(...out);
    return;
  }
  if (instance.conflict) {
    const latest = latestVersion(study, instance);
    out.push(
      h(
        'div',
        { class: 'notice notice-conflict', role: 'note' },
        h(
          'p',
          { class: 'notice-title' },
          instance.version > 1 ? t('conflict', { v: instance.version }) : t('conflictFirst', { latest }),
        ),
        h('p', {}, t('conflictHint')),
      ),
    );
  }
  if (instance.status === 'received') {
    out.push(h('div', { class: 'notice notice-processing' }, h('p', { class: 'notice-title' }, h('span', { class: 'spinner' }), t('processingImage')), h('p', {}, t('processingHint'))));
  } else if (instance.status === 'failed') {
    const code = instance.error?.code ?? '';
    out.push(
      h(
        'div',
        { class: 'notice notice-error', role: 'alert' },
        h('p', { class: 'notice-title' }, warnIcon(), t('errorTitle')),
        h('p', { class: 'error-text' }, errorText(state.lang, code)),
        code ? h('p', { class: 'error-code', title: instance.error?.message ?? '' }, `${t('errorCode')}: `, h('code', {}, code)) : null,
      ),
    );
  } else if (instance.result) {
    out.push(...resultParts(instance.result));
  }
  box.replaceChildren(...out);
}

/** Most urgent first; the same order as urgencyRank in inference/src/findings/triage.ts (test/page-priority.test.ts). */
const URGENCY_RANK = { stat: 0, urgent: 1, routine: 2 };

function resultParts(result) {
  const parts = [];
  if (!result.applicable) {
    parts.push(notApplicableNotice(result, { t, lang: state.lang }));
  } else {
    parts.push(...resultHeadParts(result, { t, tn, badge, priorityLabel: t('priority') }));
    const sorted = [...result.findings].sort(
      (a, b) => Number(b.positive) - Number(a.positive) || b.probability - a.probability || (URGENCY_RANK[a.priority] ?? 3) - (URGENCY_RANK[b.priority] ?? 3),
    );
    parts.push(h('h4', { class: 'findings-title' }, t('findings')), h('ul', { class: 'findings' }, sorted.map((f) => findingItem(f, { t, lang: state.lang }))));
  }
  const model = modelLine(result, { t });
  if (model) parts.push(model);
  return parts;
}

// ---------------------------------------------------------------------------------------------- the consult

let consultSig = '';
/** The consult status last shown for the open study, to announce a change (sent, being read, report in). */
let consultShown = { uid: null, status: null };

/** What the consult part needs to know of the link: null (unknown), disabled, unauthorized, offline or online. */
function linkKind() {
  const link = state.link;
  if (!link) return null;
  if (link.state === 'disabled' || link.state === 'unauthorized') return link.state;
  // 'offline' before the first attempt (no error, never a success) is not a known outage.
  if (link.state === 'offline' && (link.lastError || link.lastSuccessAt)) return 'offline';
  return 'online';
}

/** dd/mm/yyyy HH:mm */
function fmtDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? '' : `${fmtDate(d)} ${fmtTime(d)}`;
}

/** Finding codes to display names, from the AI results of the study. */
function findingNames(study) {
  const names = {};
  for (const i of study.instances) {
    for (const f of i.result?.findings ?? []) names[f.code] ??= state.lang === 'vi' ? (f.displayVi ?? f.display) : (f.display ?? f.displayVi);
  }
  return names;
}

/** The study can be read at the hospital: at least one image was received well (processing counts: it follows). */
function hasReadableImage(study) {
  return study.instances.some((i) => i.status !== 'failed');
}

function resetConsultUi(uid) {
  Object.assign(consultUi, { uid, open: false, note: '', sending: false, error: null });
}

function renderConsult(study, force = false) {
  const box = $('#consult');
  if (!study || study.gone) {
    if (box.firstChild) box.replaceChildren();
    box.className = 'consult-slot';
    delete box.dataset.status;
    consultSig = '';
    return;
  }
  const uid = study.studyInstanceUid;
  if (consultUi.uid !== uid) resetConsultUi(uid);
  const consult = study.consult;
  const kind = linkKind();
  const sig = JSON.stringify([
    state.lang,
    uid,
    consult,
    study.priority,
    kind,
    consult ? findingNames(study) : [consultUi.open, consultUi.sending, consultUi.error, hasReadableImage(study)],
  ]);
  if (!force && sig === consultSig) return;
  consultSig = sig;
  // A rebuild while typing the note keeps the text, the focus and the caret.
  const active = document.activeElement;
  const typing = active?.id === 'consult-note' ? { start: active.selectionStart, end: active.selectionEnd } : null;
  box.className = `consult-slot${consult ? ` consult-${consult.status}` : ''}`;
  box.dataset.status = consult?.status ?? 'none';
  box.replaceChildren(...(consult ? consultStateParts(study, consult, kind) : consultRequestParts(study, kind)));
  if (typing) {
    const note = $('#consult-note');
    note?.focus();
    note?.setSelectionRange(typing.start, typing.end);
  }
  const status = consult?.status ?? null;
  if (consultShown.uid === uid && consultShown.status !== status && status) $('#live').textContent = t(statusKey(status));
  consultShown = { uid, status };
}

function statusKey(status) {
  return { pending: 'consultPending', queued: 'consultQueued', claimed: 'consultClaimed', reported: 'consultReported' }[status] ?? 'consultPending';
}

/** No consult yet: the button, or the note box with "send". */
function consultRequestParts(study, kind) {
  const disabled = kind === 'disabled';
  const parts = [h('h3', { class: 'panel-title' }, t('consultTitle'))];
  if (!disabled && !consultUi.open) parts.push(h('p', { class: 'hint' }, t('consultIntro')));
  if (!disabled && !hasReadableImage(study)) parts.push(h('p', { class: 'notice notice-unverified consult-noimage' }, t('consultNoImage')));
  if (consultUi.open && !disabled) {
    const note = h('textarea', {
      id: 'consult-note',
      rows: '3',
      maxlength: '2000',
      placeholder: t('consultNotePlaceholder'),
      disabled: consultUi.sending,
      oninput: (e) => (consultUi.note = e.target.value),
      onkeydown: (e) => {
        if (e.key === 'Escape') closeConsultForm();
        else if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
          e.preventDefault();
          void sendConsult(study.studyInstanceUid);
        }
      },
    });
    note.value = consultUi.note;
    parts.push(
      h(
        'form',
        {
          class: 'consult-form',
          onsubmit: (e) => {
            e.preventDefault();
            void sendConsult(study.studyInstanceUid);
          },
        },
        h('label', { for: 'consult-note' }, t('consultNoteLabel')),
        note,
        consultUi.error ? h('p', { class: 'consult-error', role: 'alert' }, t(consultUi.error)) : null,
        h(
          'div',
          { class: 'consult-actions' },
          h('button', { type: 'submit', class: 'btn-primary', id: 'consult-send', disabled: consultUi.sending }, consultUi.sending ? h('span', { class: 'spinner' }) : sendIcon(), consultUi.sending ? t('consultSending') : t('consultSend')),
          h('button', { type: 'button', class: 'btn-secondary', disabled: consultUi.sending, onclick: closeConsultForm }, t('consultCancel')),
        ),
      ),
    );
  } else {
    parts.push(
      h(
        'button',
        {
          type: 'button',
          class: 'btn-primary consult-request',
          id: 'consult-request',
          disabled,
          'aria-describedby': disabled ? 'consult-why' : null,
          onclick: openConsultForm,
        },
        sendIcon(),
        t('consultRequest'),
      ),
    );
    if (disabled) parts.push(h('p', { class: 'consult-why', id: 'consult-why' }, t('consultDisabled')));
  }
  return parts;
}

function openConsultForm() {
  consultUi.open = true;
  consultUi.error = null;
  renderConsult(selectedStudy());
  $('#consult-note')?.focus();
}

function closeConsultForm() {
  consultUi.open = false;
  consultUi.error = null;
  renderConsult(selectedStudy());
  $('#consult-request')?.focus();
}

async function sendConsult(uid) {
  if (consultUi.sending || consultUi.uid !== uid) return;
  consultUi.sending = true;
  consultUi.error = null;
  renderConsult(selectedStudy());
  const note = consultUi.note.trim();
  let error = 'consultError';
  try {
    const res = await fetch(`/api/studies/${encodeURIComponent(uid)}/consult`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(note ? { note } : {}),
      signal: AbortSignal.timeout(FETCH_TIMEOUT_MS),
    });
    if (res.ok) {
      const c = await res.json();
      const study = state.studies.find((s) => s.studyInstanceUid === uid) ?? (state.extra?.studyInstanceUid === uid ? state.extra : null);
      if (study) study.consult = { status: c.status, reason: c.reason, note: c.note, requestedAt: c.requestedAt, ...(c.report ? { report: c.report } : {}) };
      if (consultUi.uid === uid) resetConsultUi(uid);
      renderList();
      renderStudy();
      // The button is gone: the keyboard goes on from the new state line.
      if (state.selectedUid === uid) $('#consult .consult-status')?.focus();
      void refresh();
      void loadLink();
      return;
    }
    let code = null;
    try {
      code = (await res.json())?.error?.code ?? null;
    } catch {
      // no JSON body
    }
    if (res.status === 401) {
      consultUi.sending = false;
      sessionEnded();
      return;
    }
    if (code === 'CXR_NO_GATEWAY') {
      error = 'consultErrorNoGateway';
      void loadLink();
    } else if (res.status === 404) error = 'consultErrorGone';
  } catch {
    // the agent did not answer: consultError
  }
  if (consultUi.uid !== uid) return;
  consultUi.sending = false;
  consultUi.error = error;
  renderConsult(selectedStudy());
}

/** A consult exists: the report when there is one, its state in words, why it was sent, the note, the time. */
function consultStateParts(study, consult, kind) {
  const parts = [];
  const report = consult.status === 'reported' && consult.report ? consult.report : null;
  if (report) parts.push(reportParts(study, report));
  else parts.push(h('h3', { class: 'panel-title' }, t('consultTitle')));
  const icon = { pending: clockIcon, queued: sendIcon, claimed: eyeIcon, reported: checkIcon }[consult.status] ?? clockIcon;
  parts.push(h('p', { class: `consult-status cs-${consult.status}`, tabindex: '-1' }, icon(), t(statusKey(consult.status))));
  if (consult.status === 'pending') {
    const key = kind === 'offline' ? 'consultPendingOffline' : kind === 'unauthorized' ? 'consultPendingUnauthorized' : kind === 'online' ? 'consultPendingOnline' : null;
    if (key) parts.push(h('p', { class: `consult-pending-hint${kind === 'online' ? ' hint' : ''}` }, t(key)));
  }
  const p = study.priority ? t(study.priority) : t('consultReasonPolicyAny');
  parts.push(
    h(
      'dl',
      { class: 'consult-facts' },
      fact(t('consultReason'), consult.reason === 'policy' ? t('consultReasonPolicy', { p }) : t('consultReasonRequested')),
      consult.note ? h('div', { class: 'fact consult-note' }, h('dt', {}, `${t('consultNote')}:`), h('dd', {}, consult.note)) : null,
      fact(t('consultRequestedAt'), fmtDateTime(consult.requestedAt)),
    ),
  );
  return parts;
}

/** The radiologist's signed report, first and plain: impression, recommendation, the AI findings agreed or not. */
function reportParts(study, report) {
  const names = findingNames(study);
  const str = (v) => (typeof v === 'string' && v.trim() ? v : null);
  const findings = Array.isArray(report.findings) ? report.findings.filter((f) => f && typeof f.code === 'string') : [];
  const added = Array.isArray(report.addedFindings) ? report.addedFindings.filter(str) : [];
  const block = (cls, title, ...body) => h('div', { class: `report-block ${cls}` }, h('h4', {}, title), ...body);
  return h(
    'div',
    { class: 'report', role: 'region', 'aria-labelledby': 'report-title' },
    h('h3', { class: 'panel-title report-title', id: 'report-title' }, checkIcon(), t('reportTitle')),
    block('report-impression', t('reportImpression'), h('p', {}, str(report.impression) ?? '—')),
    str(report.recommendation) ? block('report-recommendation', t('reportRecommendation'), h('p', {}, report.recommendation)) : null,
    findings.length > 0
      ? block(
          'report-ai',
          t('reportAiFindings'),
          h(
            'ul',
            {},
            findings.map((f) =>
              h(
                'li',
                { class: f.agree ? 'agree' : 'disagree', dataset: { code: f.code } },
                f.agree ? checkIcon() : svgIcon('M6 6l12 12M18 6 6 18', { width: '2.6' }),
                h('span', { class: 'ra-name' }, names[f.code] ?? f.code),
                ' — ',
                h('span', { class: 'ra-verdict' }, f.agree ? t('reportAgree') : t('reportDisagree')),
              ),
            ),
          ),
        )
      : null,
    added.length > 0 ? block('report-added', t('reportAdded'), h('ul', {}, added.map((a) => h('li', {}, a)))) : null,
    h('p', { class: 'report-signed' }, t('reportSigned', { by: str(report.signedBy) ?? '—', at: report.signedAt ? fmtDateTime(report.signedAt) : '—' })),
  );
}

// ---------------------------------------------------------------------------------------------- the viewer

/** Why an instance has no preview: still processing, failed, or the preview is drawn just after the result. */
function missingImage(instance) {
  if (instance.status === 'received') return 'imageProcessing';
  if (instance.status === 'failed') return 'imageFailed';
  const since = Date.now() - Date.parse(instance.processedAt ?? '');
  return since < 30_000 ? 'imagePreparing' : 'noImage';
}

const viewer = new Viewer({ t, formatDecimal: fmtDecimal, emptyMessage: missingImage, mount: $('#viewer-col') });

// ---------------------------------------------------------------------------------------------- header, language

function renderHeader() {
  const model = state.health?.model;
  const info = $('#model-info');
  if (model) {
    info.replaceChildren(
      h('span', { class: 'model-label' }, `${t('modelLabel')}:`),
      ' ',
      h('span', { class: 'model-name' }, model.name),
      ' ',
      h('span', { class: 'model-version' }, `${t('version')} ${model.version}`),
      // An update from the registry in progress or refused: the model above keeps serving meanwhile.
      ...(model.state === 'downloading' || model.state === 'verifying'
        ? [h('span', { class: 'model-update', 'data-state': model.state }, ` · ${t('modelUpdating')}`)]
        : model.state === 'failed'
          ? [h('span', { class: 'model-update', 'data-state': 'failed', title: model.error ? `${model.error.code}: ${model.error.name}@${model.error.version}` : '' }, ` · ${t('modelUpdateFailed')}`)]
          : []),
    );
    info.title = `sha256 ${model.sha256}${model.source === 'registry' ? ` · ${t('modelFromRegistry')}` : ''}`;
  } else info.replaceChildren(state.health ? t('modelLoading') : '');
  renderConn();
}

function renderConn() {
  const s = !state.reachable ? 'down' : state.sse === 'live' ? 'live' : state.sse === 'connecting' ? 'connecting' : 'polling';
  const conn = $('#conn');
  conn.dataset.state = s;
  const starting = state.health?.status === 'starting' && state.reachable;
  $('#conn-text').textContent =
    s === 'down' ? t('connDown') : starting ? t('connStarting') : s === 'live' ? t('connLive') : s === 'polling' ? t('connPolling') : t('loading');
  $('#banner').hidden = state.reachable;
  renderDisk();
}

/** The disk-full banner: the agent is up but refuses new images until someone frees space. */
function renderDisk() {
  const disk = state.reachable ? state.health?.disk : null;
  $('#disk-banner').hidden = !disk?.full;
  $('#disk-since').textContent = disk?.full && disk.since ? t('diskFullSince', { time: fmtDateTime(disk.since) }) : '';
}

/** The hospital link in words: kind (for the colour), text, and a longer hint for the tooltip. */
function linkView(link) {
  if (!link || !state.reachable) return null;
  const n = link.pendingStudies ?? 0;
  if (link.state === 'disabled') return { kind: 'disabled', text: t('linkDisabled'), hint: t('linkDisabledHint') };
  if (link.state === 'unauthorized') return { kind: 'unauthorized', text: t('linkUnauthorized'), action: t('linkUnauthorizedAction'), hint: t('linkUnauthorizedHint') };
  if (link.state === 'offline' && (link.lastError || link.lastSuccessAt)) {
    return { kind: 'offline', text: n > 0 ? tn('linkOfflineWaiting', n) : t('linkOffline'), hint: t('linkOfflineHint') };
  }
  if (n > 0) return { kind: 'sending', text: tn('linkSending', n), hint: '' };
  if (link.state === 'offline') return { kind: 'idle', text: t('linkIdle'), hint: t('linkIdleHint') };
  return { kind: 'online', text: t('linkOnline'), hint: '' };
}

function renderLink() {
  const el = $('#link');
  const view = linkView(state.link);
  el.hidden = !view;
  if (!view) return;
  el.dataset.state = view.kind;
  // What to do, on a line of its own: the refused code, items the hospital refused for good.
  const extras = [view.action, state.link.failed > 0 ? tn('linkFailed', state.link.failed) : null].filter(Boolean);
  $('#link-text').textContent = view.text;
  const extra = $('#link-extra');
  extra.replaceChildren(...extras.map((line) => h('span', {}, line)));
  extra.hidden = extras.length === 0;
  const last = state.link.lastSuccessAt ? t('linkLastSuccess', { time: fmtDateTime(state.link.lastSuccessAt) }) : null;
  el.title = [view.hint, last, state.link.lastError].filter(Boolean).join('\n');
}

let linkInflight = false;

async function loadLink() {
  if (linkInflight || !state.live) return;
  linkInflight = true;
  try {
    state.link = await getJson('/api/link');
  } catch {
    state.link = null;
  } finally {
    linkInflight = false;
  }
  renderLink();
  renderConsult(selectedStudy());
}

let linkTimer = 0;

/** After an event (a consult sent, claimed, reported; an image processed): the link state again, soon. */
function scheduleLink() {
  if (linkTimer) return;
  linkTimer = setTimeout(() => {
    linkTimer = 0;
    void loadLink();
  }, 300);
}

function applyLang() {
  translateDocument(state.lang, t);
  list.setAttribute('aria-label', t('listLabel'));
  renderHeader();
  renderLink();
  renderList();
  renderStudy(true);
  viewer.relabel();
  renderSignInMessage();
}

wireLangButtons(
  LANG_KEY,
  () => state.lang,
  (lang) => {
    state.lang = lang;
    applyLang();
  },
);

// ---------------------------------------------------------------------------------------------- data and live updates

/** The session is gone (expired, signed out elsewhere, account disabled): not a connection problem. */
class SignedOut extends Error {}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  if (res.status === 401) {
    sessionEnded();
    throw new SignedOut(url);
  }
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return res.json();
}

/** Reads /api/health (model, AE title); false when the agent did not answer. */
async function loadHealth() {
  let ok = false;
  try {
    // 503 while the model loads still carries the body.
    const res = await fetch('/api/health', { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    state.health = await res.json();
    ok = true;
  } catch {
    // reachability is judged by the caller
  }
  renderHeader();
  if (state.loaded && visibleStudies().length === 0) renderList();
  return ok;
}

function setReachable(value) {
  if (state.reachable === value) return;
  state.reachable = value;
  renderConn();
  renderLink();
  if (value) {
    void loadHealth();
    void loadLink();
  }
}

function noteArrivals(studies) {
  const uids = studies.map((s) => s.studyInstanceUid);
  if (state.known === null) {
    state.known = new Set(uids);
    if (!state.selectedUid) {
      const first = visibleStudies()[0];
      if (first) select(first.studyInstanceUid, null, false);
    }
    return;
  }
  const fresh = studies.filter((s) => !state.known.has(s.studyInstanceUid));
  for (const uid of uids) state.known.add(uid);
  if (fresh.length === 0) return;
  const newest = fresh.sort((a, b) => latestReceived(b) - latestReceived(a))[0];
  $('#live').textContent = t('newStudy', { name: personName(newest.patient.name) || newest.patient.id || '' });
  // Nothing open yet: open what just arrived. Never take the radiographer away from a study they chose.
  if (!state.selectedUid) select(newest.studyInstanceUid, null, false);
  for (const s of fresh) rows.get(s.studyInstanceUid)?.classList.add('row-new');
}

let inflight = null;
let again = false;
let refreshTimer = 0;

function scheduleRefresh(ms = DEBOUNCE_MS) {
  if (refreshTimer) return;
  refreshTimer = setTimeout(() => {
    refreshTimer = 0;
    void refresh();
  }, ms);
}

async function refresh() {
  if (!state.live) return undefined;
  if (inflight) {
    again = true;
    return inflight;
  }
  inflight = (async () => {
    try {
      const query = state.showAll ? '' : `?since=${encodeURIComponent(startOfToday().toISOString())}`;
      const studies = await getJson(`/api/studies${query}`);
      setReachable(true);
      state.studies = studies;
      state.loaded = true;
      renderList();
      noteArrivals(studies);
      if (state.selectedUid && !state.studies.some((s) => s.studyInstanceUid === state.selectedUid)) await fetchSelected();
      else state.extra = null;
      renderStudy();
    } catch (err) {
      if (!(err instanceof SignedOut)) setReachable(false);
    }
  })();
  try {
    await inflight;
  } finally {
    inflight = null;
    if (again) {
      again = false;
      scheduleRefresh(0);
    }
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

let events = null;

function connectEvents() {
  if (!state.live || events) return;
  if (!('EventSource' in window)) {
    state.sse = 'down';
    startPolling();
    return;
  }
  events = new EventSource('/api/events');
  events.addEventListener('open', () => {
    state.sse = 'live';
    stopPolling();
    renderConn();
    // Catch up on whatever changed while the stream was down.
    void refresh();
    void loadHealth();
    void loadLink();
  });
  events.addEventListener('instance', () => {
    scheduleRefresh();
    scheduleLink();
  });
  // The model was swapped, or its update from the registry moved on.
  events.addEventListener('model', () => void loadHealth());
  // The disk filled up, or has room again.
  events.addEventListener('health', () => void loadHealth());
  events.addEventListener('error', () => {
    state.sse = 'down';
    renderConn();
    startPolling();
    void refresh();
    if (events?.readyState === EventSource.CLOSED) {
      events.close();
      events = null;
      setTimeout(connectEvents, 5_000);
    }
  });
}

/**
 * A stream can look open while the agent is gone (a cable pulled, a half-closed socket): EventSource hides the
 * server's keep-alive comments, so the page asks /api/health now and then and reconnects when it gets no answer.
 */
async function watchdog() {
  if (state.sse !== 'live') return;
  if (await loadHealth()) return;
  setReachable(false);
  state.sse = 'down';
  renderConn();
  events?.close();
  events = null;
  startPolling();
  setTimeout(connectEvents, 2_000);
}

// ---------------------------------------------------------------------------------------------- signing in

/** The sign-in screen's message: { kind, key, params } or null. */
let signInMessage = null;

function renderSignInMessage() {
  const box = $('#signin-msg');
  box.hidden = !signInMessage;
  box.className = `form-msg ${signInMessage?.kind ?? ''}`;
  box.textContent = signInMessage ? t(signInMessage.key, signInMessage.params) : '';
}

function sayOnSignIn(message) {
  signInMessage = message;
  renderSignInMessage();
}

function renderUser() {
  // The live feed's state means nothing on the sign-in screen.
  $('.status-stack').hidden = !state.live;
  $('#user-box').hidden = !(state.signInRequired && state.user && state.live);
  $('#user-name').textContent = state.user?.username ?? '';
}

/** Nothing of a patient stays on the page: the list, the open study and the viewer are emptied. */
function forgetStudies() {
  state.studies = [];
  state.extra = null;
  state.known = null;
  state.loaded = false;
  state.link = null;
  resetConsultUi(state.selectedUid);
  renderList();
  renderStudy(true);
  renderLink();
  // renderStudy hides the study without a study to show; what it showed goes too.
  for (const id of ['#study-head', '#findings', '#thumbs']) $(id).replaceChildren();
  $('#live').textContent = '';
}

function showSignIn(message) {
  $('#work-screen').hidden = true;
  $('#banner').hidden = true;
  $('#signin-screen').hidden = false;
  renderUser();
  sayOnSignIn(message);
  $('#password').value = '';
  ($('#username').value ? $('#password') : $('#username')).focus();
}

/** The session ended (it expired, the account was disabled, or the radiographer signed out): back to the sign-in screen. */
function sessionEnded(key = 'sessionEnded') {
  if (!state.live) return;
  state.live = false;
  state.user = null;
  events?.close();
  events = null;
  state.sse = 'connecting';
  stopPolling();
  forgetStudies();
  showSignIn({ kind: key === 'signedOut' ? 'info' : 'error', key });
}

/** Studies on screen, kept live: after sign-in, or at once when the page needs none (the station PC's own screen). */
function startLive(user) {
  state.user = user;
  state.live = true;
  $('#signin-screen').hidden = true;
  $('#work-screen').hidden = false;
  sayOnSignIn(null);
  renderUser();
  renderConn();
  void loadHealth();
  void refresh();
  void loadLink();
  connectEvents();
}

$('#signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const username = $('#username').value.trim();
  const password = $('#password').value;
  if (!username || !password) {
    sayOnSignIn({ kind: 'error', key: 'signInMissing' });
    (username ? $('#password') : $('#username')).focus();
    return;
  }
  const button = $('#signin-button');
  sayOnSignIn(null);
  button.disabled = true;
  button.textContent = t('signingIn');
  try {
    // A password check takes about half a second, one at a time: a generous wait.
    const res = await fetch('/api/sign-in', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ username, password }),
      signal: AbortSignal.timeout(30_000),
    });
    if (res.ok) {
      const body = await res.json();
      $('#password').value = '';
      startLive(body.user);
      return;
    }
    if (res.status === 429) {
      const seconds = Number(res.headers.get('retry-after')) || 60;
      sayOnSignIn({ kind: 'error', key: 'signInThrottled', params: { minutes: Math.max(1, Math.ceil(seconds / 60)) } });
    } else sayOnSignIn({ kind: 'error', key: res.status === 401 || res.status === 400 ? 'signInFailed' : 'signInNoAnswer' });
  } catch {
    sayOnSignIn({ kind: 'error', key: 'signInNoAnswer' });
  } finally {
    button.disabled = false;
    button.textContent = t('signIn');
  }
  $('#password').select();
});

$('#sign-out').addEventListener('click', async () => {
  try {
    await fetch('/api/sign-out', { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
  } catch {
    // The cookie is gone from this page's point of view either way; the session expires on the agent.
  }
  sessionEnded('signedOut');
});

/** Asks whether the page needs a sign-in; an agent that does not answer is treated as "no" (the banner says it is down). */
async function boot() {
  let session = null;
  try {
    const res = await fetch('/api/session', { cache: 'no-store', signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
    if (res.ok) session = await res.json();
  } catch {
    // unreachable: start as before, the banner shows it
  }
  state.signInRequired = Boolean(session?.signInRequired);
  if (state.signInRequired && !session.user) {
    void loadHealth();
    showSignIn(null);
  } else startLive(session?.user ?? null);
}

// ---------------------------------------------------------------------------------------------- start

readHash();
viewer.setTool('wl');
applyLang();
void boot();
setInterval(() => void loadLink(), LINK_POLL_MS);
setInterval(() => void watchdog(), 30_000);
// A midnight passes on a station left open: "today" moves on.
setInterval(() => {
  if (!state.showAll && state.live) renderList();
}, 60_000);
