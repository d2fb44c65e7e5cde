/**
 * The gateway's Content-Security-Policy against its pages in Chromium (issue 15, defect 11): the radiologist's page
 * and the ML engineer's page load and work under it with nothing refused, and no page can be framed by another site.
 * A real `cxr-gateway serve` process; the radiologist's page's full walk-through (page.test.ts) also fails on any
 * refusal.
 */
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium } from './support/browser.js';
import { buildGateway, startGateway, type RunningGateway } from './support/gateway.js';

const shots = '/tmp/gateway-headers';
const HUNG = { username: 'kt.hung', password: 'mat-khau-ml-dai-1', role: 'mlops' } as const;
const LAN = { username: 'bs.lan', password: 'mat-khau-dai-1', role: 'radiologist' } as const;

let gateway: RunningGateway;
let browser: Browser;

/** Opens a page and collects what Chromium says it refused under a Content-Security-Policy. */
async function watched(): Promise<{ page: Page; refused: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, locale: 'vi-VN' });
  const page = await context.newPage();
  const refused: string[] = [];
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/iu.test(message.text())) refused.push(message.text());
  });
  page.on('pageerror', (err) => refused.push(`page error: ${err.message}`));
  return { page, refused };
}

async function signIn(page: Page, user: { username: string; password: string }): Promise<void> {
  await page.locator('#username').fill(user.username);
  await page.locator('#password').fill(user.password);
  await page.locator('#signin-button').click();
}

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  await buildGateway();
  [gateway, browser] = await Promise.all([startGateway({ stations: ['tram-1'], users: [HUNG, LAN] }), launchChromium()]);
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await gateway?.stop();
});

describe("the gateway's pages under its Content-Security-Policy", () => {
  it("the ML engineer's page signs in and shows each tab with nothing refused", async () => {
    const { page, refused } = await watched();
    await page.goto(`${gateway.baseUrl}/ml/`);
    await signIn(page, HUNG);
    for (const tab of ['#tab-fleet', '#tab-models', '#tab-deploy']) {
      await page.locator(tab).click({ timeout: 15_000 });
      await expect.poll(() => page.locator(tab).getAttribute('aria-selected')).toBe('true');
    }
    await page.screenshot({ path: path.join(shots, 'ml-deploy.png') });
    expect(refused).toEqual([]);
  });

  it("the radiologist's page signs in with nothing refused", async () => {
    const { page, refused } = await watched();
    await page.goto(`${gateway.baseUrl}/`);
    await signIn(page, LAN);
    await expect.poll(() => page.locator('#work-screen').isVisible(), { timeout: 10_000 }).toBe(true);
    await page.screenshot({ path: path.join(shots, 'worklist.png') });
    expect(refused).toEqual([]);
  });

  it('refuses to be shown in a frame of another site (clickjacking)', async () => {
    const { page } = await watched();
    // A page of another origin frames the gateway's sign-in page. That origin is a server on this machine too: a
    // public site would be kept from framing a private address by Chromium anyway (Private Network Access).
    const evil = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html' }).end(`<iframe id="victim" src="${gateway.baseUrl}/"></iframe>`);
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.1', resolve));
    try {
      const evilUrl = `http://127.0.0.1:${(evil.address() as AddressInfo).port}/`;
      await page.goto(evilUrl);
      // Chromium replaces a refused frame with its own error page.
      await expect.poll(() => page.frames().map((f) => f.url()), { timeout: 10_000 }).toEqual([evilUrl, 'chrome-error://chromewebdata/']);
      expect(await page.frames()[1]?.locator('#signin-form').count()).toBe(0);
    } finally {
      evil.close();
    }
  });
});
