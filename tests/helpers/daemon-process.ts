import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * A daemon the tests start (redis-server, nginx, a service replica): its output lines kept for
 * failure messages, a wait for a line, and stops that wait for the exit. Whatever a test run leaves
 * running is killed when the test process exits.
 */
export class DaemonProcess {
  readonly lines: string[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private lineWaiters: { match: (line: string) => boolean; resolve: (line: string) => void }[] = [];
  private exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;

  constructor(readonly name: string, readonly child: ChildProcess) {
    const killOnExit = (): void => {
      if (this.running) child.kill('SIGKILL');
    };
    process.once('exit', killOnExit);
    this.exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        process.removeListener('exit', killOnExit);
        this.exitInfo = { code, signal };
        resolve(this.exitInfo);
      });
    });
    for (const stream of [child.stdout, child.stderr]) {
      if (!stream) continue;
      createInterface({ input: stream }).on('line', (line) => {
        this.lines.push(line);
        if (this.lines.length > 2000) this.lines.splice(0, 1000);
        this.lineWaiters = this.lineWaiters.filter((waiter) => {
          if (!waiter.match(line)) return true;
          waiter.resolve(line);
          return false;
        });
      });
    }
  }

  static spawn(name: string, command: string, args: string[], options: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): DaemonProcess {
    return new DaemonProcess(name, spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env: options.env ?? process.env, ...(options.cwd && { cwd: options.cwd }) }));
  }

  get pid(): number {
    return this.child.pid!;
  }

  get running(): boolean {
    return this.exitInfo === undefined;
  }

  /**
   * Resolves with the first line (past or future) that matches; rejects when the process exits
   * first or after `timeoutMs`, with its last lines.
   */
  waitForLine(match: (line: string) => boolean, timeoutMs: number, what: string): Promise<string> {
    const seen = this.lines.find(match);
    if (seen !== undefined) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const fail = (why: string): void => reject(new Error(`${this.name}: ${why} waiting for ${what}; last output:\n${this.lines.slice(-20).join('\n')}`));
      const timer = setTimeout(() => fail(`no line within ${timeoutMs} ms`), timeoutMs);
      const waiter = {
        match,
        resolve: (line: string) => {
          clearTimeout(timer);
          resolve(line);
        },
      };
      this.lineWaiters.push(waiter);
      void this.exited.then((info) => {
        clearTimeout(timer);
        if (this.lineWaiters.includes(waiter)) fail(`exited (${info.code ?? info.signal})`);
      });
    });
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  /** Sends `signal` and waits for the exit; SIGKILL after `timeoutMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<void> {
    if (!this.running) return;
    this.child.kill(signal);
    const timer = setTimeout(() => this.child.kill('SIGKILL'), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }
}
