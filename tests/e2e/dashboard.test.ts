import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { Service } from '../../server/app.js';
import { ensureDashboardBuilt, findChromium, launchChromium, ROOT, SCREENSHOT_DIR, screenshotPath, TcpRelay } from '../helpers/browser.js';
import { connectClient, startTestService } from '../helpers/service.js';

/*
 * The dashboard in real headless Chromium against the real server and demo model. One browser
 * and one service for the whole file; the tests run in order and build on each other. The
 * browser reaches the service through a TcpRelay, whose port stays when the service restarts.
 */

const TOKEN = 'e2e-admin-token';
const chromiumPath = findChromium();
// The demo model's context holds 4096 tokens: a 4000-token answer runs for seconds, time to cancel it.
const SERVICE_OPTIONS = { adminToken: TOKEN, contextSize: 4096, maxTokensCeiling: 4000, parallelSequences: 2 };

if (!chromiumPath && !process.env.CI) {
  console.warn('\n[e2e] SKIPPED: no Chromium found (install Debian\'s `chromium` package or set CHROMIUM_PATH).\n');
}

const suite = chromiumPath ? describe : process.env.CI ? describe : describe.skip;

suite('dashboard in Chromium', () => {
  let service: Service;
  let relay: TcpRelay;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!chromiumPath) throw new Error('CI requires Chromium for the e2e suite: apt-get install -y chromium (or set CHROMIUM_PATH)');
    ensureDashboardBuilt();
    [service, browser] = await Promise.all([startTestService(SERVICE_OPTIONS), launchChromium(chromiumPath)]);
    relay = await TcpRelay.start(service.port);
    context = await browser.newContext({ viewport: { width: 1280, height: 800 }, colorScheme: 'light' });
    page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    console.info(`[e2e] screenshots: ${SCREENSHOT_DIR}`);
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await service?.shutdown(0);
  });

  afterEach(async (test) => {
    if (test.task.result?.state === 'fail' && page) {
      await page.screenshot({ path: screenshotPath(`FAILED-${test.task.name.replace(/\W+/g, '-').slice(0, 60)}`), fullPage: true }).catch(() => undefined);
    }
  });

  const tile = (name: string) => page.getByTestId(`tile-${name}-value`);
  const shot = (name: string, target: Page = page) => target.screenshot({ path: screenshotPath(name), fullPage: true });
  const signIn = async (target: Page) => {
    await target.getByTestId('token-input').fill(TOKEN);
    await target.getByTestId('signin-button').click();
    await target.getByRole('navigation', { name: 'Pages' }).waitFor();
  };
  const go = async (title: string) => {
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: title }).click();
    await page.getByRole('heading', { level: 1, name: new RegExp(title) }).waitFor();
  };

  it('refuses a wrong token, then signs in and keeps the token for the session only', async () => {
    await page.goto(`${relay.url}/`);
    await page.getByTestId('token-input').waitFor();
    await shot('01-sign-in');
    await page.getByTestId('token-input').fill('not-the-token');
    await page.getByTestId('signin-button').click();
    await expect.poll(() => page.getByTestId('signin-error').textContent(), { timeout: 10_000 }).toMatch(/wrong admin token/i);
    await shot('02-sign-in-refused');

    await signIn(page);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const stored = await page.evaluate(() => ({ session: Object.values({ ...sessionStorage }), local: Object.values({ ...localStorage }) }));
    expect(stored.session).toContain(TOKEN);
    expect(stored.local).not.toContain(TOKEN);
  });

  it('overview: tiles fill from the feed and change after generating through the server', async () => {
    await expect.poll(() => tile('completed').textContent(), { timeout: 10_000 }).toMatch(/^\d/);
    const before = Number((await tile('completed').textContent())!.replace(/,/g, ''));
    const client = await connectClient(service);
    try {
      for (let i = 0; i < 3; i++) await client.generate({ prompt: 'Alice was beginning', maxTokens: 40, temperature: 0 }).text();
    } finally {
      client.close();
    }
    await expect.poll(async () => Number((await tile('completed').textContent())!.replace(/,/g, '')), { timeout: 10_000 }).toBeGreaterThanOrEqual(before + 3);
    await expect.poll(() => tile('ttft').textContent(), { timeout: 5000 }).toMatch(/ms|s$/);
    expect(await page.locator('.uplot canvas').count()).toBeGreaterThanOrEqual(6);
    await page.waitForTimeout(1200); // one more tick, so the charts show the burst
    await shot('03-overview');
    if (process.env.UPDATE_README_SCREENSHOT) {
      // Half a minute of mixed traffic, pictured while it still runs, so the README shows live figures.
      const load = await connectClient(service);
      const until = Date.now() + 30_000;
      const traffic = (async () => {
        for (let i = 0; Date.now() < until; i++) {
          await Promise.all([0, 1, 2].map((j) => load.generate({ prompt: 'Alice was beginning', maxTokens: 50 + ((i * 37 + j * 91) % 400), temperature: 0.8 }).text()));
          await new Promise((resolve) => setTimeout(resolve, (i * 53) % 700));
        }
      })();
      await page.waitForTimeout(27_000);
      await shot('03-overview');
      await traffic;
      load.close();
      mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
      copyFileSync(screenshotPath('03-overview'), path.join(ROOT, 'docs', 'dashboard-overview.png'));
    }
  }, 90_000);

  it('models: unloads and loads the model, confirming first', async () => {
    await go('Models');
    const row = page.locator('[data-testid=model-row][data-model=demo]');
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 10_000 }).toBe('loaded');
    await shot('04-models');

    await row.getByTestId('model-unload').click();
    await page.getByTestId('confirm-dialog').getByRole('heading', { name: /unload demo/i }).waitFor();
    await page.getByTestId('confirm-button').click();
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 20_000 }).toBe('available');
    await expect.poll(() => row.getByTestId('model-note').textContent(), { timeout: 10_000 }).toMatch(/unloaded in/);

    await row.getByTestId('model-load').click();
    await page.getByTestId('confirm-button').click();
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 30_000 }).toBe('loaded');
    await expect.poll(() => row.getByTestId('model-note').textContent(), { timeout: 10_000 }).toMatch(/loaded in/);
    await shot('05-models-after-load');
  });

  it('connections: lists a client and disconnects it', async () => {
    const socket = new WebSocket(service.streamUrl, ['llm.v1.msgpack']);
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await new Promise((resolve, reject) => socket.on('open', resolve).on('error', reject));
    await go('Connections');
    const rows = page.getByTestId('connection-row');
    await expect.poll(() => rows.count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    await shot('06-connections');
    const count = await rows.count();
    await rows.last().getByTestId('connection-close').click(); // oldest first: the newest is ours
    await page.getByTestId('confirm-button').click();
    expect(await Promise.race([closed, new Promise((resolve) => setTimeout(() => resolve('timeout'), 10_000))])).not.toBe('timeout');
    await expect.poll(() => page.getByTestId('connections-note').textContent(), { timeout: 5000 }).toMatch(/closed/);
    await expect.poll(() => rows.count(), { timeout: 5000 }).toBe(count - 1);
  });

  it('playground: streams an answer, then cancels a long one mid-stream', async () => {
    await go('Playground');
    await expect.poll(() => page.getByTestId('pg-model').inputValue(), { timeout: 10_000 }).toBe('demo');
    await page.getByTestId('pg-max-tokens').fill('24');
    await page.getByTestId('pg-temperature').fill('0');
    await page.getByTestId('pg-run').click();
    await expect.poll(() => page.getByTestId('pg-reason').getAttribute('data-reason'), { timeout: 15_000 }).toBe('length');
    expect(await page.getByTestId('pg-tokens').textContent()).toBe('24');
    expect((await page.getByTestId('pg-output').textContent())!.length).toBeGreaterThan(0);
    expect(await page.getByTestId('pg-ttft').textContent()).toMatch(/ms|s$/);
    expect(await page.getByTestId('pg-speed').textContent()).toMatch(/tok\/s/);
    await shot('07-playground');

    const requested = 4000;
    await page.getByTestId('pg-max-tokens').fill(String(requested));
    await page.getByTestId('pg-temperature').fill('0.8');
    await page.getByTestId('pg-run').click();
    await page.waitForFunction(() => (document.querySelector('[data-testid=pg-output]')?.textContent ?? '').length > 20);
    // While streaming, the count is of frames, a lower bound of the tokens.
    expect(await page.getByTestId('pg-tokens').textContent()).toMatch(/^≥ \d/);
    await page.getByTestId('pg-cancel').click();
    await expect.poll(() => page.getByTestId('pg-reason').getAttribute('data-reason'), { timeout: 15_000 }).toBe('cancelled');
    const tokens = Number((await page.getByTestId('pg-tokens').textContent())!.replace(/,/g, ''));
    expect(tokens).toBeGreaterThan(0);
    expect(tokens).toBeLessThan(requested);
    await shot('08-playground-cancelled');
  });

  it('errors: shows an error the server reported', async () => {
    const client = await connectClient(service);
    try {
      await expect(client.generate({ prompt: 'x', model: 'no-such-model' }).text()).rejects.toThrow(/model_not_found/);
    } finally {
      client.close();
    }
    await go('Errors');
    await expect.poll(() => page.getByTestId('errors-table').textContent(), { timeout: 10_000 }).toContain('model_not_found');
    await shot('09-errors');
  });

  it('dark theme toggle, and a phone-sized layout without sideways scrolling', async () => {
    await go('Overview');
    const before = await page.evaluate(() => document.documentElement.dataset.theme);
    await page.getByTestId('theme-toggle').click();
    const after = await page.evaluate(() => document.documentElement.dataset.theme);
    expect(after).not.toBe(before);
    expect(after).toBe('dark');
    await page.waitForTimeout(300);
    await shot('10-overview-dark');

    // sessionStorage belongs to one tab: the new one signs in again, on a deep link the server
    // answers with index.html.
    const phone = await context.newPage();
    await phone.setViewportSize({ width: 390, height: 844 });
    await phone.goto(`${relay.url}/models`);
    await signIn(phone);
    await phone.getByRole('heading', { name: 'Models' }).waitFor();
    await phone.locator('[data-testid=model-row]').first().waitFor();
    const sideways = () => phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(await sideways()).toBeLessThanOrEqual(0);
    await shot('11-phone-models', phone);
    await phone.getByRole('link', { name: 'Overview' }).click();
    await phone.getByTestId('tile-completed').waitFor();
    await phone.waitForTimeout(300);
    expect(await sideways()).toBeLessThanOrEqual(0);
    await shot('12-phone-overview', phone);
    await phone.close();
    await page.getByTestId('theme-toggle').click();
  });

  it('feed banner: shows on server stop, reconnects by itself when the server is back', async () => {
    await go('Overview');
    relay.target = undefined; // from now on the "server" refuses connections
    await service.shutdown(0);
    const banner = page.getByTestId('feed-banner');
    await banner.waitFor({ state: 'visible', timeout: 10_000 });
    expect(await banner.textContent()).toMatch(/disconnected/i);
    await shot('13-feed-disconnected');

    service = await startTestService(SERVICE_OPTIONS);
    relay.target = service.port; // the same address again, from the browser's side
    await banner.waitFor({ state: 'hidden', timeout: 20_000 });
    await expect.poll(() => page.getByTestId('live-dot').getAttribute('class'), { timeout: 5000 }).toMatch(/\bon\b/);
    await expect.poll(() => page.getByTestId('updated').textContent(), { timeout: 5000 }).toMatch(/just now|\d s ago/);
    await shot('14-feed-reconnected');
    expect(pageErrors).toEqual([]);
  });
});
