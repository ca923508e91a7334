import path from 'node:path';
import { ensureDemoModel } from '../../server/model-maker/demo/demo-model.js';
import { DaemonProcess } from './daemon-process.js';
import { SHARED_MODELS_DIR } from './service.js';
import { waitFor } from './wait.js';

const MAIN = path.resolve(import.meta.dirname, '../../server/main.ts');
const ROOT = path.resolve(import.meta.dirname, '../..');

/** A JSON log line of the service. */
interface LogLine {
  msg?: string;
  http?: string;
  [field: string]: unknown;
}

/**
 * One replica of the service as its own process (`node server/main.ts`), as a balancer sees it:
 * an ephemeral loopback port, the demo model, JSON logs read from stdout. For tests that signal
 * replicas (SIGTERM, SIGKILL) and put nginx in front of them.
 */
export class Replica {
  private constructor(readonly name: string, readonly port: number, readonly daemon: DaemonProcess, private readonly adminToken: string) {}

  /** Starts a replica with `env` on top of test defaults; resolves once /readyz answers 200. */
  static async start(name: string, env: Record<string, string>): Promise<Replica> {
    await ensureDemoModel(SHARED_MODELS_DIR);
    const adminToken = env.ADMIN_TOKEN ?? 'replica-admin-token';
    const daemon = DaemonProcess.spawn(name, process.execPath, ['--import', 'tsx', MAIN], {
      cwd: ROOT,
      env: {
        ...process.env,
        HOST: '127.0.0.1',
        PORT: '0',
        MODELS_DIR: SHARED_MODELS_DIR,
        THREADS: '1',
        GPU: 'false',
        LOG_LEVEL: 'info',
        LOG_TO_FILES: 'false',
        LOG_ACCESS: 'false',
        WATCH_MODELS: 'false',
        ADMIN_TOKEN: adminToken,
        // What the balancer's replica map names it by (a resume's ?replica=).
        REPLICA_ID: name,
        ...env,
      },
    });
    try {
      const listening = await daemon.waitForLine((line) => parse(line)?.msg === 'listening', 60_000, 'the listening line');
      const port = Number(new URL(parse(listening)!.http!).port);
      const replica = new Replica(name, port, daemon, adminToken);
      await waitFor(async () => (await replica.readyzStatus()) === 200, 60_000, `${name} ready`);
      return replica;
    } catch (error) {
      await daemon.stop('SIGKILL');
      throw error;
    }
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Status of GET /readyz, or 0 when nothing answers. */
  async readyzStatus(): Promise<number> {
    return (await fetch(`${this.httpUrl}/readyz`).catch(() => undefined))?.status ?? 0;
  }

  async readyz(): Promise<Record<string, unknown>> {
    return (await (await fetch(`${this.httpUrl}/readyz`)).json()) as Record<string, unknown>;
  }

  /** Ids of the connections open on this replica (the admin API), or [] when it does not answer. */
  async connectionIds(): Promise<string[]> {
    const response = await fetch(`${this.httpUrl}/api/connections`, { headers: { authorization: `Bearer ${this.adminToken}` } }).catch(() => undefined);
    if (!response?.ok) return [];
    return ((await response.json()) as { connections: { id: string }[] }).connections.map((connection) => connection.id);
  }

  /** The `msg` of every log line so far. */
  messages(): string[] {
    return this.daemon.lines.map((line) => parse(line)?.msg ?? line);
  }

  signal(signal: NodeJS.Signals): void {
    this.daemon.signal(signal);
  }

  async stop(): Promise<void> {
    await this.daemon.stop('SIGTERM', 30_000);
  }
}

function parse(line: string): LogLine | undefined {
  try {
    return JSON.parse(line) as LogLine;
  } catch {
    return undefined;
  }
}
