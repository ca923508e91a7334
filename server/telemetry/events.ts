import type { EndReason, ErrorCode, Timings, Usage } from '../../protocol/index.js';

/** Why a connection closed, as counted in metrics and the access log. */
export type CloseCause = 'client' | 'idle' | 'flood' | 'slow_consumer' | 'shutdown' | 'admin' | 'too_big' | 'invalid_utf8' | 'error';

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
  /**
   * A `gen` was refused before reaching a model (invalid, duplicate, limits...). `requestId`
   * (optional, added later) is the client's id when the frame carried one, for the access log.
   */
  requestRefused(code: ErrorCode, origin: Origin, model?: string, requestId?: string): void;
  connectionOpened(origin: Origin): void;
  connectionClosed(origin: Origin, cause: CloseCause, ageMs: number): void;
  frameIn(bytes: number): void;
  frameOut(bytes: number): void;
  rateLimited(origin: Origin): void;
  /** A request was answered from the response cache (optional). */
  cacheHit?(model: string): void;
  /** A stream paused because its socket's buffer passed the high-water mark. */
  backpressurePaused(): void;
  /** An error worth showing operators (sent to a client or raised inside). */
  error(code: string, message: string, model?: string): void;
  /** A handler threw or rejected at the transport edge (`site`: http, message, timer...) and was contained. */
  fault(site: string, message: string): void;
  /**
   * A model finished loading (optional). Memory figures and load duration are read from it
   * until its node-llama-cpp model is disposed. The pool calls it for every load.
   */
  modelLoaded?(model: LoadedModelView): void;
}

/** What telemetry reads of a loaded model: structurally satisfied by the pool's LoadedModel. */
export interface LoadedModelView {
  readonly name: string;
  readonly loadMs: number;
  readonly model: {
    readonly disposed: boolean;
    /** Bytes of weights in memory (node-llama-cpp `LlamaModel.size`). */
    readonly size: number;
    readonly onDispose: { createListener(listener: () => void): { dispose(): void } };
  };
  readonly context: {
    readonly disposed: boolean;
    /** node-llama-cpp's own estimate of the context's RAM and VRAM. */
    readonly memoryUsage: { ram: number; vram: number };
  };
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
  fault() {},
};
