import { describe, expect, it } from 'vitest';
import {
  RECONNECT_DEFAULTS,
  backoffDelay,
  connect,
  isDrop,
  type ConnectOptions,
  type LlmClient,
  type WebSocketConstructor,
  type WebSocketLike,
} from '../../protocol/index.js';
import { replicaGone, resumeUrl } from '../../protocol/reconnect.js';
import { ConnectError } from '../../protocol/connect-error.js';
import { waitFor } from '../helpers/wait.js';

/*
 * The typed client's reconnect and resume, driven frame by frame through a hand-made socket. The
 * same against the real server: tests/integration/resume.test.ts.
 */

/** A browser-like WebSocket the test drives by hand; every one made is kept, in order. */
class FakeSocket implements WebSocketLike {
  static made: FakeSocket[] = [];
  binaryType = 'blob';
  readonly protocol = 'llm.v1.json';
  readyState = 0;
  readonly sent: Record<string, unknown>[] = [];
  readonly closes: (number | undefined)[] = [];
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  constructor(readonly url: string) {
    FakeSocket.made.push(this);
  }
  send(data: Uint8Array | string): void {
    this.sent.push(JSON.parse(String(data)) as Record<string, unknown>);
  }
  close(code?: number): void {
    this.closes.push(code);
  }
  /** Opens and says hello as the server would. */
  greet(session: string, extra: Record<string, unknown> = {}): void {
    this.onopen!({});
    this.deliver({ t: 'hello', protocol: 'llm.v1.json', session, models: [], limits: { maxFrameBytes: 262144, maxConcurrentStreams: 8, maxTokensDefault: 256, maxTokensCeiling: 4096 }, ...extra });
  }
  deliver(frame: Record<string, unknown>): void {
    this.onmessage!({ data: JSON.stringify(frame) });
  }
  /** The connection dropped without a close handshake. */
  drop(): void {
    this.onclose!({ code: 1006, reason: '' });
  }
  /** An attempt that never reached a server. */
  fail(): void {
    this.onerror!({ message: 'connect ECONNREFUSED' });
    this.onclose!({ code: 1006, reason: '' });
  }
}

const URL = 'ws://example.test/v1/stream';
const TOKEN = { resumeToken: 'token-of-s1', resumeWindowMs: 5000 };
const tok = (id: string, seq: number, text: string): Record<string, unknown> => ({ t: 'tok', id, seq, text });
const end = (id: string, seq: number): Record<string, unknown> => ({
  t: 'end', id, seq, reason: 'stop', usage: { promptTokens: 1, completionTokens: 3 }, timings: { queueMs: 0, ttftMs: 1, totalMs: 2 },
});

async function connected(options: ConnectOptions = {}, hello: Record<string, unknown> = TOKEN): Promise<{ client: LlmClient; socket: FakeSocket }> {
  FakeSocket.made = [];
  const attempt = connect(URL, { WebSocket: FakeSocket as unknown as WebSocketConstructor, format: 'json', reconnect: { initialDelayMs: 1, maxDelayMs: 4 }, ...options });
  const socket = FakeSocket.made[0]!;
  socket.greet('s1', hello);
  return { client: await attempt, socket };
}

/** The next socket the client opens to reconnect. */
function nextSocket(count: number): Promise<FakeSocket> {
  return waitFor(() => FakeSocket.made[count - 1], 5000, `reconnect attempt ${count}`);
}

async function collect(iterable: AsyncIterable<string>): Promise<string> {
  let text = '';
  for await (const piece of iterable) text += piece;
  return text;
}

describe('reconnect and resume', () => {
  it('resumes a running stream from the last seq received: for-await sees no gap and no repeat', async () => {
    const { client, socket } = await connected();
    const stream = client.generate({ prompt: 'hi', seed: 1 });
    const text = collect(stream);
    expect(socket.sent).toEqual([{ t: 'gen', id: 'r1', prompt: 'hi', seed: 1 }]);
    socket.deliver({ t: 'start', id: 'r1', seq: 1, model: 'demo' });
    socket.deliver(tok('r1', 2, 'Al'));
    socket.deliver(tok('r1', 3, 'ice'));
    socket.drop();
    expect(client.reconnecting).toBe(true);
    expect(client.closed).toBe(false);
    // Calls made meanwhile wait for the new connection.
    const later = client.generate({ prompt: 'later' });
    const ping = client.ping();

    const again = await nextSocket(2);
    again.greet('s2', { resumeToken: 'token-of-s2', resumeWindowMs: 5000 });
    expect(client.reconnecting).toBe(false);
    expect([client.reconnects, client.hello.session]).toEqual([1, 's2']);
    // The resume names the connection the stream started on; queued calls follow it.
    expect(again.sent).toEqual([
      { t: 'resume', id: 'r1', session: 's1', token: 'token-of-s1', fromSeq: 4 },
      { t: 'gen', id: 'r2', prompt: 'later' },
      { t: 'ping', ts: expect.any(Number) },
    ]);
    // The server replays from seq 4, and a frame the client had (a replay overlapping) is dropped.
    again.deliver(tok('r1', 3, 'ice'));
    again.deliver(tok('r1', 4, ' was'));
    again.deliver(end('r1', 5));
    again.deliver(end('r1', 5));
    expect(await text).toBe('Alice was');
    expect(await stream.end).toMatchObject({ reason: 'stop', seq: 5 });
    again.deliver({ t: 'pong', ts: 1 });
    await expect(ping).resolves.toBeGreaterThanOrEqual(0);

    // A stream started on the new connection resumes with that one's session and token.
    again.drop();
    const third = await nextSocket(3);
    third.greet('s3', { resumeToken: 'token-of-s3', resumeWindowMs: 5000 });
    expect(third.sent).toEqual([{ t: 'resume', id: 'r2', session: 's2', token: 'token-of-s2', fromSeq: 1 }]);
    third.deliver(tok('r2', 1, 'x'));
    third.deliver(end('r2', 2));
    expect(await collect(later)).toBe('x');
  });

  it('sends a stream of which nothing arrived again when the server does not have it', async () => {
    const { client, socket } = await connected();
    const stream = client.generate({ prompt: 'hi', id: 'mine' });
    socket.drop();
    const again = await nextSocket(2);
    again.greet('s2', TOKEN);
    expect(again.sent).toEqual([{ t: 'resume', id: 'mine', session: 's1', token: 'token-of-s1', fromSeq: 1 }]);
    again.deliver({ t: 'err', code: 'resume_failed', message: 'not kept', details: { t: 'resume', id: 'mine' } });
    expect(again.sent[1]).toEqual({ t: 'gen', id: 'mine', prompt: 'hi' });
    again.deliver(tok('mine', 1, 'ok'));
    again.deliver(end('mine', 2));
    expect(await stream.text()).toMatchObject({ text: 'ok' });
  });

  it('fails a stream with the refusal when part of it arrived and the rest is gone', async () => {
    const { client, socket } = await connected();
    const stream = client.generate({ prompt: 'hi' });
    socket.deliver(tok('r1', 1, 'a'));
    socket.drop();
    const again = await nextSocket(2);
    again.greet('s2', TOKEN);
    again.deliver({ t: 'err', code: 'resume_failed', message: 'frames before seq 3 are no longer kept', details: { t: 'resume', id: 'r1', firstSeq: 3 } });
    await expect(stream.end).rejects.toMatchObject({ name: 'LlmError', code: 'resume_failed' });
    // The connection itself is fine.
    expect(client.closed).toBe(false);
    expect(again.sent).toHaveLength(1);
  });

  it('gives up after its attempts, failing streams and calls with connection_lost', async () => {
    const { client, socket } = await connected({ reconnect: { initialDelayMs: 1, maxDelayMs: 2, maxAttempts: 2 } });
    const stream = client.generate({ prompt: 'hi' });
    const ping = client.ping();
    socket.drop();
    // The ping sent on the dropped connection will get no answer.
    await expect(ping).rejects.toMatchObject({ code: 'connection_lost' });
    (await nextSocket(2)).fail();
    (await nextSocket(3)).fail();
    const error = await stream.end.catch((reason: unknown) => reason);
    expect(error).toMatchObject({ code: 'connection_lost', details: { closeCode: 1006 } });
    expect((error as Error).message).toMatch(/^connection_lost: connection closed \(1006\); reconnecting failed: unreachable/);
    expect(client.closed).toBe(true);
    expect(FakeSocket.made).toHaveLength(3);
  });

  it('drops an attempt under way once the client is closed', async () => {
    const { client, socket } = await connected();
    const stream = client.generate({ prompt: 'hi' });
    socket.drop();
    const late = await nextSocket(2);
    client.close();
    await expect(stream.end).rejects.toMatchObject({ code: 'connection_lost', message: 'connection_lost: connection closed by the client (1000)' });
    late.greet('s2', TOKEN);
    expect(late.closes).toHaveLength(1);
    expect(late.sent).toEqual([]);
    expect([client.reconnects, client.hello.session, client.reconnecting]).toEqual([0, 's1', false]);
  });

  it.each([
    ['a close the server sent', { hello: TOKEN, options: {}, close: { code: 1008, reason: 'closed by an administrator' } }],
    ['a server that hands out no resume token', { hello: {}, options: {}, close: { code: 1006, reason: '' } }],
    ['reconnect: false', { hello: TOKEN, options: { reconnect: false }, close: { code: 1006, reason: '' } }],
  ])('does not reconnect after %s', async (_name, { hello, options, close }) => {
    const { client, socket } = await connected(options as ConnectOptions, hello);
    const stream = client.generate({ prompt: 'hi' });
    socket.onclose!(close);
    await expect(stream.end).rejects.toMatchObject({ code: 'connection_lost', details: { closeCode: close.code } });
    expect(FakeSocket.made).toHaveLength(1);
  });
});

/** A FakeSocket that can refuse its upgrade with a status, as `ws` reports one ('unexpected-response'). */
class RefusableSocket extends FakeSocket {
  private refusalListener: ((request: unknown, response: unknown) => void) | undefined;
  on(event: string, listener: (request: unknown, response: unknown) => void): void {
    if (event === 'unexpected-response') this.refusalListener = listener;
  }
  refuse(statusCode: number): void {
    this.refusalListener!({}, { statusCode, headers: {}, on: (event: string, listener: () => void) => event === 'end' && listener() });
  }
}

describe('resuming through a balancer', () => {
  const replicaOf = (socket: FakeSocket): string | null => new globalThis.URL(socket.url).searchParams.get('replica');

  it('redials naming the replica of hello.replica, and any replica once a refusal says it is gone', async () => {
    const { client, socket } = await connected({ WebSocket: RefusableSocket as unknown as WebSocketConstructor }, { ...TOKEN, replica: 'replica-a' });
    const stream = client.generate({ prompt: 'hi' });
    socket.deliver(tok('r1', 1, 'a'));
    expect(socket.url).toBe(URL);
    socket.drop();
    const second = (await nextSocket(2)) as RefusableSocket;
    expect(replicaOf(second)).toBe('replica-a');
    // Unreachable is what a network still down looks like: keep asking for the same replica.
    second.fail();
    const third = (await nextSocket(3)) as RefusableSocket;
    expect(replicaOf(third)).toBe('replica-a');
    // The balancer could not reach it (502): it is gone, any replica will do.
    third.refuse(502);
    const fourth = (await nextSocket(4)) as RefusableSocket;
    expect(fourth.url).toBe(URL);
    fourth.greet('s2', { ...TOKEN, replica: 'replica-b' });
    expect(fourth.sent).toEqual([{ t: 'resume', id: 'r1', session: 's1', token: 'token-of-s1', fromSeq: 2 }]);
    fourth.deliver(tok('r1', 2, 'b'));
    // The next drop asks for the replica of the latest connection.
    fourth.drop();
    const fifth = await nextSocket(5);
    expect(replicaOf(fifth)).toBe('replica-b');
    fifth.greet('s3', { ...TOKEN, replica: 'replica-b' });
    fifth.deliver(end('r1', 3));
    expect(await collect(stream)).toBe('ab');
  });

  it('redials the same URL when hello names no replica', async () => {
    const { client, socket } = await connected();
    const stream = client.generate({ prompt: 'hi' });
    socket.drop();
    const again = await nextSocket(2);
    expect(again.url).toBe(URL);
    again.greet('s2', TOKEN);
    again.deliver(end('r1', 1));
    await expect(stream.end).resolves.toMatchObject({ seq: 1 });
  });

  it('puts the replica in the query, keeping what the URL had', () => {
    expect(resumeUrl('ws://example.test/v1/stream', 'replica-1')).toBe('ws://example.test/v1/stream?replica=replica-1');
    expect(resumeUrl('wss://example.test/v1/stream?replica=old&x=1', 'new')).toBe('wss://example.test/v1/stream?replica=new&x=1');
    expect(resumeUrl('ws://example.test/v1/stream', undefined)).toBe('ws://example.test/v1/stream');
    expect(resumeUrl('not a url', 'replica-1')).toBe('not a url');
  });

  it('counts a stopping replica or a 5xx as gone, an unreachable server not', () => {
    expect(replicaGone(new ConnectError({ code: 'shutting_down', message: 'x' }))).toBe(true);
    expect(replicaGone(new ConnectError({ code: 'internal', message: 'x' }))).toBe(true);
    expect(replicaGone(new ConnectError({ code: 'unreachable', message: 'x' }))).toBe(false);
    expect(replicaGone(new ConnectError({ code: 'too_many_connections', message: 'x' }))).toBe(false);
    expect(replicaGone(new Error('x'))).toBe(false);
  });
});

describe('backoff', () => {
  const options = { ...RECONNECT_DEFAULTS, initialDelayMs: 100, maxDelayMs: 1000 };
  it('doubles up to the cap, drawn between half and all of it', () => {
    expect([0, 1, 2, 3, 4, 10].map((attempt) => backoffDelay(attempt, options, () => 1))).toEqual([100, 200, 400, 800, 1000, 1000]);
    expect([0, 1, 4].map((attempt) => backoffDelay(attempt, options, () => 0))).toEqual([50, 100, 500]);
  });

  it('reconnects only after a close without handshake', () => {
    expect(isDrop(1006)).toBe(true);
    for (const code of [1000, 1001, 1008, 1011, 1013]) expect(isDrop(code)).toBe(false);
  });
});
