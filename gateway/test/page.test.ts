/**
 * The radiologist's page in Chromium against a real gateway process (real redis-server, folder store, accounts made
 * with the admin CLI). A station's uploads are replayed with its token: real AI results, previews and heatmaps made
 * by the inference library from the shared DICOM files. Two radiologists work side by side in two browser contexts.
 * Screenshots go to /tmp/gateway-page/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import type { Finding } from '@cxr/inference';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.js';
import { buildGateway, startGateway, type RunningGateway } from './support/gateway.js';
import { analyze, dicomFile, loadTestModel, Station, type Seeded } from './support/seed.js';

const shots = '/tmp/gateway-page';
const LAN = { username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist', displayName: 'BS. Nguyễn Thị Lan' } as const;
const MINH = { username: 'bs.minh', password: 'mat-khau-dai-2', role: 'radiologist', displayName: 'BS. Trần Văn Minh' } as const;
const HUNG = { username: 'kt.hung', password: 'mat-khau-dai-3', role: 'mlops' } as const;
const TZ = 'Asia/Ho_Chi_Minh';

/**
 * The browser globals the page-side snippets use. The type-check config has no DOM library, so the snippets (run in
 * Chromium, not in Node) see the page through these few declarations.
 */
interface Canvas2d {
  readonly width: number;
  readonly height: number;
  getContext(kind: '2d'): { getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray } };
}
interface Marked {
  cxrMark?: string;
  dataset: Record<string, string | undefined>;
}
interface PageGlobals {
  document: { querySelectorAll(selector: string): Iterable<Marked> };
  sessionStorage: { getItem(key: string): string | null };
  localStorage: { getItem(key: string): string | null };
  location: { hash: string };
  getComputedStyle(element: unknown): { opacity: string; backgroundColor: string };
}

let gateway: RunningGateway;
let station: Station;
let browser: Browser;
let contextA: BrowserContext;
let contextB: BrowserContext;
let a: Page;
let b: Page;
/** by role in the test: stat (chest PA), urgent1 (chest CR), urgent2 (NIH chest), routine (hip, AI not applicable) */
const seeded: Record<'stat' | 'urgent1' | 'urgent2' | 'routine', Seeded> = {} as never;
const pageErrors: string[] = [];
/** what Chromium refused under the gateway's Content-Security-Policy, said on the console */
const cspViolations: string[] = [];

/** What the user reads: rendered text (innerText), whitespace collapsed. */
const text = async (locator: Locator): Promise<string> => (await locator.innerText()).replace(/\s+/g, ' ').trim();
const shot = (page: Page, name: string): Promise<Buffer> => page.screenshot({ path: path.join(shots, `${name}.png`) });
const rows = (page: Page): Locator => page.locator('#worklist > li');
const row = (page: Page, consultId: string): Locator => page.locator(`#worklist > li[data-id="${consultId}"]`);
const rowIds = async (page: Page): Promise<string[]> => Promise.all((await rows(page).all()).map(async (r) => (await r.getAttribute('data-id')) ?? ''));
const positives = (s: Seeded): Finding[] => s.result.findings.filter((f) => f.positive);
const pct = (x: number): string => `${Math.round(x * 100)}%`;

/** dd/mm/yyyy HH:mm in the page's time zone. */
function localDateTime(iso: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}`;
}

async function signIn(page: Page, user: { username: string; password: string }): Promise<void> {
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.locator('#signin-button').click();
}

async function open(page: Page, consultId: string): Promise<void> {
  await row(page, consultId).click();
  await expect.poll(() => page.locator('#consult').isVisible()).toBe(true);
  await expect.poll(() => page.locator('#viewport').getAttribute('data-state'), { timeout: 10_000 }).toBe('ready');
}

async function drag(page: Page, dx: number, dy: number): Promise<void> {
  const box = await page.locator('#viewport').boundingBox();
  if (!box) throw new Error('viewport not visible');
  const x = box.x + box.width / 2;
  const y = box.y + box.height / 2;
  await page.mouse.move(x, y);
  await page.mouse.down();
  await page.mouse.move(x + dx, y + dy, { steps: 6 });
  await page.mouse.up();
}

/** Picks an answer for a finding in the AI panel (the report form's agree / disagree). */
async function choose(page: Page, code: string, agree: boolean): Promise<void> {
  await page.locator(`#findings li.finding[data-code="${code}"] .choice-${agree ? 'agree' : 'disagree'}`).click();
}

async function stationView(consultId: string): Promise<{ status: string; report?: Record<string, unknown> }> {
  return (await station.expect([200], 'GET', `/api/v1/stations/tram-1/consults/${consultId}`)) as { status: string; report?: Record<string, unknown> };
}

beforeAll(async () => {
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  await buildGateway();
  let model: Awaited<ReturnType<typeof loadTestModel>>;
  [gateway, browser, model] = await Promise.all([
    // Three failed sign-ins hold an account back (30 per address, the default), so the page's throttled message is
    // reached in a few attempts.
    startGateway({ stations: ['tram-1'], users: [LAN, MINH, HUNG], args: ['--sign-in-max-failures-per-account', '3'] }),
    launchChromium(),
    loadTestModel(),
  ]);
  station = new Station(gateway.baseUrl, 'tram-1', gateway.stationTokens.get('tram-1') ?? '');
  const files = ['cr_hip_RG2_JPLY.dcm', 'cr_hip_RG2_J2KR.dcm', 'cr_chest_CR-MONO1-10-chest.dcm', 'dx_chest_nih_secondary_capture.dcm', 'cr_chest_pa_RG1_J2KI.dcm'];
  const [hip, hip2, chestCr, nih, chestPa] = await Promise.all(files.map((f) => analyze(dicomFile(f), model)));
  if (!hip || !hip2 || !chestCr || !nih || !chestPa) throw new Error('analysis failed');
  // Arrival order is the reverse of urgency, so the worklist order can only come from the priorities.
  seeded.routine = await station.send([hip, hip2], { priority: 'routine', reason: 'requested', note: 'Đau hông phải sau ngã' });
  seeded.urgent1 = await station.send([chestCr], { priority: 'urgent', reason: 'policy' });
  seeded.urgent2 = await station.send([nih], { priority: 'urgent', reason: 'policy' });
  seeded.stat = await station.send([chestPa], { priority: 'stat', reason: 'requested', note: 'Khó thở, SpO2 88%' });
  const options = { viewport: { width: 1440, height: 900 }, locale: 'vi-VN', timezoneId: TZ };
  contextA = await browser.newContext(options);
  contextB = await browser.newContext(options);
  a = await contextA.newPage();
  b = await contextB.newPage();
  for (const page of [a, b]) {
    page.on('pageerror', (err) => pageErrors.push(err.message));
    page.on('console', (message) => {
      if (/Content Security Policy/iu.test(message.text())) cspViolations.push(message.text());
    });
  }
}, 60_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
});

describe("the radiologist's page", () => {
  it('opens on the sign-in screen in Vietnamese and says plainly why a sign-in fails', async () => {
    await a.goto(`${gateway.baseUrl}/`);
    expect(await a.getAttribute('html', 'lang')).toBe('vi');
    expect(await text(a.locator('h1'))).toBe('Hội chẩn X-quang ngực từ xa');
    expect(await a.locator('#signin-screen').isVisible()).toBe(true);
    expect(await a.locator('#work-screen').isVisible()).toBe(false);
    await a.locator('#signin-button').click();
    await expect.poll(() => text(a.locator('#signin-msg'))).toBe('Hãy nhập tên đăng nhập và mật khẩu.');
    await signIn(a, { username: LAN.username, password: 'sai-mat-khau' });
    await expect.poll(() => text(a.locator('#signin-msg')), { timeout: 10_000 }).toBe('Sai tên đăng nhập hoặc mật khẩu. Hãy kiểm tra lại (chữ hoa, bộ gõ tiếng Việt đang bật) rồi đăng nhập lại.');
    expect(await a.locator('#work-screen').isVisible()).toBe(false);
    await shot(a, 'vi-signin-failed');
    // Guessing: after three failures the account is held back, and the page says so rather than "server trouble".
    for (let i = 0; i < 3; i += 1) {
      await signIn(a, { username: 'bs.khach', password: `doan-mat-khau-${i}` });
      // scrypt at N=2^17 takes about 0.4 s per attempt on an idle machine, more under load.
      await expect.poll(() => a.locator('#signin-button').isEnabled(), { timeout: 10_000 }).toBe(true);
      await expect.poll(() => text(a.locator('#signin-msg')), { timeout: 10_000 }).toContain('Sai tên đăng nhập hoặc mật khẩu.');
    }
    await signIn(a, { username: 'bs.khach', password: 'doan-mat-khau-3' });
    await expect
      .poll(() => text(a.locator('#signin-msg')), { timeout: 10_000 })
      .toBe('Đăng nhập sai quá nhiều lần nên tạm thời bị chặn. Hãy đợi ít phút rồi thử lại; nếu quên mật khẩu, hãy liên hệ quản trị hệ thống.');
    await shot(a, 'vi-signin-throttled');
    await a.getByRole('button', { name: 'EN', exact: true }).click();
    expect(await text(a.locator('#signin-msg'))).toBe(
      'Too many failed sign-ins, so sign-in is held back for now. Wait a few minutes and try again; if you forgot your password, contact the system administrator.',
    );
    await shot(a, 'en-signin-throttled');
    await a.getByRole('button', { name: 'VI', exact: true }).click();
    // An account that is not a reader is turned away at the door, not with a page that fails on every click.
    await signIn(a, HUNG);
    await expect.poll(() => text(a.locator('#signin-msg')), { timeout: 10_000 }).toContain('Tài khoản này không dùng để đọc phim.');
    expect(await a.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem('cxr-gw.session'))).toBeNull();
    await a.locator('#username').fill('');
    await a.locator('#password').fill('');
    await a.reload();
    await shot(a, 'vi-signin');
  });

  it('lists the consults by urgency with badges, station, age and status', async () => {
    await signIn(a, LAN);
    await expect.poll(() => a.locator('#work-screen').isVisible(), { timeout: 10_000 }).toBe(true);
    expect(await text(a.locator('#user-name'))).toBe('BS. Nguyễn Thị Lan (bs.lan)');
    expect(await text(a.locator('#list-title'))).toBe('Danh sách ca chờ đọc');
    await expect.poll(() => rowIds(a)).toEqual([seeded.stat.consultId, seeded.urgent1.consultId, seeded.urgent2.consultId, seeded.routine.consultId]);
    expect(await Promise.all((await rows(a).all()).map((r) => text(r.locator('.badge'))))).toEqual(['cấp cứu', 'khẩn', 'khẩn', 'thường quy']);
    const colour = (id: string): Promise<string> => row(a, id).locator('.badge').evaluate((el) => (globalThis as unknown as PageGlobals).getComputedStyle(el).backgroundColor);
    expect(await colour(seeded.stat.consultId)).toBe('rgb(179, 38, 30)'); // red
    expect(await colour(seeded.urgent1.consultId)).toBe('rgb(240, 140, 0)'); // orange
    expect(await colour(seeded.routine.consultId)).toBe('rgb(236, 239, 243)'); // grey
    const first = row(a, seeded.stat.consultId);
    expect(await text(first.locator('.row-station'))).toBe('Trạm tram-1');
    expect(await text(first.locator('.row-status'))).toBe('chờ đọc');
    expect(await text(first.locator('.row-time'))).toMatch(/^\d{2}:\d{2}$/);
    expect(await text(first.locator('.row-age'))).toMatch(/^(vừa xong|\d+ phút trước)$/);
    expect(await text(a.locator('#list-count'))).toBe('4');
    expect(await a.title()).toBe('(4) Hội chẩn X-quang ngực từ xa');
    // Nothing is open yet, and the report cannot be written from here.
    expect(await text(a.locator('#no-selection'))).toContain('Chọn một ca trong danh sách');
    await shot(a, 'vi-worklist');
  });

  it('opens a consult: the film, the AI findings with percents, the AI priority, the model; heatmap and W/L work', async () => {
    const stat = seeded.stat;
    await open(a, stat.consultId);
    const head = await text(a.locator('#consult-head'));
    expect(head).toContain('Ca chụp từ trạm tram-1');
    expect(head).toContain('Lý do gửi: kỹ thuật viên yêu cầu hội chẩn');
    expect(head).toContain('Ghi chú của trạm: Khó thở, SpO2 88%');
    expect(head).toContain('Chờ đọc — chưa có bác sĩ nhận');
    expect(await text(a.locator('#consult-head .ch-priority .badge'))).toBe('cấp cứu');
    expect(await a.evaluate(() => (globalThis as unknown as PageGlobals).location.hash)).toBe(`#consult=${stat.consultId}`);

    const panel = a.locator('#findings');
    const above = panel.locator('ul.findings-above > li.finding');
    expect(await above.count()).toBe(positives(stat).length);
    for (const f of stat.result.findings) {
      const li = panel.locator(`li.finding[data-code="${f.code}"]`);
      expect(await li.getAttribute('class')).toContain(f.positive ? 'above' : 'below');
    }
    for (const f of positives(stat)) {
      const line = await text(panel.locator(`li.finding[data-code="${f.code}"]`));
      expect(line).toContain(`${f.displayVi} — ${pct(f.probability)} (ngưỡng ${pct(f.threshold)})`);
      expect(line).toContain('trên ngưỡng');
    }
    // Below-threshold findings are folded away, one click from view.
    const negatives = stat.result.findings.filter((f) => !f.positive);
    const below = panel.locator('details.below-list');
    expect(await text(below.locator('summary'))).toBe(`${negatives.length} dấu hiệu dưới ngưỡng`);
    await below.locator('summary').click();
    const firstBelow = negatives.sort((x, y) => y.probability - x.probability)[0];
    if (!firstBelow) throw new Error('no finding below threshold');
    expect(await text(panel.locator(`li.finding[data-code="${firstBelow.code}"]`))).toContain(`${firstBelow.displayVi} — ${Math.round(firstBelow.probability * 100) >= Math.round(firstBelow.threshold * 100) ? `<${pct(firstBelow.threshold)}` : pct(firstBelow.probability)} (ngưỡng ${pct(firstBelow.threshold)}) ▽ dưới ngưỡng`);
    await below.locator('summary').click();
    const all = await text(panel);
    expect(all).toContain(`${positives(stat).length} dấu hiệu nghi ngờ`);
    expect(all).toContain(`Mức ưu tiên theo AI: ${{ stat: 'cấp cứu', urgent: 'khẩn', routine: 'thường quy' }[stat.result.priority]}`);
    expect(all).toContain(`Mô hình ${stat.result.model.name}, phiên bản ${stat.result.model.version} · sha256 ${stat.result.model.sha256.slice(0, 12)}`);
    expect(all).not.toMatch(/\d[.,]\d+%/); // percents without decimals
    expect((await a.locator('body').innerText()).replace(/AI không xác nhận phim bình thường/g, '')).not.toMatch(/bình thường/i);

    // Heatmap: off by default, then over the film with its caption and opacity.
    const overlay = a.locator('#heatmap-canvas');
    const toggle = a.locator('#heatmap-toggle');
    expect(await overlay.isVisible()).toBe(false);
    await toggle.click();
    expect(await toggle.getAttribute('aria-pressed')).toBe('true');
    await expect.poll(() => overlay.isVisible()).toBe(true);
    expect(await text(a.locator('#heatmap-caption'))).toBe('vùng AI chú ý');
    const painted = await overlay.evaluate((c: Canvas2d) => {
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if ((d[i] ?? 0) > 0) n++;
      return n;
    });
    expect(painted).toBeGreaterThan(1000);
    await a.locator('#heatmap-opacity').focus();
    for (let i = 0; i < 4; i++) await a.keyboard.press('ArrowRight');
    expect(await overlay.evaluate((c) => (globalThis as unknown as PageGlobals).getComputedStyle(c).opacity)).toBe('0.7');
    expect(await text(a.locator('#opacity-value'))).toBe('70%');

    // Window / level by dragging; invert; wheel zoom with a decimal comma; reset.
    const wl = a.locator('#wl-text');
    expect(await text(wl)).toBe('W 256 · L 128');
    await drag(a, 60, 30);
    await expect.poll(() => text(wl)).toBe('W 316 · L 158');
    await a.getByRole('button', { name: 'đảo màu' }).click();
    expect(await a.locator('#invert').getAttribute('aria-pressed')).toBe('true');
    const box = await a.locator('#viewport').boundingBox();
    if (!box) throw new Error('viewport not visible');
    await a.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await a.mouse.wheel(0, -300);
    await expect.poll(() => text(a.locator('#zoom-text'))).toMatch(/^×\d+,\d$/);
    await a.getByRole('button', { name: 'đặt lại' }).click();
    await expect.poll(() => text(wl)).toBe('W 256 · L 128');
    expect(await text(a.locator('#zoom-text'))).toBe('×1,0');
    expect(await a.locator('#invert').getAttribute('aria-pressed')).toBe('false');

    // Not claimed yet: the report form is there but closed, and says how to open it.
    expect(await a.locator('#impression').isDisabled()).toBe(true);
    expect(await text(a.locator('#report .report-hint'))).toContain('Bấm “Nhận đọc” ở trên để viết kết quả.');
    expect(await panel.locator('.choice').count()).toBe(0);
    expect(await a.locator('#review-progress').count()).toBe(0);
    await a.locator('#side-col').evaluate((el: { scrollTop: number }) => (el.scrollTop = 0));
    await shot(a, 'vi-viewer');
  });

  it('claim: the other radiologist sees the consult taken, and is told so in plain words when trying', async () => {
    const id = seeded.stat.consultId;
    await b.goto(`${gateway.baseUrl}/`);
    await signIn(b, MINH);
    await open(b, id);
    expect(await text(b.locator('#claim-state'))).toBe('Chờ đọc — chưa có bác sĩ nhận');
    // Hold B's worklist refreshes, so that B still sees the consult free when pressing the button: the race of two
    // radiologists pressing "claim" within the same few seconds.
    let letGo: () => void = () => undefined;
    const held = new Promise<void>((resolve) => (letGo = resolve));
    await b.route('**/api/v1/worklist', async (route) => {
      await held;
      await route.continue();
    });

    await a.locator('#claim-button').click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Bạn đang đọc ca này');
    expect(await a.locator('#impression').isDisabled()).toBe(false);
    expect(await a.locator('#release-button').isVisible()).toBe(true);
    await expect.poll(() => text(row(a, id).locator('.row-status'))).toBe('bạn đang đọc');

    await b.locator('#claim-button').click();
    await expect.poll(() => text(b.locator('#action-msg'))).toContain('Ca này đã có bác sĩ khác nhận đọc');
    letGo();
    // The name comes from the worklist, read again at once.
    await expect.poll(() => text(b.locator('#action-msg'))).toBe('Ca này đã có bác sĩ khác nhận đọc — bác sĩ bs.lan đang đọc. Hãy chọn ca khác trong danh sách.');
    await expect.poll(() => text(b.locator('#claim-state'))).toBe('Bác sĩ bs.lan đang đọc');
    expect(await b.locator('#claim-button').isDisabled()).toBe(true);
    expect(await b.locator('#impression').isDisabled()).toBe(true);
    expect(await text(b.locator('#report .report-hint'))).toBe('Bác sĩ bs.lan đang đọc ca này — bạn chỉ xem được phim và kết quả AI.');
    const taken = row(b, id);
    expect(await taken.getAttribute('class')).toContain('status-taken');
    expect(await text(taken.locator('.row-status'))).toBe('bác sĩ bs.lan đang đọc');
    expect(await text(row(b, seeded.urgent1.consultId).locator('.row-status'))).toBe('chờ đọc');
    expect((await stationView(id)).status).toBe('claimed');
    await shot(b, 'vi-conflict');
    await b.unrouteAll({ behavior: 'wait' });
  });

  it('the report needs an impression and a choice for each suspected finding; signing sends it to the station', async () => {
    const stat = seeded.stat;
    const pos = positives(stat);
    expect(pos.length).toBeGreaterThan(1);
    const errors = a.locator('#report-errors');
    await a.locator('#sign-button').click();
    await expect.poll(() => errors.isVisible()).toBe(true);
    expect(await text(errors)).toContain('Chưa ký được. Hãy viết kết luận.');
    expect(await text(errors)).toContain(`Hãy chọn đồng ý hoặc không đồng ý cho ${pos.length} dấu hiệu nghi ngờ còn thiếu:`);
    expect(await a.locator('#findings li.needs-choice').count()).toBe(pos.length);
    expect(await a.locator('#impression').getAttribute('aria-invalid')).toBe('true');
    expect(await text(a.locator('#review-progress'))).toBe(`Ý kiến về dấu hiệu nghi ngờ của AI: đã chọn 0/${pos.length}`);
    await a.locator('#findings .findings-title').scrollIntoViewIfNeeded();
    await shot(a, 'vi-report-missing');

    await a.locator('#impression').fill('Bóng tim to, tràn dịch màng phổi phải lượng ít.');
    await expect.poll(() => text(errors)).not.toContain('Hãy viết kết luận.');
    expect(await a.locator('#impression').getAttribute('aria-invalid')).toBe('false');
    const [firstPos, ...restPos] = pos;
    if (!firstPos) throw new Error('no positive finding');
    await choose(a, firstPos.code, false);
    for (const f of restPos.slice(0, -1)) await choose(a, f.code, true);
    // One still open: still refused, and it says which.
    await a.locator('#sign-button').click();
    const last = restPos.at(-1);
    if (!last) throw new Error('one positive finding only');
    await expect.poll(() => text(errors)).toBe(`Chưa ký được. Hãy chọn đồng ý hoặc không đồng ý cho dấu hiệu nghi ngờ còn thiếu: ${last.displayVi}.`);
    expect(await a.locator('#findings li.needs-choice').count()).toBe(1);
    expect((await stationView(stat.consultId)).status).toBe('claimed');
    await choose(a, last.code, true);
    // Choosing twice takes the answer back; a below-threshold finding may be answered too.
    await choose(a, last.code, true);
    expect(await a.locator(`#findings li[data-code="${last.code}"] .choice-agree`).getAttribute('aria-pressed')).toBe('false');
    await choose(a, last.code, true);
    expect(await text(a.locator('#review-progress'))).toBe(`Ý kiến về dấu hiệu nghi ngờ của AI: đã chọn ${pos.length}/${pos.length}`);
    await a.locator('#add-finding').click();
    await a.locator('#added-list input').last().fill('Gãy cũ cung sau xương sườn 6 phải');
    await a.locator('#recommendation').fill('Chuyển tuyến trên khám tim mạch.');
    expect(await errors.isVisible()).toBe(false);
    await a.locator('#report').scrollIntoViewIfNeeded();
    await shot(a, 'vi-report-form');

    // B's list rows are marked, to see below that B's refreshes reuse them instead of redrawing the list.
    await b.evaluate(() => {
      for (const li of (globalThis as unknown as PageGlobals).document.querySelectorAll('#worklist > li')) li.cxrMark = li.dataset.id;
    });
    await a.locator('#sign-button').click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Đã có kết quả');
    expect(await text(a.locator('#action-msg'))).toBe('Đã ký duyệt. Kết quả đã được gửi về trạm tram-1.');
    const back = await stationView(stat.consultId);
    expect(back.status).toBe('reported');
    const report = back.report as { signedAt: string };
    expect(back.report).toMatchObject({
      impression: 'Bóng tim to, tràn dịch màng phổi phải lượng ít.',
      recommendation: 'Chuyển tuyến trên khám tim mạch.',
      addedFindings: ['Gãy cũ cung sau xương sườn 6 phải'],
      signedBy: 'bs.lan',
    });
    expect(new Map((back.report?.findings as { code: string; agree: boolean }[]).map((f) => [f.code, f.agree]))).toEqual(new Map(pos.map((f) => [f.code, f !== firstPos])));
    expect(await text(a.locator('#signed-by'))).toBe(`Ký duyệt: BS. Nguyễn Thị Lan (bs.lan) · ${localDateTime(report.signedAt)}`);
    expect(await text(a.locator('#signed-impression'))).toBe('Bóng tim to, tràn dịch màng phổi phải lượng ít.');
    expect(await text(a.locator('#signed-findings'))).toContain(`${firstPos.displayVi} không đồng ý`);
    expect(await text(a.locator('#signed-added'))).toBe('Gãy cũ cung sau xương sườn 6 phải');
    expect(await a.locator('#report textarea').count()).toBe(0);
    expect(await a.locator('#findings .choice').count()).toBe(0);
    // Gone from the worklist, here at once, and at the other radiologist's within a refresh.
    await expect.poll(() => rowIds(a)).toEqual([seeded.urgent1.consultId, seeded.urgent2.consultId, seeded.routine.consultId]);
    await shot(a, 'vi-signed');
    await expect.poll(() => rowIds(b), { timeout: 8_000 }).toEqual([seeded.urgent1.consultId, seeded.urgent2.consultId, seeded.routine.consultId]);
    // B had it open: B now sees the signed report instead of a dead claim button.
    await expect.poll(() => text(b.locator('#claim-state')), { timeout: 8_000 }).toBe('Đã có kết quả');
    expect(await text(b.locator('#signed-by'))).toBe(`Ký duyệt: bs.lan · ${localDateTime(report.signedAt)}`);
    expect(await b.evaluate(() => [...(globalThis as unknown as PageGlobals).document.querySelectorAll('#worklist > li')].every((li) => li.cxrMark === li.dataset.id))).toBe(true);
  });

  it('release gives a consult back to the worklist', async () => {
    const id = seeded.urgent1.consultId;
    await open(a, id);
    await a.locator('#claim-button').click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Bạn đang đọc ca này');
    await expect.poll(() => text(row(b, id).locator('.row-status')), { timeout: 8_000 }).toBe('bác sĩ bs.lan đang đọc');
    await a.locator('#release-button').click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Chờ đọc — chưa có bác sĩ nhận');
    expect(await text(a.locator('#action-msg'))).toBe('Đã trả lại ca này vào danh sách chờ đọc.');
    expect(await a.locator('#impression').isDisabled()).toBe(true);
    await expect.poll(() => text(row(a, id).locator('.row-status'))).toBe('chờ đọc');
    await expect.poll(() => text(row(b, id).locator('.row-status')), { timeout: 8_000 }).toBe('chờ đọc');
    expect((await stationView(id)).status).toBe('queued');
  });

  it('says in plain words what went wrong and what to do: server trouble, no network, a lost connection', async () => {
    const id = seeded.urgent1.consultId;
    await open(b, id);
    const claimRoute = '**/api/v1/consults/*/claim';
    await b.route(claimRoute, (route) =>
      route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: { code: 'CXR_UNAVAILABLE', message: 'A backing service is not reachable' } }) }),
    );
    await b.locator('#claim-button').click();
    await expect.poll(() => text(b.locator('#action-msg'))).toBe('Máy chủ bệnh viện đang gặp sự cố (mã 503). Hãy thử lại sau ít phút; nếu vẫn lỗi, báo kỹ thuật.');
    await b.unrouteAll({ behavior: 'wait' });
    await b.route(claimRoute, (route) => route.abort('internetdisconnected'));
    await b.locator('#claim-button').click();
    await expect.poll(() => text(b.locator('#action-msg'))).toBe('Không kết nối được với máy chủ bệnh viện. Hãy kiểm tra mạng rồi thử lại; nếu vẫn lỗi, báo kỹ thuật.');
    await b.unrouteAll({ behavior: 'wait' });
    expect(await text(b.locator('#claim-state'))).toBe('Chờ đọc — chưa có bác sĩ nhận');
    expect((await stationView(id)).status).toBe('queued');
    // The worklist cannot be read: a banner says so and that it retries; the list stays on screen meanwhile.
    await b.route('**/api/v1/worklist', (route) => route.abort('connectionrefused'));
    await expect.poll(() => b.locator('#banner').isVisible(), { timeout: 8_000 }).toBe(true);
    expect(await text(b.locator('#banner'))).toBe(
      'Mất kết nối với máy chủ bệnh viện — đang thử lại Danh sách ca có thể chưa cập nhật. Nếu kéo dài quá vài phút, hãy kiểm tra mạng rồi báo kỹ thuật.',
    );
    expect(await rows(b).count()).toBe(3);
    await shot(b, 'vi-offline');
    await b.unrouteAll({ behavior: 'wait' });
    await expect.poll(() => b.locator('#banner').isVisible(), { timeout: 8_000 }).toBe(false);
  });

  it('says the AI does not apply to a hip film, with the reason; the report then needs the impression only', async () => {
    const hip = seeded.routine;
    expect(hip.result.applicable).toBe(false);
    await open(a, hip.consultId);
    // Two images in this study: thumbnails (fetched with the token too) switch the viewer and the AI panel.
    const thumbs = a.locator('#thumbs .thumb');
    expect(await thumbs.count()).toBe(2);
    await expect.poll(() => thumbs.locator('img').evaluateAll((imgs) => imgs.filter((i) => (i as { naturalWidth: number }).naturalWidth > 0).length)).toBe(2);
    expect(await text(a.locator('#findings .panel-title'))).toMatch(/^Kết quả AI · Ảnh [12]$/);
    const before = await text(a.locator('#findings .panel-title'));
    const other = before.endsWith('1') ? 1 : 0;
    await thumbs.nth(other).click();
    await expect.poll(() => text(a.locator('#findings .panel-title'))).toBe(`Kết quả AI · Ảnh ${other + 1}`);
    expect(await thumbs.nth(other).getAttribute('aria-selected')).toBe('true');
    await expect.poll(() => a.locator('#viewport').getAttribute('data-state'), { timeout: 10_000 }).toBe('ready');
    const panel = a.locator('#findings');
    expect(await text(panel)).toContain('AI không áp dụng cho ảnh này');
    expect(await text(panel)).toContain(`Lý do: ${hip.result.applicability.reasonVi}`);
    expect(await panel.locator('li.finding').count()).toBe(0);
    expect(await a.locator('#heatmap-toggle').isDisabled()).toBe(true);
    expect(await text(a.locator('#heatmap-none'))).toBe('Không có bản đồ nhiệt cho ảnh này');
    await a.locator('#claim-button').click();
    await expect.poll(() => text(a.locator('#review-progress'))).toBe('AI không có dấu hiệu nghi ngờ nào cần bạn chọn.');
    await a.locator('#sign-button').click();
    await expect.poll(() => text(a.locator('#report-errors'))).toBe('Chưa ký được. Hãy viết kết luận.');
    await a.locator('#release-button').click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Chờ đọc — chưa có bác sĩ nhận');
  });

  it('switches to English, keeps it (and the session) over a reload, and signs a report in English', async () => {
    await a.getByRole('button', { name: 'EN', exact: true }).click();
    expect(await a.getAttribute('html', 'lang')).toBe('en');
    expect(await text(a.locator('h1'))).toBe('Remote chest X-ray consults');
    await a.reload();
    expect(await a.getAttribute('html', 'lang')).toBe('en');
    expect(await a.evaluate(() => (globalThis as unknown as PageGlobals).localStorage.getItem('cxr-gw.lang'))).toBe('en');
    await expect.poll(() => a.locator('#work-screen').isVisible()).toBe(true);
    expect(await text(a.locator('#list-title'))).toBe('Worklist');
    await expect.poll(async () => Promise.all((await rows(a).all()).map((r) => text(r.locator('.badge'))))).toEqual(['urgent', 'urgent', 'routine']);
    expect(await text(row(a, seeded.urgent1.consultId).locator('.row-status'))).toBe('waiting');
    expect(await text(row(a, seeded.urgent1.consultId).locator('.row-age'))).toMatch(/^(just now|\d+ min ago)$/);
    // The hip consult was open: it still is (the address keeps it).
    await expect.poll(() => text(a.locator('#findings'))).toContain('AI not applicable to this image');
    expect(await text(a.locator('#findings'))).toContain(`Reason: ${seeded.routine.result.reason}`);
    expect(await text(a.locator('#consult-head'))).toContain('Sent because: the radiographer asked for a consult');
    await shot(a, 'en-worklist');

    const nih = seeded.urgent2;
    await open(a, nih.consultId);
    const panel = a.locator('#findings');
    for (const f of positives(nih)) {
      expect(await text(panel.locator(`li.finding[data-code="${f.code}"]`))).toContain(`${f.display} — ${pct(f.probability)} (threshold ${pct(f.threshold)}) ▲ above threshold`);
    }
    expect(await text(panel)).toContain(`${positives(nih).length} suspected findings`);
    expect(await text(panel)).toContain('AI priority: urgent');
    expect(await text(panel)).toContain(`Model ${nih.result.model.name}, version ${nih.result.model.version}`);
    await a.locator('#heatmap-toggle').click();
    await expect.poll(() => a.locator('#heatmap-canvas').isVisible()).toBe(true);
    expect(await text(a.locator('#heatmap-caption'))).toBe('where the AI looked');
    expect(await text(a.locator('#report .report-hint'))).toContain('Press “Claim” above to write the report.');
    await shot(a, 'en-viewer');

    await a.getByRole('button', { name: 'Claim', exact: true }).click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('You are reading this consult');
    await a.getByRole('button', { name: 'Sign', exact: true }).click();
    await expect.poll(() => text(a.locator('#report-errors'))).toContain('Not signed yet. Write the impression.');
    expect(await text(a.locator('#report-errors'))).toContain(`Choose agree or disagree for the ${positives(nih).length} suspected findings still open:`);
    for (const f of positives(nih)) await choose(a, f.code, true);
    await a.locator('#impression').fill('Cardiomegaly with small bilateral effusions.');
    await a.locator('#recommendation').fill('Echocardiography.');
    await a.locator('#report').scrollIntoViewIfNeeded();
    await shot(a, 'en-report-form');
    await a.getByRole('button', { name: 'Sign', exact: true }).click();
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Reported');
    const back = await stationView(nih.consultId);
    expect(back).toMatchObject({ status: 'reported', report: { impression: 'Cardiomegaly with small bilateral effusions.', signedBy: 'bs.lan' } });
    expect(await text(a.locator('#signed-by'))).toBe(`Signed by BS. Nguyễn Thị Lan (bs.lan) · ${localDateTime((back.report as { signedAt: string }).signedAt)}`);
    expect(await text(a.locator('#action-msg'))).toBe('Signed. The report has been sent to station tram-1.');
    await expect.poll(() => rowIds(a)).toEqual([seeded.urgent1.consultId, seeded.routine.consultId]);
    await shot(a, 'en-signed');
  });

  it('an ended session returns to sign-in with a clear message; signing out ends the session for good', async () => {
    // The session is revoked behind the page's back (as an expiry would): the next refresh brings the sign-in screen.
    const token = await a.evaluate(() => (JSON.parse((globalThis as unknown as PageGlobals).sessionStorage.getItem('cxr-gw.session') ?? '{}') as { token?: string }).token ?? '');
    const revoked = await fetch(`${gateway.baseUrl}/api/v1/logout`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(revoked.status).toBe(200);
    await expect.poll(() => a.locator('#signin-screen').isVisible(), { timeout: 8_000 }).toBe(true);
    expect(await text(a.locator('#signin-msg'))).toBe('Your session has expired or was signed out. Sign in again — a report you were writing is kept.');
    expect(await a.locator('#username').inputValue()).toBe('bs.lan');
    await shot(a, 'en-signin');
    await a.locator('#password').fill(LAN.password);
    await a.locator('#signin-button').click();
    await expect.poll(() => a.locator('#work-screen').isVisible(), { timeout: 10_000 }).toBe(true);
    // Back where the radiologist was: the consult just signed, now read-only.
    await expect.poll(() => text(a.locator('#claim-state'))).toBe('Reported');

    const second = await a.evaluate(() => (JSON.parse((globalThis as unknown as PageGlobals).sessionStorage.getItem('cxr-gw.session') ?? '{}') as { token?: string }).token ?? '');
    await a.getByRole('button', { name: 'Sign out', exact: true }).click();
    await expect.poll(() => text(a.locator('#signin-msg'))).toBe('You have signed out.');
    expect(await a.evaluate(() => (globalThis as unknown as PageGlobals).sessionStorage.getItem('cxr-gw.session'))).toBeNull();
    await expect
      .poll(async () => (await fetch(`${gateway.baseUrl}/api/v1/worklist`, { headers: { authorization: `Bearer ${second}` } })).status)
      .toBe(401);
    await a.getByRole('button', { name: 'VI', exact: true }).click();
    expect(await text(a.locator('#signin-msg'))).toBe('Bạn đã đăng xuất.');
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
