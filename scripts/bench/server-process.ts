import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import path from 'node:path';

/** The service running in a child process, as operators run it. */
export interface ServerProcess {
  streamUrl: string;
  httpUrl: string;
  stop(): Promise<void>;
}

const ROOT = path.resolve(import.meta.dirname, '../..');

/** Starts `server/main.ts` with the given environment and waits until its default model is ready. */
export async function startServerProcess(env: Record<string, string>): Promise<ServerProcess> {
  const child: ChildProcess = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, 'server/main.ts')], {
    cwd: ROOT,
    env: { ...process.env, HOST: '127.0.0.1', PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  // A benchmark that dies must not leave its server running.
  const killChild = (): void => void child.kill('SIGKILL');
  process.once('exit', killChild);
  const urls = await new Promise<{ streamUrl: string; httpUrl: string }>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.on('line', (line) => {
      try {
        const record = JSON.parse(line) as { msg?: string; url?: string; http?: string };
        if (record.msg === 'listening' && record.url && record.http) resolve({ streamUrl: record.url, httpUrl: record.http });
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
  for (let i = 0; i < 600; i++) {
    const ready = await fetch(`${urls.httpUrl}/readyz`).then((response) => response.ok, () => false);
    if (ready) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    ...urls,
    stop: () =>
      new Promise<void>((resolve) => {
        child.once('exit', () => {
          process.removeListener('exit', killChild);
          resolve();
        });
        child.kill('SIGTERM');
      }),
  };
}
