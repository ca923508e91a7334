import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import path from 'node:path';

/*
 * The real server (`server/main.ts`) in a child process, as operators run it: for the benchmarks
 * and for the tests that need a process of its own (signals, exit codes). One module for both.
 */

/** One JSON log line of the server. */
export interface LogRecord {
  msg?: string;
  [key: string]: unknown;
}

/** How the child process ended, and performance.now() (of this process) when it did. */
export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** The service running in a child process. */
export interface ServerProcess {
  readonly child: ChildProcess;
  /** `ws://host:port/v1/stream`, from the server's `listening` line. */
  readonly streamUrl: string;
  readonly httpUrl: string;
  /** Every JSON log line the server printed so far, parsed. */
  readonly logs: readonly LogRecord[];
  /** Resolves once the process has exited and all its output was read. */
  readonly exited: Promise<ProcessExit>;
  /** Resolves with the first log line (so far or to come) whose `msg` is or matches `msg`. */
  waitForLog(msg: string | RegExp, timeoutMs?: number): Promise<LogRecord>;
  /** SIGKILL if still running (cleanup after a failure). */
  kill(): void;
  /** SIGTERM (a graceful shutdown) and resolves once the process has exited. */
  stop(): Promise<void>;
}

export interface ServerProcessOptions {
  /** Longest wait for the `listening` line and for the default model to be ready (default 120 s: benchmark models load slowly). */
  timeoutMs?: number;
  /**
   * Where the server's stderr goes: `inherit` (the default: a benchmark shows it) or `capture`
   * (kept, and its tail quoted in the error when the start fails; for tests).
   */
  stderr?: 'inherit' | 'capture';
  /** Node options before the entry point, such as the heap flags `npm start` passes. */
  nodeFlags?: readonly string[];
}

const ROOT = path.resolve(import.meta.dirname, '../..');

/**
 * Starts `node --import tsx server/main.ts` with `env` on top of this process's environment (and
 * HOST 127.0.0.1, PORT 0, LOG_LEVEL info, which `env` may override except that the `listening`
 * and `default model ready` info lines must still be printed), and resolves once the server
 * listens and its default model is ready. Rejects, with the process killed, when it exits first,
 * logs that the default model failed to load, or the time is up.
 */
export async function startServerProcess(env: Record<string, string>, options: ServerProcessOptions = {}): Promise<ServerProcess> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const capture = options.stderr === 'capture';
  const child: ChildProcess = spawn(process.execPath, [...(options.nodeFlags ?? []), '--import', 'tsx', path.join(ROOT, 'server/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', capture ? 'pipe' : 'inherit'],
  });
  // A benchmark (or test run) that dies must not leave its server running.
  const killChild = (): void => void child.kill('SIGKILL');
  process.once('exit', killChild);

  const stderr: string[] = [];
  child.stderr?.on('data', (chunk: Buffer) => stderr.push(chunk.toString()));
  const stderrTail = (): string => (capture ? `; stderr: ${stderr.join('').slice(-2000)}` : '');
  const { logs, waitForLog } = watchJsonLog(child.stdout!, stderrTail);
  // Resolved on 'close', after the last output was read (its 'exit' can come first), with the time of 'exit'.
  let exitAt: number | undefined;
  child.once('exit', () => {
    exitAt = performance.now();
    process.removeListener('exit', killChild);
  });
  const exited = new Promise<ProcessExit>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, at: exitAt ?? performance.now() })));

  const kill = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  };

  try {
    const exitedEarly = exited.then(({ code, signal }) => Promise.reject(new Error(`server exited (${code ?? signal}) before it was ready${stderrTail()}`)));
    exitedEarly.catch(() => undefined); // a later exit, once started, is no error
    const listening = (await Promise.race([waitForLog('listening', timeoutMs), exitedEarly])) as { url?: string; http?: string };
    if (!listening.url || !listening.http) throw new Error(`the listening line names no URLs: ${JSON.stringify(listening)}`);
    // The server listens before its default model is loaded; it logs either outcome.
    const loaded = await Promise.race([waitForLog(/^default model (ready|failed to load)$/, timeoutMs), exitedEarly]);
    if (loaded.msg !== 'default model ready') throw new Error(`the default model failed to load: ${JSON.stringify(loaded.err ?? loaded)}${stderrTail()}`);
    return { child, streamUrl: listening.url, httpUrl: listening.http, logs, exited, waitForLog, kill, stop };
  } catch (error) {
    kill();
    throw error;
  }
}

/**
 * Reads a process's JSON log lines as they come: every parsed record in `logs`, and
 * `waitForLog(msg)` resolving with the first record whose `msg` matches (one printed earlier
 * included). `failureDetail` is appended to a timeout's message.
 */
export function watchJsonLog(output: Readable, failureDetail: () => string = () => ''): { logs: LogRecord[]; waitForLog(msg: string | RegExp, timeoutMs?: number): Promise<LogRecord> } {
  const logs: LogRecord[] = [];
  const listeners = new Set<() => void>();
  createInterface({ input: output }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line) as LogRecord);
    } catch {
      return; // not a log line
    }
    for (const listener of listeners) listener();
  });
  const waitForLog = (msg: string | RegExp, timeoutMs = 10_000): Promise<LogRecord> =>
    new Promise((resolve, reject) => {
      const matches = (record: LogRecord): boolean => typeof record.msg === 'string' && (typeof msg === 'string' ? record.msg === msg : msg.test(record.msg));
      const check = (): void => {
        const record = logs.find(matches);
        if (!record) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(record);
      };
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no log line ${String(msg)} within ${timeoutMs} ms${failureDetail()}`));
      }, timeoutMs);
      listeners.add(check);
      check();
    });
  return { logs, waitForLog };
}
