import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { connect as connectTcp, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
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

/** Builds dashboard/dist when it is missing or older than a source (dashboard/ or protocol/). */
export function ensureDashboardBuilt(): void {
  execFileSync(process.execPath, [path.join(ROOT, 'scripts', 'build-if-stale.mjs'), 'dashboard'], { cwd: ROOT, stdio: 'inherit' });
}

export function screenshotPath(name: string): string {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  return path.join(SCREENSHOT_DIR, `${name}.png`);
}

/**
 * A TCP relay on a fixed local port in front of the service, so the browser keeps one origin
 * while the service behind it is stopped and started again.
 *
 * Why not restart the service on the same port: within one process, uWS refuses to listen again
 * on a port while the stopped server's closed connections linger there (TIME_WAIT, about 60 s
 * on Linux); a new process can (checked by hand with `npm start`, SIGTERM, `npm start`), but the
 * tests share one process.
 */
export class TcpRelay {
  private readonly sockets = new Set<Socket>();
  private constructor(private readonly server: Server, public target: number | undefined) {}

  static async start(target: number): Promise<TcpRelay> {
    const server = createServer();
    const relay = new TcpRelay(server, target);
    server.on('connection', (client) => relay.accept(client));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return relay;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }

  private accept(client: Socket): void {
    // No service behind the relay: refuse at once, as a stopped server would.
    if (this.target === undefined) return void client.destroy();
    const upstream = connectTcp(this.target, '127.0.0.1');
    for (const socket of [client, upstream]) {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => {
        this.sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  }
}
