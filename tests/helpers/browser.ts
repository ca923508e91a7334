import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/*
 * Real-browser helpers for the e2e suite: find the system Chromium (Debian's `chromium` package,
 * or CHROMIUM_PATH), make sure the dashboard build the server serves is current, and keep the
 * screenshots in one folder.
 */

export const ROOT = path.resolve(import.meta.dirname, '../..');
/** Where the e2e tests save a screenshot of each page (gitignored). */
export const SCREENSHOT_DIR = path.join(ROOT, 'artifacts', 'screenshots');

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable'];

/** The Chromium executable to drive, or undefined when none is installed. */
export function findChromium(): string | undefined {
  const configured = process.env.CHROMIUM_PATH;
  if (configured) return existsSync(configured) ? configured : undefined;
  return CANDIDATES.find((candidate) => existsSync(candidate));
}

export function launchChromium(executablePath: string): Promise<Browser> {
  // --no-sandbox: CI containers run as root, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath, args: ['--no-sandbox', '--disable-dev-shm-usage'], headless: true });
}

function newestMtime(target: string): number {
  if (!existsSync(target)) return 0;
  const info = statSync(target);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(target)) {
    if (entry === 'node_modules' || entry === 'dist') continue;
    newest = Math.max(newest, newestMtime(path.join(target, entry)));
  }
  return newest;
}

/** Builds dashboard/dist when it is missing or older than a source (dashboard/ or protocol/). */
export function ensureDashboardBuilt(): void {
  const output = path.join(ROOT, 'dashboard', 'dist', 'index.html');
  const built = existsSync(output) ? statSync(output).mtimeMs : 0;
  const sources = Math.max(newestMtime(path.join(ROOT, 'dashboard')), newestMtime(path.join(ROOT, 'protocol')));
  if (built >= sources) return;
  console.info('[e2e] building the dashboard (dashboard/dist is missing or stale)...');
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'vite', 'bin', 'vite.js'), 'build', 'dashboard', '--logLevel', 'warn'], { cwd: ROOT, stdio: 'inherit' });
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return path.join(SCREENSHOT_DIR, `${name}.png`);
}
