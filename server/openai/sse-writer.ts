import { FlowControl } from '../gateway/flow-control.js';
import type { HttpExchange, HttpStream } from '../transport/types.js';
import type { ApiErrorObject } from './api-error.js';

/** An SSE comment: sent when the socket drains, so the server library's buffer goes out (see HttpStreamOptions.filler). */
const FILLER = ':\n';

export interface SseOptions {
  /** Buffered bytes at which the stream pauses (SEND_HIGH_WATER_BYTES, as on WebSockets). */
  highWaterBytes: number;
  /** How long the client may leave the buffer above the mark before `onStalled`. */
  stallMs: number;
  onStalled(): void;
  onPause(): void;
}

/**
 * A `text/event-stream` reply: one `data:` event per JSON object, `data: [DONE]` at the end. Flow
 * control is the WebSocket's: above the high-water mark `waitWritable()` pauses the generation
 * (its slot waits, no text is dropped) until the socket drains; a client that stays above it is
 * reported stalled.
 */
export class SseWriter {
  private stream: HttpStream | undefined;
  private readonly flow: FlowControl;

  constructor(options: SseOptions) {
    this.flow = new FlowControl(
      { bufferedAmount: () => this.stream?.bufferedAmount() ?? 0 },
      { highWaterBytes: options.highWaterBytes, hardLimitBytes: options.highWaterBytes * 4, stallMs: options.stallMs, onStalled: options.onStalled, onPause: options.onPause },
    );
  }

  get opened(): boolean {
    return this.stream !== undefined;
  }

  /** Sends the status and headers: the events follow. */
  open(exchange: HttpExchange, headers: Record<string, string>): void {
    this.stream = exchange.stream(
      200,
      // no-transform and X-Accel-Buffering keep proxies (nginx) from holding events back.
      { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', 'x-accel-buffering': 'no', ...headers },
      { filler: FILLER, onDrain: () => this.flow.drain() },
    );
  }

  event(data: object): void {
    if (!this.stream) return;
    this.stream.write(`data: ${JSON.stringify(data)}\n\n`);
    this.flow.afterSend();
  }

  /** The last event, `data: [DONE]`, and the end of the body. */
  done(): void {
    this.stream?.end('data: [DONE]\n\n');
    this.flow.resume();
  }

  /** An error after the stream began (its status is already 200): an `{error}` event, as OpenAI sends it, then the end. */
  fail(error: ApiErrorObject): void {
    this.stream?.end(`data: ${JSON.stringify({ error })}\n\n`);
    this.flow.resume();
  }

  /** Cuts the connection (a client that stopped reading). */
  close(): void {
    this.stream?.close();
    this.flow.resume();
  }

  /** A promise while the client is behind (above the high-water mark); undefined when it keeps up. */
  waitWritable(): Promise<void> | undefined {
    return this.stream ? this.flow.waitWritable() : undefined;
  }
}
