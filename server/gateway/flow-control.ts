import type { Connection } from './connection.js';

export interface FlowControlOptions {
  /** Buffered bytes at which streams pause. */
  highWaterBytes: number;
  /** How long the buffer may stay above the mark before `onStalled`. */
  stallMs: number;
  /** The peer stopped reading for too long. */
  onStalled(): void;
  /** A pause began (for metrics). */
  onPause(): void;
}

/**
 * Keeps a socket's send buffer bounded: streams ask `waitWritable()` before each token and wait
 * while the buffer is above the high-water mark; a peer that does not read for `stallMs` is
 * reported as stalled. uWS drops sends past maxBackpressure, so this mark must sit well below it.
 */
export class FlowControl {
  private waiters: (() => void)[] = [];
  private paused: Promise<void> | undefined;
  private stallTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(private readonly connection: Connection, private readonly options: FlowControlOptions) {}

  /** Undefined when the socket can take more now; else a promise that resolves on drain. */
  waitWritable(): Promise<void> | undefined {
    if (this.connection.bufferedAmount() < this.options.highWaterBytes) return undefined;
    if (!this.paused) {
      this.options.onPause();
      this.paused = new Promise<void>((resolve) => this.waiters.push(resolve));
      this.stallTimer = setTimeout(() => this.options.onStalled(), this.options.stallMs);
      this.stallTimer.unref?.();
    }
    return this.paused;
  }

  /** The socket's buffer shrank: resume the streams once it is below the mark. */
  drain(): void {
    if (this.paused && this.connection.bufferedAmount() < this.options.highWaterBytes) this.resume();
  }

  /** Releases every waiter (on close, so nothing waits forever). */
  resume(): void {
    clearTimeout(this.stallTimer);
    this.stallTimer = undefined;
    const waiters = this.waiters;
    this.waiters = [];
    this.paused = undefined;
    for (const resolve of waiters) resolve();
  }
}
