import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { encodeFrame, type FeedFrame } from '../../protocol/index.js';
import { FeedConnection, type FeedSocket, type FeedStatus, probeFeed } from '../../dashboard/src/lib/services/feed-connection.js';
import { parseFeedMessage, parseFeedValue } from '../../dashboard/src/lib/services/feed-frames.js';
import { FEED_SUBPROTOCOL, feedProtocols, feedUrl, isWellFormedToken, streamUrl } from '../../dashboard/src/lib/services/urls.js';
import { FeedStore, MAX_ERRORS, type FeedLink } from '../../dashboard/src/lib/stores/feed.svelte.js';
import { COLUMN_INDEX } from '../../dashboard/src/lib/metrics.js';
import { snapshot } from './dashboard-fixtures.js';

/** A scripted stand-in for the browser WebSocket. */
class FakeSocket implements FeedSocket {
  binaryType = 'blob';
  onopen: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: unknown }) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  closed: { code?: number; reason?: string } | undefined;
  constructor(readonly url: string, readonly protocols: string[]) {}
  open(): void {
    this.onopen?.({});
  }
  receive(frame: FeedFrame): void {
    const bytes = encodeFrame(frame, 'msgpack') as Uint8Array;
    this.onmessage?.({ data: bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) });
  }
  drop(code = 1006): void {
    this.onclose?.({ code, reason: '' });
  }
  close(code?: number, reason?: string): void {
    this.closed = { code, reason };
  }
}

describe('feed frames', () => {
  it('decodes msgpack history and snapshot frames through the shared codec', () => {
    const bytes = encodeFrame({ t: 'history', snapshots: [snapshot({ ts: 1 }), { t: 'snapshot', ts: 2 }] }, 'msgpack') as Uint8Array;
    const parsed = parseFeedMessage(bytes);
    expect(parsed.ok && parsed.frame.t === 'history' && parsed.frame.snapshots.map((s) => s.ts)).toEqual([1]); // the malformed one is dropped
    const single = parseFeedMessage(encodeFrame(snapshot({ ts: 5 }), 'msgpack') as Uint8Array);
    expect(single.ok && single.frame.t === 'snapshot' && single.frame.ts).toBe(5);
  });

  it.each([
    ['text frames', 'hello'],
    ['not a map', encodeFrame([1, 2], 'msgpack')],
    ['unknown tag', encodeFrame({ t: 'nope' }, 'msgpack')],
    ['malformed snapshot', encodeFrame({ t: 'snapshot', ts: 'x' }, 'msgpack')],
    ['history without list', encodeFrame({ t: 'history' }, 'msgpack')],
    ['garbage bytes', new Uint8Array([0xc1, 0xff, 0x00])],
  ])('rejects %s without throwing', (_name, data) => {
    expect(parseFeedMessage(data as Uint8Array | string).ok).toBe(false);
  });

  it('accepts only the fields it draws', () => {
    expect(parseFeedValue(null).ok).toBe(false);
    expect(parseFeedValue(snapshot()).ok).toBe(true);
  });
});

describe('urls', () => {
  it('derives the WebSocket URLs from the page origin', () => {
    expect(feedUrl({ protocol: 'http:', host: 'h:8080' })).toBe('ws://h:8080/v1/admin/feed');
    expect(streamUrl({ protocol: 'https:', host: 'example.com' })).toBe('wss://example.com/v1/stream');
    expect(feedProtocols('abc')).toEqual([FEED_SUBPROTOCOL, 'bearer.abc']);
  });

  it('accepts only tokens a subprotocol entry can carry', () => {
    expect(isWellFormedToken('aZ09-_.~')).toBe(true);
    expect(isWellFormedToken('with space')).toBe(false);
    expect(isWellFormedToken('comma,')).toBe(false);
    expect(isWellFormedToken('')).toBe(false);
  });
});

describe('FeedConnection', () => {
  let sockets: FakeSocket[];
  let statuses: FeedStatus[];
  let frames: FeedFrame[];

  beforeEach(() => {
    vi.useFakeTimers();
    sockets = [];
    statuses = [];
    frames = [];
  });
  afterEach(() => vi.useRealTimers());

  function connection(isUnauthorized?: () => Promise<boolean>): FeedConnection {
    return new FeedConnection({
      url: 'ws://x/v1/admin/feed',
      token: 'tok',
      onFrame: (frame) => frames.push(frame),
      onStatus: (status) => statuses.push(status),
      createSocket: (url, protocols) => {
        const socket = new FakeSocket(url, protocols);
        sockets.push(socket);
        return socket;
      },
      backoff: { jitter: 0 },
      ...(isUnauthorized && { isUnauthorized }),
    });
  }

  it('offers the feed subprotocol with the token and passes decoded frames on', () => {
    const feed = connection();
    feed.start();
    expect(sockets[0]!.protocols).toEqual(['llm.feed.v1.msgpack', 'bearer.tok']);
    expect(sockets[0]!.binaryType).toBe('arraybuffer');
    sockets[0]!.open();
    sockets[0]!.receive(snapshot({ ts: 7 }));
    expect(frames.map((frame) => frame.t === 'snapshot' && frame.ts)).toEqual([7]);
    expect(statuses.map((status) => status.state)).toEqual(['connecting', 'open']);
    feed.stop();
  });

  it('reconnects with growing delays after a loss, and resets them once open', async () => {
    const feed = connection();
    feed.start();
    sockets[0]!.open();
    sockets[0]!.drop();
    expect(statuses.at(-1)).toMatchObject({ state: 'waiting', attempt: 1 });
    await vi.advanceTimersByTimeAsync(499);
    expect(sockets).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(sockets).toHaveLength(2);
    sockets[1]!.drop(); // still down: never opened, server unreachable
    await vi.advanceTimersByTimeAsync(0);
    expect(statuses.at(-1)).toMatchObject({ state: 'waiting', attempt: 2, lastError: 'cannot reach the feed' });
    await vi.advanceTimersByTimeAsync(1000);
    expect(sockets).toHaveLength(3);
    sockets[2]!.open();
    expect(statuses.at(-1)).toEqual({ state: 'open' });
    sockets[2]!.drop();
    expect(statuses.at(-1)).toMatchObject({ state: 'waiting', attempt: 1 }); // back to the short delay
    feed.stop();
  });

  it('stops retrying when the server refuses the token', async () => {
    const isUnauthorized = vi.fn(async () => true);
    const feed = connection(isUnauthorized);
    feed.start();
    sockets[0]!.drop();
    await vi.advanceTimersByTimeAsync(0);
    expect(isUnauthorized).toHaveBeenCalledOnce();
    expect(statuses.at(-1)).toEqual({ state: 'unauthorized' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets).toHaveLength(1);
  });

  it('treats a silent feed as lost', async () => {
    const feed = connection();
    feed.start();
    sockets[0]!.open();
    await vi.advanceTimersByTimeAsync(10_000);
    expect(sockets[0]!.closed?.code).toBe(4000);
    expect(statuses.at(-1)).toMatchObject({ state: 'waiting', lastError: 'the feed went silent' });
    feed.stop();
  });

  it('reconnectNow() skips the wait; stop() closes and cancels the retry', async () => {
    const feed = connection();
    feed.start();
    sockets[0]!.open();
    sockets[0]!.drop();
    feed.reconnectNow();
    expect(sockets).toHaveLength(2);
    feed.stop();
    expect(sockets[1]!.closed?.code).toBe(1000);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(sockets).toHaveLength(2);
    expect(statuses.at(-1)).toEqual({ state: 'stopped' });
  });

  it('reports a token the WebSocket constructor rejects as unauthorized', () => {
    const feed = new FeedConnection({
      url: 'ws://x',
      token: 'bad token',
      onFrame: () => undefined,
      onStatus: (status) => statuses.push(status),
      createSocket: () => {
        throw new SyntaxError('invalid subprotocol');
      },
    });
    feed.start();
    expect(statuses.at(-1)).toEqual({ state: 'unauthorized' });
  });

  it('probeFeed resolves true on open and false on a refused upgrade', async () => {
    const accepted = probeFeed('ws://x', 't', (url, protocols) => {
      const socket = new FakeSocket(url, protocols);
      queueMicrotask(() => socket.open());
      return socket;
    });
    const refused = probeFeed('ws://x', 't', (url, protocols) => {
      const socket = new FakeSocket(url, protocols);
      queueMicrotask(() => socket.drop());
      return socket;
    });
    expect(await accepted).toBe(true);
    expect(await refused).toBe(false);
  });
});

describe('FeedStore', () => {
  function store(): { feed: FeedStore; handlers: Parameters<ConstructorParameters<typeof FeedStore>[0]>[1]; link: FeedLink } {
    let captured!: Parameters<ConstructorParameters<typeof FeedStore>[0]>[1];
    const link: FeedLink = { start: vi.fn(), stop: vi.fn(), reconnectNow: vi.fn() };
    const feed = new FeedStore((_token, handlers) => {
      captured = handlers;
      return link;
    });
    feed.start('t');
    return { feed, handlers: captured, link };
  }

  it('fills the chart window from history, then scrolls with each snapshot', () => {
    const { feed } = store();
    const history = Array.from({ length: 400 }, (_, i) => snapshot({ ts: 1_000_000 + i * 1000, tokensPerSecond: { s1: i, s10: 0, s60: 0 } }));
    feed.apply({ t: 'history', snapshots: history.reverse() }); // order on the wire does not matter
    expect(feed.series.length).toBe(300);
    expect(feed.series.ys[COLUMN_INDEX.tok1]!.at(-1)).toBe(399);
    expect(feed.latest?.ts).toBe(1_000_000 + 399_000);
    const version = feed.version;
    feed.apply(snapshot({ ts: 1_000_000 + 400_000, tokensPerSecond: { s1: 7, s10: 0, s60: 0 } }));
    expect(feed.version).toBe(version + 1);
    expect(feed.series.ys[COLUMN_INDEX.tok1]!.at(-1)).toBe(7);
    expect(feed.series.ys[COLUMN_INDEX.tok1]!.at(-2)).toBe(399);
    expect(feed.series.x.length).toBe(300);
  });

  it('ignores a snapshot older than the newest one', () => {
    const { feed } = store();
    feed.apply(snapshot({ ts: 5000 }));
    feed.apply(snapshot({ ts: 4000 }));
    expect(feed.latest?.ts).toBe(5000);
  });

  it('a new history after a reconnect replaces the window', () => {
    const { feed } = store();
    feed.apply({ t: 'history', snapshots: [snapshot({ ts: 1000 }), snapshot({ ts: 2000 })] });
    feed.apply({ t: 'history', snapshots: [snapshot({ ts: 900_000 })] });
    expect(feed.series.length).toBe(1);
    expect(feed.series.lastTime).toBe(900);
  });

  it('collects recent errors newest first, without duplicates, bounded', () => {
    const { feed } = store();
    const error = (ts: number) => ({ ts, code: 'overloaded', message: `queue full ${ts}` });
    feed.apply(snapshot({ ts: 1, errors: [error(1), error(2)] }));
    feed.apply(snapshot({ ts: 2, errors: [error(2), error(3)] }));
    expect(feed.errors.map((e) => e.ts)).toEqual([3, 2, 1]);
    for (let i = 0; i < 300; i++) feed.apply(snapshot({ ts: 10 + i, errors: [error(10 + i)] }));
    expect(feed.errors).toHaveLength(MAX_ERRORS);
    expect(feed.errors[0]!.ts).toBe(309);
  });

  it('shows the banner only after the feed was lost, not while first connecting', () => {
    const { feed, handlers, link } = store();
    expect(link.start).toHaveBeenCalled();
    handlers.onStatus({ state: 'connecting', attempt: 0 });
    expect(feed.disconnected).toBe(false);
    handlers.onStatus({ state: 'open' });
    expect(feed.disconnected).toBe(false);
    handlers.onStatus({ state: 'waiting', attempt: 1, retryAt: 0, lastError: 'feed closed (1006)' });
    expect(feed.disconnected).toBe(true);
    handlers.onStatus({ state: 'connecting', attempt: 1 });
    expect(feed.disconnected).toBe(true);
    handlers.onStatus({ state: 'open' });
    expect(feed.disconnected).toBe(false);
    feed.reconnectNow();
    expect(link.reconnectNow).toHaveBeenCalled();
  });

  it('stop() and reset() forget the connection and what was shown', () => {
    const { feed, link } = store();
    feed.apply(snapshot({ ts: 1000, errors: [{ ts: 1, code: 'x', message: 'y' }] }));
    feed.stop();
    feed.reset();
    expect(link.stop).toHaveBeenCalled();
    expect(feed.status).toEqual({ state: 'stopped' });
    expect(feed.latest).toBeUndefined();
    expect(feed.errors).toEqual([]);
    expect(feed.series.length).toBe(0);
  });
});
