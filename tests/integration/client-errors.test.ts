import { writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import { ConnectError, LlmError, connect, type LlmClient, type WebSocketConstructor } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { generateKey } from '../../server/auth/api-keys.js';
import type { Config } from '../../server/config/config.js';
import { connectClient, startTestService, tempDir } from '../helpers/service.js';

/*
 * The typed client against the real server: a refused upgrade rejects `connect()` with a
 * ConnectError carrying the server's code and status; a connection lost after hello fails streams
 * and pending calls with LlmError `connection_lost`.
 */

const PROMPT = 'Alice was beginning to get very tired';
const ADMIN = 'test-admin-token';
let services: Service[] = [];
let clients: LlmClient[] = [];

afterEach(async () => {
  for (const client of clients) client.close();
  clients = [];
  await Promise.all(services.map((service) => service.shutdown(0)));
  services = [];
});

async function start(overrides: Partial<Config> = {}): Promise<Service> {
  const service = await startTestService(overrides);
  services.push(service);
  return service;
}

async function open(service: Service, options: Parameters<typeof connectClient>[1] = {}): Promise<LlmClient> {
  const client = await connectClient(service, options);
  clients.push(client);
  return client;
}

/** What `connect()` rejected with; fails the test when it resolved. */
async function refusal(attempt: Promise<LlmClient>): Promise<ConnectError> {
  const error = await attempt.then(
    (client) => {
      clients.push(client);
      throw new Error('connect() resolved; expected a ConnectError');
    },
    (reason: unknown) => reason,
  );
  expect(error).toBeInstanceOf(ConnectError);
  return error as ConnectError;
}

async function keysFile(entries: ReturnType<typeof generateKey>['entry'][]): Promise<string> {
  const file = path.join(tempDir('keys'), 'keys.json');
  await writeFile(file, JSON.stringify({ keys: entries }));
  return file;
}

/** A loopback port nothing listens on (it was free a moment ago). */
async function closedPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** A stream that is producing text: its first piece arrived. */
async function running(client: LlmClient, maxTokens = 2000): Promise<{ stream: ReturnType<LlmClient['generate']>; iterator: AsyncIterator<string> }> {
  const stream = client.generate({ prompt: PROMPT, maxTokens, temperature: 0.8 });
  const iterator = stream[Symbol.asyncIterator]();
  const first = await iterator.next();
  expect(first.done).toBe(false);
  return { stream, iterator };
}

/** A client with a token rate so low that a long stream is still running whenever the test looks. */
const SLOW: Partial<Config> = { tokenLimitTps: 20, tokenLimitBurst: 5 };

describe('connect() refused before 101', () => {
  it('rejects with unauthorized (401) without a key and with a wrong one, never echoing the key', async () => {
    const { key, entry } = generateKey('alice');
    const service = await start({ keysFile: await keysFile([entry]) });

    const none = await refusal(connectClient(service));
    expect(none).toMatchObject({ name: 'ConnectError', code: 'unauthorized', status: 401, retryAfterMs: undefined });
    expect(none.message).toBe('unauthorized (401): a valid API key is required');

    const wrong = await refusal(connectClient(service, { apiKey: 'llm_wrongwrongwrong' }));
    expect(wrong).toMatchObject({ code: 'unauthorized', status: 401 });
    expect(wrong.message).not.toContain('wrongwrongwrong');

    const client = await open(service, { apiKey: key });
    expect(client.hello.session).toBeTruthy();
  });

  it('rejects with forbidden (403) for a foreign Origin', async () => {
    const service = await start();
    const error = await refusal(connectClient(service, { headers: { Origin: 'http://evil.example' } }));
    expect(error).toMatchObject({ code: 'forbidden', status: 403 });
    expect(error.message).toMatch(/origin not allowed/);
  });

  it('rejects with too_many_connections (429) past the per-address cap', async () => {
    const service = await start({ maxConnectionsPerIp: 1 });
    await open(service);
    const error = await refusal(connectClient(service));
    expect(error).toMatchObject({ code: 'too_many_connections', status: 429 });
    expect(error.message).toMatch(/at most 1 connections per address/);
  });

  it('rejects with bad_request (400) when only foreign subprotocols are offered', async () => {
    const service = await start();
    // A WebSocket that swaps the client's subprotocols for a foreign one.
    class ForeignProtocol extends WebSocket {
      constructor(url: string, _protocols?: string[], options?: WebSocket.ClientOptions) {
        super(url, ['chat.v9'], options);
      }
    }
    const error = await refusal(connect(service.streamUrl, { WebSocket: ForeignProtocol as unknown as WebSocketConstructor }));
    expect(error).toMatchObject({ code: 'bad_request', status: 400 });
    expect(error.message).toMatch(/unsupported subprotocol/);
  });

  // The server refuses upgrades with 503 while running streams finish: the listener stays open
  // during the grace period, so a client hears why.
  it('rejects with shutting_down (503) and a retry hint while the server drains its streams', async () => {
    const service = await start(SLOW);
    const busy = await open(service);
    const { stream } = await running(busy);
    const stopping = service.shutdown(30_000);
    try {
      const error = await refusal(connectClient(service));
      expect(error).toMatchObject({ code: 'shutting_down', status: 503, retryAfterMs: 5000 });
    } finally {
      stream.cancel();
      await stopping;
    }
  });

  it('rejects with unreachable when nothing listens, without a status', async () => {
    const port = await closedPort();
    const error = await refusal(connect(`ws://127.0.0.1:${port}/v1/stream`, { WebSocket: WebSocket as unknown as WebSocketConstructor }));
    expect(error).toMatchObject({ code: 'unreachable', status: undefined });
    expect(error.message).toMatch(/could not connect to ws:\/\/127\.0\.0\.1:\d+\/v1\/stream: .*ECONNREFUSED/);
  });
});

describe('a connection lost after hello', () => {
  it('fails a running stream with connection_lost, the close code and the reason', async () => {
    const service = await start(SLOW);
    const client = await open(service);
    const { stream, iterator } = await running(client);
    const closed = await fetch(`${service.httpUrl}/api/connections/${client.hello.session}/close`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN}` },
    });
    expect(closed.status).toBe(200);

    const error = await stream.end.then(() => undefined, (reason: unknown) => reason);
    expect(error).toBeInstanceOf(LlmError);
    expect(error).toMatchObject({ code: 'connection_lost', details: { closeCode: 1008, closeReason: 'closed by an administrator' } });
    expect((error as LlmError).message).toBe('connection_lost: connection closed (1008 closed by an administrator)');
    // Iterating reaches the same error once the pieces already received are read.
    await expect((async () => {
      for (;;) if ((await iterator.next()).done) return;
    })()).rejects.toBe(error);
    expect(client.closed).toBe(true);
    await expect(client.ping()).rejects.toBe(error);
    await expect(client.generate({ prompt: PROMPT }).end).rejects.toBe(error);
  });

  it('settles pending ping() and models() with connection_lost when the server closes the socket', async () => {
    const service = await start();
    const client = await open(service);
    const session = service.sessions.list().find((candidate) => candidate.id === client.hello.session)!;
    expect(session).toBeDefined();
    const ping = client.ping();
    const models = client.models();
    // Closed in the same turn as the frames were sent: the server never reads them.
    session.close(1008, 'closed by a test', 'admin');
    await expect(ping).rejects.toMatchObject({ name: 'LlmError', code: 'connection_lost', details: { closeCode: 1008, closeReason: 'closed by a test' } });
    await expect(models).rejects.toMatchObject({ code: 'connection_lost' });
  });
});

describe('a client closed with close()', () => {
  it('fails what is pending at once, and every later generate/ping/models with connection_lost', async () => {
    const service = await start(SLOW);
    const client = await open(service);
    const { stream } = await running(client);
    const ping = client.ping();
    client.close();
    expect(client.closed).toBe(true);
    await expect(ping).rejects.toMatchObject({ code: 'connection_lost', message: 'connection_lost: connection closed by the client (1000)' });
    await expect(stream.end).rejects.toMatchObject({ code: 'connection_lost', details: { closeCode: 1000, closeReason: '' } });

    const late = client.generate({ prompt: PROMPT, maxTokens: 1 });
    await expect(late.end).rejects.toBeInstanceOf(LlmError);
    await expect(late.end).rejects.toMatchObject({ code: 'connection_lost' });
    await expect(client.ping()).rejects.toMatchObject({ code: 'connection_lost' });
    await expect(client.models()).rejects.toMatchObject({ code: 'connection_lost' });
  });
});

describe('calls the server refuses without an id', () => {
  it('refuses a second generate() with a running id at once and leaves the first stream alone', async () => {
    const service = await start();
    const client = await open(service);
    const first = client.generate({ id: 'X', prompt: PROMPT, maxTokens: 20 });
    const second = client.generate({ id: 'X', prompt: PROMPT, maxTokens: 20 });
    await expect(second.end).rejects.toMatchObject({ code: 'duplicate_id', details: { id: 'X' } });
    const { end } = await first.text();
    expect(end).toMatchObject({ id: 'X', reason: 'length', usage: { completionTokens: 20 } });
  });

  it('refuses a chat that would encode over maxFrameBytes at once, and the connection keeps serving', async () => {
    const service = await start();
    const client = await open(service);
    const running = client.generate({ id: 'keep', prompt: PROMPT, maxTokens: 20 });
    // Under the server's character limit, but three bytes a character on the wire.
    const huge = client.chat({ messages: [{ role: 'user', content: '€'.repeat(100_000) }] });
    await expect(huge.end).rejects.toMatchObject({ code: 'invalid_params', details: { maxFrameBytes: client.limits.maxFrameBytes } });
    const { end } = await running.text();
    expect(end).toMatchObject({ id: 'keep', reason: 'length' });
    expect(client.closed).toBe(false);
  });

  it('rejects a ping() the frame bucket refuses with rate_limited instead of leaving it pending', async () => {
    const service = await start({ maxFramesPerSecond: 5, floodMultiple: 100 });
    const client = await open(service);
    const pings = await Promise.allSettled(Array.from({ length: 20 }, () => client.ping()));
    const refused = pings.filter((ping) => ping.status === 'rejected');
    expect(pings.filter((ping) => ping.status === 'fulfilled').length).toBeGreaterThan(0);
    expect(refused.length).toBeGreaterThan(0);
    for (const ping of refused) expect((ping as PromiseRejectedResult).reason).toMatchObject({ code: 'rate_limited', details: { t: 'ping' } });
  });
});

describe('a server that never says hello', () => {
  it('rejects connect() with unreachable once timeoutMs has passed', async () => {
    // Accepts the TCP connection and answers nothing, not even the upgrade.
    const silent = net.createServer(() => undefined);
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as net.AddressInfo;
    try {
      const error = await connect(`ws://127.0.0.1:${port}/v1/stream`, { WebSocket: WebSocket as unknown as WebSocketConstructor, timeoutMs: 300 }).catch((failure: unknown) => failure);
      expect(error).toBeInstanceOf(ConnectError);
      expect(error).toMatchObject({ code: 'unreachable' });
      expect((error as Error).message).toMatch(/no hello .* within 300 ms/);
    } finally {
      silent.close();
    }
  });
});
