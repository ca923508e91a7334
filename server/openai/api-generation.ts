import { EndReason, ErrorCode, type ChatFrame, type ErrFrame, type GenFrame, type ServerFrame } from '../../protocol/index.js';
import { ServiceError } from '../errors.js';
import type { RequestCounter, RequestHost, RequestServices } from '../gateway/request-host.js';
import type { StopCause } from '../gateway/request-lifecycle.js';
import { StreamRequest } from '../gateway/stream-request.js';
import { jsonReply } from '../http/json-reply.js';
import type { Origin } from '../telemetry/events.js';
import type { FaultSink, HttpExchange, HttpReply } from '../transport/types.js';
import { ApiError } from './api-error.js';
import type { HttpClient, HttpClients } from './http-clients.js';
import type { CallMade, FinishReason, ReplyFormat } from './reply-format.js';
import type { ReplyMode } from './shared-fields.js';
import { SseWriter } from './sse-writer.js';

/** What every generation of the HTTP API shares. */
export interface ApiServices extends RequestServices {
  faults: FaultSink;
  clients: HttpClients;
  /** Counts requests in flight with the WebSocket's (shutdown waits for them). */
  counter: RequestCounter;
}

/** How an end reason reads as OpenAI's finish_reason; the others are not a finished choice. */
const FINISH: Partial<Record<EndReason, FinishReason>> = {
  [EndReason.stop]: 'stop',
  [EndReason.length]: 'length',
  [EndReason.toolCalls]: 'tool_calls',
  // Cut by the server's deadline: a limit, like maxTokens.
  [EndReason.timeout]: 'length',
};

/** Never sent: the client is gone, but the transport wants every route to give a reply. */
const CLIENT_GONE = jsonReply(499, { error: { message: 'the client closed the connection', type: 'invalid_request_error', code: 'disconnected', param: null } });

/**
 * One generation asked over HTTP: the RequestHost a StreamRequest runs against, so the request
 * takes the very path a WebSocket `gen` or `chat` takes (limits, model, tokenizer, queue, slot,
 * engine, cache, telemetry). Its frames become one OpenAI answer, or the events of a streamed
 * one; a client that closes the connection cancels it at once.
 */
export class ApiGeneration implements RequestHost {
  readonly origin: Origin;
  readonly request: StreamRequest;
  /** Resolves with the whole answer, or with undefined once a streamed one began. */
  readonly reply: Promise<HttpReply | undefined>;
  private settle!: (reply: HttpReply | undefined) => void;
  private settled = false;
  private readonly sse: SseWriter | undefined;
  private model = '';
  private text = '';
  private readonly calls: CallMade[] = [];

  constructor(
    private readonly services: ApiServices,
    readonly client: HttpClient,
    private readonly exchange: HttpExchange,
    frame: GenFrame | ChatFrame,
    private readonly mode: ReplyMode,
    private readonly format: ReplyFormat,
    /** Headers of the answer (CORS, the request id, the rate limits), read when it is written. */
    private readonly headers: () => Record<string, string>,
    private readonly onEnded: (generation: ApiGeneration) => void,
    receivedAt: number,
  ) {
    this.origin = client.origin;
    this.reply = new Promise((resolve) => (this.settle = resolve));
    this.sse = mode.stream
      ? new SseWriter({
          highWaterBytes: services.config.sendHighWaterBytes,
          stallMs: services.config.slowConsumerMs,
          onStalled: this.guarded(() => this.request.cancel(EndReason.slowConsumer)),
          onPause: () => services.telemetry.backpressurePaused(),
        })
      : undefined;
    this.request = new StreamRequest(this, services, frame, receivedAt);
  }

  get limits(): RequestHost['limits'] {
    return this.client.limits;
  }

  /**
   * Runs the request once the door counts it; a failure outside it (a bug) answers 500 or cuts the
   * stream. A client that closes the connection, now or already, cancels it at once.
   */
  run(): Promise<HttpReply | undefined> {
    this.exchange.onAborted(() => {
      this.request.cancel('disconnected');
      this.answer(CLIENT_GONE);
    });
    if (!this.exchange.aborted) this.request.run().catch((error: unknown) => this.failed(error));
    return this.reply;
  }

  /** Stops it from outside (shutdown). */
  cancel(cause: StopCause): void {
    this.request.cancel(cause);
  }

  send(frame: ServerFrame): void {
    if (this.exchange.aborted) return;
    switch (frame.t) {
      case 'start':
        this.model = frame.model;
        if (this.sse) {
          this.sse.open(this.exchange, this.headers());
          this.answer(undefined);
          const opening = this.format.opening(this.model);
          if (opening) this.sse.event(opening);
        }
        return;
      case 'tok':
        if (this.sse) this.sse.event(this.format.text(this.model, frame.text));
        else this.text += frame.text;
        return;
      case 'tool': {
        const call = { id: frame.callId, name: frame.name, arguments: frame.arguments };
        if (this.sse) this.sse.event(this.format.call(this.model, call, this.calls.length));
        this.calls.push(call);
        return;
      }
      case 'end':
        return this.finish(frame.reason, frame.usage);
      case 'err':
        return this.sendError(frame);
      default:
        // `queued` (the position in the slot queue) has no counterpart in OpenAI's API.
        return;
    }
  }

  sendError(error: Omit<ErrFrame, 't'>): void {
    this.services.telemetry.error(error.code, error.message, this.model || undefined);
    if (this.exchange.aborted) return;
    const failure = ApiError.of(error);
    if (this.sse?.opened) return this.sse.fail(failure.object);
    this.answer(failure.reply(this.headers()));
  }

  waitWritable(): Promise<void> | undefined {
    return this.sse?.waitWritable();
  }

  guarded<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        this.services.faults.inject?.('timer', this.describe());
        body(...args);
      } catch (error) {
        this.failed(error);
      }
    };
  }

  ended(): void {
    this.onEnded(this);
  }

  private describe(): Record<string, string> {
    return { session: this.origin.session, remoteAddress: this.origin.remoteAddress, keyName: this.origin.keyName, request: this.request.id };
  }

  private finish(reason: EndReason, usage: { promptTokens: number; completionTokens: number }): void {
    const finishReason = FINISH[reason];
    if (finishReason === undefined) return this.stopped(reason);
    if (!this.sse) return this.answer(jsonReply(200, this.format.whole({ model: this.model, text: this.text, calls: this.calls, finishReason, usage }), this.headers()));
    this.sse.event(this.format.closing(this.model, finishReason));
    if (this.mode.includeUsage) this.sse.event(this.format.usage(this.model, usage));
    this.sse.done();
  }

  /** Ended by a cause, not by the model: cancelled (its client is gone), a stalled reader, shutdown. */
  private stopped(reason: EndReason): void {
    if (reason === EndReason.slowConsumer) return this.sse?.close();
    const error =
      reason === EndReason.shutdown
        ? new ServiceError(ErrorCode.shuttingDown, 'the server is shutting down', { retryAfterMs: 5000 })
        : new ServiceError(ErrorCode.internal, `the generation was stopped (${reason})`);
    this.sendError({ code: error.code, message: error.message, ...(error.retryAfterMs !== undefined && { retryAfterMs: error.retryAfterMs }) });
  }

  /** A fault in this request's own code: reported, the request stopped, the client told (500) or cut. */
  private failed(error: unknown): void {
    this.services.faults.report({ site: 'timer', error, context: this.describe() });
    this.request.cancel('disconnected');
    if (this.sse?.opened) return this.sse.close();
    this.answer(new ApiError(500, ErrorCode.internal, 'the server failed to answer this request').reply(this.headers()));
  }

  private answer(reply: HttpReply | undefined): void {
    if (this.settled) return;
    this.settled = true;
    this.settle(reply);
  }
}
