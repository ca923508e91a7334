import { writeFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectError, type EndFrame, type ServerFrame } from '../../protocol/index.js';
import type { Service } from '../../server/app.js';
import { generateKey } from '../../server/auth/api-keys.js';
import type { Config } from '../../server/config/config.js';
import { adminRoutes } from '../../server/http/admin-routes.js';
import { healthRoutes } from '../../server/http/health-routes.js';
import { metricsRoutes } from '../../server/http/metrics-routes.js';
import { modelRoutes } from '../../server/http/model-routes.js';
import { staticRoutes } from '../../server/http/static-routes.js';
import type { HttpRoute } from '../../server/transport/types.js';
import { waitFor } from '../helpers/wait.js';
import { RawSocket } from '../helpers/raw-socket.js';
import { connectClient, startTestService, tempDir } from '../helpers/service.js';

/*
 * Hardening of the edges against the real service on the demo model: malformed percent-encoding
 * in route parameters, HEAD and 405 on the HTTP routes, the Host check against DNS rebinding,
 * invalid UTF-8 on the JSON subprotocol, and fresh random seeds for requests that give none.
 * HTTP goes through node:http with the path written verbatim (fetch and URL would normalise `%`).
 */

const PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';
const ADMIN_TOKEN = 'test-admin-token';
const ADMIN = { authorization: `Bearer ${ADMIN_TOKEN}` };

interface RawReply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One HTTP request with `path` sent exactly as given. */
function rawHttp(service: Service, method: string, requestPath: string, headers: Record<string, string> = {}): Promise<RawReply> {
  const { hostname, port } = new URL(service.httpUrl);
  return new Promise((resolve, reject) => {
    const request = http.request({ host: hostname, port: Number(port), method, path: requestPath, headers, agent: false, timeout: 10_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => resolve({ status: response.statusCode ?? 0, headers: response.headers, body: Buffer.concat(chunks) }));
      response.on('error', reject);
    });
    request.on('timeout', () => request.destroy(new Error(`${method} ${requestPath}: no answer within 10 s`)));
    request.on('error', reject);
    request.end();
  });
}

/** Headers of a reply without the ones that differ between two requests by nature. */
function stableHeaders(reply: RawReply): Record<string, unknown> {
  const { date: _date, ...rest } = reply.headers;
  return rest;
}

/** /healthz answers 200 and a short greedy generation over the protocol client completes. */
async function expectStillServes(service: Service): Promise<void> {
  const health = await rawHttp(service, 'GET', '/healthz');
  expect(health.status).toBe(200);
  expect(JSON.parse(health.body.toString())).toEqual({ status: 'ok' });
  const client = await connectClient(service);
  try {
    const { end } = await client.generate({ prompt: PROMPT, maxTokens: 4, temperature: 0 }).text();
    expect(end).toMatchObject({ reason: 'length', usage: { completionTokens: 4 } });
  } finally {
    client.close();
  }
}

/** The value of `llm_connections_closed_total{cause}` (0 before the first such close). */
async function closedCount(service: Service, cause: string): Promise<number> {
  const reply = await rawHttp(service, 'GET', '/metrics', ADMIN);
  expect(reply.status).toBe(200);
  const line = reply.body
    .toString()
    .split('\n')
    .find((candidate) => candidate.startsWith(`llm_connections_closed_total{cause="${cause}"} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

/** Every route the service registers, built with stubs (only their methods and patterns are read). */
function registeredRoutes(): HttpRoute[] {
  const stub = {} as never;
  return [
    ...healthRoutes(stub),
    ...modelRoutes(stub),
    ...adminRoutes(stub, stub, stub, stub),
    ...metricsRoutes({ metrics: stub, admin: stub, public: false }),
    ...staticRoutes(),
  ];
}

let service: Service;

beforeAll(async () => {
  service = await startTestService({ adminToken: ADMIN_TOKEN, responseCacheEntries: 0, parallelSequences: 2, maxTokensCeiling: 4096 });
});

afterAll(async () => {
  await service?.shutdown(0);
});

describe('malformed percent-encoding in route parameters', () => {
  const PARAM_ROUTES = ['/api/models/:name/load', '/api/models/:name/unload', '/api/models/:name/reload', '/api/connections/:id/close'];
  const MALFORMED = [
    ['a lone %', '%'],
    ['% at the end', 'demo%'],
    ['a truncated escape', '%4'],
    ['non-hex digits', '%zz'],
    ['%%', '%%'],
    ['a truncated 3-byte sequence', '%E0%A4%A'],
    ['a lead byte without continuation', '%C3%28'],
    ['a lone continuation byte', '%80'],
    ['0xFF', '%FF'],
    ['an overlong slash', '%C0%AF'],
    ['a UTF-16 surrogate', '%ED%A0%80'],
    ['beyond U+10FFFF', '%F4%90%80%80'],
  ] as const;

  it('covers every route that has a parameter', () => {
    const withParams = registeredRoutes()
      .filter((route) => route.pattern.includes('/:'))
      .map((route) => route.pattern);
    expect(withParams.sort()).toEqual([...PARAM_ROUTES].sort());
  });

  describe.each([
    ['without a token', {}],
    ['with the admin token', ADMIN],
    ['with a wrong token', { authorization: 'Bearer wrong' }],
  ] as const)('%s', (_label, headers) => {
    it.each(PARAM_ROUTES)('POST %s answers 400 bad_request for every malformed encoding, and the server keeps serving', async (pattern) => {
      const wrong: string[] = [];
      for (const [name, param] of MALFORMED) {
        const requestPath = pattern.replace(/:[a-z]+/, param);
        const reply = await rawHttp(service, 'POST', requestPath, headers);
        const body = reply.body.toString();
        let json: unknown;
        try {
          json = JSON.parse(body);
        } catch {
          json = undefined;
        }
        const ok =
          reply.status === 400 &&
          reply.headers['content-type'] === 'application/json' &&
          typeof json === 'object' &&
          json !== null &&
          (json as { error?: unknown }).error === 'bad_request' &&
          typeof (json as { message?: unknown }).message === 'string';
        if (!ok) wrong.push(`${name}: POST ${requestPath} -> ${reply.status} ${body.slice(0, 200)}`);
      }
      expect(wrong).toEqual([]);
      await expectStillServes(service);
    });
  });

  it('still decodes well-formed escapes in route parameters', async () => {
    const cases = [
      { path: '/api/models/no%20such%20model/load', status: 404, error: 'model_not_found', mentions: 'no such model' },
      { path: '/api/models/caf%C3%A9/unload', status: 404, error: 'model_not_found', mentions: 'café' },
      { path: '/api/connections/%41%2Fb/close', status: 404, error: 'not_found', mentions: 'A/b' },
    ];
    for (const { path: requestPath, status, error, mentions } of cases) {
      const reply = await rawHttp(service, 'POST', requestPath, ADMIN);
      expect({ path: requestPath, status: reply.status }).toEqual({ path: requestPath, status });
      const body = JSON.parse(reply.body.toString()) as { error: string; message: string };
      expect(body.error).toBe(error);
      expect(body.message).toContain(mentions);
    }
    await expectStillServes(service);
  });
});

describe('HEAD and 405', () => {
  /** The dashboard's first script asset, or a path the static route answers either way. */
  async function dashboardAsset(): Promise<string> {
    const index = await rawHttp(service, 'GET', '/');
    const match = /src="(\/assets\/[^"]+)"/.exec(index.body.toString());
    return match?.[1] ?? '/assets/not-built.js';
  }

  it('serves HEAD on every GET route', () => {
    const getPatterns = registeredRoutes()
      .filter((route) => route.method === 'get')
      .map((route) => route.pattern);
    expect(getPatterns.sort()).toEqual(['/*', '/api/connections', '/api/models', '/healthz', '/metrics', '/readyz']);
  });

  it('answers HEAD with the status and headers of GET, the GET body length as content-length, and no body', async () => {
    await waitFor(() => service.sessions.size === 0, 5000, 'no open connections');
    const asset = await dashboardAsset();
    const cases: { path: string; headers?: Record<string, string> }[] = [
      { path: '/healthz' },
      { path: '/readyz' },
      { path: '/api/models' },
      { path: '/api/connections', headers: ADMIN },
      { path: '/api/connections' }, // 401
      { path: '/metrics' }, // 401
      { path: '/' },
      { path: '/index.html' },
      { path: asset },
      { path: '/some/dashboard/page' },
      { path: '/missing.png' }, // 404 text
      { path: '/api/no-such-route' }, // 404 JSON
    ];
    for (const { path: requestPath, headers } of cases) {
      const get = await rawHttp(service, 'GET', requestPath, headers);
      const head = await rawHttp(service, 'HEAD', requestPath, headers);
      const label = `HEAD ${requestPath}${headers ? ' (admin)' : ''}`;
      expect({ label, status: head.status }).toEqual({ label, status: get.status });
      expect({ label, headers: stableHeaders(head) }).toEqual({ label, headers: stableHeaders(get) });
      expect({ label, contentLength: head.headers['content-length'] }).toEqual({ label, contentLength: String(get.body.byteLength) });
      expect({ label, body: head.body.byteLength }).toEqual({ label, body: 0 });
    }
  });

  it('answers HEAD /metrics (admin) like GET, with a content-length of the size of the scrape', async () => {
    // The scrape changes between two requests (resource gauges tick every second), so its size is
    // compared loosely; everything else must match.
    const get = await rawHttp(service, 'GET', '/metrics', ADMIN);
    const head = await rawHttp(service, 'HEAD', '/metrics', ADMIN);
    expect(head.status).toBe(200);
    expect(get.status).toBe(200);
    const { 'content-length': headLength, ...headRest } = stableHeaders(head);
    const { 'content-length': getLength, ...getRest } = stableHeaders(get);
    expect(headRest).toEqual(getRest);
    expect(getLength).toBe(String(get.body.byteLength));
    expect(Math.abs(Number(headLength) - get.body.byteLength)).toBeLessThan(get.body.byteLength * 0.05);
    expect(head.body.byteLength).toBe(0);
  });

  it.each([
    ['POST', '/healthz', 'GET, HEAD'],
    ['PUT', '/readyz', 'GET, HEAD'],
    ['DELETE', '/api/models', 'GET, HEAD'],
    ['PATCH', '/api/connections', 'GET, HEAD'],
    ['POST', '/metrics', 'GET, HEAD'],
    ['PUT', '/v1/stream', 'GET'],
    ['POST', '/v1/stream', 'GET'],
    ['DELETE', '/v1/admin/feed', 'GET'],
    ['PUT', '/api/models/demo/load', 'POST'],
    ['DELETE', '/api/connections/x/close', 'POST'],
    ['POST', '/', 'GET, HEAD'],
  ])('%s %s answers 405 with Allow: %s', async (method, requestPath, allow) => {
    const reply = await rawHttp(service, method, requestPath, ADMIN);
    expect(reply.status).toBe(405);
    expect(reply.headers.allow).toBe(allow);
    expect(JSON.parse(reply.body.toString())).toMatchObject({ error: 'method_not_allowed' });
  });

  // uWS tries method-specific handlers before `any`, so without their own GET handlers these paths
  // would fall to the dashboard's `GET /*` and answer 404.
  it('GET and HEAD on the POST-only admin paths answer 405 with Allow: POST', async () => {
    const wrong: string[] = [];
    for (const requestPath of ['/api/models/x/load', '/api/models/x/unload', '/api/models/x/reload', '/api/connections/x/close']) {
      for (const method of ['GET', 'HEAD']) {
        const reply = await rawHttp(service, method, requestPath, ADMIN);
        if (reply.status !== 405 || reply.headers.allow !== 'POST') wrong.push(`${method} ${requestPath} -> ${reply.status} allow=${reply.headers.allow ?? '(none)'}`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it.each([
    ['GET', '/api/nope'],
    ['GET', '/api/models/demo'],
    ['GET', '/api/models/demo/load/extra'],
    ['GET', '/api/connections/x'],
    ['GET', '/v1/nope'],
    ['PUT', '/api/nope'],
    ['POST', '/api/models/demo/explode'],
    ['DELETE', '/v1/nope'],
  ])('%s %s answers 404 JSON', async (method, requestPath) => {
    const reply = await rawHttp(service, method, requestPath, ADMIN);
    expect(reply.status).toBe(404);
    expect(reply.headers['content-type']).toBe('application/json');
    expect(JSON.parse(reply.body.toString())).toMatchObject({ error: 'not_found' });
  });

  it('keeps serving after the HEAD and 405 requests', async () => {
    await expectStillServes(service);
  });
});

describe('Host check against DNS rebinding', () => {
  const started: Service[] = [];

  afterAll(async () => {
    await Promise.all(started.map((running) => running.shutdown(0)));
  });

  async function start(overrides: Partial<Config>): Promise<Service> {
    const running = await startTestService({ adminToken: ADMIN_TOKEN, ...overrides });
    started.push(running);
    return running;
  }

  /** The upgrade's status (101 when it opened) and the refusal's body. */
  function upgrade(target: Service, headers: Record<string, string>): Promise<{ status: number; body: string }> {
    return new Promise((resolve, reject) => {
      const socket = new WebSocket(target.streamUrl, ['llm.v1.msgpack'], { headers });
      const timer = setTimeout(() => reject(new Error('upgrade timed out')), 5000);
      socket.once('open', () => {
        clearTimeout(timer);
        socket.close();
        resolve({ status: 101, body: '' });
      });
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => {
          clearTimeout(timer);
          resolve({ status: response.statusCode ?? 0, body });
        });
      });
      socket.once('error', () => undefined);
    });
  }

  const portOf = (target: Service): string => new URL(target.httpUrl).port;

  /** Runs a table of Host (and Origin) headers against a service; returns the rows that answered otherwise. */
  async function mismatches(target: Service, rows: readonly { host: string; origin?: string; headers?: Record<string, string>; status: number }[]): Promise<string[]> {
    const wrong: string[] = [];
    for (const row of rows) {
      const headers = { host: row.host, ...(row.origin === undefined ? {} : { origin: row.origin }), ...row.headers };
      const answer = await upgrade(target, headers);
      const bodyOk = row.status !== 403 || (JSON.parse(answer.body) as { error?: string }).error === 'forbidden';
      if (answer.status !== row.status || !bodyOk) wrong.push(`Host ${row.host}${row.origin ? ` Origin ${row.origin}` : ''}: expected ${row.status}, got ${answer.status} ${answer.body}`);
    }
    return wrong;
  }

  it('open, without ALLOWED_HOSTS: serves the listen address, localhost and loopback, refuses other names with 403 forbidden', async () => {
    const open = await start({});
    const port = portOf(open);
    const rows = [
      { host: `127.0.0.1:${port}`, status: 101 },
      { host: '127.0.0.1', status: 101 },
      { host: `localhost:${port}`, status: 101 },
      { host: 'LOCALHOST', status: 101 },
      { host: `localhost.:${port}`, status: 101 },
      { host: `[::1]:${port}`, status: 101 },
      { host: '[::1]', status: 101 },
      { host: `127.0.0.2:${port}`, status: 101 },
      { host: `app.localhost:${port}`, status: 101 },
      { host: `localhost:${port}`, origin: `http://localhost:${port}`, status: 101 },
      { host: 'evil.example', status: 403 },
      { host: `evil.example:${port}`, status: 403 },
      { host: 'evil.example', origin: 'http://evil.example', status: 403 },
      { host: `evil.example:${port}`, origin: `http://evil.example:${port}`, status: 403 },
      { host: `127.0.0.1.evil.example:${port}`, status: 403 },
      { host: `localhost.evil.example:${port}`, status: 403 },
      { host: `0.0.0.0:${port}`, status: 403 },
      { host: `[::2]:${port}`, status: 403 },
      { host: '192.168.1.20', status: 403 },
    ];
    expect(await mismatches(open, rows)).toEqual([]);
    await expectStillServes(open);
  });

  it('refuses a foreign Host through the typed client with ConnectError forbidden (403)', async () => {
    const error = await connectClient(service, { headers: { host: 'evil.example', origin: 'http://evil.example' } }).then(
      (client) => {
        client.close();
        return undefined;
      },
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConnectError);
    expect(error).toMatchObject({ code: 'forbidden', status: 403 });
  });

  it('serves the names in ALLOWED_HOSTS and still refuses others', async () => {
    const named = await start({ allowedHosts: 'chat.example, Other.Example' });
    const port = portOf(named);
    const rows = [
      { host: 'chat.example', status: 101 },
      { host: 'chat.example:8443', status: 101 },
      { host: 'CHAT.EXAMPLE', status: 101 },
      { host: 'chat.example', origin: 'http://chat.example', status: 101 },
      { host: 'other.example', status: 101 },
      { host: `localhost:${port}`, status: 101 },
      { host: `127.0.0.1:${port}`, status: 101 },
      { host: 'evil.example', status: 403 },
      { host: 'chat.example.evil.example', status: 403 },
      { host: 'evil.chat.example', status: 403 },
      // The Origin check still applies to an allowed Host.
      { host: 'chat.example', origin: 'http://evil.example', status: 403 },
    ];
    expect(await mismatches(named, rows)).toEqual([]);
  });

  it('serves any name with ALLOWED_HOSTS=*', async () => {
    const any = await start({ allowedHosts: '*' });
    const rows = [
      { host: 'evil.example', status: 101 },
      { host: 'evil.example', origin: 'http://evil.example', status: 101 },
      { host: '10.0.0.1:9999', status: 101 },
    ];
    expect(await mismatches(any, rows)).toEqual([]);
  });

  it('does not check the Host with API keys: a valid key with a foreign Host is served, none is 401', async () => {
    const { key, entry } = generateKey('hardening');
    const file = path.join(tempDir('hardening-keys'), 'keys.json');
    await writeFile(file, JSON.stringify({ keys: [entry] }));
    const keyed = await start({ keysFile: file });
    const bearer = { authorization: `Bearer ${key}` };
    const rows = [
      { host: 'evil.example', headers: bearer, status: 101 },
      { host: 'evil.example', origin: 'http://evil.example', headers: bearer, status: 101 },
      { host: 'evil.example', status: 401 },
      { host: 'evil.example', headers: { authorization: 'Bearer sk-wrong' }, status: 401 },
    ];
    expect(await mismatches(keyed, rows)).toEqual([]);
    // The typed client, too.
    const client = await connectClient(keyed, { apiKey: key, headers: { host: 'evil.example' } });
    const { end } = await client.generate({ prompt: PROMPT, maxTokens: 3, temperature: 0 }).text();
    expect(end.usage.completionTokens).toBe(3);
    client.close();
  });
});

describe('invalid UTF-8 in a text frame on llm.v1.json', () => {
  const LONG = 1500;
  const isEnd = (id: string) => (frame: ServerFrame): boolean => frame.t === 'end' && frame.id === id;

  async function openJson(): Promise<RawSocket> {
    return RawSocket.open(service.streamUrl, { protocols: ['llm.v1.json'] });
  }

  it('closes that connection with 1006, counts invalid_utf8, and leaves other connections and their streams running', async () => {
    // A service of its own with a token rate per connection: a stream of LONG tokens lasts about
    // 3 s however fast the machine is, so both are certainly still running when the offender is cut.
    const throttled = await startTestService({ adminToken: ADMIN_TOKEN, responseCacheEntries: 0, parallelSequences: 2, maxTokensCeiling: 4096, tokenLimitTps: 500, tokenLimitBurst: 100 });
    try {
      await expectOthersRunOn(throttled);
    } finally {
      await throttled.shutdown(0);
    }
  });

  async function expectOthersRunOn(service: Service): Promise<void> {
    const before = await closedCount(service, 'invalid_utf8');
    const jsonPeer = await RawSocket.open(service.streamUrl, { protocols: ['llm.v1.json'] });
    const msgpackPeer = await RawSocket.open(service.streamUrl);
    const offender = await RawSocket.open(service.streamUrl, { protocols: ['llm.v1.json'] });
    jsonPeer.send({ t: 'gen', id: 'json-long', prompt: PROMPT, maxTokens: LONG, temperature: 0 });
    msgpackPeer.send({ t: 'gen', id: 'mp-long', prompt: PROMPT, maxTokens: LONG, temperature: 0 });
    await jsonPeer.next((frame) => frame.t === 'tok' && frame.id === 'json-long');
    await msgpackPeer.next((frame) => frame.t === 'tok' && frame.id === 'mp-long');

    offender.socket.send(Buffer.from('{"t":"ping","ts":1,"x":"\xff\xfe"}', 'latin1'), { binary: false });
    const close = await offender.closed;
    // Both streams were still running when the offender was cut.
    const runningAtClose = [jsonPeer.frames.some(isEnd('json-long')), msgpackPeer.frames.some(isEnd('mp-long'))];
    expect(close.code).toBe(1006);
    expect(offender.frames.filter((frame) => frame.t !== 'hello' && frame.t !== 'limits')).toEqual([]);
    expect(runningAtClose).toEqual([false, false]);

    for (const [peer, id] of [[jsonPeer, 'json-long'], [msgpackPeer, 'mp-long']] as const) {
      const frames = await peer.request(id);
      const end = frames.at(-1) as EndFrame;
      expect(end).toMatchObject({ t: 'end', id, reason: 'length', usage: { completionTokens: LONG } });
      expect(frames.filter((frame) => frame.t === 'err')).toEqual([]);
      peer.send({ t: 'ping', ts: 42 });
      expect(await peer.next((frame) => frame.t === 'pong')).toEqual({ t: 'pong', ts: 42 });
    }
    await waitFor(() => service.sessions.size === 2, 5000, 'the offender session gone');
    expect(await closedCount(service, 'invalid_utf8')).toBe(before + 1);
    jsonPeer.close();
    msgpackPeer.close();
    await expectStillServes(service);
  }

  it.each([
    ['0xFF 0xFE', [0xff, 0xfe]],
    ['a lone continuation byte', [0x80]],
    ['a truncated 3-byte sequence', [0xe2, 0x82]],
    ['a lead byte followed by ASCII', [0xc3, 0x28]],
    ['an overlong slash', [0xc0, 0xaf]],
    ['a UTF-16 surrogate', [0xed, 0xa0, 0x80]],
    ['beyond U+10FFFF', [0xf4, 0x90, 0x80, 0x80]],
  ])('cuts the connection for %s (1006, invalid_utf8)', async (_name, bytes) => {
    const before = await closedCount(service, 'invalid_utf8');
    const socket = await openJson();
    socket.socket.send(Buffer.concat([Buffer.from('{"t":"gen","id":"x","prompt":"'), Buffer.from(bytes), Buffer.from('"}')]), { binary: false });
    expect((await socket.closed).code).toBe(1006);
    // The frame never reached the gateway: no request was started for it.
    expect(socket.frames.filter((frame) => frame.t !== 'hello')).toEqual([]);
    await waitFor(async () => (await closedCount(service, 'invalid_utf8')) === before + 1, 5000, 'the invalid_utf8 close counted');
  });

  it('answers the same bytes in a binary frame with bad_frame and keeps the connection', async () => {
    const socket = await openJson();
    socket.socket.send(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), { binary: true });
    expect(await socket.next((frame) => frame.t === 'err')).toMatchObject({ t: 'err', code: 'bad_frame' });
    socket.send({ t: 'ping', ts: 7 });
    expect(await socket.next((frame) => frame.t === 'pong')).toEqual({ t: 'pong', ts: 7 });
    socket.close();
  });

  it('serves valid multi-byte UTF-8 in text frames', async () => {
    const socket = await openJson();
    socket.sendText(JSON.stringify({ t: 'gen', id: 'u', prompt: 'Alice said “café” — 日本 🎉', maxTokens: 4, temperature: 0 }));
    expect((await socket.request('u')).at(-1)).toMatchObject({ t: 'end', reason: 'length', usage: { completionTokens: 4 } });
    socket.close();
    await expectStillServes(service);
  });
});

describe('random sampling without a seed', () => {
  /*
   * Without a seed each request gets a fresh random 32-bit seed. Two 64-token samples of the demo
   * model at temperature 0.9 then match with negligible probability (160 samples shared at most 15
   * leading characters), so all texts must differ. Had requests been seeded from the clock's
   * second, requests sent together would share a second and so a text: four of them could not all
   * differ.
   */
  const SAMPLED = { prompt: PROMPT, maxTokens: 64, temperature: 0.9 };

  function expectNotCached(ends: EndFrame[]): void {
    expect(ends.map((end) => end.cached ?? false)).toEqual(ends.map(() => false));
  }

  it('gives four concurrent requests on one connection four different texts', async () => {
    const client = await connectClient(service);
    const results = await Promise.all([1, 2, 3, 4].map(() => client.generate(SAMPLED).text()));
    client.close();
    expect(results.map(({ end }) => end.usage.completionTokens)).toEqual([64, 64, 64, 64]);
    expectNotCached(results.map(({ end }) => end));
    expect(new Set(results.map(({ text }) => text)).size).toBe(4);
  });

  it('gives four concurrent requests on four connections four different texts', async () => {
    const clients = await Promise.all([1, 2, 3, 4].map(() => connectClient(service)));
    const results = await Promise.all(clients.map((client) => client.generate(SAMPLED).text()));
    for (const client of clients) client.close();
    expectNotCached(results.map(({ end }) => end));
    expect(new Set(results.map(({ text }) => text)).size).toBe(4);
  });

  it('gives two requests sent back to back different texts', async () => {
    const client = await connectClient(service);
    // Sent together on one connection, and then one sent the moment the other ended.
    const [first, second] = await Promise.all([client.generate(SAMPLED).text(), client.generate(SAMPLED).text()]);
    const third = await client.generate(SAMPLED).text();
    client.close();
    expectNotCached([first.end, second.end, third.end]);
    expect(new Set([first.text, second.text, third.text]).size).toBe(3);
  });

  it('gives the same text for the same explicit seed, one after the other and at once', async () => {
    const client = await connectClient(service);
    const seeded = { ...SAMPLED, seed: 424242 };
    const first = await client.generate(seeded).text();
    const second = await client.generate(seeded).text();
    const together = await Promise.all([client.generate(seeded).text(), client.generate(seeded).text()]);
    const other = await client.generate({ ...SAMPLED, seed: 7 }).text();
    client.close();
    expectNotCached([first.end, second.end, ...together.map(({ end }) => end)]);
    expect(first.end.usage.completionTokens).toBe(64);
    expect(second.text).toBe(first.text);
    expect(together.map(({ text }) => text)).toEqual([first.text, first.text]);
    expect(other.text).not.toBe(first.text);
  });
});
