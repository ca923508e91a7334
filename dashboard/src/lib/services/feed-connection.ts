import type { FeedFrame } from '../../../../protocol/index.js';
import { backoffDelay, type BackoffOptions } from './backoff.js';
import { parseFeedMessage } from './feed-frames.js';
import { feedProtocols } from './urls.js';

/** What the connection is doing; the store turns this into the banner. */
export type FeedStatus =
  | { state: 'connecting'; attempt: number }
  | { state: 'open' }
  | { state: 'waiting'; attempt: number; retryAt: number; lastError: string }
  | { state: 'unauthorized' }
  | { state: 'stopped' };

/** The part of the browser WebSocket the feed uses. */
export interface FeedSocket {
  binaryType: string;
  onopen: ((event: unknown) => void) | null;
  onmessage: ((event: { data: unknown }) => void) | null;
  onclose: ((event: { code: number; reason: string }) => void) | null;
  onerror: ((event: unknown) => void) | null;
  close(code?: number, reason?: string): void;
}

export type FeedSocketFactory = (url: string, protocols: string[]) => FeedSocket;

export interface FeedConnectionOptions {
  url: string;
  token: string;
  onFrame(frame: FeedFrame): void;
  onStatus(status: FeedStatus): void;
  /**
   * Asked after a connection failed before opening: a browser cannot see the upgrade's 401, so
   * this checks the token over HTTP. Resolving true stops reconnecting. Default: never.
   */
  isUnauthorized?: () => Promise<boolean>;
  /** Default: the browser's WebSocket. */
  createSocket?: FeedSocketFactory;
  backoff?: BackoffOptions;
  /** An open feed silent for this long is treated as lost (a snapshot comes every second). Default: 10 s. */
  silenceMs?: number;
  /** Timers, replaceable in tests. Default: the global ones. */
  timers?: { set(fn: () => void, ms: number): unknown; clear(handle: unknown): void; now(): number };
}

const defaultTimers = {
  set: (fn: () => void, ms: number): unknown => setTimeout(fn, ms),
  clear: (handle: unknown) => clearTimeout(handle as ReturnType<typeof setTimeout>),
  now: () => Date.now(),
};

const browserSocket: FeedSocketFactory = (url, protocols) => new WebSocket(url, protocols) as unknown as FeedSocket;

/**
 * The admin feed's WebSocket, kept open: after a loss it retries with exponential backoff until
 * `stop()`. It holds no dashboard state; it reports frames and status to its callbacks.
 */
export class FeedConnection {
  private socket: FeedSocket | undefined;
  private retryTimer: unknown;
  private silenceTimer: unknown;
  private attempt = 0;
  private stopped = true;
  private readonly timers;
  private readonly createSocket: FeedSocketFactory;

  constructor(private readonly options: FeedConnectionOptions) {
    this.timers = options.timers ?? defaultTimers;
    this.createSocket = options.createSocket ?? browserSocket;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.attempt = 0;
    this.open();
  }

  /** Closes the socket and cancels any pending retry. */
  stop(): void {
    this.stopped = true;
    this.clearTimers();
    this.dropSocket();
    this.options.onStatus({ state: 'stopped' });
  }

  /** Retries at once instead of waiting out the backoff. */
  reconnectNow(): void {
    if (this.stopped || this.socket) return;
    this.clearTimers();
    this.open();
  }

  private open(): void {
    this.options.onStatus({ state: 'connecting', attempt: this.attempt });
    let socket: FeedSocket;
    try {
      socket = this.createSocket(this.options.url, feedProtocols(this.options.token));
    } catch {
      // A token with characters a subprotocol cannot carry makes the constructor throw.
      this.stopped = true;
      this.options.onStatus({ state: 'unauthorized' });
      return;
    }
    this.socket = socket;
    let opened = false;
    socket.binaryType = 'arraybuffer';
    socket.onopen = () => {
      if (this.socket !== socket) return;
      opened = true;
      this.attempt = 0;
      this.options.onStatus({ state: 'open' });
      this.watchSilence();
    };
    socket.onmessage = (event) => {
      if (this.socket !== socket) return;
      this.watchSilence();
      const parsed = parseFeedMessage(event.data as ArrayBuffer | string);
      if (parsed.ok) this.options.onFrame(parsed.frame);
    };
    socket.onerror = () => undefined; // onclose follows and carries the decision
    socket.onclose = (event) => {
      if (this.socket !== socket) return;
      this.socket = undefined;
      this.clearTimers();
      if (this.stopped) return;
      const reason = opened ? `feed closed (${event.code}${event.reason ? `: ${event.reason}` : ''})` : 'cannot reach the feed';
      if (opened) return this.scheduleRetry(reason);
      // Never opened: the server may be down, or it refused the token. Only HTTP can tell.
      const check = this.options.isUnauthorized?.() ?? Promise.resolve(false);
      check.then(
        (unauthorized) => {
          if (this.stopped || this.socket) return;
          if (unauthorized) {
            this.stopped = true;
            this.options.onStatus({ state: 'unauthorized' });
          } else this.scheduleRetry(reason);
        },
        () => {
          if (!this.stopped && !this.socket) this.scheduleRetry(reason);
        },
      );
    };
  }

  private scheduleRetry(lastError: string): void {
    const delay = backoffDelay(this.attempt, this.options.backoff);
    this.attempt++;
    this.options.onStatus({ state: 'waiting', attempt: this.attempt, retryAt: this.timers.now() + delay, lastError });
    this.retryTimer = this.timers.set(() => {
      this.retryTimer = undefined;
      if (!this.stopped) this.open();
    }, delay);
  }

  private watchSilence(): void {
    if (this.silenceTimer !== undefined) this.timers.clear(this.silenceTimer);
    this.silenceTimer = this.timers.set(() => {
      this.silenceTimer = undefined;
      // No snapshot for too long: the link is dead without a close. Drop it and start over.
      const socket = this.socket;
      if (!socket) return;
      this.socket = undefined;
      socket.close(4000, 'silent');
      if (!this.stopped) this.scheduleRetry('the feed went silent');
    }, this.options.silenceMs ?? 10_000);
  }

  private clearTimers(): void {
    if (this.retryTimer !== undefined) this.timers.clear(this.retryTimer);
    if (this.silenceTimer !== undefined) this.timers.clear(this.silenceTimer);
    this.retryTimer = undefined;
    this.silenceTimer = undefined;
  }

  private dropSocket(): void {
    const socket = this.socket;
    this.socket = undefined;
    if (!socket) return;
    socket.onopen = socket.onmessage = socket.onclose = socket.onerror = null;
    try {
      socket.close(1000, 'dashboard closed');
    } catch {
      // already closing
    }
  }
}

/** Opens the feed once and reports whether the upgrade was accepted; used to check a token. */
export function probeFeed(url: string, token: string, createSocket: FeedSocketFactory = browserSocket, timeoutMs = 5000): Promise<boolean> {
  return new Promise((resolve) => {
    let socket: FeedSocket;
    try {
      socket = createSocket(url, feedProtocols(token));
    } catch {
      return resolve(false);
    }
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (accepted: boolean): void => {
      clearTimeout(timer);
      socket.onopen = socket.onclose = socket.onerror = socket.onmessage = null;
      try {
        socket.close(1000, 'probe');
      } catch {
        // already closed
      }
      resolve(accepted);
    };
    socket.onopen = () => finish(true);
    socket.onclose = () => finish(false);
    socket.onerror = () => undefined;
  });
}
