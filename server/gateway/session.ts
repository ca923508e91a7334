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
  type GenFrame,
  type LimitsInfo,
  type ServerFrame,
  type WireFormat,
} from '../../protocol/index.js';
import type { Config } from '../config/config.js';
import type { ModelPool } from '../pool/model-pool.js';
import type { CloseCause, Origin, Telemetry } from '../telemetry/events.js';
import type { Logger } from '../telemetry/logger.js';
import type { Connection, ConnectionHandler } from './connection.js';
import { StreamRequest } from './stream-request.js';

/** What every session shares. */
export interface SessionContext {
  config: Config;
  pool: ModelPool;
  logger: Logger;
  telemetry: Telemetry;
  /** True once shutdown began: new generations are refused. */
  isShuttingDown(): boolean;
}

/**
 * One client connection: decodes and validates frames at the edge, keeps the connection's
 * in-flight requests by id and routes frames between them and the socket.
 */
export class Session implements ConnectionHandler {
  readonly id = randomUUID();
  readonly openedAt = Date.now();
  readonly requests = new Map<string, StreamRequest>();
  readonly origin: Origin;
  private open = true;
  /** Set when the server closes the socket, so the close is counted under its real cause. */
  private closeCause: CloseCause | undefined;
  private drainWaiters: (() => void)[] = [];
  private drainPromise: Promise<void> | undefined;

  constructor(private readonly connection: Connection, readonly format: WireFormat, readonly context: SessionContext) {
    this.origin = { session: this.id, remoteAddress: connection.remoteAddress, keyName: 'anonymous' };
  }

  get isOpen(): boolean {
    return this.open;
  }

  /** Greets the client with the protocol, its session id, the models and its limits. */
  start(): void {
    this.context.telemetry.connectionOpened(this.origin);
    this.send({
      t: 'hello',
      protocol: this.format === 'json' ? Subprotocol.json : Subprotocol.msgpack,
      session: this.id,
      models: this.context.pool.list(),
      limits: this.limits(),
    });
  }

  message(data: ArrayBuffer, isBinary: boolean): void {
    this.context.telemetry.frameIn(data.byteLength);
    if (data.byteLength > WireLimits.maxFrameBytes) {
      return this.close(CloseCode.messageTooBig, `frame exceeds ${WireLimits.maxFrameBytes} bytes`, 'too_big');
    }
    const decoded = decodeMessage(data, isBinary, this.format);
    if (!decoded.ok) return this.sendError({ code: ErrorCode.badFrame, message: decoded.reason });
    const parsed = parseClientFrame(decoded.value);
    if (!parsed.ok) return parsed.problem.id === undefined ? this.sendError(parsed.problem) : this.refuse(parsed.problem);
    const frame = parsed.frame;
    switch (frame.t) {
      case 'gen':
        return this.startRequest(frame, performance.now());
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
    }
  }

  drain(): void {
    if (this.drainWaiters.length === 0 || this.connection.bufferedAmount() >= this.context.config.sendHighWaterBytes) return;
    this.releaseDrainWaiters();
  }

  closed(): void {
    this.open = false;
    this.context.telemetry.connectionClosed(this.origin, this.closeCause ?? 'client', Date.now() - this.openedAt);
    for (const request of this.requests.values()) request.cancel('disconnected');
    this.releaseDrainWaiters();
  }

  /** Encodes and sends a frame; frames for a closed socket are discarded. */
  send(frame: ServerFrame): void {
    if (!this.open) return;
    const message = encodeFrame(frame, this.format);
    this.context.telemetry.frameOut(typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength);
    this.connection.send(message, this.format === 'msgpack');
  }

  sendError(error: Omit<ErrFrame, 't'>): void {
    this.context.telemetry.error(error.code, error.message);
    this.send({ t: 'err', ...error });
  }

  /** Refuses a `gen` before it reaches a model; its err frame is the request's terminal frame. */
  refuse(error: Omit<ErrFrame, 't'>, model?: string): void {
    this.context.telemetry.requestRefused(error.code, this.origin, model);
    this.sendError(error);
  }

  /** Resolves when the socket's buffer is below the high-water mark; undefined when it already is. */
  waitWritable(): Promise<void> | undefined {
    if (!this.open || this.connection.bufferedAmount() < this.context.config.sendHighWaterBytes) return undefined;
    if (!this.drainPromise) {
      this.context.telemetry.backpressurePaused();
      this.drainPromise = new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
    return this.drainPromise;
  }

  /** Closes the socket gracefully; `cause` is what metrics and logs record. */
  close(code: number, reason: string, cause: CloseCause): void {
    if (!this.open) return;
    this.closeCause ??= cause;
    this.connection.close(code, reason);
  }

  private releaseDrainWaiters(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    this.drainPromise = undefined;
    for (const resolve of waiters) resolve();
  }

  private startRequest(frame: GenFrame, receivedAt: number): void {
    const { config } = this.context;
    if (this.context.isShuttingDown()) {
      return this.refuse({ id: frame.id, code: ErrorCode.shuttingDown, message: 'the server is shutting down', retryAfterMs: 5000 });
    }
    if (this.requests.has(frame.id)) {
      return this.refuse({ code: ErrorCode.duplicateId, message: `request "${frame.id}" is already in flight`, details: { id: frame.id } });
    }
    if (this.requests.size >= config.maxStreamsPerConnection) {
      return this.refuse({
        id: frame.id,
        code: ErrorCode.tooManyStreams,
        message: `at most ${config.maxStreamsPerConnection} requests may be in flight on one connection`,
        details: { limit: config.maxStreamsPerConnection },
      });
    }
    const request = new StreamRequest(this, frame, receivedAt);
    this.requests.set(frame.id, request);
    void request.run();
  }

  private limits(): LimitsInfo {
    const { config } = this.context;
    return {
      maxFrameBytes: WireLimits.maxFrameBytes,
      maxConcurrentStreams: config.maxStreamsPerConnection,
      maxTokensDefault: config.maxTokensDefault,
      maxTokensCeiling: config.maxTokensCeiling,
    };
  }
}
