/**
 * The page open to the station's network, in Chromium on another machine's address: the sign-in screen in Vietnamese
 * (English on the switch), nothing of a patient before sign-in, the studies after it, the signed-in name with a
 * sign-out button, and the sign-in screen again, emptied of patients, when the account is disabled while the page is
 * open or when the radiographer signs out. No Content-Security-Policy violation anywhere.
 * Screenshots go to /tmp/edge-sign-in/.
 */
import { mkdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dicomDir, removeDir, startAgent, storescu, tempDir, waitFor, type AgentProcess } from './harness/agent-process.js';
import { launchChromium } from './support/browser.js';
import { addUser, admin, call, lanAddress, signIn, squeezenet } from './support/lan.js';

const shots = '/tmp/edge-sign-in';
const host = lanAddress() ?? '127.0.0.1';

let agent: AgentProcess;
let dataDir: string;
let browser: Browser;
let page: Page;
const pageErrors: string[] = [];
const cspViolations: string[] = [];

const text = async (selector: string): Promise<string> => (await page.locator(selector).innerText()).replace(/\s+/g, ' ').trim();
const shot = (name: string): Promise<Buffer> => page.screenshot({ path: path.join(shots, `${name}.png`) });
const bodyText = (): Promise<string> => page.locator('body').innerText();

async function fillAndSubmit(username: string, password: string): Promise<void> {
  await page.locator('#username').fill(username);
  await page.locator('#password').fill(password);
  await page.locator('#signin-button').click();
}

beforeAll(async () => {
  rmSync(shots, { recursive: true, force: true });
  mkdirSync(shots, { recursive: true });
  dataDir = tempDir('cxr-edge-sign-in-');
  await addUser(dataDir, 'lan.a', 'mat-khau-lan-a-1');
  [agent, browser] = await Promise.all([startAgent({ dataDir, args: ['--http-host', '0.0.0.0', '--model', squeezenet] }), launchChromium()]);
  expect((await storescu(agent.dicomPort, [path.join(dicomDir, 'cr_chest_pa_RG1_J2KI.dcm')])).code).toBe(0);
  // The study, analysed, before the page opens (its result panel has the bars whose widths are style attributes).
  const cookie = await signIn(host, agent.httpPort, 'lan.a', 'mat-khau-lan-a-1');
  await waitFor('the result', async () => {
    const res = await call(host, agent.httpPort, '/api/studies', { headers: { cookie } });
    return res.text.includes('"previewUrl":"/api') ? true : undefined;
  });
  const context = await browser.newContext({ viewport: { width: 1366, height: 768 }, locale: 'vi-VN', timezoneId: 'Asia/Ho_Chi_Minh' });
  page = await context.newPage();
  page.on('pageerror', (err) => pageErrors.push(err.message));
  page.on('console', (msg) => {
    if (/Content Security Policy/iu.test(msg.text())) cspViolations.push(msg.text());
  });
});

afterAll(async () => {
  await browser?.close();
  await agent?.stop();
  if (dataDir) removeDir(dataDir);
});

describe('signing in to the page from the station network', () => {
  it('opens on the sign-in screen in Vietnamese, with nothing of a patient on it', async () => {
    await page.goto(`http://${host}:${agent.httpPort}/`);
    await expect.poll(() => page.locator('#signin-screen').isVisible()).toBe(true);
    expect(await text('#signin-screen h2')).toBe('Đăng nhập');
    expect(await text('#signin-screen .hint')).toContain('kỹ thuật viên X-quang');
    expect(await page.locator('label[for=username]').innerText()).toBe('Tên đăng nhập');
    expect(await page.locator('#work-screen').isVisible()).toBe(false);
    expect(await page.locator('#user-box').isVisible()).toBe(false);
    expect(await bodyText()).not.toContain('CompressedSamples');
    expect(await page.locator('#username').evaluate((el) => el === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement)).toBe(true);
    await shot('vi-sign-in');
  });

  it('says what is missing, then that the password is wrong', async () => {
    await page.locator('#signin-button').click();
    expect(await text('#signin-msg')).toBe('Hãy nhập tên đăng nhập và mật khẩu.');
    await fillAndSubmit('lan.a', 'sai-mat-khau-123');
    await expect.poll(() => text('#signin-msg'), { timeout: 15_000 }).toContain('Sai tên đăng nhập hoặc mật khẩu.');
    expect(await page.locator('#work-screen').isVisible()).toBe(false);
    await shot('vi-sign-in-failed');
  });

  it('shows the studies once signed in, with the name and a sign-out button', async () => {
    await fillAndSubmit('lan.a', 'mat-khau-lan-a-1');
    await expect.poll(() => page.locator('#work-screen').isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await page.locator('#signin-screen').isVisible()).toBe(false);
    await expect.poll(() => text('#study-list')).toContain('CompressedSamples RG1');
    await expect.poll(() => text('#study-head .sh-name')).toContain('CompressedSamples RG1');
    await expect.poll(() => page.locator('#findings .f-fill').count()).toBeGreaterThan(0);
    expect(await text('#user-box')).toBe('lan.a Đăng xuất');
    await expect.poll(() => page.locator('#conn').getAttribute('data-state')).toBe('live');
    // The session is in an HttpOnly cookie: no script on the page can read it.
    expect(await page.evaluate(() => (globalThis as unknown as { document: { cookie: string } }).document.cookie)).toBe('');
    await shot('vi-signed-in');
    await page.getByRole('button', { name: 'EN', exact: true }).click();
    expect(await text('#user-box')).toBe('lan.a Sign out');
    await shot('en-signed-in');
    await page.getByRole('button', { name: 'VI', exact: true }).click();
  });

  it('goes back to the sign-in screen, emptied of patients, when the account is disabled while the page is open', async () => {
    expect((await admin(['disable-user', 'lan.a', '--data-dir', dataDir])).code).toBe(0);
    // The page asks the agent every few seconds (the hospital link): its next request is refused.
    await expect.poll(() => page.locator('#signin-screen').isVisible(), { timeout: 15_000 }).toBe(true);
    expect(await text('#signin-msg')).toBe('Phiên đăng nhập đã kết thúc (hết hạn, hoặc tài khoản đã bị khóa). Hãy đăng nhập lại.');
    expect(await page.locator('#work-screen').isVisible()).toBe(false);
    expect(await page.locator('#user-box').isVisible()).toBe(false);
    expect(await page.locator('#study-list').innerText()).toBe('');
    expect(await page.content()).not.toContain('CompressedSamples');
    await shot('vi-session-ended');
    // Disabled, it cannot sign in again.
    await fillAndSubmit('lan.a', 'mat-khau-lan-a-1');
    await expect.poll(() => text('#signin-msg'), { timeout: 15_000 }).toContain('Sai tên đăng nhập hoặc mật khẩu.');
    expect((await admin(['enable-user', 'lan.a', '--data-dir', dataDir])).code).toBe(0);
  });

  it('signs out with the button: the sign-in screen, in English too, and nothing of a patient left', async () => {
    await fillAndSubmit('lan.a', 'mat-khau-lan-a-1');
    await expect.poll(() => text('#study-list'), { timeout: 15_000 }).toContain('CompressedSamples RG1');
    await page.getByRole('button', { name: 'EN', exact: true }).click();
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.locator('#signin-screen').isVisible()).toBe(true);
    expect(await text('#signin-msg')).toBe('You have signed out.');
    expect(await text('#signin-screen h2')).toBe('Sign in');
    expect(await page.content()).not.toContain('CompressedSamples');
    await shot('en-signed-out');
    // A reload stays signed out: the session ended on the agent.
    await page.reload();
    await expect.poll(() => page.locator('#signin-screen').isVisible()).toBe(true);
    expect(await page.locator('#work-screen').isVisible()).toBe(false);
    await page.getByRole('button', { name: 'VI', exact: true }).click();
  });

  it('raised no script error and no Content-Security-Policy violation', () => {
    expect(pageErrors).toEqual([]);
    expect(cspViolations).toEqual([]);
  });
});
