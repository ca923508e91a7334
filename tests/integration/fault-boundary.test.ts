import { Writable } from 'node:stream';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { ConnectError, encodeFrame, LlmError, type LlmClient } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import type { FaultSite } from '../../server/transport/types.js';
import { tcpOf } from '../helpers/attack-socket.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { connectClient, startTestService, waitForIdle } from '../helpers/service.js';
import { waitFor } from '../helpers/wait.js';

/*
 * A throw injected into each kind of callback the transport or the gateway runs (a test-only hook
 * of startService) must end only the request or connection it happened in: answered with 500 or
 * closed with 1011, logged with its stack and context, counted, and the process serves on.
 */

/** Arms one fault: the next callback of `site` whose context matches throws once. */
class FaultPlan {
  private armed: { site: FaultSite; matches: (context: Record<string, string>) => boolean; fired: () => void } | undefined;

  arm(site: FaultSite, matches: (context: Record<string, string>) => boolean = () => true): Promise<void> {
    return new Promise((resolve) => {
      this.armed = { site, matches, fired: resolve };
    });
  }

  inject = (site: FaultSite, context: Record<string, string>): void => {
    const armed = this.armed;
    if (!armed || armed.site !== site || !armed.matches(context)) return;
    this.armed = undefined;
    armed.fired();
    throw new Error(`injected ${site} fault`);
  };
}

/** Log records written by the service, parsed. */
class LogCapture extends Writable {
  readonly records: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString().split('\n')) if (line) this.records.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
}

const plan = new FaultPlan();
const logs = new LogCapture();
let service: Service;

beforeAll(async () => {
  const logger = pino({ level: 'info' }, logs);
  // A token rate past a burst above the short streams here: a long stream lasts about 8 s whatever
  // the machine's speed, so it is still going when the fault strikes and when it is cancelled.
  service = await startTestService({ metricsPublic: true, streamCoalesceMs: 0, contextSize: 4096, tokenLimitTps: 500, tokenLimitBurst: 300 }, logger, { injectFault: plan.inject });
});

afterAll(async () => {
  await service.shutdown(1000);
});

async function faultCount(site: FaultSite): Promise<number> {
  const text = await (await fetch(`${service.httpUrl}/metrics`)).text();
  const match = new RegExp(`^llm_handler_faults_total\\{site="${site}"\\} (\\d+)`, 'm').exec(text);
  return match ? Number(match[1]) : 0;
}

function faultLogged(site: FaultSite): Record<string, unknown> | undefined {
  return logs.records.find((record) => record.msg === `${site} handler failed` && record.site === site);
}

/** A stream that runs until cancelled: long enough that it is still going when the fault strikes. */
function longStream(client: LlmClient) {
  return client.generate({ prompt: 'The queen said', maxTokens: 4000, temperature: 0.8 });
}

/** The server still serves: /healthz answers and a fresh client generates. */
async function stillServing(): Promise<void> {
  expect((await fetch(`${service.httpUrl}/healthz`)).status).toBe(200);
  const client = await connectClient(service);
  const { end } = await client.generate({ prompt: 'Alice', maxTokens: 4 }).text();
  expect(end.reason).toMatch(/stop|length/);
  client.close();
}

describe('a fault in one callback stays in its request or connection', () => {
  it('http: a throwing route answers 500 JSON, is logged with its path and counted', async () => {
    const before = await faultCount('http');
    const fired = plan.arm('http', (context) => context.path === '/readyz');
    const response = await fetch(`${service.httpUrl}/readyz`);
    await fired;
    expect(response.status).toBe(500);
    expect(await response.json()).toMatchObject({ error: 'internal' });
    expect((await fetch(`${service.httpUrl}/readyz`)).status).toBe(200);
    expect(await faultCount('http')).toBe(before + 1);
    expect(faultLogged('http')).toMatchObject({ path: '/readyz', err: { message: 'injected http fault' } });
    expect(String((faultLogged('http')!.err as { stack: string }).stack)).toContain('fault-boundary.test.ts');
  });

  it('upgrade: the upgrade is refused with 500 and the next one is accepted', async () => {
    const fired = plan.arm('upgrade');
    const refused = await connectClient(service).then(
      () => undefined,
      (error: unknown) => error,
    );
    await fired;
    expect(refused).toBeInstanceOf(ConnectError);
    expect(refused).toMatchObject({ code: 'internal', status: 500 });
    await stillServing();
  });

  it('open: only the new socket is closed with 1011; a running stream elsewhere goes on', async () => {
    const bystander = await connectClient(service);
    const stream = longStream(bystander);
    const firstText = stream[Symbol.asyncIterator]().next();
    await firstText;
    const fired = plan.arm('open');
    const socket = new WebSocket(service.streamUrl);
    const closed = new Promise<number>((resolve) => socket.on('close', (code) => resolve(code)));
    await fired;
    expect(await closed).toBe(1011);
    stream.cancel();
    expect((await stream.end).reason).toBe('cancelled');
    bystander.close();
    await stillServing();
  });

  it('message: the connection whose frame failed is closed with 1011; another one streams on', async () => {
    const victim = await connectClient(service);
    const bystander = await connectClient(service);
    const victimStream = longStream(victim);
    const bystanderStream = bystander.generate({ prompt: 'The cat', maxTokens: 200, temperature: 0.8 });
    const fired = plan.arm('message', (context) => context.session === victim.hello.session);
    const ping = victim.ping().catch((error: unknown) => error);
    await fired;
    await expect(victimStream.end).rejects.toMatchObject({ code: 'connection_lost', details: { closeCode: 1011 } });
    expect(await ping).toBeInstanceOf(LlmError);
    const { end } = await bystanderStream.text();
    expect(end.reason).toMatch(/stop|length/);
    expect(faultLogged('message')).toMatchObject({ session: victim.hello.session });
    bystander.close();
  });

  it('timer: a throw in a callback the gateway scheduled closes that connection only', async () => {
    const victim = await connectClient(service);
    const bystander = await connectClient(service);
    const bystanderStream = bystander.generate({ prompt: 'The cat', maxTokens: 200, temperature: 0.8 });
    // The first tok frame goes out through a guarded callback of the victim's request.
    const fired = plan.arm('timer', (context) => context.session === victim.hello.session);
    const victimStream = longStream(victim);
    await fired;
    await expect(victimStream.end).rejects.toMatchObject({ code: 'connection_lost', details: { closeCode: 1011 } });
    const { end } = await bystanderStream.text();
    expect(end.reason).toMatch(/stop|length/);
    bystander.close();
    await waitForIdle(service, 10_000);
    await stillServing();
  });

  it('drain: a throw when the send buffer drains closes that connection with 1011', async () => {
    const socket = await RawSocket.open(service.streamUrl);
    const session = service.sessions.list().at(-1)!;
    const buffered = (): number => (session as unknown as { connection: { bufferedAmount(): number } }).connection.bufferedAmount();
    tcpOf(socket.socket).pause();
    // Fill the loopback buffers with replies until the server's own buffer holds some: the next
    // drain callback then runs once the client reads again.
    const models = encodeFrame({ t: 'models' }, 'msgpack') as Uint8Array;
    for (let sent = 0; buffered() === 0 && sent < 200_000; sent += 50) {
      for (let i = 0; i < 50; i++) socket.sendBytes(models);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(buffered()).toBeGreaterThan(0);
    const fired = plan.arm('drain', (context) => context.session === session.id);
    tcpOf(socket.socket).resume();
    await fired;
    expect((await socket.closed).code).toBe(1011);
    await stillServing();
  });

  it('close: a throw in the session while closing still frees its place and its requests', async () => {
    const client = await connectClient(service);
    const stream = longStream(client);
    await stream[Symbol.asyncIterator]().next();
    const session = service.sessions.list().find((candidate) => candidate.id === client.hello.session)!;
    const closed = session.closed.bind(session);
    // The fault strikes after the session's own clean-up, as a throw from its telemetry would.
    session.closed = (code, message) => {
      closed(code, message);
      throw new Error('injected close fault');
    };
    client.close();
    await waitFor(() => faultLogged('close') !== undefined, 10_000, 'the close fault logged');
    expect(faultLogged('close')).toMatchObject({ session: client.hello.session, err: { message: 'injected close fault' } });
    expect(service.sessions.list().some((candidate) => candidate.id === session.id)).toBe(false);
    await waitForIdle(service, 10_000);
    await stillServing();
  });
});
