import type { Connection } from '../transport/types.js';

export interface FlowControlOptions {
  /** Buffered bytes at which streams pause. */
  highWaterBytes: number;
  /** Buffered bytes past which the peer is dropped at once (below the library's drop point). */
  hardLimitBytes: number;
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

  constructor(private readonly connection: Pick<Connection, 'bufferedAmount'>, private readonly options: FlowControlOptions) {}

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

  /**
   * Checks the buffer after any send, streamed or not (pongs, errors, model lists): above the
   * mark the stall clock starts; past the hard limit the peer is reported stalled at once.
   */
  afterSend(): void {
    const buffered = this.connection.bufferedAmount();
    if (buffered < this.options.highWaterBytes) return;
    if (buffered >= this.options.hardLimitBytes) return this.options.onStalled();
    void this.waitWritable();
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
