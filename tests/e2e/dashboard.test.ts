import { copyFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../server/app.js';
import { ensureDashboardBuilt, findChromium, launchChromium, ROOT, SCREENSHOT_DIR, screenshotPath, TcpRelay } from '../helpers/browser.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { connectClient, startTestService } from '../helpers/service.js';
import { within } from '../helpers/wait.js';

/*
 * The dashboard in real headless Chromium against the real server and demo model. One browser
 * and one service for the whole file; each test opens its own browser context and page and signs
 * in there (signedInPage), so any test runs alone (-t) as well as in order. The browser reaches
 * the service through a TcpRelay, whose port stays when the service restarts.
 */

const TOKEN = 'e2e-admin-token';
const chromiumPath = findChromium();
// The demo model's context holds 4096 tokens. A token rate per connection (past a burst of 100)
// makes a 4000-token answer run for 20 s however fast the machine is: time to see it stream and
// cancel it. (A connection whose bucket is drained gets further gens refused until it refills.)
const SERVICE_OPTIONS = { adminToken: TOKEN, contextSize: 4096, maxTokensCeiling: 4000, parallelSequences: 2, tokenLimitTps: 200, tokenLimitBurst: 100 };

if (!chromiumPath && !process.env.CI) {
  console.warn('\n[e2e] SKIPPED: no Chromium found (install Debian\'s `chromium` package or set CHROMIUM_PATH).\n');
}

const suite = chromiumPath ? describe : process.env.CI ? describe : describe.skip;

suite('dashboard in Chromium', () => {
  let service: Service;
  let relay: TcpRelay;
  let browser: Browser;
  /** The contexts and pages the running test opened, closed after it. */
  let contexts: BrowserContext[] = [];
  let pages: Page[] = [];
  let pageErrors: string[] = [];

  beforeAll(async () => {
    if (!chromiumPath) throw new Error('CI requires Chromium for the e2e suite: apt-get install -y chromium (or set CHROMIUM_PATH)');
    ensureDashboardBuilt();
    [service, browser] = await Promise.all([startTestService(SERVICE_OPTIONS), launchChromium(chromiumPath)]);
    relay = await TcpRelay.start(service.port);
    console.info(`[e2e] screenshots: ${SCREENSHOT_DIR}`);
  });

  afterAll(async () => {
    await browser?.close();
    await relay?.close();
    await service?.shutdown(0);
  });

  afterEach(async (test) => {
    if (test.task.result?.state === 'fail') {
      const name = test.task.name.replace(/\W+/g, '-').slice(0, 60);
      await Promise.all(pages.map((page, index) => page.screenshot({ path: screenshotPath(`FAILED-${name}${index > 0 ? `-${index + 1}` : ''}`), fullPage: true }).catch(() => undefined)));
    }
    await Promise.all(contexts.map((context) => context.close()));
    contexts = [];
    pages = [];
    const errors = pageErrors;
    pageErrors = [];
    // No uncaught error on any page of the test.
    expect(errors).toEqual([]);
  });

  /** A fresh browser context (its own storage: sessionStorage, the theme) and a page in it. */
  const newPage = async (viewport = { width: 1280, height: 800 }): Promise<Page> => {
    const context = await browser.newContext({ viewport, colorScheme: 'light' });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (error) => pageErrors.push(error.message));
    pages.push(page);
    return page;
  };
  const signIn = async (target: Page) => {
    await target.getByTestId('token-input').fill(TOKEN);
    await target.getByTestId('signin-button').click();
    await target.getByRole('navigation', { name: 'Pages' }).waitFor();
  };
  /** A new page on `path` (a deep link the server answers with index.html), signed in. */
  const signedInPage = async (path = '/', viewport?: { width: number; height: number }): Promise<Page> => {
    const page = await newPage(viewport);
    await page.goto(`${relay.url}${path}`);
    await signIn(page);
    return page;
  };
  const tile = (page: Page, name: string) => page.getByTestId(`tile-${name}-value`);
  const shot = (page: Page, name: string) => page.screenshot({ path: screenshotPath(name), fullPage: true });
  const go = async (page: Page, title: string) => {
    await page.getByRole('navigation', { name: 'Pages' }).getByRole('link', { name: title }).click();
    await page.getByRole('heading', { level: 1, name: new RegExp(title) }).waitFor();
  };
  /** Two rendering frames: what the last change did is laid out and painted. */
  const painted = (page: Page) => page.evaluate(() => new Promise<void>((resolve) => requestAnimationFrame(() => requestAnimationFrame(() => resolve()))));
  /** The overview's tiles and charts are filled from the feed. */
  const overviewFilled = async (page: Page) => {
    await expect.poll(() => tile(page, 'completed').textContent(), { timeout: 10_000 }).toMatch(/^\d/);
    await expect.poll(() => page.locator('.uplot canvas').count(), { timeout: 10_000 }).toBeGreaterThanOrEqual(6);
  };

  it('refuses a wrong token, then signs in and keeps the token for the session only', async () => {
    const page = await newPage();
    await page.goto(`${relay.url}/`);
    await page.getByTestId('token-input').waitFor();
    await shot(page, '01-sign-in');
    await page.getByTestId('token-input').fill('not-the-token');
    await page.getByTestId('signin-button').click();
    await expect.poll(() => page.getByTestId('signin-error').textContent(), { timeout: 10_000 }).toMatch(/wrong admin token/i);
    await shot(page, '02-sign-in-refused');

    await signIn(page);
    await page.getByRole('heading', { name: 'Overview' }).waitFor();
    const stored = await page.evaluate(() => ({ session: Object.values({ ...sessionStorage }), local: Object.values({ ...localStorage }) }));
    expect(stored.session).toContain(TOKEN);
    expect(stored.local).not.toContain(TOKEN);
  });

  it('overview: tiles fill from the feed and change after generating through the server', async () => {
    const page = await signedInPage();
    await overviewFilled(page);
    const before = Number((await tile(page, 'completed').textContent())!.replace(/,/g, ''));
    const client = await connectClient(service);
    try {
      for (let i = 0; i < 3; i++) await client.generate({ prompt: 'Alice was beginning', maxTokens: 40, temperature: 0 }).text();
    } finally {
      client.close();
    }
    // The snapshot that counts the three is the one the charts show too: no further tick needed.
    await expect.poll(async () => Number((await tile(page, 'completed').textContent())!.replace(/,/g, '')), { timeout: 10_000 }).toBeGreaterThanOrEqual(before + 3);
    await expect.poll(() => tile(page, 'ttft').textContent(), { timeout: 5000 }).toMatch(/ms|s$/);
    await painted(page);
    await shot(page, '03-overview');
  });

  // Not a check: it pictures half a minute of live traffic for the README, so it runs on the clock.
  it.runIf(process.env.UPDATE_README_SCREENSHOT)('README screenshot: the overview under half a minute of mixed traffic', async () => {
    const page = await signedInPage();
    await overviewFilled(page);
    const load = await connectClient(service);
    const until = Date.now() + 30_000;
    const traffic = (async () => {
      for (let i = 0; Date.now() < until; i++) {
        await Promise.all([0, 1, 2].map((j) => load.generate({ prompt: 'Alice was beginning', maxTokens: 50 + ((i * 37 + j * 91) % 400), temperature: 0.8 }).text()));
        await new Promise((resolve) => setTimeout(resolve, (i * 53) % 700));
      }
    })();
    // Pictured while the traffic still runs, so the README shows live figures.
    await page.waitForTimeout(27_000);
    await shot(page, '03-overview');
    await traffic;
    load.close();
    mkdirSync(path.join(ROOT, 'docs'), { recursive: true });
    copyFileSync(screenshotPath('03-overview'), path.join(ROOT, 'docs', 'dashboard-overview.png'));
  }, 90_000);

  it('models: unloads and loads the model, confirming first', async () => {
    const page = await signedInPage();
    await go(page, 'Models');
    const row = page.locator('[data-testid=model-row][data-model=demo]');
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 10_000 }).toBe('loaded');
    await shot(page, '04-models');

    await row.getByTestId('model-unload').click();
    await page.getByTestId('confirm-dialog').getByRole('heading', { name: /unload demo/i }).waitFor();
    await page.getByTestId('confirm-button').click();
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 20_000 }).toBe('available');
    await expect.poll(() => row.getByTestId('model-note').textContent(), { timeout: 10_000 }).toMatch(/unloaded in/);

    await row.getByTestId('model-load').click();
    await page.getByTestId('confirm-button').click();
    await expect.poll(() => row.getAttribute('data-state'), { timeout: 30_000 }).toBe('loaded');
    await expect.poll(() => row.getByTestId('model-note').textContent(), { timeout: 10_000 }).toMatch(/loaded in/);
    await shot(page, '05-models-after-load');
  });

  it('connections: lists a client and disconnects it', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    const hello = socket.frames[0]!;
    if (hello.t !== 'hello') throw new Error('first frame is not hello');
    const page = await signedInPage();
    await go(page, 'Connections');
    // Our connection's row, by its session id: other connections may come and go meanwhile.
    const row = page.locator(`[data-testid=connection-row][data-id="${hello.session}"]`);
    await row.waitFor({ timeout: 10_000 });
    await shot(page, '06-connections');
    await row.getByTestId('connection-close').click();
    await page.getByTestId('confirm-button').click();
    expect((await within(socket.closed, 10_000, 'close of the listed connection')).code).toBe(1008);
    await expect.poll(() => page.getByTestId('connections-note').textContent(), { timeout: 5000 }).toMatch(/closed/);
    await row.waitFor({ state: 'detached', timeout: 5000 });
  });

  it('playground: streams an answer, then cancels a long one mid-stream', async () => {
    const page = await signedInPage();
    await go(page, 'Playground');
    await expect.poll(() => page.getByTestId('pg-model').inputValue(), { timeout: 10_000 }).toBe('demo');
    await page.getByTestId('pg-max-tokens').fill('24');
    await page.getByTestId('pg-temperature').fill('0');
    await page.getByTestId('pg-run').click();
    await expect.poll(() => page.getByTestId('pg-reason').getAttribute('data-reason'), { timeout: 15_000 }).toBe('length');
    expect(await page.getByTestId('pg-tokens').textContent()).toBe('24');
    expect((await page.getByTestId('pg-output').textContent())!.length).toBeGreaterThan(0);
    expect(await page.getByTestId('pg-ttft').textContent()).toMatch(/ms|s$/);
    expect(await page.getByTestId('pg-speed').textContent()).toMatch(/tok\/s/);
    await shot(page, '07-playground');

    // 4000 tokens take 20 s at the service's token rate: still streaming while the test looks.
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
    await shot(page, '08-playground-cancelled');
  });

  it('errors: shows an error the server reported', async () => {
    const client = await connectClient(service);
    try {
      await expect(client.generate({ prompt: 'x', model: 'no-such-model' }).text()).rejects.toThrow(/model_not_found/);
    } finally {
      client.close();
    }
    const page = await signedInPage();
    await go(page, 'Errors');
    await expect.poll(() => page.getByTestId('errors-table').textContent(), { timeout: 10_000 }).toContain('model_not_found');
    await shot(page, '09-errors');
  });

  it('dark theme toggle, and a phone-sized layout without sideways scrolling', async () => {
    const page = await signedInPage();
    await go(page, 'Overview');
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('light');
    await page.getByTestId('theme-toggle').click();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    // The charts are rebuilt for the new theme's colours.
    await overviewFilled(page);
    await painted(page);
    await shot(page, '10-overview-dark');

    // A phone on a deep link the server answers with index.html.
    const phone = await signedInPage('/models', { width: 390, height: 844 });
    await phone.getByRole('heading', { name: 'Models' }).waitFor();
    await phone.locator('[data-testid=model-row]').first().waitFor();
    await painted(phone);
    const sideways = () => phone.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    expect(await sideways()).toBeLessThanOrEqual(0);
    await shot(phone, '11-phone-models');
    await phone.getByRole('link', { name: 'Overview' }).click();
    // Measured once the tiles and charts are in: they are what could be too wide.
    await overviewFilled(phone);
    await painted(phone);
    expect(await sideways()).toBeLessThanOrEqual(0);
    await shot(phone, '12-phone-overview');
  });

  it('feed banner: shows on server stop, reconnects by itself when the server is back', async () => {
    const page = await signedInPage();
    await go(page, 'Overview');
    await expect.poll(() => page.getByTestId('live-dot').getAttribute('class'), { timeout: 10_000 }).toMatch(/\bon\b/);
    relay.target = undefined; // from now on the "server" refuses connections
    await service.shutdown(0);
    const banner = page.getByTestId('feed-banner');
    await banner.waitFor({ state: 'visible', timeout: 10_000 });
    expect(await banner.textContent()).toMatch(/disconnected/i);
    await shot(page, '13-feed-disconnected');

    service = await startTestService(SERVICE_OPTIONS);
    relay.target = service.port; // the same address again, from the browser's side
    await banner.waitFor({ state: 'hidden', timeout: 20_000 });
    await expect.poll(() => page.getByTestId('live-dot').getAttribute('class'), { timeout: 5000 }).toMatch(/\bon\b/);
    await expect.poll(() => page.getByTestId('updated').textContent(), { timeout: 5000 }).toMatch(/just now|\d s ago/);
    await shot(page, '14-feed-reconnected');
  });
});
