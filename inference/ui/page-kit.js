// What the product's three pages have in common (the station's page, the radiologist's, the ML engineer's): words
// and the language switch, dates and numbers as people write them, the element builder, keyed lists that keep
// their rows, the signed-in session, and calls to a server that answers `{ error: { code, message } }`.
// Plain ES module, served at /shared/page-kit.js by the edge agent and the gateway; no build step.

// ---------------------------------------------------------------------------------------------- words

/** The language saved under `storageKey` when it is one of `langs`, else Vietnamese. */
export function savedLang(storageKey, langs) {
  try {
    const saved = localStorage.getItem(storageKey);
    if (langs.includes(saved)) return saved;
  } catch {
    // storage disabled: Vietnamese
  }
  return 'vi';
}

/**
 * `t(key, params)` and `tn(key, n, params)` over a page's `strings` ({ vi: {...}, en: {...} }), in the language
 * `currentLang()` gives at the time of the call. A key missing in English falls back to Vietnamese, then to itself;
 * `{name}` placeholders are filled from `params`.
 */
export function createWords(strings, currentLang) {
  function t(key, params) {
    const table = strings[currentLang()] ?? strings.vi;
    const text = table[key] ?? strings.vi[key] ?? key;
    return params ? text.replace(/\{(\w+)\}/g, (_, name) => String(params[name] ?? '')) : text;
  }
  /** A counted phrase: English has a singular form (`key_1`), Vietnamese does not. */
  function tn(key, n, params = {}) {
    const table = strings[currentLang()] ?? strings.vi;
    return t(n === 1 && table[`${key}_1`] ? `${key}_1` : key, { n, ...params });
  }
  return { t, tn };
}

/**
 * Puts the page's fixed words in `lang`: the document's language and title (`appTitle`), every element's text,
 * title and aria-label named by `data-i18n`, `data-i18n-title` and `data-i18n-aria-label`, and which
 * language button (`data-lang`) is pressed.
 */
export function translateDocument(lang, t) {
  document.documentElement.lang = lang;
  document.title = t('appTitle');
  for (const el of document.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of document.querySelectorAll('[data-i18n-title]')) el.title = t(el.dataset.i18nTitle);
  for (const el of document.querySelectorAll('[data-i18n-aria-label]')) el.setAttribute('aria-label', t(el.dataset.i18nAriaLabel));
  for (const b of document.querySelectorAll('[data-lang]')) b.setAttribute('aria-pressed', String(b.dataset.lang === lang));
}

/** Wires the language buttons (`data-lang`): a press on another language saves it and calls `switchTo(lang)`. */
export function wireLangButtons(storageKey, currentLang, switchTo) {
  for (const b of document.querySelectorAll('[data-lang]')) {
    b.addEventListener('click', () => {
      const lang = b.dataset.lang;
      if (lang === currentLang()) return;
      try {
        localStorage.setItem(storageKey, lang);
      } catch {
        // not persisted; the page still switches
      }
      switchTo(lang);
    });
  }
}

// ---------------------------------------------------------------------------------------------- formats

export const pad = (n) => String(n).padStart(2, '0');
/** 23/11/2026: day first, as in Vietnam (and in the English page too: one format on one screen). */
export const fmtDate = (d) => `${pad(d.getDate())}/${pad(d.getMonth() + 1)}/${d.getFullYear()}`;
export const fmtTime = (d) => `${pad(d.getHours())}:${pad(d.getMinutes())}`;
export const fmtDateTime = (d) => `${fmtDate(d)} ${fmtTime(d)}`;

export function sameDay(a, b) {
  return a.getFullYear() === b.getFullYear() && a.getMonth() === b.getMonth() && a.getDate() === b.getDate();
}

/** "just now", "12 min ago", "2 h 5 min ago", "3 days ago", from whole minutes. */
export function ageText(minutes, t, tn) {
  const m = Math.max(0, Math.floor(minutes));
  if (m < 1) return t('justNow');
  if (m < 60) return t('minutesAgo', { n: m });
  if (m < 24 * 60) return t('hoursAgo', { h: Math.floor(m / 60), m: m % 60 });
  return tn('daysAgo', Math.floor(m / (24 * 60)));
}

/** A decimal as people write it: comma in Vietnamese (1,5), point in English. */
export function fmtDecimal(x, digits, lang) {
  const s = x.toFixed(digits);
  return lang === 'vi' ? s.replace('.', ',') : s;
}

/** Percent without decimals; never rounded across the threshold (49.6% below a 50% threshold reads "<50%"). */
export function fmtPercent(finding) {
  const p = Math.round(finding.probability * 100);
  const thr = Math.round(finding.threshold * 100);
  if (!finding.positive && p >= thr) return `<${thr}%`;
  if (finding.positive && p < thr) return `≥${thr}%`;
  return `${p}%`;
}

// ---------------------------------------------------------------------------------------------- elements

/** Builds an element: h('div', { class: 'x', onclick: fn }, 'text', child). Text is always set as text. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on')) el.addEventListener(key.slice(2), value);
    else if (key === 'class') el.className = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key === 'value') el.value = value;
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

/** A stroked 24 x 24 icon from one SVG path, hidden from screen readers (its button or text says what it is). */
export function svgIcon(d, { cls = 'icon', width = '2.2' } = {}) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', cls);
  const path = document.createElementNS(ns, 'path');
  path.setAttribute('d', d);
  path.setAttribute('fill', 'none');
  path.setAttribute('stroke', 'currentColor');
  path.setAttribute('stroke-width', width);
  path.setAttribute('stroke-linecap', 'round');
  path.setAttribute('stroke-linejoin', 'round');
  svg.append(path);
  return svg;
}

/**
 * Makes `list` show one row per item, in order, keeping each row element across updates (focus, hover and
 * scroll stay put on a slow PC): `rows` maps keys to rows; `keyOf(item)` gives an item's key, stored as
 * `data-<datasetKey>`; a row is refilled by `fillRow(li, model)` only when `rowModel(item)` has changed.
 */
export function syncKeyedList(list, rows, items, { keyOf, datasetKey, rowModel, fillRow }) {
  const seen = new Set();
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    seen.add(key);
    let li = rows.get(key);
    if (!li) {
      li = h('li', { role: 'option', tabindex: '-1', dataset: { [datasetKey]: key } });
      rows.set(key, li);
    }
    const model = rowModel(item);
    const sig = JSON.stringify(model);
    if (li.dataset.sig !== sig) {
      fillRow(li, model);
      li.dataset.sig = sig;
    }
    const wanted = previous ? previous.nextSibling : list.firstChild;
    if (wanted !== li) list.insertBefore(li, wanted);
    previous = li;
  }
  for (const [key, li] of rows) {
    if (!seen.has(key)) {
      li.remove();
      rows.delete(key);
    }
  }
}

/**
 * Pointer and keyboard for a listbox of `syncKeyedList` rows: a click, Enter or Space on a row calls `choose(key)`;
 * the arrow keys, Home and End move the focus; one row is in the tab order (the selected one, or the first).
 * `datasetKey` is the rows' lower-case `data-` key. Returns `markSelected(key)`: call it after each change of the
 * rows or of the selection.
 */
export function wireListbox(list, rows, { datasetKey, choose }) {
  const rowOf = (target) => target.closest(`li[data-${datasetKey}]`);
  list.addEventListener('click', (event) => {
    const li = rowOf(event.target);
    if (li) choose(li.dataset[datasetKey]);
  });
  list.addEventListener('keydown', (event) => {
    const current = rowOf(event.target);
    if (!current) return;
    let next = null;
    if (event.key === 'ArrowDown') next = current.nextElementSibling;
    else if (event.key === 'ArrowUp') next = current.previousElementSibling;
    else if (event.key === 'Home') next = list.firstElementChild;
    else if (event.key === 'End') next = list.lastElementChild;
    else if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      choose(current.dataset[datasetKey]);
      return;
    } else return;
    event.preventDefault();
    if (next) {
      current.tabIndex = -1;
      next.tabIndex = 0;
      next.focus();
      next.scrollIntoView({ block: 'nearest' });
    }
  });
  return function markSelected(selectedKey) {
    let focusable = null;
    for (const [key, li] of rows) {
      const selected = key === selectedKey;
      li.setAttribute('aria-selected', String(selected));
      if (selected) focusable = li;
    }
    const target = focusable ?? list.firstElementChild;
    for (const li of rows.values()) li.tabIndex = li === target ? 0 : -1;
  };
}

// ---------------------------------------------------------------------------------------------- session and server

/** The signed-in session ({ token, username, ... }) in sessionStorage under `storageKey`: gone with the tab. */
export function sessionStore(storageKey) {
  return {
    load() {
      try {
        const s = JSON.parse(sessionStorage.getItem(storageKey) ?? 'null');
        if (s?.token && s.username) return s;
      } catch {
        // no storage: sign in again
      }
      return null;
    },
    save(session) {
      try {
        if (session) sessionStorage.setItem(storageKey, JSON.stringify(session));
        else sessionStorage.removeItem(storageKey);
      } catch {
        // kept in memory only
      }
    },
  };
}

export class ApiError extends Error {
  /** status 0: no answer (code 'TIMEOUT' or 'NETWORK'); else the HTTP status and the server's error code. */
  constructor(status, code, detail) {
    super(detail || code || `HTTP ${status}`);
    this.status = status;
    this.code = code;
    this.detail = detail;
  }
}

/**
 * A caller of the server: `api(path, { method, body, as: 'json' | 'blob' | 'response', auth })`.
 * `token()` gives the bearer token (or nothing); `onAnswer(res)` sees every answer (reachability, the server's
 * clock), `onNoAnswer()` a request that got none, `onUnauthorized(token)` a 401 to a request that carried
 * `token`. Failures throw an ApiError.
 */
export function createApi({ timeoutMs, token = () => undefined, onAnswer = () => {}, onNoAnswer = () => {}, onUnauthorized = () => {} }) {
  return async function api(path, { method = 'GET', body, as = 'json', auth = true } = {}) {
    const bearer = auth ? token() : undefined;
    const headers = {};
    if (bearer) headers.authorization = `Bearer ${bearer}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    let res;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (err) {
      onNoAnswer();
      throw new ApiError(0, err?.name === 'TimeoutError' ? 'TIMEOUT' : 'NETWORK', String(err?.message ?? err));
    }
    onAnswer(res);
    if (!res.ok) {
      let code;
      let detail;
      try {
        const payload = await res.json();
        code = payload?.error?.code;
        detail = payload?.error?.message;
      } catch {
        // not JSON (a proxy's error page): the status says enough
      }
      if (res.status === 401 && bearer) onUnauthorized(bearer);
      throw new ApiError(res.status, code, detail);
    }
    if (as === 'response') return res;
    if (as === 'blob') return res.blob();
    return res.status === 204 ? null : res.json();
  };
}
