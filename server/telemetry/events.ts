import type { EndReason, ErrorCode, Timings, Usage } from '../../protocol/index.js';

/** Why a connection closed, as counted in metrics and the access log. */
export type CloseCause = 'client' | 'idle' | 'flood' | 'slow_consumer' | 'shutdown' | 'admin' | 'too_big' | 'error';

/** How a request ended: an end reason, or the code of its terminal `err`. */
export type RequestOutcome = EndReason | ErrorCode;

/** Who a connection or request belongs to, for logs; never key material. */
export interface Origin {
  session: string;
  remoteAddress: string;
  /** Name of the API key, or `anonymous` when the service runs open. */
  keyName: string;
}

/** Hooks for one request, obtained when it reaches a model; cheap enough for the token path. */
export interface RequestTelemetry {
  /** A slot was leased after `queueMs` of waiting. */
  started(queueMs: number): void;
  /** One token was generated (called on the token path: must not allocate). */
  token(): void;
  /** The request's terminal frame was sent (or the client left). Called exactly once. */
  ended(outcome: RequestOutcome | 'disconnected', usage: Usage, timings: Timings): void;
}

/** Everything the request path reports; the telemetry folder implements it. */
export interface Telemetry {
  request(model: string, requestId: string, origin: Origin): RequestTelemetry;
  /** A `gen` was refused before reaching a model (invalid, duplicate, limits...). */
  requestRefused(code: ErrorCode, origin: Origin, model?: string): void;
  connectionOpened(origin: Origin): void;
  connectionClosed(origin: Origin, cause: CloseCause, ageMs: number): void;
  frameIn(bytes: number): void;
  frameOut(bytes: number): void;
  rateLimited(origin: Origin): void;
  /** A stream paused because its socket's buffer passed the high-water mark. */
  backpressurePaused(): void;
  /** An error worth showing operators (sent to a client or raised inside). */
  error(code: string, message: string, model?: string): void;
}

const noRequest: RequestTelemetry = { started() {}, token() {}, ended() {} };

/** Telemetry that records nothing (tests and tools that need no metrics). */
export const noTelemetry: Telemetry = {
  request: () => noRequest,
  requestRefused() {},
  connectionOpened() {},
  connectionClosed() {},
  frameIn() {},
  frameOut() {},
  rateLimited() {},
  backpressurePaused() {},
  error() {},
};
