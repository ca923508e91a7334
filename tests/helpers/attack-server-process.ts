import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { createInterface } from 'node:readline';

const ROOT = path.resolve(import.meta.dirname, '../..');

/** The real server (`server/main.ts`) in a child process, as operators run it. */
export interface ChildServer {
  readonly child: ChildProcess;
  readonly streamUrl: string;
  readonly httpUrl: string;
  /** Every parsed JSON log line so far. */
  readonly logs: { msg?: string; [key: string]: unknown }[];
  /** Resolves with the exit code and signal, and performance.now() at exit. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Resolves once a log line with this `msg` was printed. */
  waitForLog(msg: string, timeoutMs?: number): Promise<void>;
  /** SIGKILL if still running (for cleanup after a failure). */
  kill(): void;
}

/**
 * Starts `node --import tsx server/main.ts` with `env` on top of a fixed, explicit environment
 * and resolves once its `listening` line is printed and /readyz answers 200.
 */
export async function spawnServer(env: Record<string, string>, timeoutMs = 60_000): Promise<ChildServer> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/main.ts')], {
    cwd: ROOT,
    env: {
      ...process.env,
      HOST: '127.0.0.1',
      PORT: '0',
      THREADS: '1',
      GPU: 'false',
      LOG_TO_FILES: 'false',
      LOG_LEVEL: 'info',
      LOG_ACCESS: 'false',
      ADMIN_TOKEN: 'x',
      KEYS_FILE: '',
      WATCH_MODELS: 'false',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: ChildServer['logs'] = [];
  const listeners = new Set<() => void>();
  const stderr: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as ChildServer['logs'][number]);
    } catch {
      return;
    }
    for (const listener of listeners) listener();
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal, at: performance.now() })),
  );
  const waitForLog = (msg: string, waitMs = 10_000): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        if (!logs.some((record) => record.msg === msg)) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no "${msg}" log line within ${waitMs} ms; stderr: ${stderr.join('').slice(-2000)}`));
      }, waitMs);
      listeners.add(check);
      check();
    });
  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await Promise.race([
      waitForLog('listening', timeoutMs),
      exited.then(({ code }) => Promise.reject(new Error(`server exited with ${code} before listening; stderr: ${stderr.join('').slice(-2000)}`))),
    ]);
    const listening = logs.find((record) => record.msg === 'listening') as { url: string; http: string };
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const ready = await fetch(`${listening.http}/readyz`).then((response) => response.ok, () => false);
      if (ready) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    return { child, streamUrl: listening.url, httpUrl: listening.http, logs, exited, waitForLog, kill };
  } catch (error) {
    kill();
    throw error;
  }
}
