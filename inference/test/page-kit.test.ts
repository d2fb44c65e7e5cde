/**
 * The pages' shared module (inference/ui/page-kit.js) in Debian's Chromium: served from the folder the edge agent and
 * the gateway serve at /shared/, beside a small test server for its calls to a server. The three pages' own tests
 * (edge-agent/test/page*.test.ts, gateway/test/page.test.ts, model-registry/test/page.test.ts) exercise it in use;
 * these pin the edges a page rarely reaches.
 */
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sharedUiDir } from '../src/ui.js';

const TEST_PAGE = `<!doctype html><html lang="vi"><head><meta charset="utf-8"><title>-</title></head><body>
<h1 data-i18n="appTitle"></h1><button data-lang="vi" aria-pressed="true">VI</button><button data-lang="en">EN</button>
<button id="close" data-i18n-title="closeTitle" data-i18n-aria-label="closeTitle">x</button><ul id="list"></ul>
<script type="module">import * as kit from '/shared/page-kit.js'; window.kit = kit; window.kitReady = true;</script></body></html>`;

let server: Server;
let base: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];

async function serve(req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://localhost');
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' }).end(TEST_PAGE);
  } else if (url.pathname.startsWith('/shared/')) {
    const file = path.join(sharedUiDir, path.basename(url.pathname));
    res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8' }).end(await readFile(file));
  } else if (url.pathname === '/api/echo') {
    res.writeHead(200, { 'content-type': 'application/json', date: 'Mon, 23 Nov 2026 10:00:00 GMT' });
    res.end(JSON.stringify({ authorization: req.headers.authorization ?? null, method: req.method }));
  } else if (url.pathname === '/api/empty') {
    res.writeHead(204).end();
  } else if (url.pathname === '/api/unauthorized') {
    res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'CXR_GW_UNAUTHORIZED', message: 'token expired' } }));
  } else if (url.pathname === '/api/broken') {
    res.writeHead(502, { 'content-type': 'text/html' }).end('<h1>Bad gateway</h1>');
  } else if (url.pathname === '/api/slow') {
    setTimeout(() => res.writeHead(200).end('{}'), 2_000);
  } else {
    res.writeHead(404).end();
  }
}

beforeAll(async () => {
  server = createServer((req, res) => void serve(req, res).catch(() => res.writeHead(500).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-quic', '--disable-component-update', '--disable-sync'],
  });
  page = await browser.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  await page.goto(`${base}/`);
  await page.waitForFunction(() => (globalThis as unknown as { kitReady?: boolean }).kitReady === true);
});

afterAll(async () => {
  await browser?.close();
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
});

/** Runs `body` in the page with the module as `kit`; what it returns must be JSON. */
function inPage<T>(body: string): Promise<T> {
  return page.evaluate(`(async () => { const kit = window.kit; ${body} })()`) as Promise<T>;
}

describe('page-kit.js (the pages shared module, in Chromium)', () => {
  it('words: placeholders, the Vietnamese fallback, the key itself, and English singulars only', async () => {
    const out = await inPage<string[]>(`
      const strings = { vi: { hello: 'Chào {name}', daysAgo: '{n} ngày trước', onlyVi: 'chỉ tiếng Việt' },
                        en: { hello: 'Hello {name}', daysAgo: '{n} days ago', daysAgo_1: '1 day ago' } };
      let lang = 'vi';
      const { t, tn } = kit.createWords(strings, () => lang);
      const vi = [t('hello', { name: 'Lan' }), tn('daysAgo', 1), t('missing')];
      lang = 'en';
      return [...vi, t('hello', { name: 'Lan' }), tn('daysAgo', 1), tn('daysAgo', 3), t('onlyVi'), t('hello')];
    `);
    expect(out).toEqual(['Chào Lan', '1 ngày trước', 'missing', 'Hello Lan', '1 day ago', '3 days ago', 'chỉ tiếng Việt', 'Hello {name}']);
  });

  it('the language switch: saved choice, translated text, titles and labels, pressed button', async () => {
    const out = await inPage<Record<string, unknown>>(`
      localStorage.removeItem('test.lang');
      const before = kit.savedLang('test.lang', ['vi', 'en']);
      localStorage.setItem('test.lang', 'fr');
      const unknown = kit.savedLang('test.lang', ['vi', 'en']);
      const strings = { vi: { appTitle: 'Phân loại', closeTitle: 'Đóng' }, en: { appTitle: 'Triage', closeTitle: 'Close' } };
      let lang = 'vi';
      const { t } = kit.createWords(strings, () => lang);
      kit.translateDocument(lang, t);
      const switched = [];
      kit.wireLangButtons('test.lang', () => lang, (next) => { lang = next; switched.push(next); kit.translateDocument(lang, t); });
      document.querySelector('[data-lang="vi"]').click();
      document.querySelector('[data-lang="en"]').click();
      return { before, unknown, switched, saved: localStorage.getItem('test.lang'), after: kit.savedLang('test.lang', ['vi', 'en']),
        title: document.title, htmlLang: document.documentElement.lang, h1: document.querySelector('h1').textContent,
        buttonTitle: document.querySelector('#close').title, buttonLabel: document.querySelector('#close').getAttribute('aria-label'),
        pressed: [...document.querySelectorAll('[data-lang]')].map((b) => b.getAttribute('aria-pressed')) };
    `);
    expect(out).toEqual({
      before: 'vi',
      unknown: 'vi',
      switched: ['en'],
      saved: 'en',
      after: 'en',
      title: 'Triage',
      htmlLang: 'en',
      h1: 'Triage',
      buttonTitle: 'Close',
      buttonLabel: 'Close',
      pressed: ['false', 'true'],
    });
  });

  it('formats: day-first dates, ages, decimal commas in Vietnamese, percents never rounded across the threshold', async () => {
    const out = await inPage<string[]>(`
      const { t, tn } = kit.createWords({ vi: { justNow: 'vừa xong', minutesAgo: '{n} phút trước', hoursAgo: '{h} giờ {m} phút trước', daysAgo: '{n} ngày trước' } }, () => 'vi');
      const d = new Date(2026, 10, 3, 7, 5);
      return [kit.fmtDateTime(d), kit.ageText(0.9, t, tn), kit.ageText(59.9, t, tn), kit.ageText(125, t, tn), kit.ageText(3 * 1440 + 5, t, tn), kit.ageText(-4, t, tn),
        kit.fmtDecimal(1.25, 1, 'vi'), kit.fmtDecimal(1.25, 2, 'en'),
        kit.fmtPercent({ probability: 0.496, threshold: 0.5, positive: false }), kit.fmtPercent({ probability: 0.5, threshold: 0.5, positive: true }),
        kit.fmtPercent({ probability: 0.3, threshold: 0.5, positive: true }), kit.fmtPercent({ probability: 0.123, threshold: 0.5, positive: false }),
        String(kit.sameDay(new Date(2026, 10, 3, 0, 0), new Date(2026, 10, 3, 23, 59))), String(kit.sameDay(new Date(2026, 10, 3), new Date(2026, 10, 4)))];
    `);
    expect(out).toEqual([
      '03/11/2026 07:05',
      'vừa xong',
      '59 phút trước',
      '2 giờ 5 phút trước',
      '3 ngày trước',
      'vừa xong',
      '1,3',
      '1.25',
      '<50%',
      '50%',
      '≥50%',
      '12%',
      'true',
      'false',
    ]);
  });

  it('h() sets text as text, skips empty attributes and children, and wires handlers', async () => {
    const out = await inPage<Record<string, unknown>>(`
      let clicks = 0;
      const el = kit.h('button', { class: 'primary', disabled: false, title: null, dataset: { id: '7' }, 'aria-pressed': true, onclick: () => clicks++ },
        '<b>not bold</b>', null, false, ['a', kit.h('span', {}, 1)]);
      el.click();
      return { html: el.outerHTML, clicks };
    `);
    expect(out).toEqual({ html: '<button class="primary" data-id="7" aria-pressed="">&lt;b&gt;not bold&lt;/b&gt;a<span>1</span></button>', clicks: 1 });
  });

  it('syncKeyedList keeps each row element, reorders and removes rows, and refills only rows whose model changed', async () => {
    const out = await inPage<Record<string, unknown>>(`
      const list = document.querySelector('#list');
      const rows = new Map();
      let fills = [];
      const opts = { keyOf: (i) => i.id, datasetKey: 'uid', rowModel: (i) => ({ label: i.label }), fillRow: (li, m) => { fills.push(m.label); li.textContent = m.label; } };
      kit.syncKeyedList(list, rows, [{ id: 'a', label: 'A' }, { id: 'b', label: 'B' }, { id: 'c', label: 'C' }], opts);
      const firstB = list.querySelector('[data-uid="b"]');
      const firstFills = fills; fills = [];
      kit.syncKeyedList(list, rows, [{ id: 'c', label: 'C' }, { id: 'b', label: 'B2' }], opts);
      return { firstFills, secondFills: fills, order: [...list.children].map((li) => li.dataset.uid + ':' + li.textContent),
        sameElement: list.querySelector('[data-uid="b"]') === firstB, kept: [...rows.keys()], role: firstB.getAttribute('role') };
    `);
    expect(out).toEqual({ firstFills: ['A', 'B', 'C'], secondFills: ['B2'], order: ['c:C', 'b:B2'], sameElement: true, kept: ['b', 'c'], role: 'option' });
  });

  it('wireListbox: click, Enter and Space choose a row; arrows, Home and End move the focus; one row in the tab order', async () => {
    await inPage(`
      const list = kit.h('ul', { id: 'listbox', role: 'listbox' });
      document.body.append(list);
      const rows = new Map();
      window.chosen = [];
      window.markSelected = kit.wireListbox(list, rows, { datasetKey: 'uid', choose: (uid) => window.chosen.push(uid) });
      const items = ['a', 'b', 'c', 'd'].map((id) => ({ id }));
      kit.syncKeyedList(list, rows, items, { keyOf: (i) => i.id, datasetKey: 'uid', rowModel: (i) => i, fillRow: (li, m) => { li.textContent = m.id; } });
      window.markSelected(undefined);
    `);
    const focused = (): Promise<string | undefined> => inPage('return document.activeElement?.dataset.uid;');
    const tabOrder = (): Promise<string[]> => inPage("return [...document.querySelectorAll('#listbox li')].filter((li) => li.tabIndex === 0).map((li) => li.dataset.uid);");
    expect(await tabOrder()).toEqual(['a']);
    await page.focus('#listbox li[data-uid="a"]');
    await page.keyboard.press('ArrowDown');
    expect(await focused()).toBe('b');
    expect(await tabOrder()).toEqual(['b']);
    await page.keyboard.press('End');
    expect(await focused()).toBe('d');
    await page.keyboard.press('ArrowDown');
    expect(await focused()).toBe('d');
    await page.keyboard.press('Home');
    await page.keyboard.press('Enter');
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press(' ');
    await page.click('#listbox li[data-uid="c"]');
    expect(await inPage('return window.chosen;')).toEqual(['a', 'b', 'c']);
    await inPage("window.markSelected('c');");
    expect(await tabOrder()).toEqual(['c']);
    expect(await inPage("return [...document.querySelectorAll('#listbox li')].map((li) => li.getAttribute('aria-selected'));")).toEqual(['false', 'false', 'true', 'false']);
    expect(pageErrors).toEqual([]);
  });

  it('sessionStore keeps a session with a token and a username, and forgets it', async () => {
    const out = await inPage<unknown[]>(`
      const store = kit.sessionStore('test.session');
      store.save({ token: 't1', username: 'bs.lan' });
      const loaded = store.load();
      sessionStorage.setItem('test.session', '{"token":"t2"}');
      const incomplete = store.load();
      sessionStorage.setItem('test.session', 'not json');
      const garbled = store.load();
      store.save(null);
      return [loaded, incomplete, garbled, sessionStorage.getItem('test.session')];
    `);
    expect(out).toEqual([{ token: 't1', username: 'bs.lan' }, null, null, null]);
  });

  it('createApi: the bearer token, answers seen, 204 as null, the server error code, 401 to the token used, no answer', async () => {
    const out = await inPage<Record<string, unknown>>(`
      const seen = []; const lost = []; let silent = 0;
      const api = kit.createApi({ timeoutMs: 500, token: () => 'tok-1', onAnswer: (res) => seen.push(res.status === 200 ? '200 ' + res.headers.get('date') : res.status),
        onNoAnswer: () => silent++, onUnauthorized: (token) => lost.push(token) });
      const failure = async (p) => { try { await p; return 'no error'; } catch (err) { return { isApiError: err instanceof kit.ApiError, status: err.status, code: err.code ?? null, detail: err.detail ?? null }; } };
      const echo = await api('/api/echo', { method: 'POST', body: { a: 1 } });
      const anonymous = await api('/api/echo', { auth: false });
      const empty = await api('/api/empty', { method: 'DELETE' });
      const unauthorized = await failure(api('/api/unauthorized'));
      const broken = await failure(api('/api/broken'));
      const slow = await failure(api('/api/slow'));
      const refused = await failure(api('http://127.0.0.1:9/nothing'));
      return { echo, anonymous, empty, unauthorized, broken, slow, refused, seen, lost, silent };
    `);
    expect(out).toEqual({
      echo: { authorization: 'Bearer tok-1', method: 'POST' },
      anonymous: { authorization: null, method: 'GET' },
      empty: null,
      unauthorized: { isApiError: true, status: 401, code: 'CXR_GW_UNAUTHORIZED', detail: 'token expired' },
      broken: { isApiError: true, status: 502, code: null, detail: null },
      slow: { isApiError: true, status: 0, code: 'TIMEOUT', detail: expect.any(String) as unknown },
      refused: { isApiError: true, status: 0, code: 'NETWORK', detail: expect.any(String) as unknown },
      seen: ['200 Mon, 23 Nov 2026 10:00:00 GMT', '200 Mon, 23 Nov 2026 10:00:00 GMT', 204, 401, 502],
      lost: ['tok-1'],
      silent: 2,
    });
    expect(pageErrors).toEqual([]);
  });
});
