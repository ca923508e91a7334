import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { watchJsonLog, type LogRecord } from '../../scripts/bench/server-process.js';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { SHARED_MODELS_DIR, tempDir } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/*
 * `npm start` as operators run it: stopping npm stops the server gracefully. The start script
 * execs node, so npm forwards SIGTERM and SIGINT to the server itself (with a plain
 * `node dist/server/main.js` npm 11 killed only the shell and exited 143, leaving node running
 * re-parented); and the server stops by itself when npm dies without forwarding (SIGKILL).
 */

const ROOT = path.resolve(import.meta.dirname, '../..');
/** Generous: a fresh clone builds the server and the dashboard first. */
const BUILD_TIMEOUT_MS = 180_000;
const START_TIMEOUT_MS = 120_000;

interface NpmStart {
  readonly child: ChildProcess;
  readonly logs: LogRecord[];
  readonly output: () => string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  waitForLog(msg: string | RegExp, timeoutMs?: number): Promise<LogRecord>;
}

let started: NpmStart[] = [];
let dirs: string[] = [];

beforeAll(async () => {
  await ensureDemoModel(SHARED_MODELS_DIR);
  // What `prestart` does; done here so that a build failure says so, and `npm start` below only
  // finds the build fresh (unless a source changes meanwhile: prestart then rebuilds it).
  execFileSync(process.execPath, ['scripts/build-if-stale.mjs'], { cwd: ROOT, stdio: 'inherit', timeout: BUILD_TIMEOUT_MS });
}, BUILD_TIMEOUT_MS + 10_000);

afterEach(() => {
  for (const run of started) {
    try {
      // The whole group: npm and whatever it started.
      process.kill(-run.child.pid!, 'SIGKILL');
    } catch {
      // Already gone.
    }
  }
  started = [];
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
  dirs = [];
});

function startNpm(env: Record<string, string>): NpmStart {
  const child = spawn('npm', ['start'], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      MODELS_DIR: SHARED_MODELS_DIR,
      LOG_TO_FILES: 'false',
      LOG_LEVEL: 'info',
      LOG_ACCESS: 'false',
      THREADS: '1',
      GPU: 'false',
      KEYS_FILE: '',
      WATCH_MODELS: 'false',
      ADMIN_TOKEN: 'x',
      ...env,
    },
    // Its own process group, so that cleanup can kill npm and node together, and a test can
    // signal the group as a terminal's Ctrl-C does.
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const text: string[] = [];
  child.stderr!.on('data', (chunk: Buffer) => text.push(chunk.toString()));
  child.stdout!.on('data', (chunk: Buffer) => text.push(chunk.toString()));
  const output = (): string => text.join('');
  const { logs, waitForLog } = watchJsonLog(child.stdout!, () => `; output:\n${output().slice(-3000)}`);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const run = { child, logs, output, exited, waitForLog };
  started.push(run);
  return run;
}

/** Waits for the `listening` record (or fails if npm exits first) and returns its http URL. */
async function listening(run: NpmStart): Promise<string> {
  const record = await Promise.race([
    run.waitForLog('listening', START_TIMEOUT_MS),
    run.exited.then(({ code, signal }) => Promise.reject(new Error(`npm start exited (${code ?? signal}) before listening; output:\n${run.output().slice(-3000)}`))),
  ]);
  return record.http as string;
}

/** Child process ids of `pid`: `pgrep -P`, or /proc where pgrep is not installed. */
function childrenOf(pid: number): number[] {
  try {
    return execFileSync('pgrep', ['-P', String(pid)], { encoding: 'utf8' }).split('\n').filter(Boolean).map(Number);
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { status?: number };
    if (failure.status === 1) return []; // pgrep: none matched
    if (failure.code !== 'ENOENT') throw error;
  }
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        // Fields after the command name, which is in parentheses and may hold spaces: state, ppid.
        const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

/** Every process below `pid`. */
function descendantsOf(pid: number): number[] {
  return childrenOf(pid).flatMap((child) => [child, ...descendantsOf(child)]);
}

function isRunning(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return false;
    throw error;
  }
}

/** Polls until none of `pids` runs (they are not our children: no exit event); false if some still do at the deadline. */
function allGone(pids: readonly number[], timeoutMs = 10_000): Promise<boolean> {
  return waitFor(() => !pids.some(isRunning), timeoutMs, 'the server processes to exit').then(
    () => true,
    () => false,
  );
}

async function refusesConnections(http: string): Promise<boolean> {
  return fetch(`${http}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
    () => false,
    () => true,
  );
}

/** The processes under npm once the server listens: exactly one, node itself (the script execs it). */
function serverProcesses(npmPid: number): number[] {
  const pids = descendantsOf(npmPid);
  expect(pids, 'processes under npm start').toHaveLength(1);
  return pids;
}

describe.skipIf(process.platform === 'win32')('npm start', () => {
  it('stops gracefully on SIGTERM to npm: npm exits 0, the server is gone and its port closed', async () => {
    const run = startNpm({});
    const http = await listening(run);
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
    const pids = serverProcesses(run.child.pid!);
    expect((await run.waitForLog(/^stream endpoint /)).msg).toMatch(/\(sign in with the token in ADMIN_TOKEN\)$/);

    process.kill(run.child.pid!, 'SIGTERM');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(await allGone(pids)).toBe(true);
    expect(await refusesConnections(http)).toBe(true);
    const messages = run.logs.map((record) => record.msg);
    expect(messages).toContain('stopped');
    expect(run.logs.find((record) => record.msg === 'shutting down')).toMatchObject({ signal: 'SIGTERM' });
    expect(messages).not.toContain('second signal: exiting now');
  }, START_TIMEOUT_MS + 30_000);

  it("stops gracefully on a terminal's Ctrl-C (SIGINT to npm and node both), and says where to sign in without the token", async () => {
    const dir = tempDir('npm-start-test');
    dirs.push(dir);
    const tokenFile = path.join(dir, 'admin-token');
    const run = startNpm({ ADMIN_TOKEN: '', ADMIN_TOKEN_FILE: tokenFile });
    const http = await listening(run);
    const pids = serverProcesses(run.child.pid!);
    const hint = await run.waitForLog(/^stream endpoint /);
    expect(hint.msg).toBe(`stream endpoint ${http.replace('http:', 'ws:')}/v1/stream · dashboard ${http}/ (sign in with the token in ${tokenFile})`);

    // npm forwards its copy too: node gets two SIGINTs within milliseconds, which are one request.
    process.kill(-run.child.pid!, 'SIGINT');
    expect(await run.exited).toEqual({ code: 0, signal: null });
    expect(await allGone(pids)).toBe(true);
    expect(await refusesConnections(http)).toBe(true);
    const messages = run.logs.map((record) => record.msg);
    expect(messages.filter((msg) => msg === 'shutting down')).toHaveLength(1);
    expect(messages).not.toContain('second signal: exiting now');
    expect(messages).toContain('stopped');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(token.length).toBeGreaterThan(20);
    expect(run.output()).not.toContain(token);
  }, START_TIMEOUT_MS + 30_000);

  it('stops by itself when npm is killed without forwarding a signal', async () => {
    const run = startNpm({});
    const http = await listening(run);
    const pids = serverProcesses(run.child.pid!);

    process.kill(run.child.pid!, 'SIGKILL');
    expect(await run.exited).toEqual({ code: null, signal: 'SIGKILL' });
    // The server still writes to the pipe npm handed it.
    await run.waitForLog('parent process exited: shutting down', 10_000);
    await run.waitForLog('stopped', 20_000);
    expect(await allGone(pids)).toBe(true);
    expect(await refusesConnections(http)).toBe(true);
  }, START_TIMEOUT_MS + 30_000);
});
