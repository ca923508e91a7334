import { randomUUID } from 'node:crypto';
import {
  CloseCode,
  ErrorCode,
  Subprotocol,
  WireLimits,
  decodeMessage,
  encodeFrame,
  parseClientFrame,
  type ErrFrame,
  type ChatFrame,
  type GenFrame,
  type LimitsInfo,
  type ResumeFrame,
  type ServerFrame,
  type WireFormat,
} from '../../protocol/index.js';
import type { CloseCause, Origin } from '../telemetry/events.js';
import { ServiceError, errFrameOf } from '../errors.js';
import type { Connection, ConnectionHandler, FaultSink, FaultSite } from '../transport/types.js';
import { ConnectionLimits, type FrameVerdict } from './connection-limits.js';
import type { Ingress, IngressQueue } from './ingress.js';
import { FlowControl } from './flow-control.js';
import type { RequestCounter, RequestHost, RequestServices } from './request-host.js';
import type { StopCause } from './request-lifecycle.js';
import type { ResumeStore } from './resume-store.js';
import { StreamRequest } from './stream-request.js';
import type { Principal } from './upgrade-guard.js';

/**
 * Where a connection is: `open`; `dropping` (a stalled reader: its streams are being ended, the
 * close follows); `closing` (the server sent its close: nothing more is sent); `closed`.
 */
export type SessionState = 'open' | 'dropping' | 'closing' | 'closed';

/** What every session shares. */
export interface SessionContext extends RequestServices {
  /** Where a failure in a timer or promise the gateway started is reported. */
  faults: FaultSink;
  /** Takes turns handling the frames connections queued. */
  ingress: Ingress;
  /** True once shutdown began: new generations are refused. */
  isShuttingDown(): boolean;
  /** Keeps requests of dropped connections for a `resume`. */
  resume: ResumeStore;
}

/** Frames up to this size are decoded as they arrive (tens of microseconds); larger ones queue. */
const INLINE_FRAME_BYTES = 16 * 1024;
/** Received, unhandled bytes one connection may queue: above the request burst of large prompts. */
const MAX_INBOX_BYTES = 8 * 1024 * 1024;
/** A `limits` frame is sent at most this often unless a refusal makes it urgent. */
const LIMITS_FRAME_INTERVAL_MS = 1000;
/** The reason uWS reports when it cuts a connection for a text frame that is not UTF-8. */
const INVALID_UTF8_REASON = 'Received invalid UTF-8';
/** The reason uWS reports when it cuts a connection for a frame over its maxPayloadLength. */
const TOO_BIG_REASON = 'Received too big message';
/** After a close for a stalled reader, give the close handshake this long before dropping the socket. */
const CLOSE_GRACE_MS = 2000;

/**
 * One client connection: decodes and validates frames at the edge, applies the connection's
 * limits, keeps its in-flight requests by id and routes frames between them and the socket.
 */
export class Session implements ConnectionHandler, RequestHost {
  readonly id = randomUUID();
  readonly openedAt = Date.now();
  private readonly requests = new Map<string, StreamRequest>();
  readonly origin: Origin;
  private state: SessionState = 'open';
  /** Set when the server closes the socket, so the close is counted under its real cause. */
  private closeCause: CloseCause | undefined;
  readonly limits: ConnectionLimits;
  private readonly flow: FlowControl;
  private lastLimitsSentAt = 0;
  private lastMessageAt = performance.now();
  /** Frames received and not handled yet (see Ingress), with their bytes. */
  private readonly inbox: { data: ArrayBuffer; isBinary: boolean; verdict: FrameVerdict; receivedAt: number }[] = [];
  private inboxBytes = 0;

  constructor(
    private readonly connection: Connection,
    readonly format: WireFormat,
    readonly context: SessionContext,
    readonly principal: Principal,
    private readonly counter: RequestCounter,
  ) {
    this.origin = { session: this.id, remoteAddress: connection.remoteAddress, keyName: principal.keyName };
    this.limits = new ConnectionLimits(context.config, principal.budget);
    this.flow = new FlowControl(connection, {
      highWaterBytes: context.config.sendHighWaterBytes,
      hardLimitBytes: context.config.sendHighWaterBytes * 4,
      stallMs: context.config.slowConsumerMs,
      onPause: () => context.telemetry.backpressurePaused(),
      onStalled: this.guarded(() => this.dropSlowConsumer()),
    });
  }

  /**
   * Wraps a callback the gateway runs outside the transport's own callbacks (timers, promise
   * continuations): a throw from it is reported and closes this connection with 1011, never the process.
   */
  guarded<A extends unknown[]>(body: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        this.context.faults.inject?.('timer', this.describe());
        body(...args);
      } catch (error) {
        this.failed(error);
      }
    };
  }

  /** Reports a fault of this connection and closes it with 1011. */
  failed(error: unknown, site: FaultSite = 'timer'): void {
    this.context.faults.report({ site, error, context: this.describe() });
    this.close(CloseCode.internalError, 'internal error', 'error');
  }

  describe(): Record<string, string> {
    return { session: this.id, remoteAddress: this.origin.remoteAddress, keyName: this.origin.keyName };
  }

  get isOpen(): boolean {
    return this.state !== 'closed';
  }

  /** Requests admitted on this connection and not yet ended. */
  get inFlight(): number {
    return this.requests.size;
  }

  /** Stops every request of this connection. */
  cancelAll(cause: StopCause): void {
    for (const request of this.requests.values()) request.cancel(cause);
  }

  /** Greets the client with the protocol, its session id and resume token, the models and its limits. */
  start(): void {
    this.context.telemetry.connectionOpened(this.origin);
    const resumeToken = this.context.resume.open(this.id, this.principal.keyName);
    this.send({
      t: 'hello',
      protocol: this.format === 'json' ? Subprotocol.json : Subprotocol.msgpack,
      session: this.id,
      models: this.context.pool.list(),
      limits: this.limitsInfo(),
      ...(resumeToken !== undefined && { resumeToken, resumeWindowMs: this.context.config.resumeWindowMs }),
      replica: this.context.config.replicaId,
    });
    this.lastLimitsSentAt = performance.now();
  }

  message(data: ArrayBuffer, isBinary: boolean): void {
    const receivedAt = performance.now();
    this.lastMessageAt = receivedAt;
    this.context.telemetry.frameIn(data.byteLength);
    if (data.byteLength > WireLimits.maxFrameBytes) {
      return this.close(CloseCode.messageTooBig, `frame exceeds ${WireLimits.maxFrameBytes} bytes`, 'too_big');
    }
    // Every frame counts, valid or not, when it arrives: a flood of garbage is a flood.
    const verdict = this.limits.admitFrame();
    if (verdict === 'flood') return this.closeForFlood();
    // A small frame with nothing queued before it costs microseconds: handled now. Anything else
    // waits its turn, so decoding large frames never holds the loop for long.
    if (this.inbox.length === 0 && data.byteLength <= INLINE_FRAME_BYTES) return this.handleFrame(data, isBinary, verdict, receivedAt);
    if (this.inboxBytes + data.byteLength > MAX_INBOX_BYTES) {
      return this.close(CloseCode.policyViolation, 'flood: frames arrive faster than they can be handled', 'flood');
    }
    // uWS reuses the message's memory after this callback: keep a copy.
    this.inbox.push({ data: data.slice(0), isBinary, verdict, receivedAt });
    this.inboxBytes += data.byteLength;
    this.context.ingress.enqueue(this.inboxQueue);
  }

  private readonly inboxQueue: IngressQueue = {
    handleNext: () => {
      const next = this.inbox.shift();
      if (next === undefined) return false;
      this.inboxBytes -= next.data.byteLength;
      try {
        this.context.faults.inject?.('message', this.describe());
        this.handleFrame(next.data, next.isBinary, next.verdict, next.receivedAt);
      } catch (error) {
        this.failed(error, 'message');
      }
      return this.inbox.length > 0;
    },
  };

  /** Decodes, validates and acts on one frame that passed the frame bucket's count. */
  private handleFrame(data: ArrayBuffer, isBinary: boolean, verdict: FrameVerdict, receivedAt: number): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    const decoded = decodeMessage(data, isBinary, this.format);
    if (!decoded.ok) return this.sendError({ code: ErrorCode.badFrame, message: decoded.reason });
    const parsed = parseClientFrame(decoded.value);
    if (!parsed.ok) return parsed.problem.id === undefined ? this.sendError(parsed.problem) : this.refuse(parsed.problem);
    const frame = parsed.frame;
    if (verdict === 'refuse') {
      const retryAfterMs = this.limits.frameRetryMs();
      const error = { code: ErrorCode.rateLimited, message: `more than ${this.context.config.maxFramesPerSecond} frames per second`, retryAfterMs };
      this.context.telemetry.rateLimited(this.origin);
      // A refused frame without an id names its type (and a resume its request), so a client can tell which call it answers.
      if (frame.t === 'gen' || frame.t === 'chat') return this.refuse({ id: frame.id, ...error });
      return this.sendError({ ...error, details: frame.t === 'resume' ? { t: frame.t, id: frame.id } : { t: frame.t } });
    }
    switch (frame.t) {
      case 'gen':
      case 'chat':
        return this.startRequest(frame, receivedAt);
      case 'cancel': {
        const request = this.requests.get(frame.id);
        if (request) return request.cancel('cancelled');
        // No `id` field: an err carrying the id would read as a second terminal frame for it.
        return this.sendError({ code: ErrorCode.unknownId, message: `no request "${frame.id}" is in flight`, details: { id: frame.id } });
      }
      case 'ping':
        return this.send({ t: 'pong', ts: frame.ts ?? Date.now() });
      case 'models':
        return this.send({ t: 'models', models: this.context.pool.list() });
      case 'resume':
        return this.resumeRequest(frame);
    }
  }

  drain(): void {
    this.flow.drain();
  }

  closed(code: number, message: string): void {
    this.state = 'closed';
    this.inbox.length = 0;
    this.inboxBytes = 0;
    const cause = this.closeCause ?? this.peerCloseCause(code, message);
    // Gone without a close handshake (network loss, a killed client, silence): the client may come
    // back, so its requests wait, paused, for a resume. A close it asked for cancels them.
    const dropped = this.closeCause === undefined && code === CloseCode.abnormal && (cause === 'client' || cause === 'idle');
    for (const request of this.requests.values()) {
      if (!(dropped && this.context.resume.detach(request))) request.cancel('disconnected');
    }
    this.context.resume.sessionClosed(this.id);
    this.flow.resume();
    this.context.telemetry.connectionClosed(this.origin, cause, Date.now() - this.openedAt);
  }

  /** Encodes and sends a frame; frames for a closed socket are discarded. */
  send(frame: ServerFrame): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    const message = encodeFrame(frame, this.format);
    this.context.telemetry.frameOut(typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength);
    this.connection.send(message, this.format === 'msgpack');
    this.flow.afterSend();
  }

  sendError(error: Omit<ErrFrame, 't'>): void {
    this.context.telemetry.error(error.code, error.message);
    this.send({ t: 'err', ...error });
  }

  /**
   * Refuses a `gen` or `chat` before it reaches a model; its err frame is the request's terminal frame. When
   * the id belongs to a request still in flight, the refusal is a duplicate_id without an `id`
   * field, so it never reads as that request's terminal frame, whatever else was wrong.
   */
  refuse(error: Omit<ErrFrame, 't'>, model?: string): void {
    if (error.id !== undefined && this.requests.has(error.id)) return this.refuseDuplicate(error.id);
    const requestId = error.id ?? (typeof error.details?.id === 'string' ? error.details.id : undefined);
    this.context.telemetry.requestRefused(error.code, this.origin, model, requestId);
    // With an id, the refusal is the request's one frame: its seq is 1.
    this.sendError(error.id === undefined ? error : { ...error, seq: 1 });
  }

  private refuseDuplicate(id: string): void {
    this.context.telemetry.requestRefused(ErrorCode.duplicateId, this.origin, undefined, id);
    this.sendError({ code: ErrorCode.duplicateId, message: `request "${id}" is already in flight`, details: { id } });
  }

  /** Resolves when the socket's buffer is below the high-water mark; undefined when it already is. */
  waitWritable(): Promise<void> | undefined {
    return this.state === 'closed' ? undefined : this.flow.waitWritable();
  }

  /** A request claimed its terminal frame (or its client left): it no longer counts anywhere. */
  ended(id: string): void {
    if (!this.requests.delete(id)) return;
    if (this.principal.budget) this.principal.budget.streams--;
    this.counter.requestEnded();
  }

  /** True when a request with this id is in flight on this connection. */
  hasRequest(id: string): boolean {
    return this.requests.has(id);
  }

  /** Takes in a request resumed from another connection: from now on it counts here. */
  adopt(request: StreamRequest): void {
    this.requests.set(request.id, request);
    if (this.principal.budget) this.principal.budget.streams++;
    this.counter.requestStarted();
  }

  /** A request moved to another connection (resumed there): it no longer counts here. */
  release(id: string): void {
    this.ended(id);
  }

  /** Closes the socket gracefully; `cause` is what metrics and logs record. Nothing is sent after it. */
  close(code: number, reason: string, cause: CloseCause): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.state = 'closing';
    this.closeCause = cause;
    this.connection.close(code, reason);
  }

  private startRequest(frame: GenFrame | ChatFrame, receivedAt: number): void {
    const { config } = this.context;
    if (this.requests.has(frame.id)) return this.refuseDuplicate(frame.id);
    if (this.context.isShuttingDown()) {
      return this.refuse({ id: frame.id, code: ErrorCode.shuttingDown, message: 'the server is shutting down', retryAfterMs: 5000 });
    }
    if (this.requests.size >= config.maxStreamsPerConnection) {
      return this.refuse({
        id: frame.id,
        code: ErrorCode.tooManyStreams,
        message: `at most ${config.maxStreamsPerConnection} requests may be in flight on one connection`,
        details: { limit: config.maxStreamsPerConnection },
      });
    }
    try {
      this.limits.admitGeneration(frame.model, this.context.pool.defaultName);
    } catch (error) {
      if (!(error instanceof ServiceError)) throw error;
      this.refuse(errFrameOf(error, frame.id), frame.model);
      if (error.code === ErrorCode.rateLimited) {
        this.context.telemetry.rateLimited(this.origin);
        this.sendLimits(true);
        if (this.limits.recordRefusal()) this.closeForFlood();
      }
      return;
    }
    // Its frames go through a host that numbers and keeps them for a resume.
    const request = this.context.resume.admit(this, frame.id, (host) => new StreamRequest(host, this.context, frame, receivedAt));
    this.requests.set(frame.id, request);
    if (this.principal.budget) this.principal.budget.streams++;
    this.counter.requestStarted();
    this.sendLimits(false);
    request.run().catch((error: unknown) => this.failed(error));
  }

  /** Takes over a request of a dropped (or other) connection; a refusal names the request in `details`. */
  private resumeRequest(frame: ResumeFrame): void {
    const refusal = this.context.resume.resume(this, frame);
    if (!refusal) return;
    // No `id` field: an err carrying the id would read as the terminal frame of a request of this connection.
    this.sendError({ ...refusal, details: { ...refusal.details, t: frame.t, id: frame.id } });
    if (this.limits.recordRefusal()) this.closeForFlood();
  }

  /** Sends the bucket levels: at once after a refusal, else at most once a second. */
  private sendLimits(urgent: boolean): void {
    const now = performance.now();
    if (!urgent && now - this.lastLimitsSentAt < LIMITS_FRAME_INTERVAL_MS) return;
    const info = this.limitsInfo();
    if (info.requestsRemaining === undefined && info.tokensRemaining === undefined) return;
    this.lastLimitsSentAt = now;
    this.send({ t: 'limits', ...info });
  }

  private limitsInfo(): LimitsInfo {
    const { config } = this.context;
    return {
      maxFrameBytes: WireLimits.maxFrameBytes,
      maxConcurrentStreams: config.maxStreamsPerConnection,
      maxTokensDefault: config.maxTokensDefault,
      maxTokensCeiling: config.maxTokensCeiling,
      ...this.limits.levels(),
    };
  }

  /**
   * Why the socket closed when the server did not close it: the library cuts a connection that sent
   * invalid UTF-8 in a text frame, and one that stayed silent for the idle timeout, without a close
   * frame (1006; its timers tick in steps of seconds, so silence of half the timeout is taken as the
   * sign); otherwise the client left.
   */
  private peerCloseCause(code: number, message: string): CloseCause {
    // uWS cuts a connection that sends a text frame of invalid UTF-8, or a frame past
    // maxPayloadLength, without a close frame.
    if (message === INVALID_UTF8_REASON) return 'invalid_utf8';
    if (message === TOO_BIG_REASON) return 'too_big';
    const silentMs = performance.now() - this.lastMessageAt;
    return code === CloseCode.abnormal && silentMs >= this.context.config.idleTimeoutS * 500 ? 'idle' : 'client';
  }

  private closeForFlood(): void {
    this.close(CloseCode.policyViolation, 'flood: too many refused frames', 'flood');
  }

  /** The client stopped reading: end its streams (the frames are queued for it) and close. */
  private dropSlowConsumer(): void {
    if (this.state !== 'open') return;
    this.state = 'dropping';
    this.cancelAll('slow_consumer');
    // Let the cancelled streams queue their end frames before the close frame.
    setImmediate(
      this.guarded(() => {
        this.close(CloseCode.policyViolation, 'slow consumer', 'slow_consumer');
        setTimeout(this.guarded(() => this.connection.terminate()), CLOSE_GRACE_MS).unref();
      }),
    );
  }
}
