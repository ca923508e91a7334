import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import {
  ConnectError,
  LlmError,
  connect,
  connectErrorCodeOf,
  connectErrorFromRefusal,
  parseRetryAfter,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../../protocol/index.js';

describe('connectErrorCodeOf', () => {
  it.each([
    [400, 'bad_request'],
    [401, 'unauthorized'],
    [403, 'forbidden'],
    [429, 'too_many_connections'],
    [500, 'internal'],
    [503, 'shutting_down'],
    // Unlisted: the closest code.
    [404, 'bad_request'],
    [407, 'bad_request'],
    [426, 'bad_request'],
    [502, 'internal'],
    [504, 'internal'],
    [599, 'internal'],
    // Not an error status: whatever answered is not a WebSocket endpoint.
    [200, 'bad_request'],
    [302, 'bad_request'],
    [0, 'bad_request'],
  ])('maps %i to %s', (status, code) => {
    expect(connectErrorCodeOf(status)).toBe(code);
  });
});

describe('parseRetryAfter', () => {
  const now = Date.parse('2025-01-01T00:00:00Z');
  it.each([
    ['5', 5000],
    [' 0 ', 0],
    ['120', 120_000],
    ['Wed, 01 Jan 2025 00:00:30 GMT', 30_000],
    // A date already past: retry now.
    ['Tue, 31 Dec 2024 23:59:00 GMT', 0],
    ['-1', undefined],
    ['1.5', undefined],
    ['soon', undefined],
    ['', undefined],
    [undefined, undefined],
  ])('reads %j as %j ms', (value, ms) => {
    expect(parseRetryAfter(value, now)).toBe(ms);
  });
});

describe('connectErrorFromRefusal', () => {
  it("takes the code and message from the server's JSON body, and Retry-After", () => {
    const error = connectErrorFromRefusal({ status: 503, body: '{"error":"shutting_down","message":"the server is shutting down"}', retryAfter: '5' });
    expect(error).toBeInstanceOf(ConnectError);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ name: 'ConnectError', code: 'shutting_down', status: 503, retryAfterMs: 5000 });
    expect(error.message).toBe('shutting_down (503): the server is shutting down');
  });

  it("trusts the body's code over the status when it is one a server sends", () => {
    expect(connectErrorFromRefusal({ status: 400, body: '{"error":"forbidden","message":"origin not allowed"}' }).code).toBe('forbidden');
    // The client's own codes, or unknown ones, are not taken from a body.
    expect(connectErrorFromRefusal({ status: 503, body: '{"error":"unreachable","message":"x"}' }).code).toBe('shutting_down');
    const unknown = connectErrorFromRefusal({ status: 418, body: '{"error":"teapot","message":"short and stout"}' });
    expect(unknown).toMatchObject({ code: 'bad_request', status: 418, message: 'bad_request (418): short and stout' });
  });

  it('quotes a short plain-text body, and falls back to the status line for HTML or nothing', () => {
    expect(connectErrorFromRefusal({ status: 500, body: 'upgrade failed' }).message).toBe('internal (500): upgrade failed');
    const html = connectErrorFromRefusal({ status: 502, statusText: 'Bad Gateway', body: '<html><body>nginx</body></html>' });
    expect(html).toMatchObject({ code: 'internal', status: 502, retryAfterMs: undefined });
    expect(html.message).toBe('internal (502): the server refused the upgrade with HTTP 502 Bad Gateway');
    expect(connectErrorFromRefusal({ status: 401, body: '' }).message).toBe('unauthorized (401): the server refused the upgrade with HTTP 401');
    expect(connectErrorFromRefusal({ status: 401, body: '[1,2]' }).message).toBe('unauthorized (401): [1,2]');
    expect(connectErrorFromRefusal({ status: 404, body: 'x'.repeat(500) }).message).toBe('bad_request (404): the server refused the upgrade with HTTP 404');
  });
});

/** A WebSocket that the test drives by hand; like a browser's, it has no `on`. */
class FakeSocket implements WebSocketLike {
  static last: FakeSocket | undefined;
  binaryType = 'blob';
  readonly protocol = 'llm.v1.json';
  readyState = 0;
  readonly sent: string[] = [];
  readonly closes: [number | undefined, string | undefined][] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  constructor(readonly url: string, readonly protocols?: string[]) {
    FakeSocket.last = this;
  }
  send(data: Uint8Array | string): void {
    this.sent.push(String(data));
  }
  close(code?: number, reason?: string): void {
    this.closes.push([code, reason]);
  }
}

/** Like `ws`: an event API on which `'unexpected-response'` reports a refused upgrade. */
class FakeNodeSocket extends FakeSocket {
  readonly events = new EventEmitter();
  on(event: string, listener: (...args: unknown[]) => void): this {
    this.events.on(event, listener);
    return this;
  }
}

const URL = 'ws://example.test/v1/stream';
const HELLO = JSON.stringify({
  t: 'hello',
  protocol: 'llm.v1.json',
  session: 's1',
  models: [],
  limits: { maxFrameBytes: 262144, maxConcurrentStreams: 8, maxTokensDefault: 256, maxTokensCeiling: 4096 },
});

function start(Socket: typeof FakeSocket): { attempt: Promise<unknown>; socket: FakeSocket } {
  const attempt = connect(URL, { WebSocket: Socket as unknown as WebSocketConstructor, format: 'json' }).then(
    (client) => client,
    (error: unknown) => error,
  );
  return { attempt, socket: FakeSocket.last! };
}

describe('connect() with a WebSocket that hides the status (browsers)', () => {
  it('rejects with unreachable and says the reason is not exposed', async () => {
    const { attempt, socket } = start(FakeSocket);
    socket.onerror!({ type: 'error' });
    socket.onclose!({ code: 1006, reason: '' });
    const error = (await attempt) as ConnectError;
    expect(error).toBeInstanceOf(ConnectError);
    expect(error).toMatchObject({ code: 'unreachable', status: undefined, retryAfterMs: undefined });
    expect(error.message).toMatch(/^unreachable: could not connect to ws:\/\/example\.test\/v1\/stream: no answer\. /);
    expect(error.message).toMatch(/does not expose the reason/);
  });

  it('rejects with connection_lost when the connection opened but closed before hello', async () => {
    const { attempt, socket } = start(FakeSocket);
    socket.onopen!({});
    socket.onerror!({ type: 'error' });
    socket.onclose!({ code: 1013, reason: 'try again later' });
    expect(await attempt).toMatchObject({ name: 'ConnectError', code: 'connection_lost', message: 'connection_lost: connection closed before hello (1013 try again later)' });
  });

  it('rejects with unreachable when the constructor throws', async () => {
    class Throwing extends FakeSocket {
      constructor(url: string) {
        super(url);
        throw new SyntaxError('bad URL');
      }
    }
    const error = await connect('nope', { WebSocket: Throwing as unknown as WebSocketConstructor }).catch((reason: unknown) => reason);
    expect(error).toMatchObject({ name: 'ConnectError', code: 'unreachable', message: 'unreachable: could not connect to nope: bad URL' });
  });

  it('still rejects with a plain Error when there is no WebSocket at all', async () => {
    const saved = (globalThis as { WebSocket?: unknown }).WebSocket;
    (globalThis as { WebSocket?: unknown }).WebSocket = undefined;
    try {
      await expect(connect(URL)).rejects.toThrow('no WebSocket implementation: pass options.WebSocket');
    } finally {
      (globalThis as { WebSocket?: unknown }).WebSocket = saved;
    }
  });
});

describe("connect() with ws's 'unexpected-response'", () => {
  it('reads status, Retry-After and body, then aborts the handshake', async () => {
    const { attempt, socket } = start(FakeNodeSocket);
    const response = Object.assign(new EventEmitter(), { statusCode: 503, statusMessage: 'Service Unavailable', headers: { 'retry-after': '5' } });
    (socket as FakeNodeSocket).events.emit('unexpected-response', {}, response);
    // A multi-byte character split across chunks.
    const body = Buffer.from('{"error":"shutting_down","message":"the server is shutting down…"}');
    response.emit('data', body.subarray(0, body.length - 2));
    response.emit('data', body.subarray(body.length - 2));
    expect(socket.closes).toEqual([]);
    response.emit('end');
    response.emit('close');
    // What aborting the handshake makes ws report adds nothing.
    socket.onerror!({ message: 'WebSocket was closed before the connection was established' });
    socket.onclose!({ code: 1006, reason: '' });
    const error = (await attempt) as ConnectError;
    expect(error).toMatchObject({ code: 'shutting_down', status: 503, retryAfterMs: 5000, message: 'shutting_down (503): the server is shutting down…' });
    expect(socket.closes).toHaveLength(1);
  });

  it('names the network error when nothing answered', async () => {
    const { attempt, socket } = start(FakeNodeSocket);
    socket.onerror!({ message: 'connect ECONNREFUSED 127.0.0.1:1' });
    socket.onclose!({ code: 1006, reason: '' });
    expect(await attempt).toMatchObject({ code: 'unreachable', message: `unreachable: could not connect to ${URL}: connect ECONNREFUSED 127.0.0.1:1` });
  });

  it('settles with what arrived when the response breaks off, and cuts a huge body', async () => {
    const { attempt, socket } = start(FakeNodeSocket);
    const response = Object.assign(new EventEmitter(), { statusCode: 401, headers: { 'retry-after': ['7', '9'] } });
    (socket as FakeNodeSocket).events.emit('unexpected-response', {}, response);
    response.emit('data', 'x'.repeat(20_000));
    response.emit('data', 'more');
    response.emit('aborted');
    expect(await attempt).toMatchObject({ code: 'unauthorized', status: 401, retryAfterMs: 7000, message: 'unauthorized (401): the server refused the upgrade with HTTP 401' });
  });
});

describe('LlmClient after hello', () => {
  it('fails streams and pending calls with connection_lost when the socket closes', async () => {
    const { attempt, socket } = start(FakeSocket);
    socket.onopen!({});
    socket.onmessage!({ data: HELLO });
    const client = (await attempt) as Awaited<ReturnType<typeof connect>>;
    const stream = client.generate({ prompt: 'hi' });
    const ping = client.ping();
    const models = client.models();
    expect(socket.sent.map((frame) => JSON.parse(frame).t)).toEqual(['gen', 'ping', 'models']);
    socket.onclose!({ code: 1006, reason: '' });
    const error = await stream.end.catch((reason: unknown) => reason);
    expect(error).toBeInstanceOf(LlmError);
    expect(error).toMatchObject({ code: 'connection_lost', message: 'connection_lost: connection closed (1006)', details: { closeCode: 1006, closeReason: '' } });
    await expect(ping).rejects.toBe(error);
    await expect(models).rejects.toBe(error);
    // Later calls fail at once and send nothing.
    await expect(client.ping()).rejects.toBe(error);
    await expect(client.generate({ prompt: 'again' }).end).rejects.toBe(error);
    expect(socket.sent).toHaveLength(3);
    // close() after a loss changes nothing but still closes the socket.
    client.close();
    await expect(client.models()).rejects.toBe(error);
  });

  it('still answers ping and models while open', async () => {
    const { attempt, socket } = start(FakeSocket);
    socket.onmessage!({ data: HELLO });
    const client = (await attempt) as Awaited<ReturnType<typeof connect>>;
    const ping = client.ping();
    const models = client.models();
    socket.onmessage!({ data: JSON.stringify({ t: 'models', models: [{ name: 'demo', state: 'loaded', default: true }] }) });
    socket.onmessage!({ data: JSON.stringify({ t: 'pong', ts: 1 }) });
    expect(await ping).toBeGreaterThanOrEqual(0);
    expect((await models).map((model) => model.name)).toEqual(['demo']);
    expect(client.closed).toBe(false);
  });
});
