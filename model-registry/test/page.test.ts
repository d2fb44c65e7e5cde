/**
 * The ML engineer's page (/ml/) in Chromium against a real gateway process (real redis-server, folder store,
 * accounts made with `cxr-gateway admin`), seeded through the registry's own HTTP API: versions pushed and
 * validated, a refused push, a cohort, deployments and station status reports. Screenshots go to /tmp/registry-page/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from '../../gateway/test/support/browser.js';
import { buildGateway, startGateway, type RunningGateway } from '../../gateway/test/support/gateway.js';
import { GatewayClient } from '../src/cli/client.js';
import { SQUEEZENET, folderFiles, makeModelFolder } from './support/models.js';

const shots = '/tmp/registry-page';
const HUNG = { username: 'kt.hung', password: 'mat-khau-dai-3', role: 'mlops', displayName: 'KS. Lê Văn Hùng' } as const;
const LAN = { username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist' } as const;
const TZ = 'Asia/Ho_Chi_Minh';

let gateway: RunningGateway;
let ml: GatewayClient;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const folders: string[] = [];
const pageErrors: string[] = [];

const text = async (locator: Locator): Promise<string> => (await locator.innerText()).replace(/\s+/g, ' ').trim();
const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(shots, `${name}.png`), fullPage: true });
const fleetRow = (id: string): Locator => page.locator(`#fleet-rows tr[data-station="${id}"]`);

async function push(dir: string): Promise<{ accepted: boolean }> {
  for (const f of await folderFiles(dir)) if (!(await ml.hasBlob(f.sha256))) await ml.putBlob(f.file, f.sha256, f.size);
  const files = (await folderFiles(dir)).map(({ path: p, sha256, size }) => ({ path: p, sha256, size }));
  return (await ml.call('POST', '/api/v1/registry/versions', { files }, [200, 201, 422])).json as { accepted: boolean };
}

async function report(stationId: string, body: unknown): Promise<void> {
  const station = new GatewayClient(gateway.baseUrl, gateway.stationTokens.get(stationId));
  await station.call('POST', `/api/v1/stations/${stationId}/model/status`, body);
}

async function signIn(user: { username: string; password: string }): Promise<void> {
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.locator('#signin-button').click();
}

beforeAll(async () => {
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  await buildGateway();
  [gateway, browser] = await Promise.all([startGateway({ stations: ['tram-1', 'tram-2', 'tram-3', 'tram-4'], users: [HUNG, LAN], args: ['--sign-in-max-failures-per-account', '3'] }), launchChromium()]);
  const session = (await new GatewayClient(gateway.baseUrl).call('POST', '/api/v1/login', { username: HUNG.username, password: HUNG.password })).json as { token: string };
  ml = new GatewayClient(gateway.baseUrl, session.token);
  folders.push(
    await makeModelFolder(SQUEEZENET),
    await makeModelFolder(SQUEEZENET, { manifest: (m) => void (m.version = '1.1.0') }),
    await makeModelFolder(SQUEEZENET, { manifest: (m) => void ((m.version = '1.2.0'), (m.sha256 = 'b'.repeat(64))), golden: (p) => p.map((x) => x + 0.1) }),
  );
  for (const dir of folders) await push(dir);
  await ml.call('POST', '/api/v1/registry/cohorts/pilot/stations', { stations: ['tram-1', 'tram-2', 'tram-3'] });
  await ml.call('POST', '/api/v1/registry/deployments', { name: SQUEEZENET, version: '1.0.0', cohort: 'pilot' });
  await ml.call('POST', '/api/v1/registry/deployments', { name: SQUEEZENET, version: '1.1.0', station: 'tram-4' });
  const running = (version: string) => ({ name: SQUEEZENET, version, sha256: '2'.repeat(64) });
  await report('tram-1', { running: running('1.0.0'), lastGood: { name: SQUEEZENET, version: '1.0.0' }, state: 'ok', counts: { studies: 31, failed: 0 }, at: new Date().toISOString() });
  await report('tram-2', {
    running: running('1.0.0'),
    lastGood: { name: SQUEEZENET, version: '1.0.0' },
    state: 'failed',
    error: { code: 'CXR_SIGNATURE_INVALID', message: 'the deployment is signed by another key', name: SQUEEZENET, version: '1.0.0' },
    counts: { studies: 8, failed: 1 },
    at: new Date().toISOString(),
  });
  await report('tram-4', { running: running('1.0.0'), lastGood: { name: SQUEEZENET, version: '1.0.0' }, state: 'downloading', counts: { studies: 3, failed: 0 }, at: new Date().toISOString() });
  context = await browser.newContext({ viewport: { width: 1440, height: 900 }, locale: 'vi-VN', timezoneId: TZ });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
}, 180_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
  for (const dir of folders) await rm(dir, { recursive: true, force: true });
});

describe("the ML engineer's page", () => {
  it('opens in Vietnamese and turns away an account that is not a model engineer, pointing to the consult page', async () => {
    await page.goto(`${gateway.baseUrl}/ml`);
    expect(new URL(page.url()).pathname).toBe('/ml/');
    expect(await page.getAttribute('html', 'lang')).toBe('vi');
    expect(await text(page.locator('h1'))).toBe('Quản lý mô hình AI');
    await signIn(LAN);
    await expect.poll(() => text(page.locator('#signin-msg')), { timeout: 15_000 }).toContain('Tài khoản này không dùng để quản lý mô hình AI.');
    expect(await page.locator('#to-reader').getAttribute('href')).toBe('/');
    expect(await page.locator('#to-reader').isVisible()).toBe(true);
    expect(await page.locator('#work-screen').isVisible()).toBe(false);
    await shot('vi-signin-refused');
  });

  it('says that sign-in is held back after repeated failures, not that the server is in trouble', async () => {
    for (let i = 0; i < 3; i += 1) {
      await signIn({ username: 'ks.khach', password: `doan-mat-khau-${i}` });
      await expect.poll(() => page.locator('#signin-button').isEnabled(), { timeout: 15_000 }).toBe(true);
      await expect.poll(() => text(page.locator('#signin-msg')), { timeout: 15_000 }).toContain('Sai tên đăng nhập hoặc mật khẩu.');
    }
    await signIn({ username: 'ks.khach', password: 'doan-mat-khau-3' });
    await expect
      .poll(() => text(page.locator('#signin-msg')), { timeout: 15_000 })
      .toBe('Đăng nhập sai quá nhiều lần nên tạm thời bị chặn. Hãy đợi ít phút rồi thử lại; nếu quên mật khẩu, hãy liên hệ quản trị hệ thống.');
    await shot('vi-signin-throttled');
  });

  it('shows the fleet: each station with the version it should run, the one it runs, state, last seen and errors', async () => {
    await signIn(HUNG);
    // A sign-in derives the password's scrypt key (N = 2^17): allow for a busy machine.
    await expect.poll(() => page.locator('#work-screen').isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await text(page.locator('#user-name'))).toBe('KS. Lê Văn Hùng (kt.hung)');
    await expect.poll(() => page.locator('#fleet-rows tr').count()).toBe(4);
    expect(await text(page.locator('#view-fleet h2'))).toBe('Mô hình đang chạy ở các trạm');
    expect(await text(fleetRow('tram-1').locator('td.sync'))).toBe('đúng phiên bản');
    expect(await text(fleetRow('tram-1').locator('td.desired'))).toBe(`${SQUEEZENET}@1.0.0`);
    expect(await text(fleetRow('tram-1').locator('td.seen'))).toBe('vừa xong');
    expect(await text(fleetRow('tram-2').locator('td.sync'))).toBe('lỗi');
    // A known code in the page's words; the station's own words stay on the cell for the technician.
    expect(await text(fleetRow('tram-2').locator('td.error'))).toBe('CXR_SIGNATURE_INVALID Chữ ký của bản triển khai không khớp với khoá registry mà trạm tin cậy.');
    expect(await fleetRow('tram-2').locator('td.error').getAttribute('title')).toBe('the deployment is signed by another key');
    expect(await text(fleetRow('tram-3').locator('td.sync'))).toBe('chưa liên lạc');
    expect(await text(fleetRow('tram-3').locator('td.seen'))).toBe('chưa bao giờ');
    expect(await text(fleetRow('tram-4').locator('td.cohort, td:nth-child(2)'))).toBe('chưa vào nhóm');
    expect(await text(fleetRow('tram-4').locator('td.desired'))).toBe(`${SQUEEZENET}@1.1.0 riêng trạm này`);
    expect(await text(fleetRow('tram-4').locator('td.sync'))).toBe('đang chờ cập nhật đang tải về');
    expect(await text(page.locator('#fleet-summary'))).toBe('4 trạm · 1 đúng phiên bản · 2 đang chờ · 1 lỗi');
    const red = await fleetRow('tram-2').locator('.chip').evaluate((el) => (globalThis as unknown as { getComputedStyle(e: unknown): { backgroundColor: string } }).getComputedStyle(el).backgroundColor);
    expect(red).toBe('rgb(179, 38, 30)');
    await shot('vi-fleet');
  });

  it('switches to English and back', async () => {
    await page.locator('[data-lang="en"]').click();
    expect(await page.getAttribute('html', 'lang')).toBe('en');
    expect(await text(page.locator('#view-fleet h2'))).toBe('Which model each station runs');
    expect(await text(fleetRow('tram-1').locator('td.sync'))).toBe('up to date');
    expect(await text(page.locator('#tab-deploy'))).toBe('Deployments');
    await shot('en-fleet');
    await page.locator('[data-lang="vi"]').click();
    expect(await text(page.locator('#tab-models'))).toBe('Mô hình');
  });

  it('lists the models and versions, with each validation report and the refused pushes with their reasons', async () => {
    await page.locator('#tab-models').click();
    await expect.poll(() => page.locator('.version-row').count()).toBe(2);
    expect(await Promise.all((await page.locator('.version-row .v').all()).map((v) => text(v)))).toEqual(['1.1.0', '1.0.0']);
    await page.locator(`.version-row[data-id="${SQUEEZENET}@1.1.0"]`).click();
    await expect.poll(() => page.locator('.check').count()).toBe(7);
    expect(page.url()).toContain(`#models/${SQUEEZENET}@1.1.0`);
    const status = async (check: string): Promise<string> => text(page.locator(`.check[data-check="${check}"] .chip`));
    for (const check of ['manifest', 'sha256', 'runtime', 'shapes', 'golden', 'latency']) expect(await status(check), check).toBe('đạt');
    expect(await status('metrics')).toBe('bỏ qua');
    expect(await text(page.locator('.check[data-check="metrics"] .check-detail'))).toBe('không có bộ ảnh có nhãn (cxr-registry push --labels CSV)');
    expect(await text(page.locator('.check[data-check="golden"] .check-detail'))).toMatch(/^2\/2 ca khớp, sai lệch tối đa [0-9,e-]+ \(dung sai 0,001\)/u);
    expect(await text(page.locator('.check[data-check="latency"] .check-detail'))).toMatch(/^trung vị \d+,\d ms \(5 lần, 2 luồng\)$/u);
    expect(await text(page.locator('.detail table').first())).toContain('Viêm phổi do vi khuẩn 0,25 khẩn');
    const refused = page.locator('.refused-item');
    expect(await refused.count()).toBe(1);
    expect(await text(refused.locator('.refused-head'))).toMatch(new RegExp(`^${SQUEEZENET}@1\\.2\\.0 — \\d{2}/\\d{2}/\\d{4} \\d{2}:\\d{2}, kt\\.hung$`, 'u'));
    const reasons = await text(refused.locator('.reasons'));
    expect(reasons).toContain('CXR_MODEL_HASH_MISMATCH Tệp mô hình không khớp với mã sha256 trong manifest. model.onnx has sha256');
    expect(reasons).toContain('CXR_MODEL_GOLDEN_MISMATCH Mô hình cho kết quả khác với ca mẫu (golden). golden/');
    await shot('vi-models');
  });

  it('deploys a version to a canary share of a cohort with site thresholds, from the page', async () => {
    await page.locator('#deploy-this').click();
    await expect.poll(() => page.locator('#deploy-dialog').isVisible()).toBe(true);
    expect(await page.locator('#deploy-version').inputValue()).toBe(`${SQUEEZENET}@1.1.0`);
    await expect.poll(() => page.locator('#deploy-thresholds input').count()).toBe(2);
    await page.locator('#deploy-cohort').selectOption('pilot');
    await page.locator('#deploy-percent').fill('50');
    await page.locator('#deploy-thresholds input[data-code="bacterial_pneumonia"]').fill('1,5');
    await page.locator('#deploy-submit').click();
    await expect.poll(() => text(page.locator('#deploy-msg'))).toBe('Ngưỡng phải là số từ 0 đến 1 (ví dụ 0,35).');
    await page.locator('#deploy-thresholds input[data-code="bacterial_pneumonia"]').fill('0,3');
    await shot('vi-deploy-dialog');
    await page.locator('#deploy-submit').click();
    await expect.poll(() => page.locator('#deploy-dialog').isVisible()).toBe(false);
    expect(await text(page.locator('#action-msg'))).toBe(`Đã triển khai ${SQUEEZENET}@1.1.0 cho nhóm pilot (50% nhóm). Các trạm sẽ tải về ở lần hỏi tiếp theo.`);
    const history = (await ml.call('GET', '/api/v1/registry/deployments?cohort=pilot')).json as { version: string; target: unknown; thresholds: unknown; issuedBy: string }[];
    expect(history[0]).toMatchObject({ version: '1.1.0', target: { cohort: 'pilot', percent: 50 }, thresholds: { bacterial_pneumonia: 0.3 }, issuedBy: 'kt.hung' });
  });

  it('shows deployments by cohort and rolls a cohort back after a confirmation', async () => {
    await page.locator('#tab-deploy').click();
    const card = page.locator('.cohort[data-cohort="pilot"]');
    await expect.poll(() => card.locator('.history tbody tr').count()).toBe(2);
    expect(await text(card.locator('.cohort-now'))).toBe(`Hiện tại ${SQUEEZENET}@1.1.0 50% nhóm`);
    expect(await text(card.locator('.ch-main p'))).toBe('Các trạm: tram-1, tram-2, tram-3');
    await shot('vi-deployments');
    await card.locator('button.danger').click();
    await expect.poll(() => page.locator('#confirm-dialog').isVisible()).toBe(true);
    expect(await text(page.locator('#confirm-body'))).toBe(`Tất cả các trạm của nhóm pilot sẽ quay từ ${SQUEEZENET}@1.1.0 về ${SQUEEZENET}@1.0.0, phiên bản đã chạy trước đó.`);
    await page.locator('#confirm-ok').click();
    await expect.poll(() => page.locator('#confirm-dialog').isVisible()).toBe(false);
    expect(await text(page.locator('#action-msg'))).toBe(`Đã quay nhóm pilot về ${SQUEEZENET}@1.0.0.`);
    await expect.poll(() => card.locator('.history tbody tr').count()).toBe(3);
    expect(await text(card.locator('.cohort-now'))).toBe(`Hiện tại ${SQUEEZENET}@1.0.0 cả nhóm quay lại`);
    // Nothing earlier than 1.0.0: the page says so instead of offering a rollback the registry would refuse.
    expect(await card.locator('button.danger').isDisabled()).toBe(true);
    expect(await card.locator('button.danger').getAttribute('title')).toBe('Nhóm này không có phiên bản trước để quay về.');
    const history = (await ml.call('GET', '/api/v1/registry/deployments?cohort=pilot')).json as { version: string; rollback: boolean }[];
    expect(history[0]).toMatchObject({ version: '1.0.0', rollback: true });
    await shot('vi-rolled-back');
  });

  it('says in Vietnamese why the registry refused a deploy, with its own words as detail for the technician', async () => {
    // A cohort that loses its last station between opening the dialog and pressing deploy.
    await ml.call('POST', '/api/v1/registry/cohorts/le/stations', { stations: ['tram-4'] });
    await page.reload();
    await page.locator('#tab-fleet').click();
    await fleetRow('tram-4').locator('.row-action button').click();
    await expect.poll(() => page.locator('#deploy-dialog').isVisible()).toBe(true);
    await page.locator('input[name="target-kind"][value="cohort"]').check();
    await page.locator('#deploy-cohort').selectOption('le');
    await ml.call('DELETE', '/api/v1/registry/cohorts/le/stations/tram-4');
    await page.locator('#deploy-submit').click();
    await expect
      .poll(() => text(page.locator('#deploy-msg')))
      .toBe(
        'Máy chủ không tìm thấy phiên bản, trạm hoặc nhóm trạm này — có thể vừa có người thay đổi. Hãy tải lại trang rồi thử lại. ' +
          '(Chi tiết cho kỹ thuật: Not found: cohort le has no station (add some with: cxr-registry cohort add le STATION_ID...))',
      );
    await shot('vi-deploy-refused');
    await page.locator('#deploy-cancel').click();
    await expect.poll(() => page.locator('#deploy-dialog').isVisible()).toBe(false);
  });

  it('deploys to one station from its fleet row, and had no script error', async () => {
    await page.locator('#tab-fleet').click();
    await fleetRow('tram-3').locator('.row-action button').click();
    await expect.poll(() => page.locator('#deploy-dialog').isVisible()).toBe(true);
    expect(await page.locator('input[name="target-kind"][value="station"]').isChecked()).toBe(true);
    expect(await page.locator('#deploy-station').inputValue()).toBe('tram-3');
    expect(await page.locator('#percent-row').isVisible()).toBe(false);
    await page.locator('#deploy-version').selectOption(`${SQUEEZENET}@1.1.0`);
    await page.locator('#deploy-submit').click();
    await expect.poll(() => page.locator('#deploy-dialog').isVisible()).toBe(false);
    await expect.poll(() => text(fleetRow('tram-3').locator('td.desired')), { timeout: 15_000 }).toBe(`${SQUEEZENET}@1.1.0 riêng trạm này`);
    await shot('vi-fleet-after');
    expect(pageErrors).toEqual([]);
  });
});
