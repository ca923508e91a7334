import { Ajv2020 } from 'ajv/dist/2020.js';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Service } from '../../server/app.js';
import { ensureDashboardBuilt, findChromium, launchChromium, screenshotPath } from '../helpers/browser.js';
import { startTestService } from '../helpers/service.js';

/*
 * The playground's chat mode in real headless Chromium against the real server and demo model: a
 * conversation with a system prompt, a regenerated reply, and a reply held to a JSON schema.
 */

const TOKEN = 'e2e-chat-admin-token';
const chromiumPath = findChromium();
const suite = chromiumPath || process.env.CI ? describe : describe.skip;

suite('playground chat mode in Chromium', () => {
  let service: Service;
  let browser: Browser;
  let page: Page;
  const pageErrors: string[] = [];

  beforeAll(async () => {
    if (!chromiumPath) throw new Error('CI requires Chromium for the e2e suite: apt-get install -y chromium (or set CHROMIUM_PATH)');
    ensureDashboardBuilt();
    [service, browser] = await Promise.all([startTestService({ adminToken: TOKEN }), launchChromium(chromiumPath)]);
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, colorScheme: 'light' });
    page.on('pageerror', (error) => pageErrors.push(error.message));
    await page.goto(`${service.httpUrl}/playground`);
    await page.getByTestId('token-input').fill(TOKEN);
    await page.getByTestId('signin-button').click();
    await page.getByRole('heading', { level: 1, name: /Playground/ }).waitFor();
  });

  afterAll(async () => {
    await browser?.close();
    await service?.shutdown(0);
  });

  const turns = () => page.getByTestId('pg-turn');
  /** Sends `text` and waits for the reply to end. */
  const send = async (text: string): Promise<void> => {
    const before = await turns().count();
    await page.getByTestId('pg-message').fill(text);
    await page.getByTestId('pg-message').press('Enter');
    await expect.poll(() => turns().count(), { timeout: 20_000 }).toBe(before + 2);
  };

  it('holds a conversation, regenerates a reply and keeps replies to a JSON schema', async () => {
    await expect.poll(() => page.getByTestId('pg-model').inputValue(), { timeout: 10_000 }).toBe('demo');
    await page.getByTestId('pg-mode-chat').click();
    await page.getByTestId('pg-system').fill('You are a helpful assistant.');
    await page.getByTestId('pg-max-tokens').fill('40');
    await page.getByTestId('pg-temperature').fill('0');

    await send('Who is Alice?');
    expect(await turns().nth(0).getAttribute('data-role')).toBe('user');
    expect(await turns().nth(1).getAttribute('data-role')).toBe('assistant');
    const firstReply = (await turns().nth(1).textContent())!.replace(/^Model/, '');
    expect(firstReply.length).toBeGreaterThan(0);
    expect(['stop', 'length']).toContain(await page.getByTestId('pg-reason').getAttribute('data-reason'));

    await send('What does the White Rabbit carry?');
    expect(await turns().count()).toBe(4);

    // Greedy decoding: the regenerated reply is the same, in the same place.
    const lastReply = await turns().nth(3).textContent();
    await page.getByTestId('pg-regenerate').click();
    await expect.poll(() => page.getByTestId('pg-reason').getAttribute('data-reason'), { timeout: 20_000 }).toMatch(/stop|length/);
    await expect.poll(() => turns().count(), { timeout: 10_000 }).toBe(4);
    expect(await turns().nth(3).textContent()).toBe(lastReply);
    await page.screenshot({ path: screenshotPath('09-playground-chat'), fullPage: true });

    const schema = { type: 'object', properties: { name: { type: 'string', maxLength: 12 }, kind: { enum: ['girl', 'rabbit', 'cat'] } }, required: ['name', 'kind'] };
    await page.getByTestId('pg-clear').click();
    await page.getByTestId('pg-max-tokens').fill('120');
    await page.getByTestId('pg-schema').fill(JSON.stringify(schema));
    await send('Describe Alice as JSON.');
    await expect.poll(() => page.getByTestId('pg-reason').getAttribute('data-reason'), { timeout: 20_000 }).toBe('stop');
    const json = (await turns().nth(1).textContent())!.replace(/^Model/, '');
    expect(new Ajv2020({ strict: false }).validate(schema, JSON.parse(json))).toBe(true);
    await page.screenshot({ path: screenshotPath('10-playground-chat-json'), fullPage: true });
    expect(pageErrors).toEqual([]);
  });
});
