/**
 * The consult part of the radiographer's page, in Chromium, against real processes: Redis, the hospital gateway and
 * two edge agents (one linked to the gateway, one alone). The radiographer asks for a consult with the button; the
 * radiologist claims and reports through the gateway's API; the page follows without a reload. Screenshots go to
 * /tmp/edge-consult/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { StudyView } from '../src/web/studies.js';
import { dicomDir, removeDir, startAgent, storescu, type AgentProcess } from './harness/agent-process.js';
import { launchChromium } from './support/browser.js';
import { endProcess, startHospital, type Hospital, type Radiologist } from './support/hospital.js';

const shots = '/tmp/edge-consult';
const TZ = 'Asia/Ho_Chi_Minh';

interface Report {
  impression: string;
  findings: { code: string; agree: boolean }[];
  addedFindings: string[];
  recommendation: string | null;
  signedBy: string;
  signedAt: string;
}
type Consult = NonNullable<StudyView['consult']>;
interface WorkItem {
  consultId: string;
  studyInstanceUid: string;
  status: string;
}
/** The page-side globals the snippets use (the type-check config has no DOM library). */
interface PageGlobals {
  notReloaded?: boolean;
  document: { activeElement: unknown };
}

let hospital: Hospital;
let doctor: Radiologist;
let edge: AgentProcess;
let lone: AgentProcess;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const pageErrors: string[] = [];

const baseUrl = (agent: AgentProcess): string => `http://127.0.0.1:${agent.httpPort}`;
const text = async (locator: Locator): Promise<string> => (await locator.innerText()).replace(/\s+/g, ' ').trim();
const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(shots, `${name}.png`) });
const consult = (): Locator => page.locator('section#consult');
const status = (): Locator => consult().locator('.consult-status');
const link = (): Locator => page.locator('#link');
const row = (name: string): Locator => page.locator('#study-list > li').filter({ has: page.locator('.row-name', { hasText: name }) });

/** dd/mm/yyyy HH:mm in the station's time zone. */
function stationTime(iso: string): string {
  const parts = Object.fromEntries(
    new Intl.DateTimeFormat('en-GB', { timeZone: TZ, day: '2-digit', month: '2-digit', year: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' })
      .formatToParts(new Date(iso))
      .map((p) => [p.type, p.value]),
  );
  return `${parts.day}/${parts.month}/${parts.year} ${parts.hour}:${parts.minute}`;
}

/** Waits until the agent has the study of `patientId` with every image processed and previewed. */
async function settledStudy(agent: AgentProcess, patientId: string): Promise<StudyView> {
  let found: StudyView | undefined;
  await expect
    .poll(
      async () => {
        found = (await agent.api<StudyView[]>('/api/studies')).find((s) => s.patient.id === patientId);
        return found !== undefined && found.instances.every((i) => i.status === 'failed' || (i.status === 'inferred' && i.previewUrl !== null));
      },
      { timeout: 30_000 },
    )
    .toBe(true);
  if (!found) throw new Error(`no study for ${patientId}`);
  return found;
}

async function edgeConsult(uid: string): Promise<Consult | null> {
  return (await edge.api<StudyView>(`/api/studies/${uid}`)).consult;
}

async function open(name: string): Promise<void> {
  await row(name).click();
  await expect.poll(() => text(page.locator('#study-head .sh-name'))).toContain(name);
}

async function imageReady(): Promise<void> {
  await expect.poll(() => page.locator('#viewport').getAttribute('data-state')).toBe('ready');
}

async function setLang(lang: 'vi' | 'en'): Promise<void> {
  await page.getByRole('button', { name: lang.toUpperCase(), exact: true }).click();
  expect(await page.getAttribute('html', 'lang')).toBe(lang);
}

beforeAll(async () => {
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  [hospital, browser] = await Promise.all([startHospital(), launchChromium()]);
  const station = await hospital.addStation('tram-xa-1');
  doctor = await hospital.addRadiologist('bs.lan', 'mat-khau-dai-1');
  // Only "stat" studies go by themselves: the random-weights model's urgent ones wait for the button.
  [edge, lone] = await Promise.all([
    startAgent({
      args: ['--gateway', hospital.url, '--station-id', station.stationId, '--station-token', station.token, '--log-level', 'warn'],
      env: { CXR_EDGE_GATEWAY_POLL_MS: '300', CXR_EDGE_CONSULT_PRIORITIES: 'stat' },
    }),
    startAgent({ args: ['--log-level', 'warn'] }),
  ]);
  const sent = await Promise.all([
    storescu(edge.dicomPort, [path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm')]),
    storescu(lone.dicomPort, [path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm')]),
  ]);
  for (const s of sent) expect(s.code, s.stderr).toBe(0);
  context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'vi-VN', timezoneId: TZ });
  context.setDefaultTimeout(15_000);
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
});

afterAll(async () => {
  await browser?.close();
  await Promise.all([edge, lone].map((a) => (a ? endProcess(a.child) : undefined)));
  await hospital?.close();
  for (const a of [edge, lone]) if (a) removeDir(a.dataDir);
});

describe('the consult on the radiographer\'s page', () => {
  let chestUid: string;
  let chest: StudyView;

  it('shows the hospital link and a clear "Yêu cầu hội chẩn" button that opens a note box', async () => {
    chest = await settledStudy(edge, '9RG1');
    chestUid = chest.studyInstanceUid;
    // Not sent by itself (only stat studies are, here): the button is what sends it.
    expect(chest.priority).not.toBe('stat');
    expect(chest.consult).toBeNull();
    await page.goto(`${baseUrl(edge)}/#study=${encodeURIComponent(chestUid)}`);
    await page.evaluate(() => {
      const w = globalThis as unknown as PageGlobals;
      w.notReloaded = true;
    });
    await expect.poll(() => text(page.locator('#study-head .sh-name'))).toContain('CompressedSamples RG1');
    // The study's files went to the hospital already (results and images go whatever the priority): online, idle.
    await expect.poll(() => text(link()), { timeout: 15_000 }).toBe('Kết nối bệnh viện: đang kết nối');
    expect(await link().getAttribute('data-state')).toBe('online');
    const button = consult().getByRole('button', { name: 'Yêu cầu hội chẩn' });
    await expect.poll(() => button.isVisible()).toBe(true);
    expect(await button.isEnabled()).toBe(true);
    expect(await text(consult())).toContain('Hội chẩn từ xa');
    expect(await consult().locator('textarea').count()).toBe(0);
    // In sight without scrolling the panel.
    const box = await button.boundingBox();
    expect(box && box.y + box.height).toBeLessThanOrEqual(768);
    await imageReady();
    await shot('vi-button');

    await button.click();
    const note = consult().locator('textarea#consult-note');
    await expect.poll(() => note.isVisible()).toBe(true);
    expect(await note.evaluate((el) => el === (globalThis as unknown as PageGlobals).document.activeElement)).toBe(true);
    expect(await text(consult().locator('label'))).toBe('Ghi chú cho bác sĩ (không bắt buộc)');
    expect(await consult().getByRole('button', { name: 'Gửi yêu cầu' }).isVisible()).toBe(true);
    // Cancel closes the box and nothing is sent; the button comes back.
    await consult().getByRole('button', { name: 'Huỷ' }).click();
    await expect.poll(() => button.isVisible()).toBe(true);
    expect(await edgeConsult(chestUid)).toBeNull();
    await button.click();
    await note.fill('Ho kéo dài 3 tuần, sốt về chiều. Nhờ bác sĩ đọc giúp.');
    await shot('vi-note');
  });

  it('sends the request and shows it waiting for a radiologist, with the note, the reason and the time', async () => {
    await consult().getByRole('button', { name: 'Gửi yêu cầu' }).click();
    await expect.poll(() => text(status()), { timeout: 15_000 }).toBe('Đã gửi, chờ bác sĩ đọc');
    const sent = await edgeConsult(chestUid);
    expect(sent).toMatchObject({ status: 'queued', reason: 'requested', note: 'Ho kéo dài 3 tuần, sốt về chiều. Nhờ bác sĩ đọc giúp.' });
    const panel = await text(consult());
    expect(panel).toContain('Lý do gửi: Kỹ thuật viên yêu cầu');
    expect(panel).toContain('Ghi chú: Ho kéo dài 3 tuần, sốt về chiều. Nhờ bác sĩ đọc giúp.');
    expect(panel).toContain(`Yêu cầu lúc: ${stationTime(sent?.requestedAt ?? '')}`);
    expect(await consult().getByRole('button', { name: 'Yêu cầu hội chẩn' }).count()).toBe(0);
    await expect.poll(() => text(row('CompressedSamples RG1').locator('.row-consult'))).toBe('đã gửi hội chẩn');
    // The radiologist has it, with the note.
    const worklist = await doctor.api<WorkItem[]>('/api/v1/worklist');
    const item = worklist.body.find((w) => w.studyInstanceUid === chestUid);
    expect(item?.status).toBe('queued');
    const view = await doctor.api<{ consult: { reason: string; note: string | null } }>(`/api/v1/consults/${item?.consultId}`);
    expect(view.body.consult).toMatchObject({ reason: 'requested', note: 'Ho kéo dài 3 tuần, sốt về chiều. Nhờ bác sĩ đọc giúp.' });
    await shot('vi-waiting');
    // A smaller screen: the panel goes under the image; scrolled to, the consult part reads the same.
    await page.setViewportSize({ width: 1024, height: 700 });
    await status().scrollIntoViewIfNeeded();
    await expect.poll(() => status().isVisible()).toBe(true);
    await shot('vi-waiting-1024');
    await page.locator('#study-pane').evaluate((el: { scrollTop: number }) => (el.scrollTop = 0));
    await page.setViewportSize({ width: 1366, height: 768 });
  });

  it('follows the radiologist without a reload: being read, then the signed report', async () => {
    const item = (await doctor.api<WorkItem[]>('/api/v1/worklist')).body.find((w) => w.studyInstanceUid === chestUid);
    if (!item) throw new Error('not on the worklist');
    expect((await doctor.api(`/api/v1/consults/${item.consultId}/claim`, { method: 'POST' })).status).toBe(200);
    await expect.poll(() => text(status()), { timeout: 15_000 }).toBe('Bác sĩ đang đọc');
    await expect.poll(() => text(row('CompressedSamples RG1').locator('.row-consult'))).toBe('bác sĩ đang đọc');

    const findings = chest.instances[0]?.result?.findings ?? [];
    const [first, second] = [...findings].sort((a, b) => b.probability - a.probability);
    if (!first || !second) throw new Error('no AI findings');
    // Every flagged finding needs an answer (the gateway checks); the second one is disagreed with.
    const answered = findings.filter((f) => f.positive || f.code === first.code || f.code === second.code);
    const answers = answered.map((f) => ({ code: f.code, agree: f.code !== second.code }));
    const said = (lang: 'vi' | 'en'): string[] =>
      answered
        .map((f) => (lang === 'vi' ? `${f.displayVi} — ${f.code === second.code ? 'không đồng ý' : 'đồng ý'}` : `${f.display} — ${f.code === second.code ? 'disagree' : 'agree'}`))
        .sort();
    const signed = await doctor.api<Report>(`/api/v1/consults/${item.consultId}/report`, {
      method: 'POST',
      body: {
        impression: 'Nhiều nốt mờ tròn rải rác hai phổi, nghĩ đến di căn phổi.',
        findings: answers,
        addedFindings: ['Nốt vôi hoá đỉnh phổi phải'],
        recommendation: 'Chuyển tuyến tỉnh chụp CT ngực trong tuần này.',
      },
    });
    expect(signed.status).toBe(201);
    await expect.poll(() => text(status()), { timeout: 15_000 }).toBe('Đã có kết quả');
    const report = consult().locator('.report');
    const shown = await text(report);
    expect(shown).toContain('Kết quả đọc phim');
    expect(await text(report.locator('.report-impression'))).toBe('Kết luận Nhiều nốt mờ tròn rải rác hai phổi, nghĩ đến di căn phổi.');
    expect(await text(report.locator('.report-recommendation'))).toBe('Đề nghị Chuyển tuyến tỉnh chụp CT ngực trong tuần này.');
    expect((await Promise.all((await report.locator('.report-ai li').all()).map(text))).sort()).toEqual(said('vi'));
    expect(await text(report.locator('.report-added'))).toBe('Dấu hiệu bác sĩ ghi thêm Nốt vôi hoá đỉnh phổi phải');
    expect(await text(report.locator('.report-signed'))).toBe(`Ký duyệt: bs.lan · ${stationTime(signed.body.signedAt)}`);
    // The request stays readable under the report.
    expect(await text(consult())).toContain('Ghi chú: Ho kéo dài 3 tuần');
    // The report comes first in the panel, above the AI result.
    const [reportBox, aiBox] = await Promise.all([report.boundingBox(), page.locator('#findings').boundingBox()]);
    expect(reportBox && aiBox && reportBox.y < aiBox.y).toBe(true);
    await expect.poll(() => text(row('CompressedSamples RG1').locator('.row-consult'))).toBe('đã có kết quả');
    expect(await page.evaluate(() => (globalThis as unknown as PageGlobals).notReloaded)).toBe(true);
    await shot('vi-report');

    await setLang('en');
    await expect.poll(() => text(status())).toBe('Report received');
    expect(await text(report.locator('.report-title'))).toBe("Radiologist's report");
    expect(await text(report.locator('.report-impression'))).toBe('Impression Nhiều nốt mờ tròn rải rác hai phổi, nghĩ đến di căn phổi.');
    expect(await text(report.locator('.report-recommendation'))).toBe('Recommendation Chuyển tuyến tỉnh chụp CT ngực trong tuần này.');
    expect((await Promise.all((await report.locator('.report-ai li').all()).map(text))).sort()).toEqual(said('en'));
    expect(await text(report.locator('.report-signed'))).toBe(`Signed: bs.lan · ${stationTime(signed.body.signedAt)}`);
    expect(await text(consult())).toContain('Why: Requested by the radiographer');
    expect(await text(row('CompressedSamples RG1').locator('.row-consult'))).toBe('report in');
    expect(await text(link())).toBe('Hospital link: online');
    await shot('en-report');
  });

  it('says when the hospital link is down; the request waits on the station and goes when the link is back', async () => {
    // A second study, asked for while the gateway is down.
    expect((await storescu(edge.dicomPort, [path.join(dicomDir, 'dx_chest_nih_secondary_capture.dcm')])).code).toBe(0);
    const nih = await settledStudy(edge, 'Covid0000');
    await open('Covid0000');
    const button = consult().getByRole('button', { name: 'Request consult' });
    // Not stat with these weights, so not sent by itself: the button is there.
    expect(nih.priority).not.toBe('stat');
    expect(nih.consult).toBeNull();
    await expect.poll(() => button.isVisible()).toBe(true);
    await expect.poll(() => text(link()), { timeout: 15_000 }).toBe('Hospital link: online');
    await imageReady();
    await shot('en-button');
    await button.click();
    await consult().locator('textarea').fill('Short of breath since yesterday.');
    await shot('en-note');

    await hospital.stopGateway();
    await consult().getByRole('button', { name: 'Send request' }).click();
    await expect.poll(() => text(status())).toBe('Waiting to be sent to the hospital');
    await expect.poll(() => text(link()), { timeout: 15_000 }).toBe('Hospital link: offline (1 study waiting)');
    expect(await link().getAttribute('data-state')).toBe('offline');
    await expect.poll(() => text(consult())).toContain('Not sent yet: the hospital link is down.');
    await expect.poll(() => text(row('Covid0000').locator('.row-consult'))).toBe('consult sent');
    expect(await link().getAttribute('title')).toContain('Studies stay stored on the station');
    await shot('en-offline');
    await setLang('vi');
    expect(await text(link())).toBe('Kết nối bệnh viện: mất kết nối (1 ca chờ gửi)');
    expect(await text(status())).toBe('Đang chờ gửi lên bệnh viện');
    expect(await text(consult())).toContain('Chưa gửi được vì mất kết nối bệnh viện.');
    await shot('vi-offline');

    await hospital.startGateway();
    await expect.poll(() => text(status()), { timeout: 30_000 }).toBe('Đã gửi, chờ bác sĩ đọc');
    await expect.poll(() => text(link()), { timeout: 15_000 }).toBe('Kết nối bệnh viện: đang kết nối');
    const worklist = await doctor.api<WorkItem[]>('/api/v1/worklist');
    expect(worklist.body.filter((w) => w.studyInstanceUid === nih.studyInstanceUid)).toHaveLength(1);
    await setLang('en');
    await expect.poll(() => text(status())).toBe('Sent, waiting for a radiologist');
    await shot('en-waiting');
    expect(pageErrors).toEqual([]);
  });

  it('at a station without a hospital link: the button is disabled, and says why', async () => {
    await settledStudy(lone, '9RG1');
    const res = await fetch(`${baseUrl(lone)}/api/studies/${encodeURIComponent(chestUid)}/consult`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(409);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe('CXR_NO_GATEWAY');
    // Another origin: the page starts in Vietnamese.
    await page.goto(`${baseUrl(lone)}/`);
    await expect.poll(() => text(page.locator('#study-head .sh-name'))).toContain('CompressedSamples RG1');
    await expect.poll(() => text(link())).toBe('Kết nối bệnh viện: chưa cấu hình');
    expect(await link().getAttribute('data-state')).toBe('disabled');
    const button = consult().getByRole('button', { name: 'Yêu cầu hội chẩn' });
    await expect.poll(() => button.isDisabled()).toBe(true);
    expect(await text(consult().locator('#consult-why'))).toBe(
      'Máy trạm này chưa được nối với bệnh viện nên chưa gửi hội chẩn được. Nếu cần, hãy báo kỹ thuật cấu hình kết nối bệnh viện.',
    );
    expect(await button.getAttribute('aria-describedby')).toBe('consult-why');
    expect(await page.locator('#study-list .row-consult').count()).toBe(0);
    await imageReady();
    await shot('vi-no-gateway');
    await setLang('en');
    await expect.poll(() => text(link())).toBe('Hospital link: not set up');
    expect(await text(consult().locator('#consult-why'))).toContain('This station is not linked to a hospital, so consults cannot be sent.');
    await shot('en-no-gateway');
    await setLang('vi');
  });

  it('words the other link states: sending N studies, a refused station code; a refused request says what to do', async () => {
    const base = { pending: 0, pendingStudies: 0, failed: 0, lastSuccessAt: new Date().toISOString(), lastError: null };
    let answer: Record<string, unknown> = { ...base, state: 'online', pending: 9, pendingStudies: 2 };
    await page.route('**/api/link', (route) => route.fulfill({ json: answer }));
    await page.reload();
    await expect.poll(() => text(link())).toBe('Kết nối bệnh viện: đang gửi 2 ca');
    expect(await link().getAttribute('data-state')).toBe('sending');
    expect(await link().locator('#link-extra').isVisible()).toBe(false);
    answer = { ...base, state: 'unauthorized', pending: 3, pendingStudies: 1, failed: 1, lastError: 'POST /api/v1/stations/tram-xa-1…: 401' };
    await page.reload();
    await expect.poll(() => text(link().locator('#link-text'))).toBe('Kết nối bệnh viện: bệnh viện từ chối mã trạm');
    expect(await link().locator('#link-extra > span').allInnerTexts()).toEqual(['Báo kỹ thuật kiểm tra mã trạm', '1 mục bị bệnh viện từ chối — báo kỹ thuật']);
    expect(await link().getAttribute('data-state')).toBe('unauthorized');
    // The details for the technician are in the tooltip.
    expect(await link().getAttribute('title')).toContain('401');
    // The request can still be made: it waits on the station until the code is fixed.
    expect(await consult().getByRole('button', { name: 'Yêu cầu hội chẩn' }).isEnabled()).toBe(true);
    await imageReady();
    await shot('vi-unauthorized');
    await setLang('en');
    expect(await text(link().locator('#link-text'))).toBe('Hospital link: the hospital refused the station code');
    expect(await link().locator('#link-extra > span').allInnerTexts()).toEqual(['Ask the technician to check the station code', '1 item refused by the hospital — call the technician']);
    await shot('en-unauthorized');
    await setLang('vi');
    // The page believes the link works; the agent, with no gateway, refuses: the radiographer reads what to do.
    answer = { ...base, state: 'online' };
    await page.reload();
    await expect.poll(() => text(link())).toBe('Kết nối bệnh viện: đang kết nối');
    await consult().getByRole('button', { name: 'Yêu cầu hội chẩn' }).click();
    await consult().locator('textarea').fill('Ghi chú thử');
    await consult().getByRole('button', { name: 'Gửi yêu cầu' }).click();
    await expect
      .poll(() => text(consult().locator('.consult-error')))
      .toBe('Không gửi được: máy trạm này chưa được nối với bệnh viện. Báo kỹ thuật cấu hình kết nối bệnh viện.');
    // The note is kept for another try.
    expect(await consult().locator('textarea').inputValue()).toBe('Ghi chú thử');
    await consult().getByRole('button', { name: 'Huỷ' }).click();

    // Before the first contact (nothing sent yet) the agent reports "offline" with no error: not an outage.
    answer = { ...base, state: 'offline', lastSuccessAt: null };
    await page.reload();
    await expect.poll(() => text(link())).toBe('Kết nối bệnh viện: chưa liên lạc');
    expect(await link().getAttribute('data-state')).toBe('idle');

    // A study sent by itself because of its priority says so.
    const requestedAt = new Date().toISOString();
    await page.route(
      (url) => url.pathname === '/api/studies',
      async (route) => {
        const real = (await (await route.fetch()).json()) as StudyView[];
        await route.fulfill({ json: real.map((st) => ({ ...st, consult: { status: 'queued', reason: 'policy', note: null, requestedAt } })) });
      },
    );
    answer = { ...base, state: 'online' };
    await page.reload();
    await expect.poll(() => text(status())).toBe('Đã gửi, chờ bác sĩ đọc');
    expect(await text(consult())).toContain(`Lý do gửi: Tự động gửi vì mức ưu tiên ${chest.priority === 'urgent' ? 'khẩn' : 'khẩn/cấp cứu'}`);
    expect(await consult().locator('.consult-note').count()).toBe(0);
    await setLang('en');
    expect(await text(consult())).toContain(`Why: Sent automatically because of its ${chest.priority === 'urgent' ? 'urgent' : 'urgent/stat'} priority`);
    await setLang('vi');
    await page.unrouteAll();
    expect(pageErrors).toEqual([]);
  });
});
