import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DaemonProcess } from './daemon-process.js';
import { freePort } from './free-port.js';
import { requireBinary } from './system-binary.js';

/**
 * A real redis-server on a loopback port, with nothing saved to disk, for tests of the limits that
 * replicas share. It can be paused (SIGSTOP: Redis stops answering while its connections stay
 * open), stopped and started again on the same port (Redis lost, then back, empty).
 */
export class RedisServer {
  private process: DaemonProcess | undefined;

  private constructor(readonly port: number, private readonly dir: string) {}

  /** Starts redis-server on a free port (or `port`). */
  static async start(port?: number): Promise<RedisServer> {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'llm-redis-'));
    for (let attempt = 0; ; attempt++) {
      const server = new RedisServer(port ?? (await freePort()), dir);
      try {
        await server.launch();
        return server;
      } catch (error) {
        if (port !== undefined || attempt >= 3) {
          rmSync(dir, { recursive: true, force: true });
          throw error;
        }
      }
    }
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get pid(): number | undefined {
    return this.process?.pid;
  }

  /** Redis stops answering (SIGSTOP); its sockets stay open. */
  pause(): void {
    this.process?.signal('SIGSTOP');
  }

  resume(): void {
    this.process?.signal('SIGCONT');
  }

  /** Stops redis-server (its data is gone: nothing is saved). */
  async stop(): Promise<void> {
    this.process?.signal('SIGCONT');
    await this.process?.stop('SIGTERM');
    this.process = undefined;
  }

  /** Starts it again on the same port, empty. */
  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  /** Stops it and removes its folder. */
  async close(): Promise<void> {
    await this.stop();
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async launch(): Promise<void> {
    const daemon = DaemonProcess.spawn('redis-server', requireBinary('redis-server'), [
      '--port', String(this.port),
      '--bind', '127.0.0.1',
      '--save', '',
      '--appendonly', 'no',
      '--dir', this.dir,
      '--daemonize', 'no',
      '--loglevel', 'warning',
    ]);
    this.process = daemon;
    try {
      // Ready when the port answers PING (the log's wording differs between Redis versions).
      await waitForPort(this.port, daemon, 10_000);
    } catch (error) {
      await daemon.stop('SIGKILL');
      this.process = undefined;
      throw error;
    }
  }
}

async function waitForPort(port: number, daemon: DaemonProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!daemon.running) throw new Error(`redis-server exited at start:\n${daemon.lines.slice(-10).join('\n')}`);
    const answered = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.write('PING\r\n');
      });
      socket.once('data', (data) => {
        socket.destroy();
        resolve(data.toString().startsWith('+PONG'));
      });
      socket.once('error', () => resolve(false));
    });
    if (answered) return;
    if (Date.now() > deadline) throw new Error(`redis-server did not answer on port ${port} within ${timeoutMs} ms:\n${daemon.lines.slice(-10).join('\n')}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
