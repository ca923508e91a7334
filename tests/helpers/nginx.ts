import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { DaemonProcess } from './daemon-process.js';
import { freePort } from './free-port.js';
import { requireBinary } from './system-binary.js';

/** The nginx site config the project ships (docker/nginx/llm-stream.conf). */
export const SHIPPED_SITE_CONFIG = path.resolve(import.meta.dirname, '../../docker/nginx/llm-stream.conf');

/**
 * The shipped site config pointed at this machine: its upstream servers become `upstreamPorts` on
 * loopback (each keeping the shipped server parameters: max_fails, fail_timeout), the entries of its
 * replica map (`?replica=` of a resume) name `replicaIds[i]` at `upstreamPorts[i]` (none when not
 * given), and it listens on `listenPort` of loopback. Everything else is the file as shipped.
 */
export function renderSiteConfig(source: string, listenPort: number, upstreamPorts: readonly number[], replicaIds: readonly string[] = []): string {
  const upstream = /upstream\s+llm_stream\s*\{[^}]*\}/.exec(source);
  if (!upstream) throw new Error('no "upstream llm_stream { ... }" block in the site config');
  const serverLines = [...upstream[0].matchAll(/^([ \t]*)server[ \t]+\S+([^\n]*);[ \t]*$/gm)];
  const first = serverLines[0];
  if (!first) throw new Error('the llm_stream upstream lists no server');
  const [, indent, parameters] = first;
  let block = upstream[0];
  for (const line of serverLines) block = block.replace(`${line[0]}\n`, '');
  block = block.replace(/\{\s*\n/, (open) => `${open}${upstreamPorts.map((port) => `${indent}server 127.0.0.1:${port}${parameters};\n`).join('')}`);
  const replicaMap = /map\s+\$arg_replica\s+\$\w+\s*\{[^}]*\}/.exec(source);
  if (!replicaMap) throw new Error('no "map $arg_replica ... { ... }" block in the site config');
  const entries = [...replicaMap[0].matchAll(/^([ \t]*)(?!default\b)[^\s{}#]+[ \t]+[^\s;]+;[ \t]*\n/gm)];
  let mapBlock = replicaMap[0];
  for (const entry of entries) mapBlock = mapBlock.replace(entry[0], '');
  const mapIndent = entries[0]?.[1] ?? '    ';
  mapBlock = mapBlock.replace(/\}$/, `${replicaIds.map((id, index) => `${mapIndent}${id} 127.0.0.1:${upstreamPorts[index]};\n`).join('')}}`);
  const listens = source.match(/^[ \t]*listen[ \t]+[^;]+;/gm) ?? [];
  if (listens.length !== 1) throw new Error(`expected one listen directive in the site config, found ${listens.length}`);
  return source.replace(upstream[0], block).replace(replicaMap[0], mapBlock).replace(/^([ \t]*)listen[ \t]+[^;]+;/m, `$1listen 127.0.0.1:${listenPort};`);
}

/**
 * A real nginx in front of service replicas on loopback: the shipped site config, a main config
 * of its own in a temp folder (pid, logs, temp paths there), run in the foreground as the current
 * user (no system service).
 */
export class NginxBalancer {
  private constructor(readonly port: number, private readonly dir: string, private readonly daemon: DaemonProcess) {}

  /** `replicaIds[i]` (each replica's REPLICA_ID) is the replica at `upstreamPorts[i]`, for the resume route. */
  static async start(upstreamPorts: readonly number[], siteConfig = SHIPPED_SITE_CONFIG, replicaIds: readonly string[] = []): Promise<NginxBalancer> {
    const binary = requireBinary('nginx');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'llm-nginx-'));
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      writeNginxConfig(dir, port, upstreamPorts, siteConfig, replicaIds);
      const daemon = DaemonProcess.spawn('nginx', binary, ['-e', path.join(dir, 'error.log'), '-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;']);
      try {
        await waitForListener(port, daemon, 10_000);
        return new NginxBalancer(port, dir, daemon);
      } catch (error) {
        await daemon.stop('SIGKILL');
        if (attempt >= 3) {
          rmSync(dir, { recursive: true, force: true });
          throw new Error(`${(error as Error).message}\nerror.log:\n${readLog(dir)}`);
        }
      }
    }
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get streamUrl(): string {
    return `ws://127.0.0.1:${this.port}/v1/stream`;
  }

  /** nginx's error log (upstream failures are logged there). */
  errorLog(): string {
    return readLog(this.dir);
  }

  /**
   * nginx's access log: per request (a WebSocket is logged when it closes), when it began (epoch
   * ms), the status the client got, and each replica tried (port) with its status, in order.
   */
  accessLog(): { startedAtMs: number; status: number; tries: { port: number; status: string }[] }[] {
    let text = '';
    try {
      text = readFileSync(path.join(this.dir, 'access.log'), 'utf8');
    } catch {
      return [];
    }
    return text.split('\n').filter(Boolean).map((line) => {
      const [, msec = '0', seconds = '0', status = '0', addresses = '', statuses = ''] = /^(\S+) (\S+) (\S+) (.*)\|(.*)$/.exec(line) ?? [];
      const ports = addresses.split(', ').map((address) => Number(address.split(':').at(-1)));
      const answers = statuses.split(', ');
      return { startedAtMs: (Number(msec) - Number(seconds)) * 1000, status: Number(status), tries: ports.map((port, index) => ({ port, status: answers[index] ?? '' })) };
    });
  }

  /** Stops nginx (fast shutdown) and removes its folder. */
  async close(): Promise<void> {
    await this.daemon.stop('SIGTERM');
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function readLog(dir: string): string {
  try {
    return readFileSync(path.join(dir, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}

/**
 * Writes the shipped site config (pointed at `upstreamPorts`) and a main config into `dir`, as
 * NginxBalancer runs them; returns the main config's path (for `nginx -t`).
 */
export function writeNginxConfig(dir: string, listenPort: number, upstreamPorts: readonly number[], siteConfig = SHIPPED_SITE_CONFIG, replicaIds: readonly string[] = []): string {
  writeFileSync(path.join(dir, 'llm-stream.conf'), renderSiteConfig(readFileSync(siteConfig, 'utf8'), listenPort, upstreamPorts, replicaIds));
  writeFileSync(path.join(dir, 'nginx.conf'), mainConfig(dir));
  return path.join(dir, 'nginx.conf');
}

function mainConfig(dir: string): string {
  const temp = (name: string): string => {
    mkdirSync(path.join(dir, name), { recursive: true });
    return path.join(dir, name);
  };
  // As root, nginx would hand its workers to "nobody", which cannot use this private folder.
  const user = process.getuid?.() === 0 ? `user ${os.userInfo().username};\n` : '';
  return `${user}worker_processes 1;
pid ${path.join(dir, 'nginx.pid')};
error_log ${path.join(dir, 'error.log')} warn;
events { worker_connections 1024; }
http {
  # When (epoch seconds), what the client got, and every replica tried with its answer.
  log_format upstreams '$msec $request_time $status $upstream_addr|$upstream_status';
  access_log ${path.join(dir, 'access.log')} upstreams;
  client_body_temp_path ${temp('client_body')};
  proxy_temp_path ${temp('proxy')};
  fastcgi_temp_path ${temp('fastcgi')};
  uwsgi_temp_path ${temp('uwsgi')};
  scgi_temp_path ${temp('scgi')};
  include ${path.join(dir, 'llm-stream.conf')};
}
`;
}

async function waitForListener(port: number, daemon: DaemonProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!daemon.running) throw new Error(`nginx exited at start:\n${daemon.lines.slice(-10).join('\n')}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nginx did not listen on port ${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
