import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import WebSocket from 'ws';
import { afterEach, describe, expect, it } from 'vitest';
import type { EndFrame, ErrFrame, LimitsFrame, ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { generateKey } from '../../server/auth/api-keys.js';
import type { Config } from '../../server/config/config.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { startTestService, tempDir } from '../helpers/service.js';
import { within } from '../helpers/wait.js';

const PROMPT = 'Alice was beginning to get very tired';
let services: Service[] = [];
let sockets: RawSocket[] = [];

afterEach(async () => {
  for (const socket of sockets) socket.close();
  sockets = [];
  await Promise.all(services.map((service) => service.shutdown(0)));
  services = [];
});

async function start(overrides: Partial<Config>): Promise<Service> {
  const service = await startTestService(overrides);
  services.push(service);
  return service;
}

async function open(service: Service, options: Parameters<typeof RawSocket.open>[1] = {}): Promise<RawSocket> {
  const socket = await RawSocket.open(service.streamUrl, options);
  sockets.push(socket);
  return socket;
}

/** Upgrade status of a raw handshake, and the subprotocol the server echoed. */
function upgrade(service: Service, options: { protocols?: string[]; headers?: Record<string, string> }): Promise<{ status: number; protocol: string; body: string }> {
  return within(upgradeOutcome(service, options), 5000, 'upgrade answer');
}

function upgradeOutcome(service: Service, options: { protocols?: string[]; headers?: Record<string, string> }): Promise<{ status: number; protocol: string; body: string }> {
  return new Promise((resolve) => {
    const socket = new WebSocket(service.streamUrl, options.protocols ?? [], { headers: options.headers ?? {} });
    socket.once('open', () => {
      resolve({ status: 101, protocol: socket.protocol, body: '' });
      socket.close();
    });
    socket.once('unexpected-response', (_request, response) => {
      let body = '';
      response.on('data', (chunk: Buffer) => (body += chunk.toString()));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, protocol: '', body: body + JSON.stringify(response.headers) }));
    });
    socket.once('error', () => undefined);
  });
}

async function keysFile(entries: ReturnType<typeof generateKey>['entry'][]): Promise<string> {
  const file = path.join(tempDir('keys'), 'keys.json');
  await writeFile(file, JSON.stringify({ keys: entries }));
  return file;
}

describe('token buckets', () => {
  it('refuses with rate_limited and a retry hint from the refill rate, and keeps the connection', async () => {
    const service = await start({ rateLimitRps: 2, rateLimitBurst: 3 });
    const socket = await open(service);
    const hello = socket.frames[0]!;
    expect(hello.t === 'hello' && hello.limits).toMatchObject({ requestsRemaining: 3 });
    for (const id of ['a', 'b', 'c', 'd']) socket.send({ t: 'gen', id, prompt: PROMPT, maxTokens: 1 });
    const refused = (await socket.request('d')).at(-1) as ErrFrame;
    expect(refused).toMatchObject({ t: 'err', id: 'd', code: 'rate_limited' });
    // Three taken at once from a bucket of three: one credit comes back after 1 / 2 s.
    expect(refused.retryAfterMs).toBeGreaterThan(300);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(500);
    const limits = (await socket.next((frame) => frame.t === 'limits')) as LimitsFrame;
    expect(limits.requestsRemaining).toBe(0);
    expect(limits.resetMs).toBeGreaterThan(1000);
    for (const id of ['a', 'b', 'c']) expect((await socket.request(id)).at(-1)).toMatchObject({ t: 'end' });
    // The hint itself is under test: a gen sent once it has passed is served. Waiting for time is
    // the behaviour here (a bucket refills with time, and says nothing when it has); counted from
    // now rather than from the refusal, the wait only errs on the long side.
    await new Promise((resolve) => setTimeout(resolve, refused.retryAfterMs));
    socket.send({ t: 'gen', id: 'e', prompt: PROMPT, maxTokens: 1 });
    expect((await socket.request('e')).at(-1)).toMatchObject({ t: 'end' });
  });

  it('closes a flooding client with 1008', async () => {
    const service = await start({ rateLimitRps: 1, rateLimitBurst: 2, floodMultiple: 2 });
    const socket = await open(service);
    for (let i = 0; i < 20; i++) socket.send({ t: 'gen', id: `f${i}`, prompt: PROMPT, maxTokens: 1 });
    const closed = await socket.closed;
    expect(closed.code).toBe(1008);
    expect(closed.reason).toMatch(/flood/);
  });

  it('closes a client that floods frames of any kind', async () => {
    const service = await start({ maxFramesPerSecond: 10, rateLimitBurst: 5, floodMultiple: 1 });
    const socket = await open(service);
    for (let i = 0; i < 100; i++) socket.send({ t: 'ping', ts: i });
    expect((await socket.closed).code).toBe(1008);
    expect(socket.frames.some((frame) => frame.t === 'err' && frame.code === 'rate_limited')).toBe(true);
  });
});

describe('token rate', () => {
  it('throttles a stream to the generated-token rate instead of cutting it', async () => {
    const service = await start({ tokenLimitTps: 200, tokenLimitBurst: 20 });
    const socket = await open(service);
    socket.send({ t: 'gen', id: 'slow', prompt: PROMPT, maxTokens: 100 });
    const end = (await socket.request('slow')).at(-1) as EndFrame;
    expect(end).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 100 } });
    // The rate is the behaviour under test, so this is a wall-clock check, on the server's own
    // clock (the request's totalMs): 20 tokens from the burst, the other 80 at 200 per second take
    // 400 ms at least (the last token may leave the bucket one in debt: 395 ms). Unthrottled, the
    // demo model makes 100 tokens in about 50 ms. The upper bound, 5 times the expected figure,
    // only rules out a throttle far slower than asked for, on a loaded 2-core machine too.
    expect(end.timings.totalMs).toBeGreaterThan(350);
    expect(end.timings.totalMs).toBeLessThan(2000);
  });
});

describe('API keys', () => {
  it('needs a key at upgrade: 401 without or with a wrong one, never echoing it', async () => {
    const { key, entry } = generateKey('alice');
    const service = await start({ keysFile: await keysFile([entry]) });
    expect((await upgrade(service, {})).status).toBe(401);
    const wrong = await upgrade(service, { protocols: ['llm.v1.msgpack', 'bearer.llm_wrongwrongwrong'] });
    expect(wrong.status).toBe(401);
    expect(wrong.body).not.toContain('wrongwrongwrong');
    expect((await upgrade(service, { headers: { authorization: 'Bearer nope' } })).status).toBe(401);
    const browser = await upgrade(service, { protocols: ['llm.v1.msgpack', `bearer.${key}`] });
    expect(browser).toMatchObject({ status: 101, protocol: 'llm.v1.msgpack' });
    const socket = await open(service, { headers: { authorization: `Bearer ${key}` } });
    socket.send({ t: 'gen', id: 'k', prompt: PROMPT, maxTokens: 3 });
    expect((await socket.request('k')).at(-1)).toMatchObject({ t: 'end', reason: 'length' });
  });

  it('shares a key\'s aggregate bucket across its connections and caps its streams and models', async () => {
    const { key, entry } = generateKey('bob', { requestsPerSecond: 1, requestBurst: 3, maxStreams: 10 }, ['demo']);
    const service = await start({ keysFile: await keysFile([entry]), rateLimitBurst: 100, rateLimitRps: 100 });
    const headers = { authorization: `Bearer ${key}` };
    const first = await open(service, { headers });
    const second = await open(service, { headers });
    first.send({ t: 'gen', id: '1', prompt: PROMPT, maxTokens: 1 });
    first.send({ t: 'gen', id: '2', prompt: PROMPT, maxTokens: 1 });
    second.send({ t: 'gen', id: '3', prompt: PROMPT, maxTokens: 1 });
    second.send({ t: 'gen', id: '4', prompt: PROMPT, maxTokens: 1 });
    expect((await second.request('4')).at(-1)).toMatchObject({ t: 'err', code: 'rate_limited' });
    for (const [socket, id] of [[first, '1'], [first, '2'], [second, '3']] as const) expect((await socket.request(id)).at(-1)).toMatchObject({ t: 'end' });
    second.send({ t: 'gen', id: '5', model: 'other', prompt: PROMPT, maxTokens: 1 });
    expect((await second.request('5')).at(-1)).toMatchObject({ t: 'err', code: 'forbidden_model' });
  });

  it('caps a key\'s connections and keeps client keys off admin routes (403)', async () => {
    const { key, entry } = generateKey('carol', { maxConnections: 1 });
    const service = await start({ keysFile: await keysFile([entry]), adminToken: 'admin-secret' });
    await open(service, { headers: { authorization: `Bearer ${key}` } });
    expect((await upgrade(service, { headers: { authorization: `Bearer ${key}` } })).status).toBe(429);
    for (const route of ['/api/connections', '/metrics']) {
      expect((await fetch(`${service.httpUrl}${route}`, { headers: { authorization: `Bearer ${key}` } })).status).toBe(403);
      expect((await fetch(`${service.httpUrl}${route}`)).status).toBe(401);
      expect((await fetch(`${service.httpUrl}${route}`, { headers: { authorization: 'Bearer admin-secret' } })).status).toBe(200);
    }
    expect((await fetch(`${service.httpUrl}/api/models/demo/unload`, { method: 'POST', headers: { authorization: `Bearer ${key}` } })).status).toBe(403);
  });
});

describe('browser safety', () => {
  it('refuses a disallowed Origin before 101 and accepts the same host or a listed one', async () => {
    const service = await start({});
    expect((await upgrade(service, { headers: { origin: 'http://evil.example' } })).status).toBe(403);
    expect((await upgrade(service, { headers: { origin: service.httpUrl } })).status).toBe(101);
    const listed = await start({ allowedOrigins: 'https://chat.example.com' });
    expect((await upgrade(listed, { headers: { origin: 'https://chat.example.com' } })).status).toBe(101);
    expect((await upgrade(listed, { headers: { origin: listed.httpUrl } })).status).toBe(403);
  });

  it('caps connections per address', async () => {
    const service = await start({ maxConnectionsPerIp: 2 });
    await open(service);
    await open(service);
    expect((await upgrade(service, {})).status).toBe(429);
  });
});

describe('generation limits', () => {
  it('ends a generation past its wall-clock deadline with reason timeout', async () => {
    // 2000 tokens at 20 per second would take 100 s; unthrottled, the demo model could finish them
    // within a deadline this short on a fast machine. The deadline ends it either way.
    const service = await start({ generationTimeoutMs: 100, tokenLimitTps: 20, tokenLimitBurst: 10 });
    const socket = await open(service);
    socket.send({ t: 'gen', id: 't', prompt: PROMPT, maxTokens: 2000 });
    const frames: ServerFrame[] = await socket.request('t');
    expect(frames.at(-1)).toMatchObject({ t: 'end', reason: 'timeout' });
    expect((frames.at(-1) as EndFrame).usage.completionTokens).toBeLessThan(2000);
  });
});
